"""Read the layer graph of a Functional or Sequential Keras model.

Everything else in the package asks this module three questions: which
symbolic tensor is the output of the layer called ``name``, does a set of
layers cut every path from the inputs to the outputs, and if not, which layers
bypass it. Models that nest other models (a ``keras.applications`` network
inside a ``Sequential``) are flattened once into an equivalent graph of leaf
layers, so that inner layers can be addressed by name.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
from typing import Dict, List, Optional, Sequence

import keras

from keras_conductance.cache import cached

__all__ = ["CALL_SEPARATOR", "LayerGraph", "layer_graph", "producer", "require_functional",
           "sub_model", "sublayers"]

# "token_embedding@1": the second call of a layer that runs several times in
# one forward pass (a tied embedding used again as the LM head, a shared
# block). The plain name is the first call, the one nearest the inputs.
CALL_SEPARATOR = "@"


def producer(tensor):
    """``(layer, its first input tensor or None)`` for a symbolic tensor."""
    history = tensor._keras_history
    op = history.operation
    node = op._inbound_nodes[history.node_index]
    return op, (node.input_tensors[0] if node.input_tensors else None)


def sublayers(layer) -> list:
    """The layers a layer holds directly (e.g. a transformer block's Dense)."""
    flatten = getattr(layer, "_flatten_layers", None)
    if flatten is None:
        return []
    return list(flatten(include_self=False, recursive=False))


def _history_node(tensor):
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index]


def _nodes_between(source_ids, outputs) -> list:
    """The nodes from ``source_ids`` (tensor ids) to ``outputs``, in an order
    where each node comes after the nodes it takes tensors from.

    Raises:
        ValueError: an output depends on a model input that is not a source.
    """
    order, done, stack = [], set(), [(_history_node(t), False) for t in reversed(outputs)
                                     if id(t) not in source_ids]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        if node.is_input:
            raise ValueError(
                f"The sub-model's outputs {[t.name for t in outputs]} depend on the "
                f"input '{node.operation.name}', which is not among its inputs."
            )
        stack.append((node, True))
        for tensor in node.arguments.keras_tensors:
            if id(tensor) not in source_ids and id(_history_node(tensor)) not in done:
                stack.append((_history_node(tensor), False))
    return order


def sub_model(inputs, outputs, name: str) -> keras.Model:
    """A Functional model between symbolic tensors of one graph, weights shared.

    Unlike ``keras.Model(inputs, outputs)`` on intermediate tensors, which
    replaces *every* call of the layer that made an input by that input (a
    tied embedding's LM-head call then vanishes), this replays exactly the
    layer calls between ``inputs`` and ``outputs``.

    Args:
        inputs: a symbolic tensor or a list of them (model inputs or any
            layer outputs).
        outputs: a tensor or a list, computed from ``inputs`` alone; the
            model returns the same structure.
        name: the model's name.

    Raises:
        ValueError: an output is not computed from ``inputs`` alone.
    """
    flat_in, flat_out = keras.tree.flatten(inputs), keras.tree.flatten(outputs)
    if all(_history_node(t).is_input for t in flat_in):
        return keras.Model(inputs, outputs, name=name)
    fresh = [t if _history_node(t).is_input else
             keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype, name=f"{name}_in{i}")
             for i, t in enumerate(flat_in)]
    values = {id(t): f for t, f in zip(flat_in, fresh)}
    for node in _nodes_between(set(values), flat_out):
        args, kwargs = node.arguments.fill_in(values)
        out = node.operation(*args, **kwargs)
        for old, new in zip(node.outputs, keras.tree.flatten(out)):
            values[id(old)] = new
    return keras.Model(keras.tree.pack_sequence_as(inputs, fresh),
                       keras.tree.pack_sequence_as(outputs, [values[id(t)] for t in flat_out]),
                       name=name)


def _normalizes(layer) -> bool:
    """LayerNorm, RMSNorm (Keras' or a keras-hub family's own) and the like."""
    norms = tuple(getattr(keras.layers, n) for n in
                  ("LayerNormalization", "RMSNormalization", "UnitNormalization")
                  if hasattr(keras.layers, n))
    return isinstance(layer, norms) or "Norm" in type(layer).__name__ and \
        "Batch" not in type(layer).__name__


