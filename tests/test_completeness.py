"""Completeness: a cut layer's conductances add up to F(x) - F(x')."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from keras_conductance.graph import layer_graph
from models import small_convnet, text_cnn


def _largest_change_target(model, x, xb):
    """Per example, the output whose value moves most along the path."""
    diff = np.asarray(model(x)) - np.asarray(model(xb))
    return np.abs(diff).argmax(axis=1)


def test_small_convnet_all_cut_layers(rng):
    model = small_convnet()
    x = rng.normal(size=(6, 8, 8, 2)).astype("float32")
    xb = rng.normal(scale=0.5, size=x.shape).astype("float32")
    layers = ["conv1", "conv2", "flatten", "dense"]
    target = _largest_change_target(model, x, xb)
    attr = kc.conductance(model, x, layers, baselines=xb, target=target, tolerance=0.005)
    assert all(attr.is_cut.values())
    for layer in layers:
        assert np.all(attr.relative_delta([layer]) <= 0.005), layer
    assert attr.n_steps.min() >= 50


@pytest.mark.slow
def test_mobilenet_v2_random_weights(rng):
    # Fresh batch-norm statistics (0, 1) keep the random network in its
    # contracting regime: outputs are tiny (~1e-11) but the path is as tame
    # as a trained network's, and completeness is scale-free for a
    # piecewise-linear network. (Re-normalising every layer instead makes
    # the random network chaotic: F's total variation along the path is
    # 50-100x |F(x) - F(x')|, which no quadrature resolves.)
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classifier_activation=None
    )
    x = rng.uniform(-1, 1, size=(3, 32, 32, 3)).astype("float32")
    xb = rng.uniform(-1, 1, size=x.shape).astype("float32")
    graph = layer_graph(model)
    layers = ["Conv1_relu", "block_2_add", "block_5_add", "block_6_expand_relu",
              "block_12_add", "block_16_project_BN", "out_relu"]
    assert all(graph.is_cut([n]) for n in layers)
    target = _largest_change_target(model, x, xb)
    # Along a ReLU network's path dF/dy is piecewise constant with thousands
    # of jumps, so every rule converges at first order here (measured: 3%,
    # 1.5%, 1%, 0.2% at 50, 200, 800, 3200 steps for the worst example).
    attr = kc.conductance(model, x, layers, baselines=xb, target=target,
                          tolerance=0.02, batch_size=256)
    assert np.all(np.abs(attr.output_diff) > 0)
    for layer in layers:
        assert np.all(attr.relative_delta([layer]) <= 0.02), (layer, attr.relative_delta([layer]))
    assert attr.n_steps.max() > 50  # some example needed refining


def test_text_cnn_with_start_layer(rng):
    model = text_cnn()
    tokens = rng.integers(1, 50, size=(5, 12)).astype("int32")
    convs = ["conv3", "conv4", "conv5", "conv6"]
    attr = kc.conductance(model, tokens, convs + ["concat", "dense"],
                          start_layer="embedding", target=1, tolerance=0.005)
    assert not any(attr.is_cut[c] for c in convs)
    assert attr.is_cut["concat"] and attr.is_cut["dense"]
    # The four widths are a cut only together.
    assert np.all(attr.relative_delta(convs) <= 0.005)
    assert np.all(attr.relative_delta(["concat"]) <= 0.005)
    # Zero-embedding baseline: F(x') is the model on all-zero embeddings.
    split = kc.split_model(model, "embedding")
    zero = np.zeros((1, 12, 10), "float32")
    assert attr.output_at_baseline[0] == pytest.approx(float(split.tail(zero)[0, 1]), rel=1e-5)


def test_trapezoid_is_second_order_left_first_order(rng):
    model = small_convnet(activation="tanh")
    x = rng.normal(size=(4, 8, 8, 2)).astype("float32")
    xb = rng.normal(scale=0.5, size=x.shape).astype("float32")
    target = _largest_change_target(model, x, xb)
    errors = {}
    for method in ("trapezoid", "left"):
        for n in (8, 16):
            attr = kc.conductance(model, x, "conv2", baselines=xb, target=target,
                                  n_steps=n, method=method)
            errors[method, n] = np.abs(attr.delta["conv2"]).sum()
    assert np.log2(errors["left", 8] / errors["left", 16]) == pytest.approx(1, abs=0.3)
    assert np.log2(errors["trapezoid", 8] / errors["trapezoid", 16]) == pytest.approx(2, abs=0.3)
    assert errors["trapezoid", 16] < errors["left", 16] / 4


def fresh_relu_net(size=32, convs=6):
    """A freshly built ReLU conv net: zero biases, so with a zero baseline
    every ReLU sits exactly on its kink at alpha = 0."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    x = inp
    for i in range(convs):
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                                strides=2 if i % 2 else 1, name=f"conv{i}")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(4, name="logits")(x))


@pytest.mark.parametrize("method", ["trapezoid", "left"])
def test_a_fresh_relu_net_loses_nothing_at_the_path_start(method, rng):
    # relu'(0) = 0 at alpha = 0 used to zero the first point's gradient and
    # cost exactly 1/(2 n_steps) (trapezoid) or 1/n_steps (left) of
    # F(x) - F(x'). The rules now start 1e-9 inside the path.
    assert kc.make_rule(method, 10).alphas[0] == pytest.approx(1e-9)
    model = fresh_relu_net()
    x = rng.uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
    ours = kc.conductance(model, x, ["conv2", "conv4"], target=1, n_steps=10, method=method,
                          verbose=0)
    gl = kc.conductance(model, x, ["conv2", "conv4"], target=1, n_steps=10,
                        method="gauss_legendre", verbose=0)
    for layer in ["conv2", "conv4"]:
        err = ours.relative_delta([layer])
        # Homogeneous net, zero baseline: one linear piece, so the sums are
        # exact up to float32 — and no worse than Gauss-Legendre nodes
        # (Captum's default), which never touch alpha = 0.
        assert err.max() < 1e-4
        assert err.max() <= gl.relative_delta([layer]).max() + 1e-5
    # The output at the baseline is still F(x') = F(0) to float32.
    np.testing.assert_allclose(ours.output_at_baseline, gl.output_at_baseline, atol=1e-6)
