"""ImageNet photos from a folder of ``<wnid>_<name>.JPEG`` files or of
``<wnid>/`` sub-folders.

The class of a photo is its WordNet id, mapped to the Keras class index
through ``imagenet_class_index.json``. Images are resized so that the shorter
side is ``size * 256 / 224``, centre-cropped to ``size`` and scaled to
[-1, 1] (``keras.applications.mobilenet.preprocess_input``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import List, Optional, Sequence, Tuple

import numpy as np

from conductance_studies.datasets.paths import default_data_dir

__all__ = ["ImageSamples", "imagenet_class_index", "load_imagenet_classes",
           "load_imagenet_samples"]


@dataclasses.dataclass
class ImageSamples:
    """Photos with their ImageNet classes.

    Attributes:
        images: ``(N, size, size, 3)`` float32 in [-1, 1] (model input).
        pixels: ``(N, size, size, 3)`` uint8, the same crops for display.
        labels: ``(N,)`` int Keras class index.
        names: ``(N,)`` class names.
        files: the source files.
    """

    images: np.ndarray
    pixels: np.ndarray
    labels: np.ndarray
    names: List[str]
    files: List[pathlib.Path]

    def __len__(self) -> int:
        return len(self.labels)


def imagenet_class_index(data_dir=None) -> List[Tuple[str, str]]:
    """The 1,000 ``(wnid, name)`` pairs, in Keras class order."""
    path = default_data_dir(data_dir) / "imagenet" / "imagenet_class_index.json"
    raw = json.loads(path.read_text())
    return [tuple(raw[str(i)]) for i in range(len(raw))]


def _crop(path: pathlib.Path, size: int) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Reading photos needs Pillow: `pip install pillow`.") from None
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = size * 256 / 224 / min(image.size)
        w, h = (max(size, round(s * scale)) for s in image.size)
        image = image.resize((w, h), Image.BILINEAR)
        left, top = (w - size) // 2, (h - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), np.uint8)


def load_imagenet_samples(folder=None, *, size: int = 224, limit: Optional[int] = None,
                          data_dir=None) -> ImageSamples:
    """Loads the photos of ``folder`` (default ``<data_dir>/imagenet/samples``).

    Args:
        folder: a folder of ``<wnid>_<anything>.JPEG`` files.
        size: output height and width.
        limit: keep the first ``limit`` files (sorted by name).
        data_dir: the staged data folder, for the class index.

    Returns:
        ``ImageSamples`` sorted by file name.
    """
    index = imagenet_class_index(data_dir)
    by_wnid = {wnid: i for i, (wnid, _) in enumerate(index)}
    folder = pathlib.Path(folder) if folder else default_data_dir(data_dir) / "imagenet" / "samples"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    files = files[:limit] if limit else files
    unknown = [p.name for p in files if p.name.split("_", 1)[0] not in by_wnid]
    if unknown:
        raise ValueError(
            f"Cannot tell the class of {unknown[:5]}: file names must start with an "
            "ImageNet wnid, e.g. 'n01440764_tench.JPEG'."
        )
    labels = np.array([by_wnid[p.name.split("_", 1)[0]] for p in files])
    return _samples(files, labels, size, index)


def _samples(files, labels: np.ndarray, size: int, index) -> ImageSamples:
    pixels = np.stack([_crop(p, size) for p in files])
    # keras.applications.mobilenet.preprocess_input: x / 127.5 - 1.
    images = pixels.astype(np.float32) / 127.5 - 1.0
    return ImageSamples(images, pixels, labels, [index[i][1] for i in labels], list(files))


def load_imagenet_classes(wnids: Sequence[str], folder=None, *, size: int = 224,
                          per_class: Optional[int] = None, data_dir=None) -> ImageSamples:
    """Loads the photos of ``<folder>/<wnid>/`` for each wnid (the label is
    the folder's name, as in ImageNet's own train/val layout).

    Args:
        wnids: the classes to load, e.g. ``["n02086240", "n01440764"]``.
        folder: the folder holding one sub-folder per wnid (default
            ``<data_dir>/imagenet/val50``: 50 validation photos per class).
        size: output height and width.
        per_class: keep the first ``per_class`` photos of each class (sorted
            by file name); all by default.
        data_dir: the staged data folder, for the class index and default folder.

    Returns:
        ``ImageSamples`` grouped by class in the order of ``wnids``.
    """
    index = imagenet_class_index(data_dir)
    by_wnid = {wnid: i for i, (wnid, _) in enumerate(index)}
    folder = pathlib.Path(folder) if folder else default_data_dir(data_dir) / "imagenet" / "val50"
    unknown = [w for w in wnids if w not in by_wnid]
    if unknown:
        raise ValueError(f"`wnids` holds ids that are not ImageNet classes: {unknown[:5]}. "
                         "Valid ids look like 'n02086240' (see imagenet_class_index()).")
    missing = [w for w in wnids if not (folder / w).is_dir()]
    if missing:
        present = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        raise FileNotFoundError(f"No photo folder for {missing[:5]} under {folder}. "
                                f"Folders there: {present[:25]}.")
    files, labels = [], []
    for wnid in wnids:
        photos = sorted(p for p in (folder / wnid).iterdir()
                        if p.suffix.lower() in (".jpeg", ".jpg", ".png"))[:per_class]
        files += photos
        labels += [by_wnid[wnid]] * len(photos)
    return _samples(files, np.array(labels), size, index)
