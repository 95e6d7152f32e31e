"""A slow reference that follows Eq. 2 and Eq. 3 literally agrees with the engine."""

import numpy as np
import pytest
import tensorflow as tf

import keras_conductance as kc
from models import small_convnet


def reference_eq2(model, layer, x, xb, target, n_steps):
    """Eq. 2 per (unit, input feature) with an explicit Jacobian dy/dx.

    Cond_i^y = (x_i - x'_i) * integral dF/dy * dy/dx_i dalpha, integrated with
    numpy's Gauss-Legendre nodes. Returns (units, inputs) for one example.
    """
    split = kc.split_model(model, layer)
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    x, xb = x.astype(np.float64), xb.astype(np.float64)
    total = 0.0
    for node, weight in zip((nodes + 1) / 2, weights / 2):
        point = tf.constant((xb + node * (x - xb))[None], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(point)
            y = split.head(point)
        jac = tape.jacobian(y, point).numpy().reshape(y.shape[1:].num_elements(), -1)
        y_var = tf.Variable(y)
        with tf.GradientTape() as tape:
            score = split.tail(y_var)[0, target]
        g = tape.gradient(score, y_var).numpy().reshape(-1)
        total = total + weight * g[:, None] * jac * (x - xb).reshape(1, -1)
    return total


@pytest.mark.parametrize("layer", ["conv1", "conv2", "dense"])
def test_engine_matches_literal_eq2_and_eq3(layer, rng):
    model = small_convnet(activation="tanh")
    x = rng.normal(size=(1, 8, 8, 2)).astype("float32")
    xb = rng.normal(scale=0.3, size=(1, 8, 8, 2)).astype("float32")
    eq2 = reference_eq2(model, layer, x[0], xb[0], target=1, n_steps=8)
    attr = kc.conductance(model, x, layer, target=1, baselines=xb,
                          method="gauss_legendre", n_steps=8)
    # Eq. 3 is Eq. 2 summed over the input features.
    np.testing.assert_allclose(attr[layer][0].reshape(-1), eq2.sum(axis=1),
                               rtol=2e-4, atol=2e-6)
    # The trapezoid Stieltjes sum converges to the same integral.
    trap = kc.conductance(model, x, layer, target=1, baselines=xb, n_steps=400)
    np.testing.assert_allclose(trap[layer][0].reshape(-1), eq2.sum(axis=1),
                               rtol=0, atol=2e-3 * np.abs(eq2.sum(axis=1)).max())
