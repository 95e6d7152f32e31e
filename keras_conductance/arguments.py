"""The argument vocabulary: every public argument declared once, and the one
validator that reads the declarations.

``ARGUMENTS`` maps each argument name to its ``Argument``: what it means,
its type and range, its default, and the command-line flag it maps to. Which
public entry points take it is read from their signatures (``takes``), so
the table cannot drift from the code; a test checks that every parameter of
every entry point is declared here. ``check(name, value)`` validates a value
against its declaration and returns it normalized; the CLI calls it with the
flag's name as ``label`` so that its messages speak in flags.

Arguments whose validity depends on the model (``inputs``, ``layers``,
``target``, ``filters``, ``channel_axis``, ``k`` ...) are declared with
``kind="model"`` (or a range bound given at the call, ``high=``): they are
checked where the model is known (``adapter.py``, ``attribution.py``), with
the same message form (``message``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

__all__ = ["ARGUMENTS", "Argument", "MAX_N_STEPS", "as_names", "check", "check_axis", "check_indices", "check_labels_dtype", "describe",
           "entry_points", "markdown_table", "message", "received", "takes"]

MAX_N_STEPS = 100_000  # beyond this a typo is likelier than a wish
_STEPS_HINT = ("One forward and backward pass per step and example: 50-400 steps are usual; "
               "for a guaranteed accuracy pass `tolerance=` (e.g. 0.01), which refines only "
               "where and for the examples that need it.")


@dataclasses.dataclass(frozen=True)
class Argument:
    """One declared argument.

    Attributes:
        name: the keyword, as every entry point spells it.
        kind: ``"int"``, ``"number"``, ``"choice"``, ``"bool"``, ``"text"``
            (a non-empty string), ``"path"`` (a str or ``os.PathLike``), or ``"model"`` (checked where the model
            is known; ``check`` refuses to judge it).
        meaning: one line for the API page and ``--help``.
        default: the usual default (entry points may differ, e.g. a
            ``None`` that means "the explainer's setting").
        low, high: inclusive bounds of an int or number (None: open).
        above: the number must be strictly greater than ``low``.
        choices: the valid values of a choice.
        none: whether None is valid.
        cli: the command-line flag it maps to, if any.
        hint: what to do, appended to a range error.
    """

    name: str
    kind: str
    meaning: str
    default: Any = None
    low: Optional[float] = None
    high: Optional[float] = None
    above: bool = False
    choices: Tuple[Any, ...] = ()
    none: bool = False
    cli: Optional[str] = None
    hint: str = ""

    @property
    def valid(self) -> str:
        """What is valid, in words: "an int in 1..100000", "one of ..."."""
        return describe(self)


def _a(name, kind, meaning, **fields) -> Tuple[str, Argument]:
    return name, Argument(name, kind, meaning, **fields)


def _steps(name: str, meaning: str, default: int, cli: Optional[str] = None):
    return _a(name, "int", meaning, default=default, low=1, high=MAX_N_STEPS, cli=cli,
              hint=_STEPS_HINT)


def _count(name: str, meaning: str, default=None, none: bool = False, cli=None, low: int = 1):
    return _a(name, "int", meaning, default=default, low=low, none=none, cli=cli)


ARGUMENTS: Dict[str, Argument] = dict([
    # -- what is explained ------------------------------------------------------
    _a("model", "model", "a Functional or Sequential keras.Model (nested models are looked into)",
       cli="MODEL"),
    _a("inputs", "model", "(B, *input_shape) examples; a list (model.inputs order) or a dict "
       "by input name for several inputs; token ids with start_layer", cli="--inputs"),
    _a("data", "model", "the callback's probe set: inputs as `inputs`, (inputs, labels), or a "
       "batched tf.data.Dataset"),
    _a("dataset", "model", "a batched tf.data.Dataset of features or (features, labels)"),
    _a("layers", "model", "a layer name or a list of names; units inside layers by path "
       "('block/sub/leaf', ':input'); units by meaning ('block:ffn_neurons')", cli="--layer"),
    _a("layer", "model", "one layer name (or unit path)"),
    _a("target", "model", "None (top predicted class), an int, (B,) ints, 'label' (datasets, "
       "callback), a callable outputs (N, ...) -> (N,), or a language-model target",
       cli="--target"),
    _a("baselines", "model", "None (zeros; with start_layer the zero or pad-token embedding), "
       "an array broadcastable to the interpolated input, or the inputs' structure",
       cli="--baseline"),
    _a("output", "model", "the explained output of a multi-output model: name or index",
       cli="--output"),
    _a("start_layer", "model", "start the path at this layer's output (e.g. the Embedding); "
       "it must come before every explained unit", cli="--start-layer"),
    _a("interpolate", "model", "the model inputs (names or indices) that move along the path; "
       "default: the float inputs"),
    _a("pre_softmax", "bool", "explain the logits of a softmax/sigmoid output", default=False,
       cli="--pre-softmax"),
    # -- the integration rule ----------------------------------------------------------
    _steps("n_steps", "steps of the integration rule (the first grid with tolerance)", 50,
           cli="--n-steps"),
    _a("method", "choice", "the integration rule", default="trapezoid",
       choices=("trapezoid", "left", "right", "gauss_legendre")),
    _a("tolerance", "number", "integrate adaptively until the estimated relative L1 error of "
       "the per-filter conductances (and completeness on cut layers) is within this",
       low=0, above=True, none=True, cli="--tolerance"),
    _steps("max_steps", "most steps per example that tolerance may reach", 1024,
           cli="--max-steps"),
    _count("batch_size", "most rows (examples x path points, or x filters) per compiled call; "
           "bounds memory, not the result", none=True),
    _a("jit_compile", "choice", "XLA for the compiled steps: 'auto' uses it where a GPU or TPU "
       "is visible", default="auto", choices=(True, False, "auto")),
    _a("verbose", "choice", "0 silent, 1 progress bar, 'auto' a bar for long jobs",
       default="auto", choices=(0, 1, "auto")),
    _a("mode", "choice", "Eq. 2 by reverse-mode (one VJP per filter) or forward-mode (one JVP "
       "per input group) autodiff, or 'auto'", default="auto",
       choices=("auto", "reverse", "forward")),
    # -- units and results ----------------------------------------------------------
    _a("channel_axis", "model", "the axis of a unit's output that holds its filters (a "
       "non-batch axis within its rank); a dict {unit: axis} where several are taken",
       default=-1, cli="--channel-axis"),
    _a("filters", "model", "filter indices within 0..C-1: (k,) for every example, (B, k) per "
       "example, or None for all"),
    _a("k", "int", "how many filters: 1 to the unit's number of filters", default=10, low=1),
    _a("label", "model", "a label id seen in the dataset"),
    _a("unit", "int", "a unit's index in its layer: 0 to the layer's number of units - 1",
       low=0),
    _a("sign", "choice", "which of a unit's top lists: where it conducts most toward the score, "
       "or most against it", default="positive", choices=("positive", "negative")),
    # -- ablation -------------------------------------------------------------------
    _a("value", "model", "what an ablated filter becomes: 'zero', 'baseline', a number, or an "
       "array broadcastable to the layer output", default="zero"),
    _a("ranking", "model", "(R,) or (B, R) distinct filter indices, most important first"),
    _count("max_filters", "try at most this many filters (default: the ranking's length)",
           none=True),
    _a("together", "bool", "ablate the filters of each example all at once", default=False),
    _a("masks", "model", "bool (B, C) or (B, M, C): the filters ablated together"),
    _count("block", "prefixes of the ranking tried per pass", default=8),
    # -- datasets -------------------------------------------------------------------
    _count("steps", "batches taken from a dataset (None: all)", none=True),
    _count("num_labels", "label ids run 0..num_labels-1 (default: from the labels or outputs)",
           none=True),
    _a("strategy", "model", "a tf.distribute.Strategy instance (default: the active one)"),
    _a("checkpoint_dir", "path", "keep the running sums in this folder and resume from it",
       none=True),
    _count("checkpoint_every", "batches between checkpoints", default=10),
    # -- the callback ------------------------------------------------------------------
    _a("on", "model", "when to compute: 'epoch_end', 'test_end' or both",
       default=("epoch_end", "test_end")),
    _count("freq", "compute every freq epochs", default=1),
    _a("log_dir", "path", "TensorBoard log folder (None: no TensorBoard output)", none=True),
    _count("top_k", "how many of the strongest to keep: filters per layer (the callback's "
           "TensorBoard scalars, a summary's rows); a dataset run's positions per unit and sign "
           "(None: none)", default=5, none=True),
    _a("write_images", "choice", "TensorBoard images", default=True,
       choices=(True, False, "overlay", "heatmap", "both")),
    _count("image_freq", "write images every image_freq epochs", default=1),
    _count("image_examples", "probe examples that get an overlay", default=4),
    _count("image_filters", "filters per overlay", default=3),
    _steps("image_n_steps", "integration steps of the overlays' pixel maps", 16),
    _a("example_names", "model", "one name (a string) per example, for the pictures", none=True),
    _a("pixels", "model", "(B, H, W, 3) uint8 images shown under the maps; None: the inputs "
       "rescaled to 0..255", none=True),
    _a("summary_step", "choice", "the TensorBoard step", default="epoch",
       choices=("epoch", "iterations")),
    _a("follow", "model", "the filters followed as TensorBoard scalars at every record: a list "
       "of indices for every layer, or {layer: [indices]}; None: the first record's top_k",
       none=True),
    _a("sinks", "model", "more kc.Sink objects that receive every record", default=()),
    _a("images", "bool", "write the record's pictures", default=True),
    _a("filename", "path", "also write the history to this .csv or .npz file", none=True),
    _a("append", "bool", "keep the rows already in filename", default=False),
    _a("name", "text", "prefix of the logs keys and TensorBoard tags", default="conductance"),
    # -- language-model targets -----------------------------------------------------
    _a("token", "model", "a token id, or (B,) ids"),
    _a("other", "model", "the contrasted token id, or (B,) ids"),
    _a("tokens", "model", "the continuation's token ids (J,) or (B, J)"),
    _a("position", "model", "the scored position(s); None: the last real token"),
    _a("start", "model", "where the continuation starts; None: after the prompt"),
    _a("log_prob", "bool", "score log-probabilities instead of logits", default=False),
    # -- the command line -------------------------------------------------------------
    _count("epochs", "training epochs of the demo model", default=8, cli="--epochs"),
    _a("path", "path", "a result file to write or read (.npz)"),
    # -- the unit browser ---------------------------------------------------------------
    _a("result", "model", "a DatasetConductance computed with top_k, or the .npz path its save "
       "wrote", cli="RESULT"),
    _a("vocabulary", "model", "token strings by id: a list of strings, or a callable id -> str "
       "(e.g. a keras-hub tokenizer's id_to_token); None: ids", none=True, cli="--vocabulary"),
    _a("class_names", "model", "class names by index, for the explained classes (and the "
       "labels, unless label_names)", none=True, cli="--labels"),
    _a("label_names", "model", "names of the dataset's label ids (None: class_names)",
       none=True, cli="--label-names"),
    _count("pad_id", "token id of padding, trimmed from both ends of texts without a "
           "padding_mask (None: trim nothing)", default=0, none=True, low=0, cli="--pad-id"),
    _a("out", "path", "report folder (created; must be writable)", default="conductance-report",
       cli="--out"),
])


def message(label: str, valid: str, value=None, got: Optional[str] = None, hint: str = "") -> str:
    """The one error form: "`label` must be VALID. Received: WHAT. HINT"."""
    label = label if label.startswith("-") else f"`{label}`"
    got = received(label.strip("`"), value) if got is None else got
    return " ".join(p for p in (f"{label} must be {valid}.", f"Received: {got}.", hint) if p)


def received(name: str, value) -> str:
    """What was received, shown briefly: the value, or type and shape."""
    shape = getattr(value, "shape", None)
    if shape is not None and not np.isscalar(value) and np.ndim(value) > 0:
        dtype = getattr(value, "dtype", "")
        return f"{name} of type {type(value).__name__} with shape {tuple(shape)} {dtype}".strip()
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    plain = value is None or type(value) in (str, bool, int, float)
    kind = "" if plain else f" of type {type(value).__name__}"
    return f"{name}={text}{kind}"


def describe(arg: Argument, low=None, high=None) -> str:
    """What is valid for ``arg``, in words, with bounds known at the call."""
    low = arg.low if low is None else low
    high = arg.high if high is None else high
    none = " or None" if arg.none else ""
    if arg.kind == "int":
        if high is not None:
            return f"an int in {int(low)}..{int(high)}{none}"
        return f"an int >= {int(low)}{none}" if low is not None else f"an int{none}"
    if arg.kind == "number":
        if low is None:
            return f"a finite number{none}"
        return f"a number {'>' if arg.above else '>='} {low:g}{none}"
    if arg.kind == "choice":
        return "one of " + ", ".join(map(repr, arg.choices)) + none
    if arg.kind == "bool":
        return f"True or False{none}"
    if arg.kind == "text":
        return f"a non-empty string{none}"
    if arg.kind == "path":
        return f"a path (a non-empty str or os.PathLike){none}"
    return arg.meaning


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, (bool, np.bool_))


def check(name: str, value, *, label: Optional[str] = None, low=None, high=None,
          none: Optional[bool] = None):
    """Validates ``value`` against the declaration of argument ``name``.

    Args:
        name: a key of ``ARGUMENTS``.
        value: what the user passed.
        label: the name shown in messages (default: ``name``; the CLI passes
            its flag, e.g. ``"--n-steps"``).
        low, high: bounds known only at the call (e.g. ``k``'s number of
            filters), replacing the declared ones.
        none: whether None is valid here, replacing the declaration (an
            entry point where None has no meaning, e.g. the callback's
            ``top_k``).

    Returns:
        The value, normalized (numpy ints as int, numbers as float).

    Raises:
        TypeError: a value of the wrong type.
        ValueError: a value out of range, or not one of the choices.
    """
    arg = ARGUMENTS[name]
    if none is not None:
        arg = dataclasses.replace(arg, none=none)
    label = label or name
    valid = describe(arg, low, high)
    if label.startswith("-"):  # a command-line flag cannot be None
        valid = valid.replace(" or None", "")
    if value is None and arg.none:
        return None
    if arg.kind == "int":
        if not _is_int(value):
            raise TypeError(message(label, valid, value))
        lo = arg.low if low is None else low
        hi = arg.high if high is None else high
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(message(label, valid, value,
                                     hint=arg.hint if hi is not None and value > hi else ""))
        return int(value)
    if arg.kind == "number":
        if not _is_number(value):
            raise TypeError(message(label, valid, value))
        lo = arg.low if low is None else low
        bad = not math.isfinite(float(value)) or (
            lo is not None and (value <= lo if arg.above else value < lo))
        if bad:
            raise ValueError(message(label, valid, value))
        return float(value)
    if arg.kind == "choice":
        for choice in arg.choices:  # by type too: True is not 1 here
            same_kind = isinstance(choice, bool) == isinstance(value, (bool, np.bool_))
            if same_kind and not isinstance(value, (list, dict, np.ndarray)) and value == choice:
                return choice
        raise ValueError(message(label, valid, value))
    if arg.kind == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(message(label, valid, value))
        return bool(value)
    if arg.kind == "path":
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(message(label, valid, value))
        if not os.fspath(value):
            raise ValueError(message(label, valid, value))
        return os.fspath(value)
    if arg.kind == "text":
        if not isinstance(value, str):
            raise TypeError(message(label, valid, value))
        if not value:
            raise ValueError(message(label, valid, value))
        return value
    raise TypeError(f"`{name}` depends on the model and is checked where the model is known.")


def as_names(layers, argument: str = "layers") -> List[str]:
    """``layers``: a layer name or a list of distinct names, as a list."""
    if isinstance(layers, str):
        return [layers]
    valid = "a layer name or a non-empty list of distinct names"
    if isinstance(layers, (dict, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(message(argument, valid, layers))
    names = list(layers)
    if not names:
        raise ValueError(message(argument, valid, layers))
    if len(set(map(repr, names))) != len(names):
        raise ValueError(message(argument, valid, names, hint="A layer is named twice."))
    return names


def check_axis(label: str, axis, rank: int, unit: str, shape: Optional[tuple] = None) -> int:
    """A non-batch axis of a rank-``rank`` output (batch axis included),
    returned in ``1..rank-1``; ``label`` is the argument (``channel_axis``)."""
    valid = (f"a non-batch axis of {unit!r}, whose output has rank {rank}"
             + ("" if shape is None else f" (batch, {', '.join(map(str, shape))})")
             + f": {-rank + 1}..-1 or 1..{rank - 1}")
    if not _is_int(axis):
        raise TypeError(message(label, valid, axis))
    if not -rank <= axis < rank or axis % rank == 0:
        raise ValueError(message(label, valid, axis))
    return int(axis) % rank


def check_indices(label: str, indices, n_examples: int, n_filters: int, unit: str) -> np.ndarray:
    """Filter indices (``filters``, ``ranking``) as ``(B, k)`` int32.

    Args:
        label: the argument's name.
        indices: None (all filters), an int, ``(k,)`` ints for every example
            or ``(B, k)`` ints per example.
        n_examples: B.
        n_filters: C, the unit's number of filters.
        unit: the unit's name, for messages.
    """
    if indices is None:
        return np.broadcast_to(np.arange(n_filters, dtype=np.int32), (n_examples, n_filters))
    f = np.asarray(indices)
    f = f[None] if f.ndim == 0 else f
    valid = (f"None (all), an int, non-empty (k,) int filter indices or a (B={n_examples}, k) "
             f"int array per example, with values in 0..{n_filters - 1} ({unit!r} has {n_filters} filters)")
    if f.size == 0 or f.ndim > 2 or (f.ndim == 2 and f.shape[0] != n_examples):
        raise ValueError(message(label, valid, indices))
    if f.dtype.kind not in "iu":
        raise TypeError(message(label, valid, indices))
    bad = (f < 0) | (f >= n_filters)
    if bad.any():
        raise ValueError(message(label, valid, got=f"{label} holding {f[bad][:10].tolist()}"))
    return np.ascontiguousarray(np.broadcast_to(f, (n_examples, f.shape[-1])), np.int32)


def check_names(label: str, names, n_examples: Optional[int] = None) -> Optional[List[str]]:
    """One name per example (``example_names``), as a list of strings; its
    length is checked when ``n_examples`` is known."""
    if names is None:
        return None
    if isinstance(names, str) or not isinstance(names, (list, tuple, np.ndarray)) or \
            not all(isinstance(n, str) for n in names):
        raise TypeError(message(label, "a sequence of strings, one per example, or None", names))
    if n_examples is not None and len(names) != n_examples:
        raise ValueError(message(label, f"a sequence of {n_examples} strings, one per example",
                                 got=f"{len(names)} names"))
    return list(names)


def check_labels_dtype(dtype, label: str, what: str = "the labels") -> None:
    """Labels are class ids (ints, or floats 0./1.) or one-hot rows: a
    string label has no class index (map it to ids first)."""
    numeric = getattr(dtype, "is_integer", False) or getattr(dtype, "is_floating", False) \
        or getattr(dtype, "is_bool", False) or getattr(dtype, "kind", None) in tuple("iufb")
    if not numeric:
        raise TypeError(message(
            label, f"a source of numeric labels: {what} must be int class ids, 0./1. floats "
            "or one-hot rows", got=f"{what} of dtype {getattr(dtype, 'name', dtype)}",
            hint="Map string labels to class ids first (e.g. a dict, or "
            "`keras.layers.StringLookup(num_oov_indices=0)`)."))


# -- the entry points that take the vocabulary ---------------------------------------

def entry_points() -> Dict[str, Any]:
    """Every public entry point, by name: functions, constructors and methods
    of the public classes. (Imported here, on demand: this module is the
    lowest of the package and the entry points sit above it.)"""
    import keras_conductance as kc

    points = {n: getattr(kc, n) for n in (
        "conductance", "measures", "internal_influence", "gradient_x_activation", "activation",
        "neuron_conductance", "pixel_maps", "ablation_scores", "ablate_until_flip",
        "conductance_over_dataset", "split_model", "list_units", "next_token",
        "logit_difference", "continuation", "strip_softmax", "make_rule",
        "load_dataset_result", "unit_browser")}
    methods = {"Conductance": ("__init__", "explain", "__call__", "endpoints"),
               "NeuronConductance": ("__init__", "__call__"),
               "Ablator": ("__init__", "scores", "predict", "until_flip"),
               "ConductanceCallback": ("__init__",),
               "TensorBoardSink": ("__init__",), "CSVSink": ("__init__",),
               "NPZSink": ("__init__",), "LogsSink": ("__init__",),
               "Attribution": ("per_filter", "top_filters", "relative_delta", "delta_of"),
               "DatasetConductance": ("top_filters", "label_mean", "save"),
               "TopExamples": ("unit",)}
    for cls, names in methods.items():
        for method in names:
            key = cls if method == "__init__" else f"{cls}.{method}"
            points[key] = getattr(getattr(kc, cls), method)
    return points


def parameters(function) -> List[str]:
    """The keyword names a public entry point takes (``self`` aside)."""
    import inspect

    return [p for p in inspect.signature(function).parameters if p != "self"]


def takes(name: str) -> List[str]:
    """The entry points whose signature has argument ``name``."""
    return sorted(e for e, f in entry_points().items() if name in parameters(f))


def markdown_table() -> str:
    """The vocabulary as the API page shows it (``docs/arguments.md``): one
    table of the arguments, one of the entry points and what each takes."""
    rows = ["| argument | valid values | default | CLI | meaning |", "|---|---|---|---|---|"]
    for arg in ARGUMENTS.values():
        valid = "depends on the model" if arg.kind == "model" else describe(arg)
        default = "" if arg.default is None and not arg.none else f"`{arg.default!r}`"
        cli = f"`{arg.cli}`" if arg.cli else ""
        rows.append(f"| `{arg.name}` | {valid} | {default} | {cli} | {arg.meaning} |")
    rows += ["", "### Who takes what", "", "| entry point | arguments |", "|---|---|"]
    for entry, function in sorted(entry_points().items()):
        names = ", ".join(f"`{p}`" for p in parameters(function))
        rows.append(f"| `{entry}` | {names} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
