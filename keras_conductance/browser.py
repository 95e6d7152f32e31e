"""The unit browser: a static page of what each unit conducts, from a
dataset run with ``top_k`` (``kc.unit_browser``, ``keras-conductance browse``).

The page is a folder that opens from disk (``file://``) or any static host,
Colab included: ``index.html`` with its script and style inline, and
``data/``. The index (``data/index.js``) holds one row per unit: its mean
and mean |conductance| and a histogram. A unit's top contexts live in small
files of ``CHUNK`` units each (``data/<layer>/<chunk>.js``), loaded when a
unit is opened, so a layer of thousands of units costs one small file per
click, never the whole layer. Data files are scripts, not JSON, because a
page opened from disk may not ``fetch`` its neighbours.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict, List, Optional, Sequence, Union

import keras
import numpy as np

from keras_conductance.arguments import check, message
from keras_conductance.browser_page import PAGE
from keras_conductance.dataset_result import DatasetConductance, load_dataset_result
from keras_conductance.browser_maps import display, pixel_overlays, shown_slots, write_png
from keras_conductance.folders import check_writable
from keras_conductance.top_examples import SIGNS

__all__ = ["unit_browser"]

CHUNK = 32  # units per data file


def unit_browser(
    result: Union[DatasetConductance, str, os.PathLike],
    out: Union[str, os.PathLike],
    *,
    vocabulary: Union[None, Sequence[str], Callable[[int], str]] = None,
    class_names: Optional[Sequence[str]] = None,
    label_names: Optional[Sequence[str]] = None,
    pad_id: Optional[int] = 0,
    model: Optional[keras.Model] = None,
    output: Union[None, int, str] = None,
    baselines=None,
    pre_softmax: bool = False,
    n_steps: int = 32,
    batch_size: Optional[int] = None,
) -> str:
    """Writes the unit browser of a dataset run with ``top_k``.

    For each layer of ``result``, the page ranks the units by mean
    |conductance|, each with a histogram of its per-example conductance, and
    shows for a chosen unit its top positive and negative positions: text
    with tokens shaded by the unit's conductance at each position (blue
    positive, red negative), pictures cropped around the cell with the
    unit's per-cell conductance over them, or, given the ``model``, the
    unit's Eq. 2 map: each pixel's conductance through the unit.

    Args:
        result: what ``kc.conductance_over_dataset(..., top_k=K)`` returned,
            or the ``.npz`` path its ``save`` wrote.
        out: the folder to write (created; ``index.html`` inside).
        vocabulary: token strings by id (a list, or a callable such as a
            keras-hub tokenizer's ``id_to_token``), for text models; None
            shows ids.
        class_names: names of the explained classes, by index.
        label_names: names of the dataset's labels, by id (None: the
            ``class_names``; they differ for a one-logit model, whose
            class 0 is its only output).
        pad_id: token id of padding, trimmed from both ends of a text that has
            no ``padding_mask`` input (None: trim nothing).
        model: the model of the dataset run. For image inputs, each kept
            picture then shows the unit's Eq. 2 map (``kc.neuron_conductance``
            for that unit, example and explained class), one map per entry:
            ``2 K`` per unit, so this costs what ``2 K`` units' maps cost per
            example. None: the unit's per-cell conductance at its own layer.
        output, baselines, pre_softmax: as in the dataset run (for the maps).
        n_steps, batch_size: the maps' integration steps and rows per call.

    Returns:
        The path of ``index.html``.

    Raises:
        ValueError: ``result`` was computed without ``top_k``, or ``out``
            cannot be written.
    """
    result = _as_result(result)
    vocabulary = vocabulary if callable(vocabulary) else _strings("vocabulary", vocabulary)
    class_names = _strings("class_names", class_names)
    label_names = _strings("label_names", label_names)
    pad_id = check("pad_id", pad_id)
    out = os.fspath(check("out", out))
    maps = dict(output=output, baselines=baselines, pre_softmax=check("pre_softmax", pre_softmax),
                n_steps=check("n_steps", n_steps), batch_size=check("batch_size", batch_size))
    if model is not None and not isinstance(model, keras.Model):
        raise TypeError(message("model", "a keras.Model (the dataset run's) or None", model))
    if model is not None and len(model.inputs) != 1:
        raise ValueError(message(
            "model", "a model of one (image) input, for the Eq. 2 maps, or None", model,
            got=f"model {model.name!r} with {len(model.inputs)} inputs"))
    check_writable(out, "out")
    examples = _Examples(result, vocabulary, pad_id)
    layers = []
    for i, name in enumerate(result.layers):
        top = result.top[name]
        kind = examples.kind if top.position_shape or examples.kind == "text" else "vector"
        if kind == "image" and len(top.position_shape) != 2:
            kind = "vector"
        layers.append(_layer_index(result, name, kind))
        drawn = {}
        if model is not None and examples.kind == "image":
            drawn = pixel_overlays(model, name, top, examples.rows, examples.inputs,
                                   os.path.join(out, "eq2", str(i)),
                                   channel_axis=(result.channel_axes or {}).get(name, -1),
                                   channels_first=examples.channels_first, **maps)
        folder = os.path.join(out, "data", str(i))
        os.makedirs(folder, exist_ok=True)
        for start in range(0, top.n_units, CHUNK):
            units = {c: {s: _entries(top, c, s, examples, drawn) for s in SIGNS}
                     for c in range(start, min(start + CHUNK, top.n_units))}
            # Each example's text once per file, however many units keep it.
            shown = sorted({e["example"] for u in units.values() for s in SIGNS for e in u[s]})
            texts = {e: examples.text(e) for e in shown} if examples.kind == "text" else {}
            _write_script(os.path.join(folder, f"{start // CHUNK}.js"),
                          f"KC.chunk({i},{start // CHUNK},", dict(units=units, texts=texts))
    examples.write_pictures(os.path.join(out, "img"))
    meta = dict(count=int(result.count), target=str(result.target), method=str(result.method),
                n_steps=int(result.n_steps), chunk=CHUNK, input=examples.kind,
                class_names=class_names,
                label_names=class_names if label_names is None else label_names,
                layers=layers)
    _write_script(os.path.join(out, "data", "index.js"), "KC.index(", meta)
    page = os.path.join(out, "index.html")
    with open(page, "w", encoding="utf-8") as f:
        f.write(PAGE)
    return page


def _as_result(result) -> DatasetConductance:
    if not isinstance(result, DatasetConductance):
        if not isinstance(result, (str, os.PathLike)):
            raise TypeError(message(
                "result", "a DatasetConductance or the path of its saved .npz", result))
        result = load_dataset_result(result)
    if result.top is None:
        raise ValueError(
            "`result` has no top examples: it was computed without `top_k`. Run "
            "`kc.conductance_over_dataset(..., top_k=10)` and browse that result.")
    return result


def _strings(name: str, value) -> Optional[List[str]]:
    """``vocabulary``, ``class_names`` or ``label_names``: None or strings."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple, np.ndarray)) \
            or not all(isinstance(v, (str, np.str_)) for v in value):
        valid = "a list of strings by index" + (", or a callable id -> str" if name == "vocabulary"
                                                else "") + ", or None"
        raise TypeError(message(name, valid, value))
    if len(value) == 0:
        raise ValueError(message(name, "a non-empty list of strings by index, or None", value))
    return [str(v) for v in value]


