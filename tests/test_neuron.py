"""Neuron conductance (Eq. 2): hand-computed values, agreement with per-filter
conductance, batching, text models."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from keras_conductance.neuron import NeuronConductance, neuron_conductance, point_weights
from models import hand_mlp, small_convnet, text_cnn


def quadratic_conv():
    """x (2 positions, 1 channel) -> Conv1D(2 filters, k=1, w=(2, -1)) = y ->
    F = sum_{t,c} v[t,c] y[t,c]^2 with v = ((1, 3), (-2, 0.5))."""
    inp = keras.Input((2, 1))
    y = keras.layers.Conv1D(2, 1, use_bias=False, name="y")(inp)
    sq = keras.layers.Lambda(lambda t: t * t, name="square")(y)
    flat = keras.layers.Flatten()(sq)
    out = keras.layers.Dense(1, use_bias=False, name="v")(flat)
    model = keras.Model(inp, out)
    model.get_layer("y").set_weights([np.array([[[2.0, -1.0]]], np.float32)])
    v = np.array([[1.0, 3.0], [-2.0, 0.5]], np.float32)  # (t, c), flattened t-major
    model.get_layer("v").set_weights([v.reshape(4, 1)])
    return model, np.array([2.0, -1.0]), v


def test_hand_computed_quadratic_filter_maps_and_not_the_naive_product():
    # y[t,c] = w_c x_t, so with a zero baseline Eq. 2 for filter c and
    # position i is x_i * int_0^1 2 v[i,c] (alpha w_c x_i) w_c dalpha
    #   = v[i,c] w_c^2 x_i^2   (the integrand is linear: trapezoid is exact).
    model, w, v = quadratic_conv()
    x = np.array([[[1.5], [-2.0]]], np.float32)
    maps = neuron_conductance(model, x, "y", [0, 1], target=0, n_steps=4)
    expected = np.array([[v[i, c] * w[c] ** 2 * x[0, i, 0] ** 2 for i in range(2)] for c in range(2)])
    np.testing.assert_allclose(maps[0, :, :, 0], expected, rtol=1e-6)
    # = [[9, -32], [6.75, 2]]: summing over positions gives each filter's
    # share of F(x) - F(0) (completeness through the filter).
    np.testing.assert_allclose(expected, [[9.0, -32.0], [6.75, 2.0]])
    attr = kc.conductance(model, x, "y", target=0, n_steps=4)
    np.testing.assert_allclose(maps[0].sum(axis=(1, 2)), attr.per_filter("y")[0], rtol=1e-6)
    # The naive (sum_u dF/dy_u) * (sum_u dy_u/dx_i) mixes positions:
    # x_i w_c^2 sum_t v[t,c] x_t, here [[-15, 20], [1.375, -1.833]].
    naive = np.array([[x[0, i, 0] * w[c] ** 2 * (v[:, c] * x[0, :, 0]).sum() for i in range(2)]
                      for c in range(2)])
    assert np.abs(naive - expected).max() > 10


def test_hand_computed_relu_mlp():
    # hand_mlp, x = (0, 100, 0), zero baseline, F = output 0 = sum relu(h) - 1
    # with h = x . 1 + (-10, 1, 1, 1). Unit 0 switches on at alpha = 0.1, so
    # it carries 100 * 0.9 = 90 of feature 1; units 1-3 carry 100. With 45
    # trapezoid steps the kink falls inside an interval and the points above
    # it weigh exactly 40.5 / 45 = 0.9.
    maps = neuron_conductance(hand_mlp(), np.array([[0.0, 100.0, 0.0]]), "relu", None,
                              target=0, n_steps=45)
    expected = np.array([[0, 90, 0], [0, 100, 0], [0, 100, 0], [0, 100, 0]], np.float32)
    np.testing.assert_allclose(maps[0], expected, atol=1e-3)


@pytest.mark.parametrize("method,tol", [("trapezoid", 1e-3), ("gauss_legendre", 1e-5)])
def test_sum_over_features_equals_per_filter_conductance(rng, method, tol):
    # Smooth (tanh) net, same rule and steps: the two are different
    # discretisations of the same integral (trapezoid) or the same sum
    # (Gauss-Legendre: sum_i (x - x')_i [J^T g]_i = g . dy/dalpha exactly).
    model = small_convnet(activation="tanh")
    x = rng.normal(size=(3, 8, 8, 2)).astype("float32")
    xb = rng.normal(scale=0.5, size=x.shape).astype("float32")
    for layer in ("conv1", "conv2"):
        maps = neuron_conductance(model, x, layer, None, baselines=xb, target=1,
                                  n_steps=50, method=method)
        attr = kc.conductance(model, x, layer, baselines=xb, target=1, n_steps=50, method=method)
        per_filter = attr.per_filter(layer)
        summed = maps.reshape(maps.shape[0], maps.shape[1], -1).sum(axis=2)
        scale = np.abs(per_filter).max(axis=1, keepdims=True)
        assert np.all(np.abs(summed - per_filter) <= tol * scale), (layer, method)


def test_batched_filters_equal_one_filter_at_a_time(rng):
    model = small_convnet()
    x = rng.normal(size=(3, 8, 8, 2)).astype("float32")
    filters = [4, 0, 2]
    together = neuron_conductance(model, x, "conv2", filters, n_steps=16)
    # A tiny batch size forces chunks over filters, examples and points.
    chunked = neuron_conductance(model, x, "conv2", filters, n_steps=16, batch_size=2)
    alone = np.concatenate([neuron_conductance(model, x, "conv2", [f], n_steps=16)
                            for f in filters], axis=1)
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(together, chunked, rtol=1e-5, atol=1e-7)


def test_text_model_attributes_per_token(rng):
    model = text_cnn()
    tokens = rng.integers(1, 50, size=(4, 12)).astype("int32")
    filters = [0, 3, 5, 7]
    maps = neuron_conductance(model, tokens, "conv4", filters, start_layer="embedding",
                              target=1, method="gauss_legendre", n_steps=16)
    assert maps.shape == (4, 4, 12)
    attr = kc.conductance(model, tokens, "conv4", start_layer="embedding", target=1,
                          method="gauss_legendre", n_steps=16)
    np.testing.assert_allclose(maps.sum(axis=2), attr.per_filter("conv4")[:, filters],
                               rtol=1e-4, atol=1e-6)
    # Tokens equal to the baseline's attribute nothing (x_i - x'_i = 0).
    baseline = tokens.copy()
    baseline[:, 6:] = 0
    maps = neuron_conductance(model, tokens, "conv4", filters, start_layer="embedding",
                              baselines=baseline, target=1, n_steps=8)
    assert np.all(maps[:, :, :6] == 0) and np.abs(maps[:, :, 6:]).max() > 0


def test_point_weights_integrate_polynomials():
    for method, degree in (("trapezoid", 1), ("gauss_legendre", 7)):
        rule = kc.make_rule(method, 4)
        w = point_weights(rule)
        for k in range(degree + 1):
            assert np.dot(w, rule.alphas ** k) == pytest.approx(1 / (k + 1), rel=1e-12)
    left = point_weights(kc.make_rule("left", 4))
    np.testing.assert_allclose(left, [0.25, 0.25, 0.25, 0.25, 0.0])


def test_compiled_once_per_input_shape(rng):
    explainer = NeuronConductance(small_convnet(), "conv2")
    for n in (2, 3, 5):
        explainer(rng.normal(size=(n, 8, 8, 2)).astype("float32"), [1, 2], n_steps=7)
    (step,) = explainer._steps.values()
    assert step.experimental_get_tracing_count() == 1


def test_tolerance_refines_and_warns_when_max_steps_is_reached(rng):
    # tanh twice: a curved integrand, so 2 trapezoid steps are far off.
    keras.utils.set_random_seed(3)
    inp = keras.Input((4,))
    hidden = keras.layers.Dense(5, activation="tanh", name="h")(
        keras.layers.Dense(6, activation="tanh")(inp))
    explainer = NeuronConductance(keras.Model(inp, keras.layers.Dense(2)(hidden)), "h")
    x = 3 * rng.normal(size=(2, 4)).astype("float32")
    fine = explainer(x, [0, 3], target=1, n_steps=256)
    coarse = explainer(x, [0, 3], target=1, n_steps=2)
    refined = explainer(x, [0, 3], target=1, n_steps=2, tolerance=1e-3, max_steps=256)
    assert np.abs(refined - fine).max() < 0.1 * np.abs(coarse - fine).max()
    with pytest.warns(UserWarning, match=r"did not reach tolerance=1e-12 for 2 of 2 "
                                         r"examples within max_steps=16"):
        explainer(x, [0, 3], target=1, n_steps=2, tolerance=1e-12, max_steps=16)


def test_clear_errors():
    model = small_convnet()
    x = np.zeros((1, 8, 8, 2), "float32")
    with pytest.raises(ValueError, match=r"`filters` must be .*values in 0\.\.4 \('conv2' has 5 filters\)\. Received: filters holding \[5\]"):
        neuron_conductance(model, x, "conv2", [0, 5])
    with pytest.raises(ValueError, match=r"`filters` must be None \(all\), an int, non-empty \(k,\) int filter indices.*Received: filters=\[\]"):
        neuron_conductance(model, x, "conv2", [])
    with pytest.raises(ValueError, match=r"No such layer: 'conv9'"):
        neuron_conductance(model, x, "conv9", [0])
    with pytest.raises(ValueError, match=r"integer dtype.*start_layer="):
        neuron_conductance(text_cnn(), np.ones((1, 12), "int32"), "conv3", [0])
    with pytest.raises(ValueError, match=r"`inputs` must have shape \(batch, 8, 8, 2\)"):
        neuron_conductance(model, x[0], "conv2", [0])


@pytest.mark.parametrize("case", ["text", "image", "hand"])
def test_forward_and_reverse_modes_agree(rng, case):
    if case == "text":
        model, layer, kw = text_cnn(), "concat", dict(start_layer="embedding", target=1)
        x = rng.integers(1, 50, size=(3, 12)).astype("int32")
        x[0, 7:] = 0  # padding equal to a token-id baseline contributes nothing
        kw["baselines"] = np.where(x == 0, 0, 5)
    elif case == "image":
        model, layer, kw = small_convnet(), "conv2", dict(target=2)
        x = rng.normal(size=(2, 8, 8, 2)).astype("float32")
    else:
        model, layer, kw = hand_mlp(), "relu", dict(target=0)
        x = np.array([[0.0, 100.0, 0.0], [1.0, 2.0, -3.0]], np.float32)
    filters = [1, 3]
    reverse = neuron_conductance(model, x, layer, filters, n_steps=9, mode="reverse", **kw)
    forward = neuron_conductance(model, x, layer, filters, n_steps=9, mode="forward", **kw)
    chunked = neuron_conductance(model, x, layer, filters, n_steps=9, mode="forward",
                                 batch_size=3, **kw)
    scale = np.abs(reverse).max()
    np.testing.assert_allclose(forward, reverse, atol=1e-5 * scale)
    np.testing.assert_allclose(chunked, reverse, atol=1e-5 * scale)
    if case == "text":
        assert np.all(forward[0, :, 7:] == 0)
