"""The one place that understands a Keras model for attribution.

``ModelAdapter(model, layers, start_layer=, output=, interpolate=,
pre_softmax=)`` decides what moves along the path and what does not, and
builds the *probe*: a Keras model from the path point (the interpolated
tensors) and the held-constant inputs to the requested layer outputs plus
the explained output. Every entry point (explainer, neuron conductance,
ablation, datasets, callback, CLI) builds its sub-models here, prepares
inputs and baselines here, and reads cut analysis from here.

* Inputs come as one array, a list/tuple in ``model.inputs`` order, or a
  dict keyed by input name, as ``model.predict`` takes them.
* Interpolated vs held constant: by default float inputs move along the
  path and integer/bool inputs (token ids, masks, segment ids) stay at
  their value at every path point. ``interpolate=`` overrides it. With
  ``start_layer`` the path runs in that layer's output and every model input
  is held constant (the probe keeps those it still needs, e.g. a padding
  mask that enters every transformer block).
* Completeness holds for cuts of the interpolated part: a layer is a cut
  when every path from the interpolated tensors to the explained output
  passes it; paths from held-constant inputs carry no attribution.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import List, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf

from keras_conductance import unit_meanings
from keras_conductance.arguments import as_names, check, message
from keras_conductance.graph import layer_graph, sub_model
from keras_conductance.taps import INPUT_SUFFIX, OUTPUT_SUFFIX, Tap, TapRecorder, trace_once
from keras_conductance.targets import logits_of, squashing_of

__all__ = ["ModelAdapter", "Prepared", "Unit", "as_names", "embedding_layers", "input_names",
           "list_units", "options_key"]

Output = Union[None, int, str]


def options_key(*options) -> tuple:
    """A hashable cache key of constructor options (lists become tuples)."""
    return tuple(tuple(o) if isinstance(o, list) else o for o in options)


@dataclasses.dataclass
class Prepared:
    """Inputs ready for the engine, all numpy, ``B`` examples.

    Attributes:
        xs: interpolated path ends (alpha = 1), float32 ``(B, *S_i)`` each.
        baselines: path starts (alpha = 0), float32, shapes as ``xs``.
        consts: held-constant probe inputs ``(B, *C_j)`` in their own dtype.
    """

    xs: List[np.ndarray]
    baselines: List[np.ndarray]
    consts: List[np.ndarray]

    @property
    def n(self) -> int:
        return int(self.xs[0].shape[0])

    def take(self, rows) -> "Prepared":
        """The examples ``rows`` (an index array)."""
        return Prepared([x[rows] for x in self.xs], [b[rows] for b in self.baselines],
                        [c[rows] for c in self.consts])


def _numpy(value) -> np.ndarray:
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def _pad_token_id(model) -> int:
    """The pad token of a keras-hub task's tokenizer, else 0 (keras-hub's
    and most tokenizers' padding id)."""
    tokenizer = getattr(getattr(model, "preprocessor", None), "tokenizer", None)
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _check_finite(x: np.ndarray, argument: str):
    if x.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(
            f"`{argument}` contains {int(bad.sum())} NaN or Inf values "
            f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])})."
        )


