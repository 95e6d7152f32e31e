"""Models with several inputs and outputs, held-constant inputs, keras-hub."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from models import set_dense, tiny_bert


def two_input_model():
    """a (2) and b (1) -> concat -> Dense(2, [[1,0],[1,0],[0,1]], ReLU) -> sum."""
    a = keras.Input((2,), name="a")
    b = keras.Input((1,), name="b")
    cat = keras.layers.Concatenate(name="concat")([a, b])
    hidden = keras.layers.Dense(2, activation="relu", name="hidden")(cat)
    out = keras.layers.Dense(1, name="out")(hidden)
    model = keras.Model([a, b], out, name="two_inputs")
    set_dense(model, "hidden", [[1, 0], [1, 0], [0, 1]], [0, 0])
    set_dense(model, "out", [[1], [1]], [0])
    return model


A = np.array([[1.0, 2.0]], np.float32)
B = np.array([[3.0]], np.float32)


@pytest.mark.parametrize("as_dict", [False, True])
def test_hand_computed_two_inputs(as_dict):
    model = two_input_model()
    inputs = {"a": A, "b": B} if as_dict else [A, B]
    both = kc.conductance(model, inputs, "hidden", n_steps=4)
    np.testing.assert_allclose(both["hidden"], [[3.0, 3.0]], rtol=1e-6)
    np.testing.assert_allclose(both.output_diff, [6.0], rtol=1e-6)
    assert both.is_cut["hidden"]
    held = kc.conductance(model, inputs, "hidden", n_steps=4, interpolate=["a"])
    np.testing.assert_allclose(held["hidden"], [[3.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(held.output_at_baseline, [3.0], rtol=1e-6)
    np.testing.assert_allclose(held.output_diff, [3.0], rtol=1e-6)
    # Baselines in the inputs' structure; entries of held inputs are ignored.
    base = {"a": np.ones((1, 2), np.float32)} if as_dict else [np.ones((1, 2)), None]
    moved = kc.conductance(model, inputs, "hidden", n_steps=4, baselines=base)
    np.testing.assert_allclose(moved["hidden"], [[1.0, 3.0]], rtol=1e-6)


def test_measures_and_ablation_on_two_inputs():
    model = two_input_model()
    ms = kc.measures(model, [A, B], "hidden", n_steps=4)
    np.testing.assert_allclose(ms.activation["hidden"], [[3.0, 3.0]])
    np.testing.assert_allclose(ms.gradient_x_activation["hidden"], [[3.0, 3.0]])
    drops = kc.ablation_scores(model, {"a": A, "b": B}, "hidden", target=0)
    np.testing.assert_allclose(drops, [[3.0, 3.0]])
    base = kc.ablation_scores(model, [A, B], "hidden", target=0, value="baseline",
                              interpolate=["a"])
    np.testing.assert_allclose(base, [[3.0, 0.0]])  # y(x') = (0, 3): b is held
    # (The right rule: at alpha = 0 the ReLUs sit on their kink, relu'(0) = 0.)
    maps = kc.neuron_conductance(model, [A, B], "hidden", [0, 1], n_steps=8, method="right")
    # One map per interpolated input: filter 0 comes from a, filter 1 from b.
    np.testing.assert_allclose(maps["a"], [[[1.0, 2.0], [0.0, 0.0]]], atol=1e-5)
    np.testing.assert_allclose(maps["b"], [[[0.0], [3.0]]], atol=1e-5)


def test_dataset_and_callback_take_structured_features():
    model = two_input_model()
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (10, 2)).astype("float32")
    b = rng.uniform(0, 1, (10, 1)).astype("float32")
    labels = np.zeros(10, "int32")
    ds = tf.data.Dataset.from_tensor_slices(({"a": a, "b": b}, labels)).batch(4)
    result = kc.conductance_over_dataset(model, ds, "hidden", n_steps=4, verbose=0)
    expected = kc.conductance(model, {"a": a, "b": b}, "hidden", n_steps=4)["hidden"]
    np.testing.assert_allclose(result.mean["hidden"], expected.mean(axis=0), rtol=1e-5)
    assert result.count == 10 and result.count_per_label.tolist() == [10]
    callback = kc.ConductanceCallback(([a, b], labels), "hidden", n_steps=4)
    callback.set_model(model)
    callback.on_test_end({})
    np.testing.assert_allclose(callback.history[-1]["conductance"]["hidden"],
                               expected.mean(axis=0), rtol=1e-5)


def two_head_model():
    keras.utils.set_random_seed(1)
    inp = keras.Input((5,), name="x")
    trunk = keras.layers.Dense(6, activation="tanh", name="trunk")(inp)
    left = keras.layers.Dense(3, name="left")(trunk)
    right = keras.layers.Dense(2, activation="softmax", name="right")(trunk)
    return keras.Model(inp, {"left": left, "right": right}, name="two_heads")


def test_each_output_agrees_with_its_single_head_model():
    model = two_head_model()
    x = np.random.default_rng(1).normal(size=(3, 5)).astype("float32")
    graph_out = {"left": model.get_layer("left").output,
                 "right": model.get_layer("right").output}
    for output in ["left", "right", 0]:
        name = output if isinstance(output, str) else "left"
        single = keras.Model(model.input, graph_out[name])
        got = kc.conductance(model, x, "trunk", output=output, n_steps=32, target=1)
        want = kc.conductance(single, x, "trunk", n_steps=32, target=1)
        np.testing.assert_allclose(got["trunk"], want["trunk"], rtol=1e-5, atol=1e-7)
    logits = kc.conductance(model, x, "trunk", output="right", pre_softmax=True, n_steps=32)
    assert np.abs(logits.relative_delta()).max() < 1e-2


def test_clear_errors_for_structured_models():
    model = two_input_model()
    with pytest.raises(ValueError, match=r"has 2 outputs: \['left', 'right'\]\. Pass `output=`"):
        kc.conductance(two_head_model(), np.zeros((1, 5)), "trunk")
    with pytest.raises(ValueError, match=r"No such output: output='middle'.*\['left', 'right'\]"):
        kc.conductance(two_head_model(), np.zeros((1, 5)), "trunk", output="middle")
    with pytest.raises(ValueError, match=r"`inputs` has keys \['c'\] that are not inputs.*\['a', 'b'\]"):
        kc.conductance(model, {"a": A, "b": B, "c": B}, "hidden")
    with pytest.raises(ValueError, match=r"`inputs` lacks the model inputs \['b'\]"):
        kc.conductance(model, {"a": A}, "hidden")
    with pytest.raises(ValueError, match=r"has 2 inputs: \['a', 'b'\]\. Pass `inputs` as a list"):
        kc.conductance(model, A, "hidden")
    with pytest.raises(ValueError, match=r"`baselines` must have the inputs' structure: 2 inputs"):
        kc.conductance(model, [A, B], "hidden", baselines=np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"`baselines` holds 3 arrays, but model 'two_inputs' has 2"):
        kc.conductance(model, [A, B], "hidden", baselines=[A, B, B])
    with pytest.raises(ValueError, match=r"No such model input in `interpolate`: 'z'"):
        kc.conductance(model, [A, B], "hidden", interpolate=["z"])
    # Token ids stored as floats (keras.Input defaults to float32).
    ids = keras.Input((6,), name="ids")
    emb = keras.layers.Embedding(10, 4, name="emb")(ids)
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(emb)
    floats = keras.Model(ids, keras.layers.Dense(2, name="out")(pooled))
    with pytest.raises(ValueError, match=r"Input 'ids' \(float32\) feeds the Embedding \['emb'\].*integer ids and `start_layer=`"):
        kc.conductance(floats, np.ones((1, 6)), "pool")


# -- keras-hub -------------------------------------------------------------------


@pytest.fixture(scope="module")
def bert():
    return tiny_bert(seed=3)


def bert_inputs(n=3, length=12, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, length, size=n)
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    ids = np.where(mask, rng.integers(4, 60, size=(n, length)), 0).astype("int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


@pytest.mark.slow
def test_bert_classifier_from_the_token_embedding(bert):
    inputs = bert_inputs()
    layers = ["transformer_layer_0", "transformer_layer_1"]
    attr = kc.conductance(bert, inputs, layers, start_layer="token_embedding", n_steps=64)
    # The padding mask enters every block, but it is held constant: each
    # block's output still cuts every interpolated path.
    assert attr.is_cut == {"transformer_layer_0": True, "transformer_layer_1": True}
    for layer in layers:
        assert np.abs(attr.relative_delta([layer])).max() < 0.01
        padded = attr[layer][inputs["padding_mask"] == 0]
        assert padded.size > 0 and np.abs(padded).max() == 0.0
        assert np.abs(attr[layer][inputs["padding_mask"] == 1]).max() > 0
    one = kc.conductance(bert, {k: v[1:2] for k, v in inputs.items()}, layers,
                         start_layer="token_embedding", n_steps=64, target=attr.target[1:2])
    np.testing.assert_allclose(one["transformer_layer_1"], attr["transformer_layer_1"][1:2],
                               rtol=1e-4, atol=1e-6)
    # Baselines as token ids (all padding ids) go through the embedding.
    pads = kc.conductance(bert, inputs, layers[-1], start_layer="token_embedding",
                          baselines={"token_ids": np.zeros_like(inputs["token_ids"])},
                          n_steps=64)
    assert np.abs(pads.relative_delta()).max() < 0.01


@pytest.mark.slow
def test_bert_backbone_dict_output(bert):
    backbone = bert.backbone
    inputs = bert_inputs(n=2, seed=1)
    attr = kc.conductance(backbone, inputs, "transformer_layer_0", output="pooled_output",
                          start_layer="token_embedding", target=5, n_steps=64)
    assert attr["transformer_layer_0"].shape == (2, 12, 16)
    assert np.abs(attr.relative_delta()).max() < 0.01
    pooled = np.asarray(backbone(inputs)["pooled_output"])[:, 5]
    np.testing.assert_allclose(attr.output_at_input, pooled, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"has 2 outputs: \['pooled_output', 'sequence_output'\]"):
        kc.conductance(backbone, inputs, "transformer_layer_0", start_layer="token_embedding")


def test_cli_report_reads_one_array_per_named_input(tmp_path):
    import json

    from keras_conductance import cli

    model = two_input_model()
    model.save(tmp_path / "two.keras")
    rng = np.random.default_rng(2)
    a, b = rng.uniform(0, 1, (3, 2)).astype("float32"), rng.uniform(0, 1, (3, 1)).astype("float32")
    np.savez(tmp_path / "x.npz", a=a, b=b)
    args = ["report", str(tmp_path / "two.keras"), "--layer", "hidden", "--inputs",
            str(tmp_path / "x.npz"), "--out", str(tmp_path / "r"), "--json", "--n-steps", "8"]
    assert cli.main(args) == 0
    info = json.loads((tmp_path / "r" / "report.json").read_text())
    expected = kc.conductance(model, {"a": a, "b": b}, "hidden", n_steps=8)["hidden"].sum(axis=1)
    np.testing.assert_allclose([ex["layers"]["hidden"]["sum"] for ex in info["examples"]],
                               expected, rtol=1e-4, atol=1e-6)
    np.savez(tmp_path / "bad.npz", a=a)
    assert cli.main(args[:5] + [str(tmp_path / "bad.npz")] + args[6:]) == 2


def test_review_edge_cases():
    # An int input named in `interpolate`, or an empty `interpolate`, is an error.
    model = two_input_model()
    with pytest.raises(ValueError, match=r"`interpolate` is empty"):
        kc.conductance(model, [A, B], "hidden", interpolate=[])
    ids = keras.Input((3,), dtype="int32", name="ids")
    cast = keras.layers.Lambda(lambda t: keras.ops.cast(t, "float32"), name="cast")(ids)
    ints = keras.Model(ids, keras.layers.Dense(1, name="d")(cast))
    with pytest.raises(ValueError, match=r"`interpolate` names input 'ids', whose dtype is int32"):
        kc.conductance(ints, np.ones((1, 3), "int32"), "d", interpolate=[0])
    # Ablation with value="zero" interpolates nothing: float ids are fine there.
    tokens = keras.Input((5,), name="tokens")
    emb = keras.layers.Embedding(10, 4, name="emb")(tokens)
    flat = keras.layers.Flatten(name="fl")(emb)
    floats = keras.Model(tokens, keras.layers.Dense(2, name="out")(flat))
    assert kc.ablation_scores(floats, np.ones((1, 5)), "fl").shape == (1, 20)
    # With a start layer, an interpolated input left out of dict baselines
    # starts at zero, as without a start layer.
    tok = keras.Input((4,), dtype="int32", name="tok")
    feat = keras.Input((2,), name="feat")
    pooled = keras.layers.Flatten(name="pool")(keras.layers.Embedding(9, 3, name="e")(tok))
    cat = keras.layers.Concatenate(name="cat")([pooled, feat])
    mixed = keras.Model([tok, feat], keras.layers.Dense(1, name="o")(cat))
    inputs = {"tok": np.ones((1, 4), "int32"), "feat": np.ones((1, 2), "float32")}
    left_out = kc.conductance(mixed, inputs, "cat", start_layer="e", interpolate=["feat"],
                              baselines={"tok": np.zeros((1, 4), "int32")}, n_steps=4)
    explicit = kc.conductance(mixed, inputs, "cat", start_layer="e", interpolate=["feat"],
                              baselines={"tok": np.zeros((1, 4), "int32"),
                                         "feat": np.zeros((1, 2), "float32")}, n_steps=4)
    np.testing.assert_allclose(left_out.output_diff, explicit.output_diff, rtol=1e-6)
