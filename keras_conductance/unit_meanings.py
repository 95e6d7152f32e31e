"""Units by meaning inside transformer blocks, for every keras-hub family.

``"transformer_layer_3:ffn_neurons"`` names the FFN neurons of a block
whatever the family calls its sublayers, and ``"*:ffn_neurons"`` those of
every block. Each meaning resolves to one tensor:

* ``ffn_neurons``: the input of the FFN's output (down) projection. In a
  plain FFN (GPT-2, BERT) that is activation(intermediate dense); in a gated
  one (SwiGLU/GeGLU: Llama, Mistral, Qwen, Phi-3, Gemma) it is
  act(gate) * up, which the up-projection's output is not. Their
  conductances add up to the output projection's.
* ``heads``: the input of the attention output projection,
  ``(B, T, heads, head_dim)`` -- query heads under grouped-query attention;
  per head on axis -2, they add up to the projection's conductance.
* ``residual``: the block's output, the residual stream after it (a cut).
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from keras_conductance.graph import LayerGraph, sublayers

__all__ = ["MEANINGS", "Meaning", "blocks", "expand", "resolve"]

MEANINGS = ("ffn_neurons", "heads", "residual")
WILDCARD = "*"

# The FFN output projection, by the sublayer names keras-hub families use
# ("mlp/dense_2": ViT's MLP, whose generic names only count inside "mlp").
_FFN_OUTPUT = ("feedforward_output_dense", "ffw_linear", "_feedforward_output_dense",
               "mlp/dense_2")
_ATTENTION_OUTPUT = ("attention_output", "_output_dense", "o_proj")


class Meaning(NamedTuple):
    """A unit by meaning: the user's name, what it resolves to, its filter axis."""

    name: str
    resolves_to: str
    channel_axis: int


def _find(layer, names, prefix: str = "", depth: int = 2) -> Optional[str]:
    """The path (below ``layer``) of the first sublayer named in ``names``
    (a name may be a two-step path, ``"mlp/dense_2"``)."""
    for child in sublayers(layer):
        if child.name in names:
            return prefix + child.name
        for name in names:
            head, _, tail = name.partition("/")
            if tail and child.name == head and tail in [c.name for c in sublayers(child)]:
                return f"{prefix}{head}/{tail}"
    if depth > 1:
        for child in sublayers(layer):
            found = _find(child, names, f"{prefix}{child.name}/", depth - 1)
            if found:
                return found
    return None


def _layer(graph: LayerGraph, block: str):
    """A graph layer, or a layer inside one (``"vit_encoder/transformer_block_1"``)."""
    if block in graph.tensors:
        return graph.operation_of(graph.tensors[block])
    return graph.sublayer(block)


def _parts(graph: LayerGraph, block: str) -> Dict[str, str]:
    return _layer_parts(_layer(graph, block), block)


def _layer_parts(layer, block: str) -> Dict[str, str]:
    """The meanings a block ``layer`` named ``block`` has, and what they resolve to."""
    parts = {}
    ffn = _find(layer, _FFN_OUTPUT)
    if ffn:
        parts["ffn_neurons"] = f"{block}/{ffn}:input"
    attention = _find(layer, _ATTENTION_OUTPUT)
    if attention and "/" in attention:  # the projection inside the attention layer
        parts["heads"] = f"{block}/{attention}:input"
    if parts:
        parts["residual"] = block
    return parts


def blocks(graph: LayerGraph) -> List[str]:
    """The transformer blocks, in order: graph layers, or the layers one
    level inside a graph layer (a ViT's blocks inside ``vit_encoder``)."""
    seen, found = set(), []
    for name in graph.order:
        op = graph.operation_of(graph.tensors[name])
        if id(op) in seen or graph.is_nested_model(name) or "@" in name:
            continue
        seen.add(id(op))
        plain = name.rsplit("/", 1)[-1]  # its short name when that is unique
        short = plain if graph.tensors.get(plain) is graph.tensors[name] else name
        if len(_parts(graph, name)) == 3:
            found.append(short)
            continue
        for child in sublayers(op):
            # A subclassed model's sublayers are named from the model itself.
            path = child.name if graph.root is not None else f"{short}/{child.name}"
            if len(_layer_parts(child, path)) == 3:
                found.append(path)
    return found


def _split(name: str):
    if not isinstance(name, str) or ":" not in name:
        return None, None
    block, meaning = name.rsplit(":", 1)
    return (block, meaning) if meaning in MEANINGS else (None, None)


def expand(graph: LayerGraph, names: List[str]) -> List[str]:
    """``"*:meaning"`` replaced by ``"<block>:meaning"`` for every block."""
    out = []
    for name in names:
        block, meaning = _split(name)
        if block != WILDCARD:
            out.append(name)
            continue
        found = blocks(graph)
        if not found:
            raise ValueError(
                f"{name!r} names the {meaning} of every transformer block, but model "
                f"'{graph.model.name}' has no layer holding both an attention output "
                f"projection ({list(_ATTENTION_OUTPUT)}) and an FFN output projection "
                f"({list(_FFN_OUTPUT)}). `kc.list_units(model)` lists its units.")
        out.extend(f"{b}:{meaning}" for b in found)
    return out


def resolve(graph: LayerGraph, name: str) -> Optional[Meaning]:
    """What a ``"<block>:<meaning>"`` name stands for, or None for other names.

    Raises:
        ValueError: an unknown block, or a block without that part.
    """
    block, meaning = _split(name)
    if block is None:
        return None
    if block not in graph.tensors and "/" not in block:
        graph.resolve([block], "layers")  # "No such layer", with the list
    parts = _parts(graph, block)
    if meaning not in parts:
        valid = [f"{block}:{m}" for m in parts] or "none: it is not a transformer block"
        raise ValueError(
            f"{name!r}: layer {block!r} has no {meaning.replace('_', ' ')} that this "
            f"package recognizes. Units by meaning of {block!r}: {valid}. Name the "
            "sublayer instead (`kc.list_units(model)` lists them).")
    return Meaning(name, parts[meaning], -2 if meaning == "heads" else -1)