class ModelAdapter:
    """A Keras model seen as a path problem: probe, specs, inputs, cuts.

    Args:
        model: a Functional or Sequential ``keras.Model`` (nested models are
            looked into), with any structure of inputs and outputs.
        layers: the requested units (may be empty): graph layer names, and
            units inside layers by their path of layer names
            (``"transformer_layer_3/feedforward_intermediate_dense"``; add
            ``":input"`` for what the sublayer receives, e.g. attention
            heads, ``":output"`` to tap a graph layer).
        start_layer: start the path at this layer's output (e.g. the token
            embedding of a text model).
        output: the explained output of a model with several: its name (a
            dict key, or the output layer's name) or index.
        interpolate: the model inputs (names or indices) that move along the
            path; default: the float inputs (none with ``start_layer``).
        pre_softmax: explain the scores before the output's softmax/sigmoid.
        argument: the name of the ``layers`` argument, for messages.
        require_path: raise when nothing would be interpolated (False for
            ablation, which needs no path unless baselines are asked for).

    Attributes:
        probe: ``keras.Model`` mapping ``[*path tensors, *held-constant
            inputs]`` to ``[y_1, ..., y_K, explained output]``.
        layers: the requested layer names.
        path_names: what is interpolated (the start layer or input names).
        const_names: the held-constant probe inputs.
        is_cut: layer -> whether it alone cuts every interpolated path (None
            for a unit inside a layer: unknown).
        taps: the ``TapRecorder`` of the units inside layers.
        unit_order: positions of the requested units among the probe's
            graph outputs followed by the taps.
        squash: "softmax"/"sigmoid" when the explained output is squashed.
    """

    def __init__(self, model: keras.Model, layers: Sequence[str] = (), *,
                 start_layer: Optional[str] = None, output: Output = None,
                 interpolate: Optional[Sequence[Union[str, int]]] = None,
                 pre_softmax: bool = False, argument: str = "layers",
                 require_path: bool = True):
        pre_softmax = check("pre_softmax", pre_softmax)
        graph = layer_graph(model)
        self.model, self.graph = model, graph
        requested = [] if not layers else as_names(layers, argument)
        # Units by meaning ("block:ffn_neurons", "*:heads") resolve to a
        # sublayer tensor or a block output; results keep the user's names.
        self.layers = as_names(unit_meanings.expand(graph, requested), argument) \
            if requested else []
        meanings = {n: unit_meanings.resolve(graph, n) for n in self.layers}
        self._internal = {n: (m.resolves_to if m else n) for n, m in meanings.items()}
        self.channel_axes = {n: (m.channel_axis if m else -1) for n, m in meanings.items()}
        self.output_index = self._output_index(output)
        self.output_name = graph.output_names[self.output_index]
        out = graph.outputs[self.output_index]
        self.squash = None if pre_softmax else squashing_of(out)
        explained = logits_of(out, model.name) if pre_softmax else out
        self._out, self._explained = out, explained
        inside = self._internal
        graph_names = [n for n in self.layers if inside[n] in graph.tensors]
        taps = [dataclasses.replace(self._tap(inside[n], argument), name=n)
                for n in self.layers if inside[n] not in graph.tensors]
        self.tensors = graph.resolve([inside[n] for n in graph_names], argument)
        self.taps = TapRecorder(taps)
        # The probe yields graph layers first, then taps; ``unit_order``
        # puts them back in the order the user asked for.
        engine_names = graph_names + [t.name for t in taps]
        self.unit_order = [engine_names.index(n) for n in self.layers]
        self.start_layer = start_layer
        path, self._interp = self._path_tensors(start_layer, interpolate, require_path)
        if start_layer is not None:
            self._check_after_start(path[0], graph_names, taps)
        self._const = [i for i in range(len(graph.inputs)) if i not in self._interp]
        self.path_names = ([start_layer] if start_layer else []) + [
            graph.input_names[i] for i in self._interp]
        self.const_names = [graph.input_names[i] for i in self._const]
        consts = [graph.inputs[i] for i in self._const]
        try:
            self.probe = sub_model(path + consts, self.tensors + [explained], "kc_probe")
        except ValueError as err:
            raise ValueError(
                f"Cannot reach layers {self.layers} from start_layer "
                f"{start_layer!r}: every requested layer must come after "
                f"the start layer. ({err})"
            ) from None
        self._head = None
        if start_layer is not None:
            self._head = keras.Model(graph.inputs, path[0], name="kc_start_head")
        self._path = path
        # RMSNorm decoders (Llama, Gemma, Mistral, Qwen, Phi-3) feed the token
        # embedding straight into a normalization: the zero embedding is its
        # singular point, so their default baseline is the pad token.
        self.singular_norm = None
        if start_layer is not None and isinstance(self.graph.operation_of(path[0]),
                                                  keras.layers.Embedding):
            self.singular_norm = graph.normalization_fed_by(path[0])
        self._token_baseline = None  # ("pad", id) or ("mean", vector), chosen when first needed
        # A tapped unit lives inside a layer: whether it cuts the network is
        # unknown (None), so its units need not add up to F(x) - F(x').
        self.is_cut = {n: (self.cut([n]) if n in graph_names else None) for n in self.layers}

    # -- construction -----------------------------------------------------------

    def _output_index(self, output: Output) -> int:
        names = self.graph.output_names
        if output is None:
            if len(names) > 1:
                raise ValueError(
                    f"Model '{self.model.name}' has {len(names)} outputs: {names}. "
                    "Pass `output=` (a name or an index) to choose the explained one."
                )
            return 0
        if isinstance(output, (int, np.integer)) and not isinstance(output, bool):
            if not -len(names) <= output < len(names):
                raise ValueError(
                    f"`output` index {output} is out of range: model "
                    f"'{self.model.name}' has {len(names)} outputs: {names}."
                )
            return int(output) % len(names)
        if isinstance(output, str) and output in names:
            return names.index(output)
        close = difflib.get_close_matches(str(output), names, n=2)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"No such output: output={output!r}.{hint} Outputs of model "
            f"'{self.model.name}' are: {names} (or their indices)."
        )

    def _input_indices(self, interpolate) -> List[int]:
        names = self.graph.input_names
        if isinstance(interpolate, (str, int)):
            interpolate = [interpolate]
        found = []
        for item in interpolate:
            if isinstance(item, str) and item in names:
                found.append(names.index(item))
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) \
                    and -len(names) <= item < len(names):
                found.append(int(item) % len(names))
            else:
                raise ValueError(
                    f"No such model input in `interpolate`: {item!r}. Inputs of "
                    f"model '{self.model.name}' are: {names} (or their indices)."
                )
        return sorted(set(found))

    def _path_tensors(self, start_layer, interpolate, require_path=True):
        """The interpolated tensors and the model inputs among them."""
        graph = self.graph
        if interpolate is not None:
            interp = self._input_indices(interpolate)
            for i in interp:
                if not keras.backend.is_float_dtype(graph.inputs[i].dtype):
                    raise ValueError(
                        f"`interpolate` names input {graph.input_names[i]!r}, whose dtype "
                        f"is {graph.inputs[i].dtype}: only float inputs can move along "
                        "a path. For token ids, pass `start_layer=` (their embedding)."
                    )
        elif start_layer is not None:
            interp = []
        else:
            interp = [i for i, t in enumerate(graph.inputs)
                      if keras.backend.is_float_dtype(t.dtype)]
        if require_path:  # ablation with value="zero" interpolates nothing
            for i in interp:
                self._check_not_ids(i)
        if start_layer is None:
            if not interp and require_path:
                if interpolate is not None:
                    raise ValueError(
                        f"`interpolate` is empty: nothing would move along the path. "
                        f"Name some of the inputs {graph.input_names}, or pass "
                        "`start_layer=`."
                    )
                raise ValueError(self._integer_message(graph.inputs[0].dtype))
            return [graph.inputs[i] for i in interp], interp
        (start,) = graph.resolve([start_layer], "start_layer")
        upstream = [graph.inputs[i] for i in graph.input_ancestors(start)]
        graph.check_cut([start_layer], what="start layer", sources=upstream,
                        outputs=[self._out], gradient_only=True)
        return [start] + [graph.inputs[i] for i in interp], interp

    def _check_after_start(self, start, graph_names: List[str], taps: List[Tap]):
        """Every explained unit must be computed from the start layer: one
        before it (or beside it) would be fed by the held-constant inputs,
        and its "conductance" would be a number that means nothing."""
        graph, inside = self.graph, self._internal
        before = [n for n, t in zip(graph_names, self.tensors) if not graph.comes_after(t, start)]
        for tap in taps:
            owner, within = self._owner(inside[tap.name])
            if owner is not None and ((within and owner == self.start_layer)
                                      or not graph.comes_after(graph.tensors[owner], start)):
                before.append(tap.name)
        if before:
            raise ValueError(message(
                "start_layer", "a layer that comes before every explained unit",
                self.start_layer,
                hint=f"The units {before} are not computed from its output, so no "
                "attribution flows through them along a path that starts there. Pass "
                "a start layer upstream of them (e.g. the Embedding), or explain units "
                "after it."))

    def _owner(self, path: str):
        """``(graph layer, whether inside it)`` of a tapped unit; ``(None,
        False)`` where no graph layer holds it."""
        for suffix in (INPUT_SUFFIX, OUTPUT_SUFFIX):
            path = path[: -len(suffix)] if path.endswith(suffix) else path
        parts = path.split("/")
        for end in range(len(parts), 0, -1):
            if "/".join(parts[:end]) in self.graph.tensors:
                return "/".join(parts[:end]), end < len(parts)
        return None, False

    def _tap(self, name, argument: str) -> Tap:
        """A unit inside a layer: ``"layer/sub/leaf"``, ``...:input`` for what
        the sublayer receives, ``...:output`` to tap even a graph layer."""
        if not isinstance(name, str):
            self.graph.resolve([name], argument)  # the type error
        path, where = name, "output"
        for suffix, kind in ((INPUT_SUFFIX, "input"), (OUTPUT_SUFFIX, "output")):
            if name.endswith(suffix):
                path, where = name[: -len(suffix)], kind
        if path in self.graph.tensors:
            if self.graph.is_nested_model(path):
                raise ValueError(
                    f"Cannot tap {name!r}: {path!r} is a model nested in this one, and "
                    "its layers run one by one here. Name it without a suffix (its "
                    f"output, a graph layer) or tap one of its layers ({path}/...)."
                )
            return Tap(name, self.graph.operation_of(self.graph.tensors[path]), where)
        if "/" not in path and self.graph.root is None:
            self.graph.resolve([path], argument)  # "No such layer", with the list
        return Tap(name, self.graph.sublayer(path), where)

    def _check_not_ids(self, index: int):
        """A float input that feeds an Embedding holds ids stored as floats:
        interpolating them gives meaningless numbers."""
        graph = self.graph
        tensor = graph.inputs[index]
        users = [op.name for op in graph.consumers(tensor)
                 if isinstance(op, keras.layers.Embedding)]
        if users:
            raise ValueError(
                f"Input {graph.input_names[index]!r} ({tensor.dtype}) feeds the "
                f"Embedding {users}: it holds token ids, which cannot be "
                "interpolated along a path. Pass integer ids and "
                f"`start_layer=` (e.g. start_layer={users[0]!r}) to start the "
                "path at the embedding's output."
            )

    def _integer_message(self, dtype, argument: str = "inputs") -> str:
        if self.graph.root is not None:
            return (
                f"`{argument}` have integer dtype {dtype}: integer ids (e.g. tokens) cannot "
                f"be interpolated along a path, and the subclassed model "
                f"'{self.model.name}' has no graph in which the path could start at "
                "the embedding's output. Build the embedding and the rest as a "
                "Functional model (or a Functional model around two subclassed "
                "parts) and pass `start_layer=` to start there."
            )
        return (
            f"`{argument}` have integer dtype {dtype}: integer ids (e.g. tokens) cannot be "
            "interpolated along a path. Pass `start_layer=` to start the path "
            "at a layer's output instead; embedding layers here: "
            f"{self.graph.embedding_layers()}."
        )

    # -- cut analysis -------------------------------------------------------------

    def _graph_names(self, names: Sequence[str]) -> List[str]:
        inside = getattr(self, "_internal", {})
        return [inside.get(n, n) for n in names]

    def cut(self, names: Sequence[str]) -> bool:
        """Whether ``names`` together cut every interpolated path to the output."""
        return self.graph.is_cut(self._graph_names(names), sources=self._path or None,
                                 outputs=[self._out], gradient_only=True)

    def check_cut(self, names: Sequence[str], what: str = "layer"):
        self.graph.check_cut(self._graph_names(names), what, sources=self._path or None,
                             outputs=[self._out], gradient_only=True)

    def sub_model(self, inputs: list, outputs: list, name: str) -> keras.Model:
        """A model between symbolic tensors of this graph (weights shared)."""
        return sub_model(inputs, outputs, name)

    @property
    def path_tensors(self) -> list:
        return list(self._path)

    @property
    def const_tensors(self) -> list:
        return [self.graph.inputs[i] for i in self._const]

    @property
    def explained(self):
        """The explained output (logits with ``pre_softmax``), symbolic."""
        return self._explained

    # -- specs -------------------------------------------------------------------

    @property
    def n_outputs(self) -> int:
        """Scores of the explained output per example (``target`` range)."""
        shape = self.explained.shape[1:]
        return int(np.prod([d for d in shape if d is not None])) if shape else 1

    @property
    def sequence_logits(self) -> bool:
        """Whether the explained output looks like a language model's logits:
        ``(B, T, V)`` from a path that starts at an Embedding of V tokens."""
        shape = tuple(self.explained.shape)
        if self._head is None or len(shape) != 3:
            return False
        start = self.graph.operation_of(self._path[0])
        return isinstance(start, keras.layers.Embedding) and shape[-1] == start.input_dim

    def token_pairs(self, target, arrays: list) -> np.ndarray:
        """A language-model target's ``(B, J, 2)`` (position, token) pairs for
        model-ordered input ``arrays`` (``token_ids`` and ``padding_mask`` by
        name; a lone input is the ids)."""
        names = self.graph.input_names
        by_name = dict(zip(names, arrays))
        ids = by_name.get("token_ids", arrays[0] if len(arrays) == 1 else None)
        shape = tuple(self.explained.shape[1:])
        if ids is not None and len(shape) == 2 and shape[0] is None:
            shape = (ids.shape[1], shape[1])
        return target.encode(shape, ids, by_name.get("padding_mask"), len(arrays[0]))

    # -- inputs --------------------------------------------------------------------

    def _label(self, index: int, argument: str) -> str:
        if len(self.graph.inputs) == 1:
            return argument
        return f"{argument}[{self.graph.input_names[index]!r}]"

    def structure(self, inputs, argument: str = "inputs", partial: bool = False,
                  convert: bool = True) -> list:
        """Model-input-ordered list of arrays from any structure.

        Args:
            inputs: one array, a list/tuple in ``model.inputs`` order, or a
                dict keyed by input name.
            argument: the argument's name, for messages.
            partial: allow missing dict keys (None in the list).
            convert: turn the leaves into numpy arrays (False: keep them,
                e.g. tensors inside a ``tf.function`` or ``TensorSpec``s).
        """
        names = self.graph.input_names
        leaf = _numpy if convert else (lambda v: v)
        if hasattr(inputs, "element_spec"):
            raise TypeError(
                f"`{argument}` must be an array or tensor of examples (or a list "
                "or dict of them), not a tf.data.Dataset. Take a batch (e.g. "
                "`next(iter(ds))`), or use `kc.conductance_over_dataset` for a "
                "whole dataset."
            )
        if isinstance(inputs, dict):
            unknown = [k for k in inputs if k not in names]
            if unknown:
                raise ValueError(
                    f"`{argument}` has keys {unknown} that are not inputs of model "
                    f"'{self.model.name}'. Its inputs are: {names}."
                )
            missing = [n for n in names if n not in inputs]
            if missing and not partial:
                raise ValueError(
                    f"`{argument}` lacks the model inputs {missing}. Model "
                    f"'{self.model.name}' takes: {names}."
                )
            return [None if inputs.get(n) is None else leaf(inputs[n]) for n in names]
        if isinstance(inputs, (list, tuple)) and len(names) > 1:
            if len(inputs) != len(names):
                raise ValueError(
                    f"`{argument}` holds {len(inputs)} arrays, but model "
                    f"'{self.model.name}' has {len(names)} inputs: {names} (pass "
                    "them in this order, or as a dict keyed by these names)."
                )
            return [None if v is None else leaf(v) for v in inputs]
        if len(names) > 1:
            raise ValueError(
                f"Model '{self.model.name}' has {len(names)} inputs: {names}. Pass "
                f"`{argument}` as a list in this order or as a dict keyed by "
                f"these names. Received one array of shape "
                f"{tuple(getattr(inputs, 'shape', np.shape(inputs)))}."
            )
        if isinstance(inputs, (list, tuple)) and inputs and all(
                hasattr(v, "shape") for v in inputs):  # arrays, not nested numbers
            if len(inputs) != 1:
                raise ValueError(message(
                    argument, f"one array of examples: model '{self.model.name}' has one input",
                    got=f"a {type(inputs).__name__} of {len(inputs)} arrays of shapes "
                    f"{[tuple(v.shape) for v in inputs]}",
                    hint="Stack examples into one array (`np.stack(...)`) rather than a "
                    "list: a list is read as one array per model input."))
            return [leaf(inputs[0])]
        return [leaf(inputs)]

    def check_batched(self, x_spec, argument: str) -> None:
        """A dataset's features (``TensorSpec``s) have the model inputs'
        structure and ranks, i.e. the dataset is batched."""
        leaves = self.structure(x_spec, f"{argument}'s features", convert=False)
        for i, leaf in enumerate(leaves):
            want = len(self.graph.inputs[i].shape)
            if not isinstance(leaf, tf.TensorSpec):
                raise TypeError(message(argument, "a dataset whose features are tensors",
                                        got=f"element spec {leaf!r}"))
            if leaf.shape.rank is not None and leaf.shape.rank != want:
                shape = ", ".join(str(d) for d in self.graph.inputs[i].shape[1:])
                raise ValueError(message(
                    argument, f"a batched dataset: the model takes batches (batch, {shape})",
                    got=f"elements of shape {tuple(leaf.shape)}",
                    hint="Batch it first, e.g. `dataset.batch(32)`."))

    def check_inputs(self, inputs, argument: str = "inputs") -> list:
        """Validated model-ordered numpy inputs from any structure.

        Args:
            inputs: one array, a list in ``model.inputs`` order or a dict.
            argument: the argument's name in messages (the callback's
                probe set is ``data``).
        """
        arrays = self.structure(inputs, argument)
        self._check_inputs(arrays, argument)
        return arrays

    def _check_inputs(self, arrays: list, argument: str = "inputs") -> int:
        graph, n = self.graph, None
        for i, (x, t) in enumerate(zip(arrays, graph.inputs)):
            label = self._label(i, argument)
            textual = x.dtype == object or x.dtype.kind in "SU"
            if textual and (self._head is None or i in self._interp):
                raise TypeError(
                    f"`{label}` must be numeric; received dtype {x.dtype}. For a model "
                    "that takes strings, pass `start_layer=` (e.g. its Embedding)."
                )
            spec = tuple(t.shape[1:])
            if x.ndim != len(spec) + 1 or any(
                    s is not None and s != d for s, d in zip(spec, x.shape[1:])):
                shown = ", ".join(str(s) for s in spec)
                raise ValueError(
                    f"`{label}` must have shape (batch, {shown}) to match the model "
                    f"input. Received shape {x.shape}."
                )
            if n is not None and x.shape[0] != n:
                raise ValueError(
                    f"The model inputs hold different numbers of examples: "
                    f"{dict(zip(graph.input_names, [a.shape[0] for a in arrays]))}."
                )
            n = x.shape[0]
            if i in self._interp and x.dtype.kind in "iub":
                raise ValueError(self._integer_message(x.dtype, argument))
            _check_finite(x, label)
            self._check_token_ids(x, i, label)
        if n == 0:
            raise ValueError(f"`{argument}` holds no examples (batch size 0).")
        return n

    def _check_token_ids(self, x: np.ndarray, index: int, label: str):
        """Token ids that feed an Embedding must be integral and within its
        vocabulary: a float id is truncated by the lookup, and an id out of
        range is an error on CPU but a silent row of zeros on a GPU."""
        if x.dtype.kind not in "iuf" or x.size == 0:
            return
        for name, vocab in self.token_vocabularies[index]:
            valid = (f"integral token ids in 0..{vocab - 1} (they feed the Embedding "
                     f"{name!r} of {vocab} rows)")
            if x.dtype.kind == "f" and np.any(x != np.round(x)):
                first = tuple(int(i) for i in np.argwhere(x != np.round(x))[0])
                raise ValueError(message(label, valid, got=f"{label} with the fractional "
                                         f"value {x[first].item()!r} at index {first}"))
            bad = (x < 0) | (x >= vocab)
            if np.any(bad):
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(message(label, valid, got=f"{label} with the id "
                                         f"{x[first].item()!r} at index {first}"))

    def count_bad_token_ids(self, arrays: list) -> tf.Tensor:
        """In a traced step: how many values of the model-ordered ``arrays``
        that feed an Embedding are fractional or outside its rows (float32)."""
        count = tf.constant(0.0)
        for i, x in enumerate(arrays):
            for _, vocab in self.token_vocabularies[i]:
                if not (x.dtype.is_floating or x.dtype.is_integer):
                    continue
                v = tf.cast(x, tf.float64)
                bad = tf.not_equal(v, tf.round(v)) | (v < 0) | (v >= float(vocab))
                count += tf.reduce_sum(tf.cast(bad, tf.float32))
        return count

    @functools.cached_property
    def token_vocabularies(self) -> List[List[tuple]]:
        """Per model input, ``(name, rows)`` of each Embedding that looks it
        up; found once, from the graph (never inside a traced step)."""
        return [[(e.name, int(e.input_dim)) for e in self._embeddings_of(i)]
                for i in range(len(self.graph.inputs))]

    def _embeddings_of(self, index: int) -> list:
        """The Embedding layers that look up model input ``index``: its
        direct users, and the start layer if it is one fed by this input."""
        graph = self.graph
        if graph.root is not None:
            return []
        found = [op for op in graph.consumers(graph.inputs[index])
                 if isinstance(op, keras.layers.Embedding)]
        if self._head is not None:
            start = graph.operation_of(self._path[0])
            if isinstance(start, keras.layers.Embedding) and start not in found and \
                    graph.input_ancestors(self._path[0]) == [index]:
                found.append(start)
        return found

    def split(self, arrays: list):
        """``(path ends, held-constant inputs)`` from model-ordered inputs.

        Works on numpy arrays and on tensors inside a ``tf.function``.
        """
        cast = [tf.cast(a, t.dtype) if a is not None else None
                for a, t in zip(arrays, self.graph.inputs)]
        xs = []
        if self._head is not None:
            xs.append(tf.cast(self._head(cast, training=False), tf.float32))
        xs += [tf.cast(cast[i], tf.float32) for i in self._interp]
        return xs, [cast[i] for i in self._const]

    def prepare(self, inputs, baselines=None, argument: str = "inputs") -> Prepared:
        """Validates and converts inputs and baselines.

        Args:
            inputs: any structure ``model.predict`` accepts.
            baselines: None (zeros; the zero output of ``start_layer``), an
                array for the single interpolated tensor (with
                ``start_layer``: broadcastable to its output, or token ids
                that go through it), or the inputs' structure (entries of
                held-constant inputs are ignored; with ``start_layer`` the
                given entries replace the inputs before the start layer).

            argument: the name of ``inputs`` in messages (``data`` for the
                callback's probe set).

        Returns:
            ``Prepared``.
        """
        arrays = self.check_inputs(inputs, argument)
        xs, consts = self.split(arrays)
        xs = [np.asarray(x, np.float32) for x in xs]
        consts = [np.asarray(c) for c in consts]
        return Prepared(xs, self._baselines(baselines, arrays, xs), consts)

    def token_baseline(self):
        """The default baseline of an RMSNorm decoder's path, or None.

        The pad token's embedding, unless that row looks untrained (RMS
        below half the median row's: a pad id a model never saw, Llama 3's
        reserved tokens), which would start the path almost at the norm's
        singular point again; then the mean of all token embeddings.

        Returns:
            None (not such a model), ``("pad", id)`` or ``("mean", (D,))``.
        """
        if self.singular_norm is None:
            return None
        if self._token_baseline is None:
            pad = _pad_token_id(self.model)
            table = tf.cast(self.graph.operation_of(self._path[0]).embeddings, tf.float32)
            rms = tf.sqrt(tf.reduce_mean(tf.square(table), axis=1)).numpy()
            if rms[pad] >= 0.5 * np.median(rms):
                self._token_baseline = ("pad", pad)
            else:
                self._token_baseline = ("mean", tf.reduce_mean(table, axis=0).numpy())
        return self._token_baseline

    @property
    def default_baseline(self) -> str:
        """What ``baselines=None`` means for this model, in words."""
        kind = self.token_baseline()
        if kind is not None and kind[0] == "pad":
            return f"the pad token's embedding (id {kind[1]}) at every position"
        if kind is not None:
            return ("the mean token embedding at every position (the pad token's row "
                    "looks untrained)")
        return "the zero embedding" if self._head is not None else "zeros"

    def starts_at_singular_norm(self, prepared: "Prepared") -> bool:
        """Whether the path starts at (or near) the zero embedding of a model
        whose normalization then divides by about |0| (``singular_norm``):
        a baseline whose RMS is under a quarter of the input's."""
        if self.singular_norm is None:
            return False

        def rms(t):
            return np.sqrt(np.mean(np.square(t), axis=tuple(range(1, t.ndim))))

        x, b = prepared.xs[0], prepared.baselines[0]
        return bool(np.any(rms(b) < 0.25 * rms(x)))

    def _baselines(self, baselines, arrays, xs) -> List[np.ndarray]:
        if isinstance(baselines, str):
            raise TypeError(message(
                "baselines", "None, a numeric array, or the inputs' structure of arrays",
                baselines, hint="Words such as 'black', 'zero', 'uniform' and 'blur' are "
                "the command line's --baseline; in Python pass an array, e.g. "
                "`np.zeros_like(x)` or `np.full_like(x, value)`."))
        kind = self.token_baseline() if baselines is None else None
        if kind is not None and kind[0] == "pad":
            return self._baselines_from_raw(self._ids_baseline(np.asarray(kind[1]), arrays), xs)
        if kind is not None:
            return [self._broadcast(kind[1], xs[0], "the start layer's output")] + [
                np.zeros_like(x) for x in xs[1:]]
        if baselines is None:
            return [np.zeros_like(x) for x in xs]
        structured = isinstance(baselines, (dict, list, tuple)) and (
            len(self.graph.inputs) > 1 or isinstance(baselines, dict))
        if self._head is not None:
            if structured:
                given = self.structure(baselines, "baselines", partial=True)
                # Entries left out: the input's own value before the start
                # layer (held constant), zeros for an interpolated input.
                merged = [(np.zeros_like(a) if i in self._interp else a) if g is None
                          else np.broadcast_to(g, a.shape)
                          for i, (a, g) in enumerate(zip(arrays, given))]
                return self._baselines_from_raw(merged, xs)
            b = _numpy(baselines)
            if b.dtype.kind in "iu":
                return self._baselines_from_raw(self._ids_baseline(b, arrays), xs)
            return [self._broadcast(b, xs[0], "the start layer's output")] + [
                np.zeros_like(x) for x in xs[1:]]
        if structured:
            given = self.structure(baselines, "baselines", partial=True)
            return [np.zeros_like(x) if given[i] is None else
                    self._broadcast(given[i], x, f"input {self.graph.input_names[i]!r}")
                    for i, x in zip(self._interp, xs)]
        if len(xs) > 1:
            raise ValueError(
                f"`baselines` must have the inputs' structure: {len(xs)} inputs are "
                f"interpolated ({self.path_names}). Pass a list or a dict keyed "
                f"by {self.graph.input_names}. Received one array of shape "
                f"{np.shape(baselines)}."
            )
        where = "the inputs" if len(self.graph.inputs) == 1 else f"input {self.path_names[0]!r}"
        return [self._broadcast(_numpy(baselines), xs[0], where)]

    def _ids_baseline(self, b: np.ndarray, arrays: list) -> list:
        """Model inputs with the start layer's id input replaced by ``b``."""
        upstream = self.graph.input_ancestors(self._path[0])
        if len(upstream) != 1:
            raise ValueError(
                f"Token-id `baselines` are ambiguous: start layer "
                f"{self.start_layer!r} depends on the inputs "
                f"{[self.graph.input_names[i] for i in upstream]}. Pass a dict "
                "keyed by input name."
            )
        merged = list(arrays)
        i = upstream[0]
        try:
            merged[i] = np.broadcast_to(b, arrays[i].shape)
        except ValueError:
            raise ValueError(
                f"`baselines` with shape {b.shape} cannot be broadcast to "
                f"the inputs' shape {arrays[i].shape}."
            ) from None
        return merged

    def _baselines_from_raw(self, merged: list, xs) -> List[np.ndarray]:
        for i, b in enumerate(merged):  # token-id baselines obey the rules of ids
            _check_finite(np.asarray(b), self._label(i, "baselines"))
            self._check_token_ids(np.asarray(b), i, self._label(i, "baselines"))
        starts, _ = self.split([np.ascontiguousarray(b) for b in merged])
        return [np.asarray(s, np.float32) for s in starts]

    @staticmethod
    def _broadcast(b: np.ndarray, x: np.ndarray, where: str) -> np.ndarray:
        b = np.asarray(b)
        if b.dtype == object or b.dtype.kind in "SU":
            raise TypeError(message("baselines", "None or a numeric array", b,
                                    got=f"an array of dtype {b.dtype}"))
        try:
            out = np.broadcast_to(b.astype(np.float32), x.shape)
        except ValueError:
            raise ValueError(
                f"`baselines` with shape {b.shape} cannot be broadcast to "
                f"{where}, shape {x.shape}."
            ) from None
        _check_finite(out, "baselines")
        return np.ascontiguousarray(out)


