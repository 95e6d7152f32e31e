"""Class names for reports: a ``--labels`` file, or ImageNet's for 1000 classes.

A report that says "class 904" makes the reader look the index up; a name
("window screen") shows at once whether the prediction is plausible.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import sys
from typing import List, Optional, Tuple

__all__ = ["read_labels_file", "imagenet_class_names", "class_names_for", "label_of"]

# Keras' own copy, as keras.applications' decode_predictions downloads it; the
# same cache name and hash, so a file that Keras already fetched is reused.
IMAGENET_INDEX_URL = ("https://storage.googleapis.com/download.tensorflow.org/"
                      "data/imagenet_class_index.json")
IMAGENET_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
IMAGENET_CLASSES = 1000


def _names_from_json(data, path) -> List[str]:
    """A list of names, ``{index: name}`` or Keras' ``{index: [wnid, name]}``."""
    if isinstance(data, list) and all(isinstance(n, str) for n in data):
        return list(data)
    if isinstance(data, dict) and all(str(k).isdigit() for k in data):
        names = {}
        for key, value in data.items():
            if isinstance(value, list) and value and isinstance(value[-1], str):
                value = value[-1]  # Keras' index: [wnid, name]
            if not isinstance(value, str):
                break
            names[int(key)] = value
        else:
            if sorted(names) == list(range(len(names))):
                return [names[i] for i in range(len(names))]
    raise ValueError(
        f"--labels {path} is JSON but not a list of class names: expected "
        '["cat", "dog", ...], {"0": "cat", ...} or Keras\' {"0": ["n0...", "cat"], ...} '
        "with indices 0, 1, 2, ... and no gaps."
    )


def read_labels_file(path) -> List[str]:
    """Class names from a file: one name per line, or JSON.

    Args:
        path: a text file with one name per line (line 1 = class 0), or a
            ``.json`` file: a list of names, ``{"0": name, ...}`` or Keras'
            ImageNet index ``{"0": [wnid, name], ...}``.

    Returns:
        The names, index order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no names, or JSON of another shape.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--labels: no such file: {path}. Pass a text file with one "
                                "class name per line, or a JSON list of names.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            return _names_from_json(json.loads(text), path)
        except json.JSONDecodeError as err:
            raise ValueError(f"--labels {path} is not valid JSON ({err}).") from None
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()  # a trailing newline is not a class
    if not names:
        raise ValueError(f"--labels {path} is empty: expected one class name per line.")
    return names


def imagenet_class_names() -> Tuple[Optional[List[str]], str]:
    """ImageNet's 1000 class names, from Keras' cached class index.

    The first call downloads ``imagenet_class_index.json`` (35 kB) into
    ``~/.keras/models``, as ``keras.applications`` does; offline, without that
    cache, it returns ``None`` and says why.

    Returns:
        ``(names or None, a note for the report)``.
    """
    import keras

    try:
        # get_file prints "Downloading data from ..." on stdout, which
        # belongs to --json output: send it to stderr with the progress.
        with contextlib.redirect_stdout(sys.stderr):
            path = keras.utils.get_file("imagenet_class_index.json", IMAGENET_INDEX_URL,
                                        cache_subdir="models", file_hash=IMAGENET_INDEX_MD5)
        names = _names_from_json(json.loads(pathlib.Path(path).read_text()), path)
    except Exception as err:  # offline, proxy, corrupt cache: all end the same way
        reason = " ".join(str(err).split())[:160]
        return None, (f"Class names: ImageNet's could not be loaded ({reason}); classes are "
                      "shown by index. Pass --labels FILE (e.g. a saved "
                      "imagenet_class_index.json) to show names.")
    return names, ("Class names: ImageNet's (Keras' imagenet_class_index.json), as the "
                   "model has 1000 classes; pass --labels FILE if its classes are others.")


def class_names_for(n_classes: Optional[int], labels: Optional[List[str]] = None
                    ) -> Tuple[Optional[List[str]], str]:
    """The names to show for a model with ``n_classes`` outputs.

    Args:
        n_classes: the explained output's size (None: unknown).
        labels: names read from ``--labels`` (None: not given).

    Returns:
        ``(names or None, a note for the report; "" when nothing needs saying)``.

    Raises:
        ValueError: ``labels`` has a different count than the output.
    """
    if labels is not None:
        if n_classes is not None and len(labels) != n_classes:
            raise ValueError(
                f"--labels has {len(labels)} class names; the explained output has "
                f"{n_classes} classes. Pass a file with one name per class, in index order."
            )
        return labels, "Class names: from --labels."
    if n_classes == IMAGENET_CLASSES:
        return imagenet_class_names()
    return None, ""


def label_of(index: int, names: Optional[List[str]]) -> str:
    """``"tench (0)"`` with names, ``"0"`` without (or out of range);
    ``"digit 3"`` stays as it is: the name already says its index."""
    if names is None or not 0 <= index < len(names):
        return str(index)
    name = str(names[index])
    if name.split()[-1:] == [str(index)]:
        return name
    return f"{name} ({index})"
