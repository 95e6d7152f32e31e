"""Results do not depend on how the work is chunked or compiled."""

import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from models import small_convnet


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(1)
    model = small_convnet(activation="tanh")
    x = rng.normal(size=(5, 8, 8, 2)).astype("float32")
    xb = rng.normal(scale=0.5, size=x.shape).astype("float32")
    return model, x, xb


LAYERS = ["conv1", "conv2", "dense"]


def _run(model, x, xb, **kw):
    explainer = kc.Conductance(model, LAYERS, n_steps=20, **kw)
    return explainer.explain(x, target=2, baselines=xb)


def _close(a, b, rtol=1e-4):
    for measure in ("conductance", "internal_influence", "gradient_x_activation", "activation"):
        for layer in LAYERS:
            np.testing.assert_allclose(
                getattr(a, measure)[layer], getattr(b, measure)[layer],
                rtol=rtol, atol=1e-5, err_msg=f"{measure}/{layer}")
    np.testing.assert_allclose(a.conductance.output_diff, b.conductance.output_diff,
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 22, 1000])
def test_chunk_and_batch_size(setup, batch_size):
    model, x, xb = setup
    _close(_run(model, x, xb, batch_size=batch_size), _run(model, x, xb, batch_size=105))


@pytest.mark.parametrize("method", ["trapezoid", "gauss_legendre"])
def test_single_versus_batched_examples(setup, method):
    model, x, xb = setup
    batched = _run(model, x, xb, method=method)
    for i in range(x.shape[0]):
        single = kc.Conductance(model, LAYERS, n_steps=20, method=method).explain(
            x[i : i + 1], target=2, baselines=xb[i : i + 1])
        for layer in LAYERS:
            np.testing.assert_allclose(single.conductance[layer][0],
                                       batched.conductance[layer][i], rtol=1e-4, atol=1e-6)


def test_eager_function_and_xla_agree(setup):
    model, x, xb = setup
    compiled = _run(model, x, xb, jit_compile=False)
    xla = _run(model, x, xb, jit_compile=True)
    tf.config.run_functions_eagerly(True)
    try:
        eager = _run(model, x, xb, jit_compile=False)
    finally:
        tf.config.run_functions_eagerly(False)
    _close(eager, compiled)
    _close(xla, compiled)


def test_multi_layer_pass_equals_single_layer_passes(setup):
    model, x, xb = setup
    together = _run(model, x, xb)
    for layer in LAYERS:
        alone = kc.Conductance(model, layer, n_steps=20).explain(x, target=2, baselines=xb)
        np.testing.assert_allclose(alone.conductance[layer], together.conductance[layer],
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_points,most,expected", [(51, 32, 26), (51, 16, 13), (51, 64, 51),
                                                    (51, 1, 1), (3, 100, 3), (52, 13, 13)])
def test_points_per_chunk_pads_at_most_one_point_per_chunk(n_points, most, expected):
    from keras_conductance.engine import points_per_chunk

    m = points_per_chunk(n_points, most)
    assert m == expected and m <= max(most, 1)
    n_chunks = -(-n_points // m)
    assert n_chunks * m - n_points < n_chunks
