"""Load a saved Keras model and read inputs from files, with clear errors.

Used by the command line; every failure becomes a ``LoadError`` whose message
is one line a user can act on.
"""

from __future__ import annotations

import pathlib
import zipfile
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["LoadError", "load_model_file", "read_inputs", "infer_preprocessing",
           "image_baselines", "IMAGE_SUFFIXES", "PREPROCESSING", "BASELINES"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# How image pixels (0..255 after decoding) are scaled before the model.
_CAFFE_MEAN = np.array([103.939, 116.779, 123.68], np.float32)  # BGR
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)
PREPROCESSING = {
    "raw": lambda a: a,
    "unit": lambda a: a / 255.0,
    "symmetric": lambda a: a / 127.5 - 1.0,  # keras.applications MobileNet/Inception
    "caffe": lambda a: a[..., ::-1] - _CAFFE_MEAN,  # ResNet (v1), VGG: BGR, mean removed
    "torch": lambda a: (a / 255.0 - _TORCH_MEAN) / _TORCH_STD,  # DenseNet
}
# keras.applications families by model name -> the scaling they were trained with.
_FAMILIES = (("resnet50v2", "symmetric"), ("resnet101v2", "symmetric"),
             ("resnet152v2", "symmetric"), ("mobilenet", "symmetric"),
             ("inception", "symmetric"), ("xception", "symmetric"), ("nasnet", "symmetric"),
             ("resnet", "caffe"), ("vgg", "caffe"), ("densenet", "torch"))
# Image baselines, in pixel terms before the model's scaling.
BASELINES = ("black", "zero", "uniform", "blur")


def infer_preprocessing(model) -> "Tuple[str, str]":
    """``(mode, why)``: the scaling the saved model needs, where it can be
    known. A Rescaling/Normalization layer among the first layers means the
    model scales raw pixels itself; a keras.applications family name says
    what it was trained with. Otherwise ``("raw", "")``: unknown."""
    import keras

    layers = [layer for layer in _leaf_layers(model)][:6]
    scaling = [layer.name for layer in layers
               if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))]
    if scaling:
        return "raw", f"the model scales its input itself ({scaling[0]})"
    names = [model.name.lower()] + [layer.name.lower() for layer in model.layers
                                    if isinstance(layer, keras.Model)]
    for name in names:
        for family, mode in _FAMILIES:
            if family in name.replace("_", ""):
                return mode, f"'{name}' is a keras.applications {family} model"
    return "raw", ""


