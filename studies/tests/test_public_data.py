"""fetch_public_data builds the staged layout from public addresses.

There is no internet here, so the addresses are mirrored to the staged copies
of the same files (``file://`` URLs): what is tested is the layout, the
pinned checksums, the conversions and that the loaders read the result.
"""

import hashlib
import io
import pathlib
import tarfile

import numpy as np
import pytest

from conductance_studies.datasets import load_imagenet_samples, load_sst
from conductance_studies.datasets import public


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def staged_mirror(data: pathlib.Path):
    """Each public address -> the staged copy of the same file."""
    return {
        public.SST_URL: (data / "sst").as_uri() + "/",
        public.SST_TREES_URL: (data / "sst" / "trainDevTestTrees_PTB.zip").as_uri(),
        public.CLASS_INDEX_URL: (data / "imagenet" / "imagenet_class_index.json").as_uri(),
        public.PHOTOS_URL: (data / "imagenet" / "samples").as_uri() + "/",
        public.KERAS_MOBILENET_URL: (data / "imagenet").as_uri() + "/",
    }


@pytest.mark.data
def test_fetch_builds_the_staged_layout(shared_data, tmp_path):
    lines = []
    folder = public.fetch_public_data(tmp_path / "data", parts=("sst", "imagenet"),
                                      mobilenets=("0.25_128",),
                                      mirror=staged_mirror(shared_data), say=lines.append)
    for rel in ["sst/stsa.binary.train", "sst/stsa.binary.dev", "sst/stsa.binary.test",
                "sst/trainDevTestTrees_PTB.zip", "imagenet/mobilenet_2_5_128_tf.h5"]:
        assert sha256(folder / rel) == sha256(shared_data / rel), rel
    fetched = sorted(p.name for p in (folder / "imagenet" / "samples").iterdir())
    assert fetched == sorted(p.name for p in (shared_data / "imagenet" / "samples").iterdir())
    assert not list(folder.rglob(".*"))  # no partial downloads left behind
    # The loaders read it as they read the staged folder.
    assert len(load_sst("dev", data_dir=folder)) == 872
    photos = load_imagenet_samples(size=128, limit=3, data_dir=folder)
    assert photos.images.shape == (3, 128, 128, 3)
    assert lines[-1] == f"Public data ready in {folder}."
    # A second call downloads nothing: an unreachable mirror is never asked.
    public.fetch_public_data(folder, parts=("sst", "imagenet"), mobilenets=("0.25_128",),
                             mirror={"https://": "file:///nonexistent/"}, say=lambda _: None)


def test_a_download_with_the_wrong_checksum_is_refused_and_removed(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    for name in public.SST_SHA256:
        (fake / name).write_text("0 not the sst file\n")
    with pytest.raises(ValueError, match="stsa.binary.train did not give the expected file"):
        public.fetch_public_data(tmp_path / "data", parts=("sst",),
                                 mirror={public.SST_URL: fake.as_uri() + "/"}, say=lambda _: None)
    assert not (tmp_path / "data" / "sst" / "stsa.binary.train").exists()


def test_unknown_parts_and_mobilenets_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown part in parts: \['photos'\]"):
        public.fetch_public_data(tmp_path, parts=("photos",))
    with pytest.raises(ValueError, match=r"mobilenets holds '1.0_224'"):
        public._fetch_mobilenet(tmp_path, "1.0_224", None)


def add(tar, name, data=b"jpeg"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_val50_keeps_the_first_validation_photos_of_each_class(tmp_path):
    archive = tmp_path / "imagenette2-320.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        add(tar, "imagenette2-320/train/n01440764/n01440764_1.JPEG")      # a training photo
        add(tar, "imagenette2-320/train/n01440764/ILSVRC2012_val_00000300.JPEG")
        add(tar, "imagenette2-320/val/n01440764/ILSVRC2012_val_00000100.JPEG", b"first")
        add(tar, "imagenette2-320/val/n01440764/ILSVRC2012_val_00000200.JPEG")
        add(tar, "imagenette2-320/val/n03888257/ILSVRC2012_val_00000400.JPEG")
        add(tar, "imagenette2-320/val/n09999999/ILSVRC2012_val_00000500.JPEG")  # not asked for
    kept = public.extract_val_photos(archive, ["n01440764", "n03888257"], tmp_path / "val50",
                                     per_class=2)
    assert kept == {"n01440764": 2, "n03888257": 1}
    assert sorted(p.name for p in (tmp_path / "val50" / "n01440764").iterdir()) == [
        "ILSVRC2012_val_00000100.JPEG", "ILSVRC2012_val_00000200.JPEG"]
    assert (tmp_path / "val50" / "n01440764" / "ILSVRC2012_val_00000100.JPEG").read_bytes() == b"first"
    assert not (tmp_path / "val50" / "n09999999").exists()


@pytest.mark.slow
@pytest.mark.data
def test_keras3_weights_give_the_same_model(shared_data, tmp_path):
    import keras

    legacy = shared_data / "imagenet" / "mobilenet_2_5_128_tf.h5"
    public.keras3_weights(legacy, 0.25, 128, tmp_path / "w.weights.h5")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    original = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25,
                                            weights=str(legacy))
    converted = keras.applications.MobileNet(input_shape=(128, 128, 3), alpha=0.25, weights=None)
    converted.load_weights(str(tmp_path / "w.weights.h5"))
    np.testing.assert_array_equal(converted.predict(x, verbose=0), original.predict(x, verbose=0))
