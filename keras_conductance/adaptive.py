"""Adaptive, error-controlled quadrature of the path integral (``tolerance=``).

The path [0, 1] is covered by *panels*: intervals [a, b] each integrated
by the Stieltjes rule on ``PANEL`` equal steps (``PANEL + 1`` points, its
own left end included, so a panel needs nothing from its neighbours and
panels of any examples share a compiled call). Every panel gives two sums
from the same points: the fine one on all its steps and a coarse one on
every other point. Their difference, per filter, is the panel's error
estimate (the fine sum's error is at most about that for a kink, a third
of it for a smooth stretch; it is taken whole).

The first round is the uniform grid of ``n_steps`` whose first step is
one *log panel* (geometric points from ``START``). Each later round
splits, per example, the panels whose estimates exceed an equal share of
the error allowed. A split panel's two children use the parent's points
as their coarse points, so the parent's contribution is exactly their
coarse sums: a child adds ``fine - coarse`` to the running per-unit sums
and the parent needs no memory of its own. Panels thus crowd where the
integrand changes: around ReLU kinks, and towards alpha = 0 where a
decoder's RMSNorms, fed an almost-zero residual stream from the zero
embedding, make F change in every decade of alpha.

A measure supplies its integrand as ``Panels`` (``ConductancePanels``
here; the Eq. 2 maps in ``neuron.py``); the rounds, the estimate and the
stopping rule are this module's alone.

An example stops when, for every requested unit set, the estimated L1
error of its per-filter conductances is within ``tolerance`` of the
larger of their L1 norm and |F(x) - F(x')|, and, where the units form a
cut, completeness holds within ``tolerance`` too: a sum that adds up by
luck while its filters are unconverged does not stop it, nor does an
estimate that completeness contradicts.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, List, Optional

import numpy as np

from keras_conductance.engine import PathEngine, PathSums
from keras_conductance.progress import Progress
from keras_conductance.arguments import check
from keras_conductance.quadrature import START, STIELTJES_WEIGHTS

__all__ = ["PANEL", "AdaptiveRule", "AdaptiveResult", "ConductancePanels", "Panels",
           "first_panels", "integrate", "make_adaptive_rule", "panel_grid", "per_filter"]

PANEL = 8  # steps per panel: 9 points, of which the coarse rule uses 5
# Narrowest uniform panel: its steps stay above the path's first point
# (``START``) and resolvable in float32 relative to alpha itself (log
# panels take over near 0).
MIN_WIDTH, MIN_RELATIVE_WIDTH = 16 * START, 1e-5
AIM = 0.75  # rounds aim below the tolerance by this factor
FLOAT32_SUMS = 1e-5  # relative resolution of float32 running sums


@dataclasses.dataclass(frozen=True)
class AdaptiveRule:
    """Settings of one adaptive integration.

    Attributes:
        method: the Stieltjes rule inside panels ("trapezoid", "left", "right").
        tolerance: relative L1 error allowed per unit set and example.
        n_steps: steps of the first, uniform grid (rounded up to panels).
        max_steps: most steps per example.
    """

    method: str
    tolerance: float
    n_steps: int
    max_steps: int


def make_adaptive_rule(method: str, tolerance: float, n_steps: int,
                       max_steps: int) -> AdaptiveRule:
    """Validates and builds an ``AdaptiveRule``."""
    method = check("method", method)
    tolerance = check("tolerance", tolerance)
    n_steps = check("n_steps", n_steps)
    max_steps = check("max_steps", max_steps)
    if method not in STIELTJES_WEIGHTS:
        raise ValueError(
            f"`tolerance` refines a Stieltjes rule ({sorted(STIELTJES_WEIGHTS)}); "
            f"method={method!r} is a fixed rule. Pass `n_steps` without `tolerance` "
            "for it, or method='trapezoid' with `tolerance`."
        )
    if tolerance >= 1:  # valid, but it accepts an error as large as the result
        warnings.warn(
            f"tolerance={tolerance:g} allows an estimated error as large as the conductances "
            "themselves (it is relative: 0.01 is 1 %), so the first grid is never refined. "
            "Pass a tolerance below 1, e.g. 0.01.", stacklevel=4)
    first = first_panels(n_steps)[0].size * PANEL
    if max_steps < first:
        raise ValueError(
            f"`max_steps` must be >= the first grid's {first} steps (`n_steps` rounded up "
            f"to panels of {PANEL}, plus the log panel at alpha = 0). Received: "
            f"max_steps={max_steps}, n_steps={n_steps}."
        )
    return AdaptiveRule(method, float(tolerance), n_steps, max_steps)


def panel_grid(a: np.ndarray, b: np.ndarray, log: np.ndarray, method: str):
    """Points and Stieltjes weights of panels [a, b], float64 ``(K, PANEL + 1)``.

    Uniform panels have equal steps; a *log* panel (the one that touches
    alpha = 0, and its children) has equal ratios, from ``max(a, START)``
    (relu'(0+), see ``quadrature``). Both nest: a child's even points are
    its parent's points when it is split at the mean (uniform) or the
    geometric mean (log) of its ends, see ``midpoints``.
    """
    steps = np.arange(PANEL + 1) / PANEL
    lo = np.maximum(a, START)[:, None]
    alphas = np.where(log[:, None], lo * (b[:, None] / lo) ** steps,
                      a[:, None] + (b - a)[:, None] * steps)
    alphas[:, 0] = lo[:, 0]
    alphas[:, -1] = b  # exactly, so that alpha = 1 is the input
    wl, wr = STIELTJES_WEIGHTS[method]
    left = np.full(alphas.shape, wl)
    right = np.full(alphas.shape, wr)
    left[:, 0] = right[:, 0] = 0.0
    return alphas, left, right


def midpoints(a: np.ndarray, b: np.ndarray, log: np.ndarray) -> np.ndarray:
    """Where panels split: the mean of their ends, or for log panels the
    geometric mean (from ``START`` for the panel that touches 0)."""
    return np.where(log, np.sqrt(np.maximum(a, START) * b), (a + b) / 2)


def first_panels(n_steps: int):
    """Round 0: ``(a, b, log)``: the uniform panels of ``n_steps`` (rounded up
    to panels), the first of them split into a log panel over its first
    step and a uniform panel over the rest (8 steps each).

    The log panel costs one panel and resolves an integrand that changes
    at every scale of alpha near 0 (a decoder whose RMSNorms amplify a
    tiny residual stream block after block, from the zero embedding); on
    a ReLU network it is merely one more panel.
    """
    count = -(-n_steps // PANEL)
    h = 1.0 / (count * PANEL)
    edges = np.concatenate([[0.0, h], np.linspace(0.0, 1.0, count + 1)[1:]])
    log = np.zeros(count + 1, bool)
    log[0] = True
    return edges[:-1], edges[1:], log


def per_filter(values: np.ndarray, axis: int) -> np.ndarray:
    """``(K, F)``: ``values`` ``(K, *Y)`` summed per filter along ``axis``."""
    if values.ndim == 1:
        return values[:, None]
    moved = np.moveaxis(values, axis, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1).sum(axis=2)


@dataclasses.dataclass
class AdaptiveResult:
    """What ``integrate`` returns.

    Attributes:
        path_scores: ``(B, P)`` F at ``alphas``.
        alphas: ``(B, P)`` each example's points in increasing order,
            NaN-padded to the longest.
        n_steps: ``(B,)`` steps of each example's final grid.
        n_points: ``(B,)`` path points evaluated per example (the cost).
        error_estimate: per unit set ``(B,)``: estimated relative L1 error
            of the per-filter conductances.
        completeness: ``(B,)`` worst relative completeness error of the
            cut unit sets (0 without one).
        converged: ``(B,)`` whether the example met ``tolerance``.
    """

    path_scores: np.ndarray
    alphas: np.ndarray
    n_steps: np.ndarray
    n_points: np.ndarray
    error_estimate: List[np.ndarray]
    completeness: np.ndarray
    converged: np.ndarray


class _Leaves:
    """The current panels of all examples, as parallel arrays."""

    def __init__(self):
        self.ex = np.zeros(0, int)
        self.a = np.zeros(0)
        self.b = np.zeros(0)
        self.log = np.zeros(0, bool)
        self.err = None  # per unit set (K, F): fine - coarse per filter
        self.mass = None  # (K, L): L1 norm of ``err`` per unit set
        self.alphas = np.zeros((0, PANEL + 1))
        self.scores = np.zeros((0, PANEL + 1), np.float32)

    def replace(self, drop: np.ndarray, ex, a, b, log, err, alphas, scores):
        keep = np.ones(self.ex.size, bool)
        keep[drop] = False
        self.ex = np.concatenate([self.ex[keep], ex])
        self.a = np.concatenate([self.a[keep], a])
        self.b = np.concatenate([self.b[keep], b])
        self.log = np.concatenate([self.log[keep], log])
        self.err = err if self.err is None else [
            np.concatenate([old[keep], new]) for old, new in zip(self.err, err)]
        self.mass = np.stack([np.abs(e).sum(axis=1) for e in self.err], axis=1)
        self.alphas = np.concatenate([self.alphas[keep], alphas])
        self.scores = np.concatenate([self.scores[keep], scores])


class Panels:
    """What a measure supplies to the adaptive rule: its integrand on panels.

    Attributes:
        n: the number of examples.
        channel_axes: per unit set, the filter axis of its ``totals`` entry.
    """

    n: int
    channel_axes: List[int]

    def evaluate(self, ex, a, b, split, alphas, left, right, batch_size, progress):
        """Evaluates panels and folds them into the running results.

        Args:
            ex: int ``(K,)`` each panel's example.
            a, b: ``(K,)`` the panels' ends.
            split: bool ``(K,)``: a child of a split panel (it replaces its
                share of the parent: add ``fine - coarse``, not ``fine``).
            alphas, left, right: ``(K, PANEL + 1)`` from ``panel_grid``.
            batch_size: most rows per compiled call.
            progress: called with the rows done after each call.

        Returns:
            ``(err, scores)``: per unit set ``(K, F)`` fine minus coarse
            summed per filter; ``(K, PANEL + 1)`` F at the points.
        """
        raise NotImplementedError

    def totals(self) -> List[np.ndarray]:
        """The running results per unit set, ``(n, *Y)`` each."""
        raise NotImplementedError


class ConductancePanels(Panels):
    """Conductance, internal influence, and y and dF/dy at the input, on
    panels streamed by ``PathEngine.run_panels``."""

    def __init__(self, engine: PathEngine, prepared, target, target_fn, channel_axes):
        self.engine, self.prepared = engine, prepared
        self.target, self.target_fn = target, target_fn
        self.n, self.channel_axes = prepared.n, list(channel_axes)
        self.acc = None  # conductance, internal influence, activation, gradient

    def evaluate(self, ex, a, b, split, alphas, left, right, batch_size, progress):
        err = [None] * len(self.channel_axes)
        scores = np.zeros(alphas.shape, np.float32)
        for idx, layers, sc in self.engine.run_panels(self.prepared, ex, alphas, left, right,
                                                      self.target, self.target_fn,
                                                      batch_size, progress):
            e = ex[idx]
            if self.acc is None:
                self.acc = [[np.zeros((self.n,) + layer[0].shape[1:], np.float32)
                             for layer in layers] for _ in range(4)]
            last = b[idx] == 1.0
            for k, (fine_c, coarse_c, fine_i, coarse_i, y1, g1) in enumerate(layers):
                replaced = split[idx].reshape((-1,) + (1,) * (fine_c.ndim - 1))
                # A child replaces its share of the parent: its coarse sum.
                np.add.at(self.acc[0][k], e, fine_c - replaced * coarse_c)
                np.add.at(self.acc[1][k], e, fine_i - replaced * coarse_i)
                self.acc[2][k][e[last]] = y1[last]
                self.acc[3][k][e[last]] = g1[last]
                err[k] = fold(err[k], idx, ex.size, per_filter(fine_c - coarse_c,
                                                               self.channel_axes[k]))
            scores[idx] = sc
        return err, scores

    def totals(self):
        return self.acc[0]

    def sums(self, path_scores) -> PathSums:
        return PathSums(*self.acc, path_scores=path_scores)


def fold(into: Optional[np.ndarray], idx, size: int, part: np.ndarray) -> np.ndarray:
    """Writes ``part`` at rows ``idx`` of a ``(size, F)`` array made on first use."""
    if into is None:
        into = np.zeros((size,) + part.shape[1:], np.float32)
    into[idx] = part
    return into


def integrate(panels: Panels, rule: AdaptiveRule, batch_size: int,
              completeness: Callable[[List[np.ndarray], np.ndarray], np.ndarray],
              verbose, desc: str = "conductance") -> AdaptiveResult:
    """Integrates every example's path until ``rule.tolerance`` is met.

    Args:
        panels: the measure's ``Panels``.
        rule: the ``AdaptiveRule``.
        batch_size: most rows (panels x points) per compiled call.
        completeness: ``(totals per unit set, F(x) - F(x')) -> (B,)``
            relative completeness error over the cut unit sets (0 if none).
        verbose: progress bars, as elsewhere.
        desc: the progress label and the warning's subject.

    Returns:
        ``AdaptiveResult`` (its ``sums`` None: the measure reads its own
        ``panels``).
    """
    n, tol = panels.n, rule.tolerance
    a0, b0, log0 = first_panels(rule.n_steps)
    ex = np.repeat(np.arange(n), a0.size)
    a, b, log = np.tile(a0, n), np.tile(b0, n), np.tile(log0, n)
    split = np.zeros(ex.size, bool)  # children of split panels
    leaves = _Leaves()
    points = np.zeros(n, int)
    drop = np.zeros(0, int)
    round_ = 1
    while ex.size:
        alphas, left, right = panel_grid(a, b, log, rule.method)
        count = np.unique(ex).size
        label = (f"{desc}, round {round_}: {ex.size} panels of {PANEL} steps, "
                 f"{count} example{'s' if count != 1 else ''}")
        progress = Progress(ex.size * (PANEL + 1), "path rows", verbose, label)
        try:
            err, scores = panels.evaluate(ex, a, b, split, alphas, left, right, batch_size,
                                          progress.update)
        finally:
            progress.close()
        points += np.bincount(ex, minlength=n) * (PANEL + 1)
        leaves.replace(drop, ex, a, b, log, err, alphas, scores)
        f0, f1 = _ends(leaves, n)
        totals = panels.totals()
        estimate = _estimate(leaves, totals, panels.channel_axes, f1 - f0, n)
        complete = completeness(totals, f1 - f0)
        # float32 sums of per-unit values that cancel resolve completeness
        # only to ~1e-6 of their L1 norm: no refinement can do better.
        norm = np.max([np.abs(per_filter(t, axis)).sum(axis=1)
                       for t, axis in zip(totals, panels.channel_axes)], axis=0)
        resolvable = FLOAT32_SUMS * norm / np.maximum(np.abs(f1 - f0), np.finfo(np.float32).tiny)
        converged = np.all(estimate <= tol, axis=0) & (complete <= np.maximum(tol, resolvable))
        drop = _choose(leaves, estimate, converged, rule)
        ex, a, b, log = leaves.ex[drop], leaves.a[drop], leaves.b[drop], leaves.log[drop]
        mid = midpoints(a, b, log)
        ex, log = np.repeat(ex, 2), np.repeat(log, 2)
        a, b = np.stack([a, mid], 1).ravel(), np.stack([mid, b], 1).ravel()
        split = np.ones(ex.size, bool)
        round_ += 1
    result = _result(leaves, estimate, complete, points, converged, n)
    _warn_unconverged(result, rule, desc)
    return result


def _warn_unconverged(result: "AdaptiveResult", rule: AdaptiveRule, desc: str):
    missed = np.flatnonzero(~result.converged)
    if not missed.size:
        return
    worst = np.max(result.error_estimate, axis=0)[missed].max()
    off = result.completeness[missed].max()
    warnings.warn(
        f"{desc[0].upper() + desc[1:]} did not reach tolerance={rule.tolerance} for "
        f"{missed.size} of {result.converged.size} examples within max_steps="
        f"{rule.max_steps}: estimated error up to {100 * worst:.3g}%, completeness error "
        f"up to {100 * off:.3g}% (float32 sums resolve about 1e-6). Raise `max_steps`, or "
        "check for discontinuities along the path.",
        stacklevel=5,
    )


def _ends(leaves: _Leaves, n: int):
    """F(x') and F(x) per example, from the panels at the path's ends."""
    f0, f1 = np.zeros(n, np.float32), np.zeros(n, np.float32)
    first, last = leaves.a == 0.0, leaves.b == 1.0
    f0[leaves.ex[first]] = leaves.scores[first, 0]
    f1[leaves.ex[last]] = leaves.scores[last, -1]
    return f0, f1


def _estimate(leaves: _Leaves, conductance, channel_axes, diff, n) -> np.ndarray:
    """``(L, B)`` estimated relative L1 error per unit set and example."""
    out = np.zeros((len(channel_axes), n))
    for k, axis in enumerate(channel_axes):
        # Per filter, fine minus coarse over the whole grid: the Richardson
        # estimate of the filter's error (about the fine rule's own error
        # at first order, three times it at second), signed within a
        # filter, so that errors of opposite sign along the path offset as
        # they do in the result, and never across filters.
        total = np.zeros((n, leaves.err[k].shape[1]))
        np.add.at(total, leaves.ex, leaves.err[k])
        out[k] = np.abs(total).sum(axis=1) / _scale(conductance[k], axis, diff)
    return out


def _scale(conductance: np.ndarray, axis: int, diff: np.ndarray) -> np.ndarray:
    """The error's yardstick: the larger of the filters' L1 norm and
    |F(x) - F(x')| (a unit set that conducts almost nothing is judged
    against the output's change, not against its own near-zero size)."""
    norm = np.abs(per_filter(conductance, axis)).sum(axis=1)
    return np.maximum(np.maximum(norm, np.abs(diff)), np.finfo(np.float32).tiny)


def _choose(leaves: _Leaves, estimate, converged, rule: AdaptiveRule) -> np.ndarray:
    """Indices of the panels to split next round (empty: done).

    Per example, every panel whose error estimate exceeds an equal share
    of what the example may keep: were every panel's estimate at most
    ``AIM * tolerance / estimate`` of today's mean, the estimate would be
    within ``AIM * tolerance``. Where the error is concentrated (at small
    alpha from a black image, at an RMSNorm's singular point), only the
    panels there are split, round after round, until the error is spread
    evenly along the path.
    """
    chosen = []
    lo = np.maximum(leaves.a, START)
    width_ok = np.where(leaves.log, leaves.b / lo >= (1 + MIN_RELATIVE_WIDTH) ** (2 * PANEL),
                        leaves.b - leaves.a >= 2 * np.maximum(MIN_WIDTH, MIN_RELATIVE_WIDTH
                                                              * leaves.b))
    by_example = np.argsort(leaves.ex, kind="stable")
    bounds = np.searchsorted(leaves.ex[by_example], np.arange(leaves.ex.max() + 2))
    for e in np.flatnonzero(~converged):
        mine = by_example[bounds[e]:bounds[e + 1]]
        ids = mine[width_ok[mine]]
        room = (rule.max_steps - PANEL * mine.size) // PANEL
        if room <= 0 or ids.size == 0:
            continue
        mass = leaves.mass[ids]  # (k, L)
        if np.all(estimate[:, e] <= rule.tolerance):
            # The estimate says done but completeness disagrees: refine the
            # worst half of the panels rather than trust it.
            order = np.argsort(-mass.max(axis=1), kind="stable")
            take = order[: max(1, ids.size // 2)]
        else:
            mean = mass.sum(axis=0) / mine.size
            ratio = AIM * rule.tolerance / np.maximum(estimate[:, e], 1e-30)
            over = (mass > ratio * mean) & (estimate[:, e] > rule.tolerance)
            take = np.flatnonzero(over.any(axis=1))
            if take.size == 0:
                take = np.argsort(-mass.max(axis=1), kind="stable")[:1]
            # The largest first, should ``max_steps`` not allow them all.
            take = take[np.argsort(-mass[take].max(axis=1), kind="stable")]
        chosen.append(ids[take[:room]])
    return np.concatenate(chosen) if chosen else np.zeros(0, int)


def _result(leaves: _Leaves, estimate, complete, points, converged, n) -> AdaptiveResult:
    """Each example's own points in order (``(B, P)``, NaN-padded: a union
    over examples would grow with their number squared)."""
    order = np.lexsort((leaves.a, leaves.ex))
    ex = np.repeat(leaves.ex[order], PANEL)
    # A panel's last point is the next panel's first: keep each panel's
    # first PANEL points, and the path's end once per example.
    alphas = leaves.alphas[order][:, :PANEL].ravel()
    scores = leaves.scores[order][:, :PANEL].ravel()
    last = order[leaves.b[order] == 1.0]
    ex = np.concatenate([ex, leaves.ex[last]])
    alphas = np.concatenate([alphas, leaves.alphas[last, -1]])
    scores = np.concatenate([scores, leaves.scores[last, -1]])
    keep = np.lexsort((alphas, ex))
    ex, alphas, scores = ex[keep], alphas[keep], scores[keep]
    counts = np.bincount(ex, minlength=n)
    col = np.arange(ex.size) - np.repeat(np.cumsum(counts) - counts, counts)
    grid = np.full((n, counts.max()), np.nan, np.float32)
    path_scores = np.full((n, counts.max()), np.nan, np.float32)
    grid[ex, col], path_scores[ex, col] = alphas, scores
    steps = np.bincount(leaves.ex, minlength=n) * PANEL
    return AdaptiveResult(path_scores, grid, steps, points, list(estimate), complete, converged)