def _elementwise(op) -> bool:
    """A layer that keeps a zero tensor zero (dropout, a constant scale, a cast)."""
    if isinstance(op, (keras.layers.Dropout, keras.layers.Identity, keras.layers.Activation)):
        return True
    # Keras ops in a Functional graph (x * sqrt(d) in Gemma) are Operations, not Layers.
    return not isinstance(op, keras.layers.Layer) and type(op).__name__ in (
        "Multiply", "Divide", "Cast", "Identity", "TrueDivide")


def _is_graph_model(model) -> bool:
    if isinstance(model, keras.Sequential):
        return True
    return isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth")


def require_functional(model):
    """Returns the Functional graph behind ``model`` or raises a clear error."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected a keras.Model (Functional or Sequential). Received: "
            f"model={model!r} of type {type(model).__name__}."
        )
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                f"The Sequential model '{model.name}' has no known input "
                "shape, so its layer graph does not exist yet. Start it with "
                "`keras.Input(shape=...)` or call it once on data before "
                "explaining it."
            )
        return functional
    if not hasattr(model, "_nodes_by_depth"):
        raise TypeError(
            f"Model '{model.name}' is a subclassed keras.Model "
            f"({type(model).__name__}): it has no layer graph to split. Units "
            "inside it are still reached by tapping (`kc.conductance(model, x, "
            "['dense'])` names its sublayers), but splitting needs the "
            "Functional API (e.g. `inputs = keras.Input(...); outputs = ...; "
            "keras.Model(inputs, outputs)`)."
        )
    return model


def _is_subclassed(model) -> bool:
    return isinstance(model, keras.Model) and not _is_graph_model(model)


def _wrap_subclassed(model):
    """A Functional model of one node, the subclassed ``model``, on inputs
    shaped as in its first call. Its sublayers are then reached by tapping;
    the model itself is unchanged apart from the symbolic call."""
    shapes = getattr(model, "_build_shapes_dict", None)
    if not model.built or not shapes:
        raise ValueError(
            f"The subclassed model '{model.name}' ({type(model).__name__}) has not "
            "been called yet, so the shapes of its inputs are unknown. Call it once "
            "on a batch of data (`model(x)`) before explaining it."
        )

    def make(shape, name):
        return keras.Input(shape=tuple(shape)[1:], name=name)

    if len(shapes) == 1:
        (shape,) = shapes.values()
        if isinstance(shape, dict):
            args = ({k: make(v, k) for k, v in shape.items()},)
        elif isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            args = ([make(v, f"input_{i}") for i, v in enumerate(shape)],)
        else:
            args = (make(shape, "inputs"),)
        outputs = model(*args)
        inputs = args[0]
    else:  # call(self, x, mask): one tensor per argument, by keyword
        inputs = {k[: -len("_shape")]: make(v, k[: -len("_shape")]) for k, v in shapes.items()}
        outputs = model(**inputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_graph")


def _has_nested_models(functional) -> bool:
    return any(
        _is_graph_model(op) for op in functional.operations if op is not functional
    )


@dataclasses.dataclass
class LayerGraph:
    """A model's graph of leaf layers with a name for every layer output.

    Attributes:
        model: Functional model whose graph holds every addressable tensor.
            It is the user's model itself unless that model nests others, in
            which case it is an equivalent flattened copy sharing the weights.
        tensors: maps layer names (plain, and ``"outer/inner"`` for layers of
            nested models) to their symbolic output tensors.
        order: layer names in topological order (for suggestions).
    """

    model: keras.Model
    tensors: Dict[str, keras.KerasTensor]
    order: List[str]
    input_names: List[str] = dataclasses.field(default_factory=list)
    output_names: List[str] = dataclasses.field(default_factory=list)
    # A subclassed model seen as one node: its sublayers are named from it.
    root: Optional[keras.Model] = None

    def names(self) -> List[str]:
        return list(self.order)

    @property
    def inputs(self) -> List[keras.KerasTensor]:
        return list(self.model.inputs)

    @property
    def outputs(self) -> List[keras.KerasTensor]:
        return list(self.model.outputs)

    def embedding_layers(self) -> List[str]:
        """The names of the graph's Embedding layers, in graph order."""
        return [n for n in self.order
                if isinstance(self.operation_of(self.tensors[n]), keras.layers.Embedding)]

    def model_to(self, outputs, name: str) -> keras.Model:
        """A Functional model from the graph's inputs to ``outputs`` (graph
        tensors), sharing every weight."""
        inputs = self.inputs[0] if len(self.inputs) == 1 else self.inputs
        return keras.Model(inputs, outputs, name=name)

    def operation_of(self, tensor):
        """The layer that produced ``tensor``."""
        return tensor._keras_history.operation

    def consumers(self, tensor) -> list:
        """Layers that take ``tensor`` (directly) as an input."""
        target = id(self._node_of(tensor))
        return [
            node.operation for node in self._all_nodes()
            if any(id(p) == target for p in node.parent_nodes)
        ]

    def _ancestor_ids(self, tensor) -> set:
        """Ids of the nodes upstream of ``tensor``, its own included."""
        seen, queue = set(), collections.deque([self._node_of(tensor)])
        while queue:
            node = queue.popleft()
            if id(node) in seen:
                continue
            seen.add(id(node))
            queue.extend(node.parent_nodes)
        return seen

    def input_ancestors(self, tensor) -> List[int]:
        """Indices (into ``inputs``) of the model inputs upstream of ``tensor``."""
        seen = self._ancestor_ids(tensor)
        return [i for i, t in enumerate(self.inputs) if id(self._node_of(t)) in seen]

    def comes_after(self, tensor, start) -> bool:
        """Whether ``tensor`` is computed from ``start`` (or is it)."""
        return id(self._node_of(start)) in self._ancestor_ids(tensor)

    def resolve(self, names: Sequence[str], argument: str = "layers"):
        """Returns the output tensors of the named layers.

        Raises:
            ValueError: for an unknown or ambiguous name; the message lists
                the valid names.
        """
        found = []
        for name in names:
            if not isinstance(name, str):
                raise TypeError(
                    f"`{argument}` must hold layer names (str). Received: "
                    f"{name!r} of type {type(name).__name__}."
                )
            tensor = self.tensors.get(name)
            if tensor is None:
                # A loose cutoff: a MobileNetV2 name on MobileNet v1
                # ("block_6_expand_relu" -> "conv_pw_6_relu") still finds one.
                close = difflib.get_close_matches(name, self.order, n=3, cutoff=0.4)
                hint = f" Did you mean one of {close}?" if close else ""
                raise ValueError(
                    f"No such layer: {name!r} (argument `{argument}`).{hint} "
                    f"Existing layers are: {self.order}."
                )
            found.append(tensor)
        return found

    # -- cut analysis -----------------------------------------------------

    def _node_of(self, tensor):
        history = tensor._keras_history
        return history.operation._inbound_nodes[history.node_index]

    def _all_nodes(self):
        nodes = []
        for depth_nodes in self.model._nodes_by_depth.values():
            nodes.extend(depth_nodes)
        return nodes

    def _reachable_avoiding(self, blocked_ids, sources=None, gradient_only=False):
        """Nodes reachable from ``sources`` (default: every input) without
        passing a blocked node."""
        children = collections.defaultdict(list)
        starts = [] if sources is None else [self._node_of(t) for t in sources]
        for node in self._all_nodes():
            if sources is None and (node.is_input or not node.parent_nodes):
                starts.append(node)
            for parent in node.parent_nodes:
                children[id(parent)].append(node)
        seen = {}
        if gradient_only:
            # A non-float tensor (a mask computed from held-constant token
            # ids) carries no gradient: no attribution flows along it.
            blocked_ids = set(blocked_ids) | {
                id(node) for node in self._all_nodes()
                if not node.is_input and node.outputs
                and not any(keras.backend.is_float_dtype(t.dtype) for t in node.outputs)}
        queue = collections.deque(n for n in starts if id(n) not in blocked_ids)
        for node in queue:
            seen[id(node)] = node
        while queue:
            node = queue.popleft()
            for child in children[id(node)]:
                if id(child) in blocked_ids or id(child) in seen:
                    continue
                seen[id(child)] = child
                queue.append(child)
        return seen

    def _descendants(self, start_ids):
        children = collections.defaultdict(list)
        for node in self._all_nodes():
            for parent in node.parent_nodes:
                children[id(parent)].append(node)
        out = {}
        queue = collections.deque()
        for node in self._all_nodes():
            if id(node) in start_ids:
                queue.append(node)
        while queue:
            node = queue.popleft()
            for child in children[id(node)]:
                if id(child) not in out:
                    out[id(child)] = child
                    queue.append(child)
        return out

    def bypasses(self, names: Sequence[str], sources=None, outputs=None,
                 gradient_only: bool = False) -> List[str]:
        """Layers where a path that avoids ``names`` rejoins the network.

        Args:
            names: layer names.
            sources: tensors the paths start from (default: every model
                input). Paths from held-constant inputs (a padding mask
                that enters every transformer block) carry no attribution
                and do not count.
            outputs: output tensors the paths end at (default: all).

        Returns:
            An empty list when ``names`` together cut every path from the
            sources to the outputs.
        """
        blocked = {id(self._node_of(t)) for t in self.resolve(names)}
        reach = self._reachable_avoiding(blocked, sources, gradient_only)
        outputs = self.model.outputs if outputs is None else outputs
        output_nodes = [self._node_of(t) for t in outputs]
        if not any(id(n) in reach for n in output_nodes):
            return []
        downstream = self._descendants(blocked)
        merges = []
        for node_id, node in reach.items():
            if node_id not in downstream:
                continue
            # A merge point takes one input from the blocked layers' side and
            # one from the bypass; report only where the bypass first rejoins.
            if any(
                id(p) in reach and id(p) not in downstream for p in node.parent_nodes
            ):
                merges.append(node.operation.name)
        return [n for n in self.order if n in set(merges)] or [
            output_nodes[0].operation.name
        ]

    def normalization_fed_by(self, tensor) -> Optional[str]:
        """The layer whose normalization receives ``tensor`` with nothing
        added to it first, or None.

        Follows ``tensor`` through layers of one input (dropout, a scale)
        until a layer that is or holds a normalization (an RMSNorm decoder
        block: found, its name) or that combines it with another tensor (a
        position embedding added: None) or transforms it otherwise (None).
        A zero tensor there sits at the norm's singular point x / |x|.
        """
        children = collections.defaultdict(list)
        for node in self._all_nodes():
            for parent in node.parent_nodes:
                children[id(parent)].append(node)
        queue, seen = collections.deque(children[id(self._node_of(tensor))]), set()
        while queue:
            node = queue.popleft()
            if id(node) in seen:
                continue
            seen.add(id(node))
            op = node.operation
            # A post-norm block (normalize_first=False) adds the attention to
            # its input before any norm: the zero embedding is no singular point.
            pre_norm = getattr(op, "normalize_first", True) is not False
            if _normalizes(op) or (pre_norm and any(_normalizes(s) for s in sublayers(op))):
                return op.name
            if len(node.arguments.keras_tensors) != 1 or not _elementwise(op):
                continue
            queue.extend(children[id(node)])
        return None

    def is_nested_model(self, name: str) -> bool:
        """Whether ``name`` is a model nested in this one (flattened here:
        its output is also the output of its last inner layer)."""
        tensor = self.tensors[name]
        return any(other.startswith(name + "/") and t is tensor
                   for other, t in self.tensors.items())

    def sublayer(self, path: str):
        """The layer inside a graph layer at ``"graph_layer/inner/.../leaf"``.

        Raises:
            ValueError: no such path; the message lists the valid next steps.
        """
        parts = path.split("/")
        if self.root is not None:
            return self._walk(self.root, "", parts)
        for k in range(len(parts) - 1, 0, -1):
            prefix = "/".join(parts[:k])
            if prefix in self.tensors:
                return self._walk(self.operation_of(self.tensors[prefix]), prefix, parts[k:])
        close = difflib.get_close_matches(parts[0], self.order, n=3)
        raise ValueError(
            f"No such layer: {path!r}: {parts[0]!r} is not a layer of the model"
            + (f" (did you mean {close}?)" if close else "")
            + f". Existing layers are: {self.order}. `kc.list_units(model)` lists "
            "every addressable unit, sublayers included."
        )

    @staticmethod
    def _walk(layer, prefix: str, rest: Sequence[str]):
        def join(name):
            return f"{prefix}/{name}" if prefix else name

        for name in rest:
            children = {c.name: c for c in sublayers(layer)}
            if name not in children:
                valid = [join(c) for c in children]
                close = difflib.get_close_matches(join(name), valid, n=3)
                hint = f" Did you mean {close}?" if close else ""
                owner = repr(prefix) if prefix else f"model '{layer.name}'"
                raise ValueError(
                    f"No such sublayer: {join(name)!r}.{hint} Sublayers of "
                    f"{owner} are: {valid or 'none (it has no sublayers)'}. "
                    "`kc.list_units(model)` lists every addressable unit."
                )
            layer, prefix = children[name], join(name)
        return layer

    def is_cut(self, names: Sequence[str], sources=None, outputs=None,
               gradient_only: bool = False) -> bool:
        return not self.bypasses(names, sources, outputs, gradient_only)

    def nearest_cuts(self, name: str, limit: int = 2) -> List[str]:
        """Single layers that are cuts, nearest to ``name`` in graph order."""
        position = self.order.index(name)
        ranked = sorted(
            (abs(i - position), i, other)
            for i, other in enumerate(self.order)
            if other != name
        )
        cuts = []
        for _, _, other in ranked:
            node = self._node_of(self.tensors[other])
            if node.is_input:
                continue
            if self.is_cut([other]):
                cuts.append(other)
            if len(cuts) >= limit:
                break
        return cuts

    def check_cut(self, names: Sequence[str], what: str = "layer", sources=None,
                  outputs=None, gradient_only: bool = False) -> None:
        """Raises ValueError naming the bypass when ``names`` is not a cut
        (``gradient_only``: paths through non-float tensors do not count)."""
        bypass = self.bypasses(names, sources, outputs, gradient_only)
        if not bypass:
            return
        label = names[0] if len(names) == 1 else list(names)
        hint = ""
        if len(names) == 1:
            near = self.nearest_cuts(names[0])
            if near:
                hint = f" The nearest layers that are cuts: {near}."
        raise ValueError(
            f"{what.capitalize()} {label!r} is not a cut of model "
            f"'{self.model.name}': a path from the inputs to the outputs "
            f"bypasses it and rejoins at {bypass} (a residual connection or a "
            f"parallel branch).{hint} Pass a layer that every path goes "
            "through, or a list of layers that together cut the network."
        )


