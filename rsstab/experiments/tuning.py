"""Learning-rate tuning: a coarse-to-fine search on a lattice of η, the interpolated optimum per seed,
and the slope of log η* against log r with an interval.

The learning rates live on a lattice ``η_k = ref·√2^k`` (one *unit* = a factor √2), so every cell is
a lattice point and a re-run finds it in the sweep store. One :class:`Search` tunes one group (one
method at one rank) from a few starting points:

1. it scores each evaluated point by the mean over seeds of ``log loss`` (a point where any seed
   diverged scores +∞: it is worse than any finite one);
2. while the best point — or one seed's own best point — is the lowest or the highest evaluated one,
   it adds a point ``coarse`` units beyond it (until ``max_points`` points or the lattice bounds: the
   optimum is then reported as an **edge**, never silently);
3. once the best point is interior, it halves the gaps to its neighbours until both are one unit away.

:func:`optimum` then finds each seed's optimum from that seed's losses: the vertex of the parabola
through (log η, log loss) at the seed's best point and its two neighbours (**interpolated**, clamped
to the neighbours' interval); the best point itself when a neighbour diverged (**beside
divergence**: the optimum lies within half a unit of it); or the grid edge (**low edge** / **high
edge**: a bound, not an optimum).

:func:`eta_slope` fits ``η* ∝ r^slope`` over the ranks whose optima are all interior: the interval is
the Student-t interval over the per-seed slopes (:func:`rsstab.measure.fit.fit_slope`), widened by the
lattice resolution where an optimum was not interpolated (half a unit at that rank, propagated
through the least-squares weights) — a lattice point repeated by every seed has no spread, but it
is not exact.

>>> opt = optimum([0.1, 0.2, 0.4], [2.0, 1.0, 2.0])
>>> round(opt.eta, 6), opt.status
(0.2, 'interpolated')
>>> optimum([0.1, 0.2, 0.4], [3.0, 2.0, 1.0]).status
'high edge'
>>> optimum([0.1, 0.2, 0.4], [2.0, 1.0, float("nan")]).status
'beside divergence'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "UNIT", "INTERPOLATED", "BESIDE_DIVERGENCE", "LOW_EDGE", "HIGH_EDGE", "NO_FINITE",
    "EDGES", "Optimum", "optimum", "lattice_eta", "lattice_index", "Search", "search_ranks", "EtaSlope", "eta_slope",
    "geometric_mean_eta", "as_dict",
]

#: One lattice unit: a factor √2 in η.
UNIT = math.sqrt(2.0)
INTERPOLATED, BESIDE_DIVERGENCE = "interpolated", "beside divergence"
LOW_EDGE, HIGH_EDGE, NO_FINITE = "low edge", "high edge", "no finite loss"
#: The statuses whose η* is a bound rather than an optimum.
EDGES = (LOW_EDGE, HIGH_EDGE, NO_FINITE)


def lattice_eta(k: int, ref: float) -> float:
    """η at lattice index k: ``ref·√2^k``.

    >>> lattice_eta(2, 0.1)
    0.2
    """
    return float(ref) * 2.0 ** (k / 2)


def lattice_index(eta: float, ref: float) -> int:
    """The lattice index nearest to η (in log η).

    >>> lattice_index(0.39, 0.1)
    4
    """
    return int(round(2.0 * math.log2(float(eta) / float(ref))))


@dataclass(frozen=True)
class Optimum:
    """The optimum of one seed's loss over the evaluated learning rates."""

    eta: float  # η*: interpolated, the best point, or the edge (see status)
    status: str
    best_eta: float  # the best evaluated η
    best_loss: float  # the loss there

    @property
    def interior(self) -> bool:
        """Whether η* is an optimum (interpolated or beside divergence), not a bound."""
        return self.status not in EDGES


