"""One pass gives all measures; targets, softmax, warnings, mixed precision."""

import warnings

import keras
import numpy as np
import pytest

import keras_conductance as kc
from models import small_convnet


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    xb = rng.normal(scale=0.5, size=x.shape).astype("float32")
    return x, xb


def test_one_pass_measures_equal_the_separate_functions(data):
    x, xb = data
    model = small_convnet(activation="tanh")
    ms = kc.measures(model, x, ["conv2", "dense"], baselines=xb, target=1, n_steps=12)
    cond = kc.conductance(model, x, ["conv2", "dense"], baselines=xb, target=1, n_steps=12)
    infl = kc.internal_influence(model, x, "dense", baselines=xb, target=1, n_steps=12)
    gxa = kc.gradient_x_activation(model, x, "dense", baselines=xb, target=1)
    act = kc.activation(model, x, "dense")
    np.testing.assert_allclose(ms.conductance["conv2"], cond["conv2"], rtol=1e-6)
    np.testing.assert_allclose(ms.internal_influence["dense"], infl["dense"], rtol=1e-6)
    # Endpoint-only passes run other batch shapes: float32 summation order.
    np.testing.assert_allclose(ms.gradient_x_activation["dense"], gxa["dense"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ms.activation["dense"], act["dense"], rtol=1e-4, atol=1e-6)
    split = kc.split_model(model, "dense")
    np.testing.assert_allclose(act["dense"], split.head(x), rtol=1e-5, atol=1e-6)
    assert set(dict(ms.__iter__())) == {"conductance", "internal_influence",
                                        "gradient_x_activation", "activation"}


def test_per_filter_and_top_filters():
    values = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    attr = kc.Attribution("conductance", {"l": values}, np.zeros(2), np.zeros(2), np.zeros(2),
                          np.zeros(2, int), np.zeros(2, int), "trapezoid", {"l": True})
    np.testing.assert_array_equal(attr.per_filter("l"), values.sum(axis=1))
    np.testing.assert_array_equal(attr.per_filter("l", channel_axis=1), values.sum(axis=2))
    np.testing.assert_array_equal(attr.top_filters("l", 2), [[3, 2], [3, 2]])
    with pytest.raises(ValueError, match="batch axis"):
        attr.per_filter("l", channel_axis=0)


def test_targets_int_array_and_callable(data):
    x, xb = data
    model = small_convnet()
    per_example = np.array([0, 1, 2, 0])
    a = kc.conductance(model, x, "dense", baselines=xb, target=per_example, n_steps=8)
    outputs_x, outputs_b = np.asarray(model(x)), np.asarray(model(xb))
    np.testing.assert_allclose(a.output_diff, (outputs_x - outputs_b)[np.arange(4), per_example],
                               rtol=1e-5, atol=1e-6)
    margin = lambda out: out[:, 0] - out[:, 1]
    b = kc.conductance(model, x, "dense", baselines=xb, target=margin, n_steps=8)
    np.testing.assert_allclose(b.output_diff, margin(outputs_x) - margin(outputs_b),
                               rtol=1e-5, atol=1e-6)
    assert np.all(b.target == -1)
    top = kc.conductance(model, x, "dense", baselines=xb, n_steps=8)
    np.testing.assert_array_equal(top.target, outputs_x.argmax(axis=1))


def _softmax_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    h = keras.layers.Dense(8, activation="tanh", name="h")(inp)
    logits = keras.layers.Dense(3, name="logits")(h)
    out = keras.layers.Activation("softmax", name="probs")(logits)
    model = keras.Model(inp, out)
    w = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([w[0] * 20, w[1]])  # saturate
    return model


def test_pre_softmax_explains_the_logit_and_saturation_warns():
    model = _softmax_model()
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32") * 3
    with pytest.warns(UserWarning, match=r"softmax output and is saturated.*pre_softmax=True"):
        kc.conductance(model, x, "h", n_steps=4)
    logits = np.asarray(keras.Model(model.input, model.get_layer("logits").output)(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = kc.conductance(model, x, "h", pre_softmax=True, n_steps=64, method="gauss_legendre")
    np.testing.assert_array_equal(a.target, logits.argmax(axis=1))
    np.testing.assert_allclose(a.output_at_input, logits.max(axis=1), rtol=1e-5)
    # strip_softmax shares weights with the model.
    stripped = kc.strip_softmax(model)
    np.testing.assert_allclose(stripped(x), logits, rtol=1e-6)


def test_strip_softmax_on_dense_activation_and_error():
    keras.utils.set_random_seed(0)
    inp = keras.Input((4,))
    out = keras.layers.Dense(3, activation="softmax", name="out")(inp)
    model = keras.Model(inp, out)
    x = np.ones((2, 4), "float32")
    stripped = kc.strip_softmax(model)
    kernel, bias = model.get_layer("out").get_weights()
    np.testing.assert_allclose(stripped(x), x @ kernel + bias, rtol=1e-6)
    model.get_layer("out").set_weights([kernel * 2, bias])  # shared, not copied
    np.testing.assert_allclose(stripped(x), x @ (kernel * 2) + bias, rtol=1e-6)
    with pytest.raises(ValueError, match="no softmax or sigmoid"):
        kc.strip_softmax(small_convnet())


def test_convergence_warning_once_and_tolerance_refines():
    from models import hand_mlp

    model = hand_mlp()
    # Unit 0 switches on at alpha = 0.1: with 3 steps the left rule credits
    # it 66.7 instead of 90, an error of 6 % of F(x) - F(x') = 390.
    x = np.array([[0.0, 100.0, 0.0], [0.0, 77.0, 1.0]])
    explainer = kc.Conductance(model, "hidden", n_steps=3, method="left")
    with pytest.warns(UserWarning, match=r"Completeness error.*method='left', n_steps=3.*tolerance=0.01"):
        explainer(x, target=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explainer(x, target=0)  # warned once per explainer
    attr = explainer(x, target=0, tolerance=1e-3)
    assert np.all(attr.relative_delta() <= 1e-3)
    assert attr.n_steps.max() > 3
    np.testing.assert_allclose(attr["hidden"][0], [90, 100, 100, 100], atol=0.4)
    # Each example's own points: alpha = 1 (the input) is its last.
    assert attr.path_scores.shape == attr.alphas.shape
    last = np.isfinite(attr.alphas).sum(axis=1) - 1
    np.testing.assert_allclose(attr.alphas[np.arange(2), last], 1.0)
    np.testing.assert_allclose(attr.path_scores[np.arange(2), last], attr.output_at_input)


def test_mixed_precision_accumulates_in_float32(data):
    x, xb = data
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = small_convnet(activation="tanh")
        assert model.get_layer("conv2").compute_dtype == "float16"
        attr = kc.conductance(model, x, ["conv2", "dense"], baselines=xb, target=0, n_steps=32)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert attr["conv2"].dtype == np.float32
    # float16 activations, float32 sums: completeness within float16 noise.
    assert np.all(attr.relative_delta(["conv2"]) < 0.02)
