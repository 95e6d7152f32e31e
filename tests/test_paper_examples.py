"""The paper's worked examples (Sections 4.1-4.3) and hand-computed values."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from models import hand_mlp, set_dense


def _chain(first, second, name="y"):
    """x (1,) -> first (named ``name``) -> second -> F."""
    inp = keras.Input((1,))
    y = first(inp)
    out = second(y)
    return keras.Model(inp, out)


def test_hand_computed_mlp():
    # x = (0, 100, 0): hidden pre-activations (90, 101, 101, 101); unit 0
    # switches on at alpha = 0.1, so it conducts 90; the others 101 - 1 = 100.
    model = hand_mlp()
    x = np.array([[0.0, 100.0, 0.0]])
    attr = kc.conductance(model, x, ["hidden", "relu"], target=0)
    np.testing.assert_allclose(attr["relu"][0], [90, 100, 100, 100], atol=1e-3)
    assert attr.output_diff[0] == pytest.approx(390.0)
    np.testing.assert_allclose(attr.delta["relu"], [0.0], atol=1e-3)
    # The pre-ReLU layer carries the same flow, but its unit 0 changes while
    # its gradient is 0 (below the kink): the rule errs by at most half the
    # change over the interval holding the kink, 100 / n_steps / 2 * 2.
    np.testing.assert_allclose(attr["hidden"][0, 1:], [100, 100, 100], atol=1e-3)
    assert abs(attr["hidden"][0, 0] - 90) <= 100 / 50


def test_saturation_conductance_is_one_while_gradient_x_activation_is_zero():
    # y = 2x, F = min(y, 1); x = 1, x' = 0 (Section 4.2).
    dense = keras.layers.Dense(1, name="y")
    model = _chain(dense, keras.layers.Lambda(lambda t: keras.ops.minimum(t, 1.0)))
    set_dense(model, "y", [[2.0]], [0.0])
    x = np.array([[1.0]])
    ms = kc.measures(model, x, "y", target=0, n_steps=201)
    assert ms.conductance["y"][0, 0] == pytest.approx(1.0, abs=1e-6)
    assert ms.gradient_x_activation["y"][0, 0] == pytest.approx(0.0, abs=1e-7)
    assert ms.activation["y"][0, 0] == pytest.approx(2.0)


def test_wrong_sign_of_internal_influence():
    # f(x) = -x, g(y) = y, x = 1: conductance -1, internal influence +1.
    model = _chain(keras.layers.Dense(1, name="y"), keras.layers.Dense(1, name="g"))
    set_dense(model, "y", [[-1.0]], [0.0])
    set_dense(model, "g", [[1.0]], [0.0])
    ms = kc.measures(model, np.array([[1.0]]), "y", target=0)
    assert ms.conductance["y"][0, 0] == pytest.approx(-1.0, abs=1e-6)
    assert ms.internal_influence["y"][0, 0] == pytest.approx(1.0, abs=1e-6)
    assert ms.conductance.output_diff[0] == pytest.approx(-1.0)


def test_overshoot_conductance_is_zero():
    # f(x) = x, g(y) = max(y - 1, 0), x = 1 - eps: F does not move, so the
    # only unit conducts nothing, though its activation is 1 - eps.
    eps = 0.01
    model = _chain(
        keras.layers.Dense(1, name="y"), keras.layers.Dense(1, activation="relu", name="g")
    )
    set_dense(model, "y", [[1.0]], [0.0])
    set_dense(model, "g", [[1.0]], [-1.0])
    ms = kc.measures(model, np.array([[1.0 - eps]]), "y", target=0)
    assert ms.conductance["y"][0, 0] == 0.0
    assert ms.activation["y"][0, 0] == pytest.approx(1 - eps)
    assert ms.conductance.output_diff[0] == 0.0


@pytest.mark.parametrize("method", ["left", "right", "trapezoid"])
def test_linearity(method):
    # F = a f1 + b f2 on a hidden layer [f1, f2]: conductances are exactly
    # a (f1(x) - f1(x')) and b (f2(x) - f2(x')), for any rule (telescoping).
    a, b = 3.0, -2.0
    inp = keras.Input((2,))
    h = keras.layers.Dense(2, activation="relu", name="h")(inp)
    out = keras.layers.Dense(1, name="out")(h)
    model = keras.Model(inp, out)
    set_dense(model, "h", [[1.0, 1.0], [1.0, -2.0]], [0.0, 0.5])
    set_dense(model, "out", [[a], [b]], [0.7])
    x, xb = np.array([[1.5, 0.4]]), np.array([[-0.5, 0.1]])
    f = lambda v: np.maximum(v @ np.array([[1.0, 1.0], [1.0, -2.0]]) + [0.0, 0.5], 0)
    attr = kc.conductance(model, x, "h", target=0, baselines=xb, n_steps=7, method=method)
    np.testing.assert_allclose(attr["h"][0], [a, b] * (f(x) - f(xb))[0], rtol=1e-5)


def test_insensitivity_dead_and_disconnected_units():
    inp = keras.Input((2,))
    h = keras.layers.Dense(3, activation="relu", name="h")(inp)
    out = keras.layers.Dense(1, name="out")(h)
    model = keras.Model(inp, out)
    # unit 0 is dead (bias -100), unit 1 has no outgoing weight, unit 2 works.
    set_dense(model, "h", [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [-100.0, 0.0, 0.0])
    set_dense(model, "out", [[5.0], [0.0], [2.0]], [0.0])
    attr = kc.conductance(model, np.array([[1.0, 2.0]]), "h", target=0)
    np.testing.assert_allclose(attr["h"][0], [0.0, 0.0, 6.0], atol=1e-6)