def _layer_index(result: DatasetConductance, name: str, kind: str) -> dict:
    """One layer's row data: per unit mean, mean |C| and histogram."""
    top, histogram = result.top[name], result.histogram[name]
    rows = []
    for counts in histogram:
        nonzero = np.flatnonzero(counts)
        first, last = (int(nonzero[0]), int(nonzero[-1])) if nonzero.size else (0, -1)
        rows.append([first] + counts[first:last + 1].astype(int).tolist())
    return dict(name=name, units=top.n_units, kind=kind, positions=list(top.position_shape),
                mean=_rounded(result.mean[name]), mean_abs=_rounded(result.mean_abs[name]),
                histogram=rows, bins=int(result.histogram_edges.size + 1),
                is_cut=result.is_cut.get(name))


def _entries(top, unit: int, sign: str, examples: "_Examples", drawn: dict) -> List[dict]:
    """A unit's shown positions of one sign, with what the page draws."""
    rows = []
    entries = top.unit(unit, sign)
    for j in shown_slots(top, unit, sign):
        entry = entries[j]
        row = dict(example=entry["example"], position=int(top.positions[sign][unit, j]),
                   value=_rounded(entry["value"]), target=entry["target"], label=entry["label"])
        row.update(examples.context(entry["example"], top.contexts[sign][unit, j]))
        if (unit, sign, j) in drawn:
            row["map"] = drawn[unit, sign, j]
        rows.append(row)
    return rows