def optimum(etas: Sequence[float], losses: Sequence[float] | np.ndarray) -> Optimum:
    """The optimum of one loss curve (non-finite = diverged, worse than any finite loss).

    A quadratic in (log η, log loss) through the best point and its two evaluated neighbours;
    its vertex, clamped to the neighbours' interval, is η*. See the module docstring for the
    statuses.
    """
    order = np.argsort(np.asarray(etas, dtype=float))
    x = np.log(np.asarray(etas, dtype=float)[order])
    y = np.asarray(losses, dtype=float)[order]
    finite = np.isfinite(y) & (y > 0)
    if not finite.any():
        return Optimum(float(np.exp(x[0])), NO_FINITE, math.nan, math.nan)
    ly = np.where(finite, np.log(np.where(finite, y, 1.0)), np.inf)
    i = int(np.argmin(ly))
    best_eta, best_loss = float(np.exp(x[i])), float(y[i])
    if i == 0:
        return Optimum(best_eta, LOW_EDGE, best_eta, best_loss)
    if i == len(x) - 1:
        return Optimum(best_eta, HIGH_EDGE, best_eta, best_loss)
    if not (finite[i - 1] and finite[i + 1]):
        return Optimum(best_eta, BESIDE_DIVERGENCE, best_eta, best_loss)
    (x0, x1, x2), (y0, y1, y2) = x[i - 1 : i + 2], ly[i - 1 : i + 2]
    # vertex of the parabola through three points (Newton's divided differences)
    d01, d12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    curvature = (d12 - d01) / (x2 - x0)
    vertex = x1 if curvature <= 0 else 0.5 * (x0 + x1) - d01 / (2 * curvature)
    return Optimum(float(np.exp(min(max(vertex, x0), x2))), INTERPOLATED, best_eta, best_loss)


