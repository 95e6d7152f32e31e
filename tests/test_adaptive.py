"""The adaptive rule (``tolerance=``) against integrals known exactly."""

import keras
import numpy as np
import pytest

import keras_conductance as kc
from keras_conductance import adaptive


def _relative_l1(values, exact):
    return np.abs(values - exact).sum(axis=-1) / np.abs(exact).sum(axis=-1)


def kinked():
    """x -> h = [relu(x - 0.31), relu(0.77 - x)] -> F = h1 * h2 + h1.

    From x' = 0 to x = 1 both units have a kink on the path (alpha = 0.31
    and 0.77), and dF/dh varies between them. By hand, with d = 0.46:
    cond_h1 = int (h2 + 1) dh1 = int_0.31^0.77 (0.77 - a) da + 0.69 = d^2 / 2 + 0.69,
    cond_h2 = int h1 dh2 = -int_0.31^0.77 (a - 0.31) da = -d^2 / 2 (sum 0.69 = F(1) - F(0)).
    """
    inp = keras.Input((1,))
    h = keras.layers.Dense(2, activation="relu", name="hidden")
    out = h(inp)
    h.set_weights([np.array([[1.0, -1.0]]), np.array([-0.31, 0.77])])
    h1 = keras.layers.Lambda(lambda t: t[:, :1], name="h1")(out)
    h2 = keras.layers.Lambda(lambda t: t[:, 1:], name="h2")(out)
    f = keras.layers.Add(name="f")([keras.layers.Multiply(name="prod")([h1, h2]), h1])
    return keras.Model(inp, f)


def spiked(k: float):
    """x -> y = [x, 2x] -> F = tanh(k (y1 + y2) / 3): the integrand is a
    spike of width ~1/k at alpha = 0. cond_y1 = tanh(k) / 3, cond_y2 = 2 tanh(k) / 3."""
    inp = keras.Input((1,))
    y = keras.layers.Dense(2, use_bias=False, name="y")
    out = y(inp)
    y.set_weights([np.array([[1.0, 2.0]])])
    f = keras.layers.Lambda(lambda t: keras.ops.tanh(k * (t[:, :1] + t[:, 1:]) / 3), name="f")(out)
    return keras.Model(inp, f)


def lucky():
    """x -> pair = [x, x^2] -> F = pair_1 * pair_2 (= x^3).

    The trapezoid's Stieltjes sums of a product telescope, so completeness
    holds *exactly* at any n_steps, while each unit is off by +-h^2/6:
    cond_1 = int a^2 da = 1/3, cond_2 = int a d(a^2) = 2/3.
    """
    inp = keras.Input((1,))
    first = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", name="x")(inp)
    square = keras.layers.Lambda(lambda t: t * t, name="square")(first)
    pair = keras.layers.Concatenate(name="pair")([first, square])
    f = keras.layers.Lambda(lambda t: t[:, :1] * t[:, 1:], name="f")(pair)
    return keras.Model(inp, f)


def test_a_kinked_path_is_integrated_to_tolerance():
    model, x = kinked(), np.ones((1, 1), np.float32)
    exact = np.array([0.46 ** 2 / 2 + 0.69, -0.46 ** 2 / 2])
    coarse = kc.conductance(model, x, "hidden", target=0, n_steps=4, verbose=0)
    assert _relative_l1(coarse["hidden"][0], exact) > 0.01  # kinks cost the uniform rule
    attr = kc.conductance(model, x, "hidden", target=0, n_steps=4, tolerance=1e-4, verbose=0)
    assert _relative_l1(attr["hidden"][0], exact) <= 1e-4
    assert attr.error_estimate["hidden"][0] <= 1e-4
    assert attr.relative_delta()[0] <= 1e-4
    # Panels crowd around the kinks: the grid is finer there than elsewhere.
    alphas = attr.alphas[0][np.isfinite(attr.alphas[0])]
    steps = np.diff(alphas)
    near = np.minimum(np.abs(alphas[1:] - 0.31), np.abs(alphas[1:] - 0.77)) < 0.02
    assert steps[near].min() < steps[~near & (alphas[1:] > 0.05)].max() / 4