@dataclasses.dataclass(frozen=True)
class Unit:
    """One addressable unit of a model, as ``kc.list_units`` lists it.

    Attributes:
        path: the name to pass in ``layers`` (``"block/sub/leaf"`` inside a
            layer; add ``":input"`` for what that sublayer receives).
        kind: the layer's class name.
        shape: the output shape (``None`` for a batch or sequence axis left
            open by the model), or None when the layer does not run once.
        in_graph: True for a node of the model graph (cut analysis and
            ablation by splitting apply), False for a unit inside a layer.
        calls: how often the layer runs in one forward pass.
        resolves_to: for a unit by meaning (``"block:ffn_neurons"``), the
            unit it stands for in this model; else None.
    """

    path: str
    kind: str
    shape: Optional[tuple]
    in_graph: bool
    calls: int
    resolves_to: Optional[str] = None

    def __str__(self) -> str:
        if self.resolves_to is not None:  # a unit by meaning
            return f"{self.path}  = {self.resolves_to}  {self.shape}"
        where = "" if self.in_graph else "  (inside a layer)"
        runs = "" if self.calls == 1 else f"  [runs {self.calls} times]"
        return f"{self.path}  {self.kind}  {self.shape}{where}{runs}"


def embedding_layers(model: keras.Model) -> List[str]:
    """The names of ``model``'s Embedding layers (nested models looked into),
    in graph order: where a token model's path can start."""
    return layer_graph(model).embedding_layers()