class _Names:
    """Collects a name for every layer call of a graph, in topological order.

    A layer called once is named by its path (``"outer/inner"`` inside a
    nested model). A layer called several times also gets one name per call,
    ``"name@k"`` in call order, and its plain name (and its path) means the
    first call -- for a tied embedding, the lookup fed by the model's inputs,
    not its reuse as the LM head.
    """

    def __init__(self):
        self.tensors: Dict[str, keras.KerasTensor] = {}
        self.order: List[str] = []
        self.calls = collections.defaultdict(list)  # id(layer) -> [(path, tensor)]
        self.leaf_counts = collections.Counter()

    def record(self, op, path: str, tensor) -> None:
        if not isinstance(tensor, keras.KerasTensor):
            return  # several outputs: nothing to name
        calls = self.calls[id(op)]
        if not calls:
            self.leaf_counts[path.rsplit("/", 1)[-1]] += 1
        calls.append((path, tensor))
        if path not in self.tensors:
            self.tensors[path] = tensor
            self.order.append(path)

    def finish(self):
        for calls in self.calls.values():
            if len(calls) < 2:
                continue
            first = calls[0][0]
            plain = first.rsplit("/", 1)[-1]
            base = plain if self.leaf_counts[plain] == 1 else first
            for path, _ in calls:  # every path of this layer means its first call
                self.tensors[path] = calls[0][1]
            for k, (_, tensor) in enumerate(calls):
                name = f"{base}{CALL_SEPARATOR}{k}"
                self.tensors[name] = tensor
                self.order.append(name)
        # Plain inner names are accepted when they are unique across the nesting.
        for path in list(self.order):
            if "/" in path and CALL_SEPARATOR not in path:
                plain = path.rsplit("/", 1)[-1]
                if self.leaf_counts[plain] == 1 and plain not in self.tensors:
                    self.tensors[plain] = self.tensors[path]
        return self.tensors, self.order


