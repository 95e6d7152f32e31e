"""Integration rules along the path x' + alpha (x - x'), as data.

Conductance of a unit y is the Stieltjes integral  integral of dF/dy dy  along
the path. A rule is a set of path points ``alphas`` and weights. Two kinds:

* Stieltjes rules (``"left"``, ``"right"``, ``"trapezoid"``) sum over the
  intervals between consecutive points, using the gradient g = dF/dy at the
  interval ends and the change of the unit itself::

      sum_p (left[p] * g[p-1] + right[p] * g[p]) * (y[p] - y[p-1])

  They need only gradients and activations at the points. Because the last
  factor is the exact change of y over each interval, the sums over a cut
  layer telescope towards F(x) - F(x') (completeness) for any rule; the
  trapezoid's symmetric weights make the error second order in the step.

* Derivative rules (``"gauss_legendre"``) sum the exact integrand::

      sum_p weight[p] * g[p] * dy/dalpha(alpha[p])

  with dy/dalpha from forward-mode autodiff. Exact for polynomial integrands
  up to degree 2n - 1; meant for smooth networks.

Every rule carries the path ends (with zero weight where the rule does not
use them) so that F(x'), F(x), and the activation and gradient at the input
come out of the same pass.

The Stieltjes rules start at alpha = ``START`` (1e-9), not at 0: the
gradient they need at the path's start is the one-sided limit from inside
the path. With a zero baseline and zero biases — every freshly built model,
which is what a callback meets at the start of training — every ReLU sits
exactly on its kink at alpha = 0, where TensorFlow's relu'(0) = 0 makes the
whole gradient zero; the trapezoid rule then loses exactly 1/(2 n_steps) of
F(x) - F(x') (5 % at n_steps = 10). A point 1e-9 inside the path is on the
right side of every such kink, while the activations and F there differ
from their values at alpha = 0 by ~1e-9 of their change along the path,
far below float32 resolution. (Where the baseline is not zero, x' + 1e-9
(x - x') rounds to x' in float32 and nothing changes.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_conductance.arguments import ARGUMENTS, MAX_N_STEPS, check

__all__ = ["Rule", "METHODS", "MAX_N_STEPS", "START", "STIELTJES_WEIGHTS", "make_rule"]

METHODS = ARGUMENTS["method"].choices  # ("trapezoid", "left", "right", "gauss_legendre")
START = 1e-9  # the Stieltjes rules' first path point: relu'(0+), not relu'(0)

STIELTJES_WEIGHTS = {  # (left, right) weight of the gradient on an interval
    "left": (1.0, 0.0), "right": (0.0, 1.0), "trapezoid": (0.5, 0.5)}


@dataclasses.dataclass(frozen=True)
class Rule:
    """Path points and weights of one integration rule.

    Attributes:
        method: the rule's name, one of ``METHODS``.
        n_steps: the number of steps it was made for.
        alphas: float64 ``(P,)`` increasing path positions in [0, 1] (the
            Stieltjes rules start at ``START``, see the module docstring).
        left: float64 ``(P,)``; for Stieltjes rules the weight of the gradient
            at ``alphas[p-1]`` on the interval ending at point ``p`` (0 at
            p = 0). Zero for derivative rules.
        right: float64 ``(P,)``; for Stieltjes rules the weight of the
            gradient at ``alphas[p]`` on that interval; for derivative rules
            the quadrature weight of point ``p``.
        derivative: True for rules that need dy/dalpha (forward mode).
    """

    method: str
    n_steps: int
    alphas: np.ndarray
    left: np.ndarray
    right: np.ndarray
    derivative: bool

    @property
    def n_points(self) -> int:
        return int(self.alphas.shape[0])

    def stieltjes_sum(self, g: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Applies a Stieltjes rule to sampled g and y, shape (P, ...)."""
        dy = np.diff(y, axis=0)
        shape = (-1,) + (1,) * (g.ndim - 1)
        gw = self.left[1:].reshape(shape) * g[:-1] + self.right[1:].reshape(shape) * g[1:]
        return np.sum(gw * dy, axis=0)

    def derivative_sum(self, g: np.ndarray, ydot: np.ndarray) -> np.ndarray:
        """Applies a derivative rule to sampled g and dy/dalpha, shape (P, ...)."""
        shape = (-1,) + (1,) * (g.ndim - 1)
        return np.sum(self.right.reshape(shape) * g * ydot, axis=0)


def make_rule(method: str, n_steps: int) -> Rule:
    """Builds the rule ``method`` with ``n_steps`` steps.

    Args:
        method: ``"trapezoid"`` (n_steps + 1 uniform points, both ends; the
            first one at ``START``),
            ``"left"``, ``"right"`` (same points, first-order), or
            ``"gauss_legendre"`` (n_steps Gauss-Legendre nodes on [0, 1],
            plus the two ends at zero weight).
        n_steps: number of intervals (Stieltjes) or nodes (Gauss-Legendre).

    Returns:
        The ``Rule``.

    Raises:
        TypeError: ``n_steps`` is not an int.
        ValueError: an unknown method, or ``n_steps`` outside 1..MAX_N_STEPS.
    """
    n_steps = check("n_steps", n_steps)
    method = check("method", method)
    if method in STIELTJES_WEIGHTS:
        wl, wr = STIELTJES_WEIGHTS[method]
        alphas = np.linspace(0.0, 1.0, n_steps + 1)
        alphas[0] = START
        left = np.full(n_steps + 1, wl)
        right = np.full(n_steps + 1, wr)
        left[0] = right[0] = 0.0
        return Rule(method, n_steps, alphas, left, right, derivative=False)
    if method == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        alphas = np.concatenate([[0.0], (nodes + 1.0) / 2.0, [1.0]])
        right = np.concatenate([[0.0], weights / 2.0, [0.0]])
        return Rule(method, n_steps, alphas, np.zeros_like(right), right, derivative=True)
