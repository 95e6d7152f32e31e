"""Decoder language models: layers called twice, nested models called by
keyword, and every keras-hub ``*CausalLM`` family explained from its token
embedding."""

import keras
import numpy as np
import pytest

import keras_conductance as kc

keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is not installed")


def tied_lm(seed=0):
    """ids -> tied embedding -> Dense 'block' -> the same embedding, reversed."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32", name="ids")
    emb = keras_hub.layers.ReversibleEmbedding(50, 8, name="token_embedding")
    h = keras.layers.Dense(8, activation="gelu", name="block")(emb(ids))
    return keras.Model(ids, emb(h, reverse=True), name="tied_lm")


def test_a_layer_called_twice_is_named_per_call_and_starts_at_its_first_call(rng):
    model = tied_lm()
    ids = rng.integers(1, 50, (3, 5)).astype("int32")
    names = [u.path for u in kc.list_units(model)]
    assert {"token_embedding@0", "token_embedding@1"} <= set(names)
    shapes = {u.path: u.shape for u in kc.list_units(model)}
    assert shapes["token_embedding"] == shapes["token_embedding@0"] == (None, None, 8)
    assert shapes["token_embedding@1"] == (None, None, 50)
    attr = kc.conductance(model, ids, ["block"], start_layer="token_embedding",
                          target=lambda o: o[:, -1, 7], n_steps=64, verbose=0)
    # Hand-built equivalent: the path in the embedding space as a float input.
    emb = model.get_layer("token_embedding")
    vectors = keras.Input((None, 8), name="vectors")
    block = model.get_layer("block")
    hand = keras.Model(vectors, emb(block(vectors), reverse=True))
    x = np.asarray(emb(ids))
    ref = kc.conductance(hand, x, [hand.layers[1].name], target=lambda o: o[:, -1, 7],
                         n_steps=64, verbose=0)
    np.testing.assert_allclose(attr["block"], ref[hand.layers[1].name], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(attr.output_at_input, np.asarray(model(ids))[:, -1, 7],
                               rtol=1e-5)
    assert attr.relative_delta(["block"]).max() < 0.01
    # The second call is addressable too: here the explained output itself.
    last = kc.conductance(model, ids, ["token_embedding@1"], start_layer="token_embedding@0",
                          target=lambda o: o[:, -1, 7], n_steps=8, verbose=0)
    np.testing.assert_allclose(last.delta["token_embedding@1"], 0.0, atol=1e-5)


def test_a_nested_model_called_by_keyword_equals_one_called_positionally(rng):
    keras.utils.set_random_seed(1)
    y = keras.Input((4,), name="y")
    inner = keras.Model(y, keras.layers.Dense(3, activation="tanh", name="d2")(y), name="inner")
    head = keras.layers.Dense(2, name="head")
    outer_in = keras.Input((4,), name="x")
    by_keyword = keras.Model(outer_in, head(inner(inputs=outer_in)), name="by_keyword")
    positional = keras.Model(outer_in, head(inner(outer_in)), name="positional")
    x = rng.normal(size=(3, 4)).astype("float32")
    assert "inner/d2" in [u.path for u in kc.list_units(by_keyword)]
    a = kc.conductance(by_keyword, x, ["inner/d2", "inner"], target=1, verbose=0)
    b = kc.conductance(positional, x, ["inner/d2", "inner"], target=1, verbose=0)
    for name in ("inner/d2", "inner"):
        np.testing.assert_allclose(a[name], b[name], rtol=1e-6)
    assert a.relative_delta(["inner/d2"]).max() < 0.01