def input_names(model: keras.Model) -> List[str]:
    """The names of ``model``'s inputs, in ``model.inputs`` order."""
    return layer_graph(model).input_names


def list_units(model: keras.Model) -> List[Unit]:
    """Every addressable unit of ``model``: graph layers and the sublayers
    inside them (a transformer block's FFN and attention projections), with
    output shapes, in the order they run.

    Args:
        model: a Functional, Sequential or subclassed ``keras.Model`` (a
            subclassed model's sublayers are named from the model itself).

    Returns:
        A list of ``Unit`` (print them one per line to browse a model).
    """
    from keras_conductance.graph import sublayers

    graph = layer_graph(model)
    taps, owners = [], []  # owners[i]: the graph layer that holds taps[i]

    def visit(layer, prefix, owner):
        for child in sublayers(layer):
            path = f"{prefix}/{child.name}"
            taps.append(Tap(path, child))
            owners.append(owner)
            visit(child, path, owner)

    if graph.root is not None:  # a subclassed model: its sublayers by their own names
        for child in sublayers(graph.root):
            taps.append(Tap(child.name, child))
            owners.append(graph.root.name)
            visit(child, child.name, graph.root.name)
    else:
        for name in graph.order:
            if not graph.is_nested_model(name):  # its layers are in the graph
                visit(graph.operation_of(graph.tensors[name]), name, name)
    # Units by meaning: what each resolves to, and its shape from the same trace.
    meanings = [unit_meanings.resolve(graph, f"{b}:{m}")
                for b in unit_meanings.blocks(graph) for m in unit_meanings.MEANINGS]
    for meaning in meanings:
        path, where = meaning.resolves_to, "output"
        if path.endswith(INPUT_SUFFIX):
            path, where = path[: -len(INPUT_SUFFIX)], "input"
        layer = graph.sublayer(path) if "/" in path and path not in graph.tensors else \
            graph.operation_of(graph.tensors[path])
        taps.append(Tap(meaning.name, layer, where))
        owners.append(None)
    recorder = TapRecorder(taps, strict=False)

    def call(*inputs):
        with recorder.recording() as record:
            out = graph.model(keras.tree.pack_sequence_as(graph.model._inputs_struct, list(inputs)),
                              training=False)
        return record.seen, out

    seen = trace_once(call, [tf.TensorSpec(t.shape, t.dtype) for t in graph.inputs])
    inner, by_meaning = {}, {}
    for tap, owner, tensors in zip(taps, owners, seen):
        one = len(tensors) == 1 and hasattr(tensors[0], "shape")
        if owner is None:
            by_meaning[tap.name] = tuple(tensors[0].shape) if one else None
            continue
        inner.setdefault(owner, []).append(Unit(
            tap.name, type(tap.layer).__name__, tuple(tensors[0].shape) if one else None,
            False, len(tensors)))
    units = []
    for name in graph.order:
        op = graph.operation_of(graph.tensors[name])
        # A nested model's tensor is its last inner layer's: name the model.
        kind = "Model (nested; its layers follow)" if graph.is_nested_model(name) \
            else type(op).__name__
        units.append(Unit(name, kind, tuple(graph.tensors[name].shape), True, 1))
        units.extend(inner.get(name, []))
    units.extend(Unit(m.name, "by meaning", by_meaning.get(m.name), m.resolves_to in graph.tensors, 1,
                      m.resolves_to) for m in meanings)
    return units