def _node_names(functional) -> "tuple[Dict[str, keras.KerasTensor], List[str]]":
    names = _Names()
    for depth in sorted(functional._nodes_by_depth.keys(), reverse=True):
        for node in functional._nodes_by_depth[depth]:
            if node.operation is not None and len(node.outputs) == 1:
                names.record(node.operation, node.operation.name, node.outputs[0])
    return names.finish()


def _nested_inputs(args, kwargs):
    """What a nested model was called on: positionally or as ``inputs=``
    (``backbone(inputs=...)``, as Gemma3CausalLM calls its backbone)."""
    args = [a for a in args if a is not None]
    if args:
        return args[0] if len(args) == 1 else args
    if kwargs.get("inputs") is not None:
        return kwargs["inputs"]
    given = [v for k, v in kwargs.items() if k not in ("training", "mask") and v is not None]
    return given[0] if len(given) == 1 else given


def _flatten(model):
    """Rebuilds a model that nests other models as one graph of leaf layers."""
    names = _Names()

    def apply(functional, inputs, prefix):
        def operation_fn(op):
            if _is_graph_model(op):
                inner = require_functional(op)

                def call_nested(*args, **kwargs):
                    out = apply(inner, _nested_inputs(args, kwargs), prefix + op.name + "/")
                    names.record(op, prefix + op.name, out)
                    return out

                return call_nested

            def call_leaf(*args, **kwargs):
                out = op(*args, **kwargs)
                names.record(op, prefix + op.name, out)
                return out

            return call_leaf

        return functional._run_through_graph(inputs, operation_fn=operation_fn)

    functional = require_functional(model)
    new_inputs = [
        keras.Input(shape=t.shape[1:], dtype=t.dtype, name=f"{t.name}_flat")
        for t in functional.inputs
    ]
    for inp, original in zip(new_inputs, functional.inputs):
        op = original._keras_history.operation
        names.record(op, op.name, inp)
    outputs = apply(
        functional, new_inputs[0] if len(new_inputs) == 1 else new_inputs, ""
    )
    flat = keras.Model(new_inputs[0] if len(new_inputs) == 1 else new_inputs, outputs,
                       name=f"{model.name}_flat")
    tensors, order = names.finish()
    return flat, tensors, order