@pytest.mark.parametrize("k", [1e3, 1e5])
def test_a_spike_at_the_start_is_resolved(k):
    model, x = spiked(k), np.ones((1, 1), np.float32)
    exact = np.tanh(k) * np.array([1 / 3, 2 / 3])
    uniform = kc.conductance(model, x, "y", target=0, n_steps=256, verbose=0)
    assert _relative_l1(uniform["y"][0], exact) > 0.5  # the first step misses the spike
    attr = kc.conductance(model, x, "y", target=0, tolerance=1e-3, verbose=0)
    assert _relative_l1(attr["y"][0], exact) <= 1e-3
    # Graded towards alpha = 0 (the log panel), in a few hundred points.
    assert attr.n_points[0] < 1000
    alphas = attr.alphas[0][np.isfinite(attr.alphas[0])]
    assert np.all(np.diff(alphas) > 0) and np.sum(alphas < 10 / k) >= 8


def test_completeness_met_by_luck_does_not_stop_refinement():
    model, x = lucky(), np.ones((1, 1), np.float32)
    exact = np.array([1 / 3, 2 / 3])
    two = kc.conductance(model, x, "pair", target=0, n_steps=2, verbose=0)
    assert two.relative_delta()[0] < 1e-6  # complete...
    assert _relative_l1(two["pair"][0], exact) > 0.08  # ...and each unit 4 % off
    attr = kc.conductance(model, x, "pair", target=0, n_steps=2, tolerance=1e-4, verbose=0)
    assert _relative_l1(attr["pair"][0], exact) <= 1e-4
    assert attr.error_estimate["pair"][0] <= 1e-4
    first_grid = adaptive.first_panels(2)[0].size * adaptive.PANEL
    assert attr.n_steps[0] > first_grid


def test_rounds_reuse_one_trace_and_examples_are_independent(rng):
    model = kinked()
    x = rng.uniform(0.5, 1.5, (3, 1)).astype(np.float32)
    explainer = kc.Conductance(model, "hidden", verbose=0)
    together = explainer(x, target=0, tolerance=1e-3)
    traces = explainer.tracing_count
    assert together.n_steps.max() > together.n_steps.min() or together.n_steps.min() > 16
    again = explainer(x[::-1].copy(), target=0, tolerance=1e-3, batch_size=18)
    assert explainer.tracing_count == traces  # new rounds, new inputs, no retrace
    np.testing.assert_allclose(again["hidden"][::-1], together["hidden"], rtol=1e-5, atol=1e-7)
    alone = explainer(x[1:2], target=0, tolerance=1e-3)
    np.testing.assert_allclose(alone["hidden"][0], together["hidden"][1], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(alone.n_points[0], together.n_points[1])


def test_max_steps_bounds_the_work_and_warns():
    model, x = spiked(1e5), np.ones((1, 1), np.float32)
    with pytest.warns(UserWarning, match=r"did not reach tolerance=1e-06 for 1 of 1 examples "
                                         r"within max_steps=64: estimated error up to"):
        attr = kc.conductance(model, x, "y", target=0, tolerance=1e-6, max_steps=64,
                              verbose=0)
    assert attr.n_steps[0] <= 64
    with pytest.raises(ValueError, match=r"`max_steps` must be >= the first grid's 64 steps.*"
                                         r"max_steps=8, n_steps=50"):
        kc.conductance(model, x, "y", target=0, tolerance=0.01, max_steps=8)


def test_fixed_rules_are_unchanged_without_tolerance():
    # n_steps alone keeps meaning the uniform rule: its points, its results.
    model, x = kinked(), np.ones((1, 1), np.float32)
    attr = kc.conductance(model, x, "hidden", target=0, n_steps=10, verbose=0)
    np.testing.assert_allclose(attr.alphas, kc.make_rule("trapezoid", 10).alphas, rtol=1e-6)
    assert attr.n_points[0] == 11 and attr.error_estimate == {}


@pytest.mark.parametrize("mode", ["reverse", "forward"])
def test_eq2_maps_use_the_same_adaptive_rule(mode):
    # One input feature: each filter's Eq. 2 map is its conductance, exactly
    # tanh(k) / 3 and 2 tanh(k) / 3 (see ``spiked``).
    model, x = spiked(1e3), np.ones((1, 1), np.float32)
    exact = np.tanh(1e3) * np.array([1 / 3, 2 / 3])
    uniform = kc.neuron_conductance(model, x, "y", None, target=0, n_steps=64, mode=mode)
    assert _relative_l1(uniform[0, :, 0], exact) > 0.5
    maps = kc.neuron_conductance(model, x, "y", None, target=0, tolerance=1e-3, mode=mode)
    assert maps.shape == (1, 2, 1)
    assert _relative_l1(maps[0, :, 0], exact) <= 1e-3