@dataclass
class Search:
    """The coarse-to-fine search of one group (see the module docstring).

    ``losses[k]`` holds the per-seed losses at lattice index k. :meth:`pending` gives the indices to
    evaluate next (empty: done).
    """

    ref: float
    start: Sequence[int]
    coarse: int = 4
    max_points: int = 14
    bounds: tuple[int, int] = (-60, 60)
    losses: dict[int, np.ndarray] = field(default_factory=dict)

    def score(self, k: int) -> float:
        """Mean over seeds of log loss at k (+∞ if any seed diverged)."""
        v = np.asarray(self.losses[k], dtype=float)
        return float(np.mean(np.log(v))) if np.all(np.isfinite(v) & (v > 0)) else math.inf

    def pending(self) -> list[int]:
        """The lattice indices to evaluate next."""
        todo = [k for k in self.start if k not in self.losses]
        if todo:
            return sorted(todo)
        if len(self.losses) >= self.max_points:
            return []
        ks = sorted(self.losses)
        scores = [self.score(k) for k in ks]
        lo, hi = self.bounds
        if not any(math.isfinite(s) for s in scores):  # all diverged: go down
            k = ks[0] - self.coarse
            return [k] if k >= lo else []
        i = int(np.argmin(scores))
        best = ks[i]
        if i == 0:
            return [best - self.coarse] if best - self.coarse >= lo else []
        if i == len(ks) - 1:
            return [best + self.coarse] if best + self.coarse <= hi else []
        # a seed whose own best point is at an edge: extend that side too (its optimum is a bound)
        table = np.array([self.losses[k] for k in ks], dtype=float)
        table = np.where(np.isfinite(table) & (table > 0), table, np.inf)
        seed_best = set(int(j) for j in np.argmin(table, axis=0)) if np.isfinite(table).any() else set()
        edges = ([ks[0] - self.coarse] if 0 in seed_best and ks[0] - self.coarse >= lo else []) + \
                ([ks[-1] + self.coarse] if len(ks) - 1 in seed_best and ks[-1] + self.coarse <= hi else [])
        if edges:
            return edges
        new = []
        for neighbour in (ks[i - 1], ks[i + 1]):
            gap = neighbour - best
            if abs(gap) > 1:
                new.append(best + int(math.copysign(abs(gap) // 2, gap)))
        return sorted(new)

    def record(self, k: int, losses: Sequence[float]) -> None:
        """Store the per-seed losses at lattice index k."""
        self.losses[k] = np.asarray(losses, dtype=float)

    def etas(self) -> list[float]:
        """The evaluated learning rates, ascending."""
        return [lattice_eta(k, self.ref) for k in sorted(self.losses)]

    def optima(self) -> list[Optimum]:
        """Each seed's optimum (see :func:`optimum`)."""
        ks = sorted(self.losses)
        table = np.array([self.losses[k] for k in ks])  # (points, seeds)
        return [optimum([lattice_eta(k, self.ref) for k in ks], table[:, s]) for s in range(table.shape[1])]

    def best_index(self) -> int | None:
        """The lattice index with the best score (None when every point diverged)."""
        ks = sorted(self.losses)
        scores = [self.score(k) for k in ks]
        return None if not any(math.isfinite(s) for s in scores) else ks[int(np.argmin(scores))]


Key = TypeVar("Key", bound=Hashable)
Evaluate = Callable[[list[tuple[Key, int, int]]], Mapping[tuple[Key, int, int], Sequence[float]]]


def _start(history: list[tuple[int, float]], rank: int, ref: float, default: int, coarse: int) -> list[int]:
    """Starting lattice points at ``rank``: ± ``coarse`` around ``default`` (first rank) or the previous
    rank's optimum (second rank); from the third rank on, ± ``coarse``/2 around the previous optimum
    moved along the local trend of the two previous ranks' optima (measured, not predicted; slope
    clamped to ±2). The search extends past an edge anyway, so a poor start costs cells, not truth."""
    if not history:
        return [default - coarse, default, default + coarse]
    r1, e1 = history[-1]
    if len(history) == 1:
        centre = lattice_index(e1, ref)
        return [centre - coarse, centre, centre + coarse]
    r0, e0 = history[-2]
    slope = max(-2.0, min(2.0, math.log(e1 / e0) / math.log(r1 / r0)))
    centre = lattice_index(e1 * (rank / r1) ** slope, ref)
    half = max(1, coarse // 2)
    return [centre - half, centre, centre + half]


def search_ranks(
    keys: Sequence[Key],
    ranks: Sequence[int],
    evaluate: Evaluate[Key],
    *,
    ref: float,
    start: Mapping[Key, int],
    coarse: int = 4,
    max_points: int = 14,
) -> dict[tuple[Key, int], Search]:
    """Tune every key (e.g. an optimizer and a schedule) at every rank, ranks in ascending order.

    Each round asks ``evaluate`` for all pending ``(key, rank, lattice index)`` cells of every key at
    once (one sweep per round) and expects per-seed losses back. The first rank of a key starts
    at ``start[key]`` ± ``coarse``; later ranks start from the measured trend (:func:`_start`).
    """
    ranks = sorted(ranks)
    searches: dict[tuple[Key, int], Search] = {}
    position = {key: 0 for key in keys}
    history: dict[Key, list[tuple[int, float]]] = {key: [] for key in keys}

    def current(key: Key) -> Search:
        r = ranks[position[key]]
        if (key, r) not in searches:
            pts = _start(history[key], r, ref, start[key], coarse)
            searches[(key, r)] = Search(ref, pts, coarse=coarse, max_points=max_points)
        return searches[(key, r)]

    while True:
        batch: list[tuple[Key, int, int]] = []
        for key in keys:
            while position[key] < len(ranks):
                s = current(key)
                todo = s.pending()
                if todo:
                    batch.extend((key, ranks[position[key]], k) for k in todo)
                    break
                opts = [o.eta for o in s.optima() if o.interior]
                best = s.best_index()
                centre = (math.exp(float(np.mean(np.log(opts)))) if opts
                          else lattice_eta(best if best is not None else start[key], ref))
                history[key].append((ranks[position[key]], centre))
                position[key] += 1
        if not batch:
            return searches
        results = evaluate(batch)
        for key, r, k in batch:
            searches[(key, r)].record(k, results[(key, r, k)])


@dataclass(frozen=True)
class EtaSlope:
    """The fitted exponent of η* ∝ r^slope."""

    slope: float
    ci: tuple[float, float]
    ranks: tuple[int, ...]
    excluded: tuple[int, ...]  # ranks left out: an edge (a bound, not an optimum) at some seed
    resolution: float  # the lattice term added to each side of the interval
    local_slopes: tuple[float, ...]
    how: str
    label: str = "indeterminate"  # the band rule of rsstab.measure.fit on the (widened) interval: is η* flat in r?


def eta_slope(ranks: Sequence[int], optima: Sequence[Sequence[Optimum]], *, confidence: float = 0.95) -> EtaSlope:
    """Fit ``η* ∝ r^slope`` (``optima[i][s]``: rank i, seed s) over the ranks whose optima are all
    interior; see the module docstring for the interval.

    >>> o = lambda e: Optimum(e, INTERPOLATED, e, 1.0)
    >>> fit = eta_slope([4, 16, 64], [[o(1.0), o(1.1)], [o(4.0), o(4.4)], [o(16.0), o(17.6)]])
    >>> round(fit.slope, 2), fit.excluded
    (1.0, ())
    """
    from rsstab.measure.fit import fit_slope

    keep = [i for i, per_seed in enumerate(optima) if all(o.interior for o in per_seed)]
    excluded = tuple(int(ranks[i]) for i in range(len(ranks)) if i not in keep)
    if len(keep) < 2:
        return EtaSlope(math.nan, (math.nan, math.nan), tuple(int(ranks[i]) for i in keep), excluded, math.nan,
                        (), "fewer than two ranks with interior optima")
    rs = [int(ranks[i]) for i in keep]
    values = np.array([[o.eta for o in optima[i]] for i in keep])
    fit = fit_slope(rs, values, confidence=confidence)
    x = np.log(np.asarray(rs, dtype=float))
    xc = x - x.mean()
    half_unit = math.log(UNIT) / 2
    coarse = np.array([half_unit if any(o.status != INTERPOLATED for o in optima[i]) else 0.0 for i in keep])
    resolution = float(np.abs(xc) @ coarse / (xc @ xc))
    n = values.shape[1]
    how = (f"{100 * confidence:g}% t-interval over {n} seeds (η* per seed)" if n >= 2 else
           f"{100 * confidence:g}% regression interval, one seed")
    if resolution > 0:
        how += f", widened by ±{resolution:.3f} for optima known to half a lattice step (×√2)"
    lo, hi = fit.ci[0] - resolution, fit.ci[1] + resolution
    return EtaSlope(fit.slope, (lo, hi), tuple(rs), excluded, resolution, fit.local_slopes, how, _band(lo, hi))


def _band(lo: float, hi: float, tolerance: float | None = None) -> str:
    """The empirical label of :mod:`rsstab.measure.fit` for an interval (flat, growing, shrinking, unclear)."""
    from rsstab.vocab import FLAT_BAND
    from rsstab.vocab import BLOW_UP, COLLAPSE, INDETERMINATE, STABLE

    tol = FLAT_BAND if tolerance is None else tolerance
    if lo >= -tol and hi <= tol:
        return STABLE
    return BLOW_UP if lo > tol else COLLAPSE if hi < -tol else INDETERMINATE


def geometric_mean_eta(optima: Sequence[Optimum]) -> float:
    """The geometric mean of the η* of interior optima (NaN when none is interior)."""
    good = [o.eta for o in optima if o.interior]
    return math.exp(float(np.mean(np.log(good)))) if good else math.nan


def as_dict(o: Optimum) -> dict[str, Any]:
    """An optimum as a flat row."""
    return {"eta_star": o.eta, "status": o.status, "best_eta": o.best_eta, "best_loss": o.best_loss}