class _Examples:
    """The kept examples' inputs as the page shows them: token strings, or
    pictures written once each."""

    def __init__(self, result: DatasetConductance, vocabulary, pad_id):
        self.ids = result.example_ids
        inputs = result.example_inputs
        self.mask = None
        if isinstance(inputs, dict):
            self.mask = inputs.get("padding_mask")
            inputs = inputs.get("token_ids", next(iter(inputs.values())))
        self.inputs, self.vocabulary, self.pad_id = inputs, vocabulary, pad_id
        self.kind = "other"
        if inputs is not None and inputs.ndim == 2 and np.issubdtype(inputs.dtype, np.integer):
            self.kind = "text"
        elif inputs is not None and inputs.ndim == 4 and np.issubdtype(inputs.dtype, np.number):
            self.kind = "image"  # (N, H, W, channels), or (N, channels, H, W)
        self.channels_first = self.kind == "image" and inputs.shape[1] in (1, 3, 4) \
            and inputs.shape[-1] not in (1, 3, 4)
        self.shown = set()

    def rows(self, examples: np.ndarray) -> np.ndarray:
        """Rows of ``example_inputs`` holding these dataset indices."""
        return np.searchsorted(self.ids, examples)

    def _row(self, example: int) -> int:
        return int(self.rows(np.asarray(example)))

    def context(self, example: int, values: np.ndarray) -> dict:
        """What an entry draws beside its example: the unit's values at every
        position (the text itself is kept once per file, ``text``)."""
        if self.kind == "image":
            self.shown.add(example)
        return dict(values=_rounded(values)) if self.kind in ("text", "image") else {}

    def text(self, example: int) -> dict:
        """An example's tokens with the padding at either end trimmed
        (``start``: the index of the first token kept), and its padded
        length."""
        row = self._row(example)
        ids = self.inputs[row]
        real = np.ones(ids.size, bool)
        if self.mask is not None:
            real = np.asarray(self.mask[row]).astype(bool)
        elif self.pad_id is not None:
            real = ids != self.pad_id
        kept = np.flatnonzero(real)
        start, stop = (int(kept[0]), int(kept[-1]) + 1) if kept.size else (0, 0)
        return dict(tokens=[self._token(int(t)) for t in ids[start:stop]], start=start,
                    length=int(ids.size))

    def _token(self, token: int) -> str:
        if self.vocabulary is None:
            return f"#{token}"
        if callable(self.vocabulary):
            return str(self.vocabulary(token))
        return str(self.vocabulary[token]) if 0 <= token < len(self.vocabulary) else f"#{token}"

    def write_pictures(self, folder: str) -> None:
        """``img/<example>.png`` for each example an image unit shows."""
        if not self.shown:
            return
        os.makedirs(folder, exist_ok=True)
        for example in sorted(self.shown):
            image = self.inputs[self._row(example)]
            write_png(os.path.join(folder, f"{example}.png"),
                      display(np.moveaxis(image, 0, -1) if self.channels_first else image))


def _rounded(values):
    """Floats at 4 significant digits: what a shade or a label can show,
    and a third of the bytes; NaN and infinities as None (JSON's null)."""
    array = np.asarray(values, np.float64)
    one = lambda v: float(f"{v:.4g}") if np.isfinite(v) else None  # noqa: E731
    if array.ndim == 0:
        return one(float(array))
    return [one(v) for v in array.ravel()]


def _write_script(path: str, call: str, data: Dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(call + json.dumps(data, separators=(",", ":"), allow_nan=False) + ");\n")