def _leaf_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def image_baselines(kind: str, pixels: np.ndarray, preprocess: str) -> np.ndarray:
    """Baselines for images, made in pixel terms (0..255) and scaled as the
    inputs are: ``black`` (the paper's), ``zero`` (zeros after scaling),
    ``uniform`` (uniform noise, seed 0), ``blur`` (each photo blurred), or a
    ``.npy`` path (already scaled, broadcast to the inputs)."""
    scale = PREPROCESSING[preprocess]
    if kind == "black":
        return scale(np.zeros_like(pixels))
    if kind == "zero":
        return np.zeros_like(pixels)
    if kind == "uniform":
        return scale(np.random.default_rng(0).uniform(0, 255, pixels.shape).astype("float32"))
    if kind == "blur":
        return scale(_box_blur(pixels, max(1, pixels.shape[1] // 16)))
    path = pathlib.Path(kind)
    if path.suffix != ".npy" or not path.is_file():
        raise LoadError(f"--baseline must be one of {', '.join(BASELINES)} or an existing "
                        f".npy file; received {kind!r}")
    return np.load(path).astype("float32")


def _box_blur(images: np.ndarray, radius: int) -> np.ndarray:
    """A separable box blur (three passes approximate a Gaussian)."""
    out = images.astype("float32")
    for _ in range(3):
        for axis in (1, 2):
            pad = [(0, 0)] * out.ndim
            pad[axis] = (radius, radius)
            padded = np.pad(out, pad, mode="edge")
            csum = np.cumsum(padded, axis=axis, dtype=np.float64)
            csum = np.concatenate([np.zeros_like(np.take(csum, [0], axis=axis)), csum], axis=axis)
            width = 2 * radius + 1
            hi = np.take(csum, np.arange(width, csum.shape[axis]), axis=axis)
            lo = np.take(csum, np.arange(0, csum.shape[axis] - width), axis=axis)
            out = ((hi - lo) / width).astype("float32")
    return out


class LoadError(Exception):
    """A model or input file that cannot be used, with a one-line reason."""


def load_model_file(path, unsafe: bool = False):
    """Loads a ``.keras`` (or ``.h5``) model with Keras' safe mode on.

    Args:
        path: the model file.
        unsafe: allow unsafe deserialization (Lambda layers with Python code).

    Returns:
        The ``keras.Model``.

    Raises:
        LoadError: missing file, not a Keras model, or a model that needs
            custom objects or unsafe deserialization.
    """
    import keras

    path = pathlib.Path(path)
    if not path.exists():
        raise LoadError(f"no such model file: {path}")
    if path.is_dir() or path.suffix not in (".keras", ".h5", ".hdf5"):
        raise LoadError(
            f"{path} is not a Keras model file: expected a .keras (or legacy .h5) "
            "file saved with model.save(...)"
        )
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        # Keras would say "File not found" about a file that exists.
        raise LoadError(
            f"{path} is not a readable Keras model: it exists ({path.stat().st_size} bytes) "
            "but is not a .keras zip archive. Save the model with model.save('model.keras')."
        )
    try:
        model = keras.models.load_model(path, safe_mode=not unsafe, compile=False)
    except Exception as err:  # Keras raises many types; map them to one line.
        text = " ".join(str(err).split())
        if "safe_mode" in text or "unsafe" in text.lower() or "lambda" in text.lower():
            raise LoadError(
                f"{path} needs unsafe deserialization (it holds Python code, e.g. a "
                "Lambda layer). If you trust the file, rerun with --unsafe."
            ) from None
        if "Could not locate" in text or "custom" in text.lower() or "Unknown" in text:
            raise LoadError(
                f"{path} needs custom objects that are not importable here ({text[:160]}). "
                "Import the module that defines them (registered with "
                "@keras.saving.register_keras_serializable) before loading."
            ) from None
        raise LoadError(f"{path} is not a readable Keras model: {text[:200]}") from None
    if not isinstance(model, keras.Model):
        raise LoadError(f"{path} does not hold a keras.Model")
    return model


def _image_files(path: pathlib.Path) -> List[pathlib.Path]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise LoadError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _scaled(pixels: np.ndarray, preprocess: Optional[str]) -> np.ndarray:
    """Pixels 0..255 scaled as ``preprocess`` says (None: left as pixels)."""
    return pixels if preprocess is None else PREPROCESSING[preprocess](pixels)


def _read_images(files, model) -> np.ndarray:
    import keras

    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[0] is None or shape[1] is None:
        raise LoadError(
            f"images need a model with a fixed (height, width, channels) input; "
            f"this model's input shape is {shape}"
        )
    mode = "grayscale" if shape[2] == 1 else "rgb"
    arrays = []
    for file in files:
        try:
            image = keras.utils.load_img(file, target_size=shape[:2], color_mode=mode)
        except Exception as err:
            raise LoadError(f"cannot read image {file}: {err}") from None
        arrays.append(keras.utils.img_to_array(image))
    return np.stack(arrays).astype("float32")


def _read_npz(path: pathlib.Path, model):
    """One array per named model input, as a dict keyed by input name."""
    from keras_conductance.adapter import input_names

    names = input_names(model)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError) as err:
        raise LoadError(f"cannot read {path}: {err}") from None
    if sorted(arrays) != sorted(names):
        raise LoadError(
            f"{path} holds the arrays {sorted(arrays)}; the model's inputs are "
            f"{names}: save one array per input, e.g. np.savez(path, **inputs)")
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise LoadError(f"the arrays in {path} hold different numbers of examples: "
                        f"{ {k: len(a) for k, a in arrays.items()} }")
    n = sizes.pop()
    return arrays, [f"{path.name}[{i}]" for i in range(n)], "array"


def read_inputs(path, model, preprocess: Optional[str] = "raw") -> Tuple[np.ndarray, Optional[List[str]], str]:
    """Reads the examples to explain.

    Args:
        path: a ``.npy`` array, an image file, a folder of images (resized to
            the model input), or a ``.txt`` file with one sentence per line
            (for a model that takes strings, e.g. with a saved
            ``TextVectorization``).
        model: the model, for its input shape.
        preprocess: image scaling, one of ``PREPROCESSING``; None returns
            images as pixels 0..255 (the caller scales them).

    Returns:
        ``(inputs, names, kind)``: the batch, one name per example, and
        ``"array"``, ``"image"`` or ``"text"``.

    Raises:
        LoadError: a missing file, an unknown format, or inputs of the wrong shape.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise LoadError(f"no such input file or folder: {path}")
    if path.is_dir():
        files = _image_files(path)
        return _scaled(_read_images(files, model), preprocess), [f.name for f in files], "image"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return _scaled(_read_images([path], model), preprocess), [path.name], "image"
    if suffix == ".txt":
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not lines:
            raise LoadError(f"{path} holds no sentences")
        if model.inputs[0].dtype != "string":
            raise LoadError(
                f"{path} holds text, but the model takes {model.inputs[0].dtype} "
                "inputs: save the model with its TextVectorization layer inside, or "
                "pass token ids as a .npy file"
            )
        return np.array(lines, dtype=object)[:, None] if len(model.inputs[0].shape) == 2 \
            else np.array(lines, dtype=object), lines, "text"
    if suffix == ".npz":
        return _read_npz(path, model)
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise LoadError(f"cannot read {path}: {err}") from None
        expected = tuple(model.inputs[0].shape[1:])
        if array.ndim == len(expected):
            array = array[None]
        if array.ndim != len(expected) + 1 or any(
            e is not None and e != a for e, a in zip(expected, array.shape[1:])
        ):
            raise LoadError(
                f"inputs in {path} have shape {array.shape}; the model expects "
                f"(batch, {', '.join(str(e) for e in expected)})"
            )
        return array, [f"{path.name}[{i}]" for i in range(len(array))], "array"
    raise LoadError(
        f"unknown input format {suffix or '(none)'} for {path}: use .npy, .npz, an image "
        f"({', '.join(IMAGE_SUFFIXES)}), a folder of images, or a .txt file"
    )
