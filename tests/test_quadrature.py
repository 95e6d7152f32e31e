"""Integration rules are data: check them against numpy on known integrals."""

import numpy as np
import pytest

import keras_conductance as kc


@pytest.mark.parametrize("method", ["left", "right", "trapezoid"])
def test_stieltjes_points_and_weights(method):
    rule = kc.make_rule(method, 4)
    # The first point is 1e-9 inside the path: relu'(0+), not relu'(0).
    np.testing.assert_array_equal(rule.alphas, [1e-9, 0.25, 0.5, 0.75, 1.0])
    expected = {"left": (1, 0), "right": (0, 1), "trapezoid": (0.5, 0.5)}[method]
    np.testing.assert_allclose(rule.left, [0] + [expected[0]] * 4)
    np.testing.assert_allclose(rule.right, [0] + [expected[1]] * 4)
    assert not rule.derivative


def test_stieltjes_sum_of_linear_integrand_is_exact_for_trapezoid():
    # integral_0^1 g dh with g = a, h = a^2: integral of 2 a^2 = 2/3.
    rule = kc.make_rule("trapezoid", 10)
    a = rule.alphas
    trap = rule.stieltjes_sum(a, a**2)
    left = kc.make_rule("left", 10).stieltjes_sum(a, a**2)
    right = kc.make_rule("right", 10).stieltjes_sum(a, a**2)
    # trapezoid: sum 0.5 (a_k + a_k+1)(a_k+1^2 - a_k^2) = sum 0.5 (a_k + a_k+1)^2 h
    h = 0.1
    expected = sum(0.5 * (2 * k + 1) ** 2 * h**3 for k in range(10))
    # (rel 1e-9: the rule starts at alpha = 1e-9, not 0.)
    assert trap == pytest.approx(expected, rel=1e-9)
    assert abs(trap - 2 / 3) < abs(left - 2 / 3) and abs(trap - 2 / 3) < abs(right - 2 / 3)
    # left and right err by +- h/3 (first order) and bracket the integral.
    assert left < 2 / 3 < right


@pytest.mark.parametrize("method,order", [("left", 1), ("trapezoid", 2)])
def test_convergence_order(method, order):
    g, h = np.cos, np.sin  # integral cos d(sin) = integral cos^2 on [0, 1]
    exact = 0.5 + np.sin(2.0) / 4
    errors = []
    for n in (16, 32):
        rule = kc.make_rule(method, n)
        errors.append(abs(rule.stieltjes_sum(g(rule.alphas), h(rule.alphas)) - exact))
    assert np.log2(errors[0] / errors[1]) == pytest.approx(order, abs=0.15)


def test_gauss_legendre_matches_numpy_and_is_exact_for_polynomials():
    rule = kc.make_rule("gauss_legendre", 5)
    nodes, weights = np.polynomial.legendre.leggauss(5)
    np.testing.assert_allclose(rule.alphas[1:-1], (nodes + 1) / 2)
    np.testing.assert_allclose(rule.right[1:-1], weights / 2)
    assert rule.alphas[0] == 0 and rule.alphas[-1] == 1
    assert rule.right[0] == rule.right[-1] == 0
    a = rule.alphas
    # Degree 9 = 2n - 1 integrand g * ydot with g = a^4, ydot = a^5: exact 1/10.
    assert rule.derivative_sum(a**4, a**5) == pytest.approx(0.1, rel=1e-12)
    assert rule.derivative


@pytest.mark.parametrize(
    "method,n_steps,error",
    [("simpson", 10, ValueError), ("left", 0, ValueError), ("left", 2.5, TypeError),
     ("trapezoid", True, TypeError)],
)
def test_bad_rules(method, n_steps, error):
    with pytest.raises(error, match="method|n_steps"):
        kc.make_rule(method, n_steps)