def _struct_names(struct, flat) -> List[str]:
    """User-facing names of a model's flat inputs or outputs: the keys of a
    dict structure (Keras flattens dicts in sorted key order), else the
    names of the layers that make them."""
    if isinstance(struct, dict) and len(struct) == len(flat):
        return sorted(struct)
    return [t._keras_history.operation.name for t in flat]


def layer_graph(model: keras.Model) -> LayerGraph:
    """Builds (and caches on the model) the layer graph of ``model``.

    Args:
        model: a Functional or Sequential ``keras.Model``, or a subclassed
            one that has been called (seen as one node; ``root`` is set).

    Returns:
        The model's ``LayerGraph``.

    Raises:
        TypeError: ``model`` is not a keras.Model.
        ValueError: a Sequential model without a known input shape, or a
            subclassed model that was never called.
    """
    # Kept with the model's other cached objects: ``kc.clear_cache()``
    # drops it too.
    return cached(model, "layer_graph", (), lambda: _build_graph(model))


def _build_graph(model: keras.Model) -> LayerGraph:
    if _is_subclassed(model):
        wrapper = _wrap_subclassed(model)
        tensors, order = _node_names(wrapper)
        names = (_struct_names(wrapper._inputs_struct, wrapper.inputs),
                 _struct_names(wrapper._outputs_struct, wrapper.outputs))
        return LayerGraph(wrapper, tensors, order, *names, root=model)
    functional = require_functional(model)
    names = (_struct_names(functional._inputs_struct, functional.inputs),
             _struct_names(functional._outputs_struct, functional.outputs))
    if _has_nested_models(functional):
        flat, tensors, order = _flatten(model)
        return LayerGraph(flat, tensors, order, *names)
    tensors, order = _node_names(functional)
    return LayerGraph(functional, tensors, order, *names)
