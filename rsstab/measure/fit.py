"""Log-log slopes of measured quantities against the rank, with confidence intervals and labels.

A quantity measured at ranks ``r_1 < … < r_k`` over ``n`` independent seeds is summarised by

* **slope** — the least-squares slope of ``log value`` against ``log r``. It is computed per seed
  (one curve per seed) and averaged; since least squares is linear in the responses this equals
  the slope through the per-rank geometric means.
* **ci** — a two-sided ``confidence`` interval for the slope. With ``n ≥ 2`` seeds it is the
  Student-t interval of the mean of the per-seed slopes (``n − 1`` degrees of freedom), i.e. it
  measures seed-to-seed Monte Carlo noise. With one seed and ``k ≥ 3`` ranks it is the regression
  standard error of the slope (``k − 2`` degrees of freedom). With one seed and two ranks there is
  no estimate of noise and the interval is ``(-inf, inf)``.
* **local_slopes** — slopes between successive ranks of the per-rank geometric means; they should
  settle to the asymptotic exponent as ``r`` grows.
* **label** — an equivalence-test decision against the band ``[-tolerance, +tolerance]`` around
  a flat (Θ_r(1)) quantity:

  ========================  ===================================================
  ``rank-stabilized``       the whole CI lies inside ``[-tolerance, tolerance]``
  ``blow-up``               the whole CI lies above ``+tolerance``
  ``collapse``              the whole CI lies below ``-tolerance``
  ``indeterminate``         the CI straddles a band edge, or a value is zero,
                            non-finite (a diverged run), so no power law can be fitted
  ========================  ===================================================

Nothing here knows the theory's exponents: compare a fit with a prediction with
:func:`agrees_with` (point or interval mode) or :func:`interval_agrees`.

>>> import numpy as np
>>> ranks = [16, 64, 256, 1024]
>>> values = np.outer(np.asarray(ranks, float) ** -1.0, [1.0, 1.1, 0.9])   # 3 seeds, ∝ 1/r
>>> fit = fit_slope(ranks, values)
>>> round(fit.slope, 6), fit.label
(-1.0, 'collapse')
>>> fit_slope(ranks, np.ones((4, 3))).label
'rank-stabilized'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rsstab.errors import RsstabError
from rsstab.vocab import BLOW_UP, COLLAPSE, FLAT_BAND, INDETERMINATE, STABLE

__all__ = [
    "SlopeFit",
    "fit_slope",
    "agrees_with",
    "interval_agrees",
]


@dataclass(frozen=True)
class SlopeFit:
    """A fitted power law ``value ∝ r^slope`` with its uncertainty and empirical label."""

    slope: float
    ci: tuple[float, float]
    local_slopes: tuple[float, ...]
    ranks: tuple[int, ...]
    values: tuple[float, ...]
    label: str
    evidence: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (non-finite floats become ``None``)."""

        def clean(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return {
            "slope": clean(self.slope),
            "ci": [clean(self.ci[0]), clean(self.ci[1])],
            "local_slopes": [clean(s) for s in self.local_slopes],
            "ranks": list(self.ranks),
            "values": [clean(v) for v in self.values],
            "label": self.label,
            "evidence": self.evidence,
        }


def _validate(
    ranks: Sequence[int], values: Any, tolerance: float, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    try:
        r = np.asarray(list(ranks), dtype=float)
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise RsstabError(f"ranks and values must be numeric: {exc}") from None
    if r.ndim != 1:
        raise RsstabError("ranks must be a flat sequence of integers")
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise RsstabError(f"values must have shape (n_ranks, n_seeds), got {v.shape}")
    if v.shape[0] != r.size:
        raise RsstabError(f"values have {v.shape[0]} rows but there are {r.size} ranks")
    if r.size < 2:
        raise RsstabError("a slope needs at least two ranks")
    if v.shape[1] < 1:
        raise RsstabError("values need at least one seed (column)")
    if not np.all(np.isfinite(r)) or np.any(r <= 0) or np.any(r != np.round(r)):
        raise RsstabError("ranks must be positive integers")
    if np.unique(r).size != r.size:
        raise RsstabError("ranks must be distinct")
    if np.any(np.isfinite(v) & (v < 0)) or np.any(v == -np.inf):
        raise RsstabError("values must be non-negative magnitudes (norms, RMS, absolute moments)")
    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise RsstabError(f"tolerance must be a positive number, got {tolerance!r}")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise RsstabError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    order = np.argsort(r)
    return r[order], v[order]


def _fmt(x: float) -> str:
    return f"{x:+.3g}" if math.isfinite(x) else str(x)


def fit_slope(
    ranks: Sequence[int],
    values: ArrayLike,
    *,
    tolerance: float = FLAT_BAND,
    confidence: float = 0.95,
) -> SlopeFit:
    """Fit ``values ∝ r^slope`` across ranks, with a CI over seeds and an empirical label.

    Args:
        ranks: the adapter ranks (positive, distinct; any order — the fit sorts them).
        values: positive magnitudes of shape ``(n_ranks, n_seeds)`` (a 1-D array is one seed).
            Zero, ``inf`` and ``nan`` are accepted as data (a collapsed or diverged run) and make
            the label ``indeterminate``; finite negative values are an error.
        tolerance: half-width of the band of slopes counted as flat.
        confidence: coverage of the two-sided interval ``ci``.

    Returns:
        A :class:`SlopeFit`; see the module docstring for the estimators and the label rule.

    Raises:
        RsstabError: on malformed input.

    >>> fit = fit_slope([4, 16, 64], [[1.0, 1.0], [2.0, 2.2], [4.0, 4.1]])
    >>> round(fit.slope, 2), [round(s, 2) for s in fit.local_slopes], fit.label
    (0.5, [0.53, 0.47], 'blow-up')
    """
    r, v = _validate(ranks, values, tolerance, confidence)
    from scipy.special import stdtrit  # Student-t quantile; lighter than scipy.stats

    n_ranks, n_seeds = v.shape
    ranks_t = tuple(int(x) for x in r)
    x = np.log(r)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        logv = np.log(v)
        central_log = logv.mean(axis=1)
        central = np.exp(central_log)
        local = np.diff(central_log) / np.diff(x)
    values_t = tuple(float(c) for c in central)
    local_t = tuple(float(s) for s in local)
    pct = f"{100 * confidence:g}%"

    bad = ~np.isfinite(logv)
    if bad.any():
        where = ", ".join(
            f"r={ranks_t[i]} ({int(bad[i].sum())}/{n_seeds} seeds)" for i in np.flatnonzero(bad.any(axis=1))
        )
        kinds = []
        if np.any(v == 0):
            kinds.append("zero")
        if np.any(np.isinf(v)):
            kinds.append("infinite")
        if np.any(np.isnan(v)):
            kinds.append("nan")
        evidence = f"{'/'.join(kinds)} values at {where}: no power law can be fitted"
        return SlopeFit(math.nan, (math.nan, math.nan), local_t, ranks_t, values_t, INDETERMINATE, evidence)

    xc = x - x.mean()
    sxx = float(xc @ xc)
    per_seed = (xc @ (logv - logv.mean(axis=0))) / sxx  # shape (n_seeds,)
    slope = float(per_seed.mean())
    if n_seeds >= 2:
        se = float(per_seed.std(ddof=1)) / math.sqrt(n_seeds)
        dof = n_seeds - 1
        how = f"{pct} t-interval over {n_seeds} seeds"
    elif n_ranks >= 3:
        resid = logv[:, 0] - logv[:, 0].mean() - slope * xc
        dof = n_ranks - 2
        se = math.sqrt(float(resid @ resid) / dof / sxx)
        how = f"{pct} regression interval, one seed"
    else:
        se, dof = math.inf, 1
        how = "one seed and two ranks: no noise estimate"
    half = float(stdtrit(dof, 0.5 + confidence / 2)) * se if math.isfinite(se) else math.inf
    lo, hi = slope - half, slope + half

    tol = float(tolerance)
    if lo >= -tol and hi <= tol:
        label, why = STABLE, f"lies inside ±{tol:g}"
    elif lo > tol:
        label, why = BLOW_UP, f"lies above +{tol:g}"
    elif hi < -tol:
        label, why = COLLAPSE, f"lies below -{tol:g}"
    else:
        edges = [e for e in (-tol, tol) if lo < e < hi] or [-tol, tol]
        label = INDETERMINATE
        why = "straddles the band edge " + " and ".join(_fmt(e) for e in edges)
    local_txt = ", ".join(_fmt(s) for s in local_t)
    evidence = (
        f"slope {_fmt(slope)} with {how} [{_fmt(lo)}, {_fmt(hi)}], which {why}; "
        f"local slopes {local_txt} over r = {ranks_t[0]}…{ranks_t[-1]}"
    )
    return SlopeFit(slope, (lo, hi), local_t, ranks_t, values_t, label, evidence)


def interval_agrees(ci: tuple[float, float], expected: float, tolerance: float = FLAT_BAND) -> bool:
    """Whether the interval ``ci`` meets the band ``[expected − tolerance, expected + tolerance]``:
    the measurement cannot rule out a slope within ``tolerance`` of the prediction. A non-finite
    interval (a diverged run, or no estimate of noise) agrees with nothing.

    >>> interval_agrees((0.35, 0.45), 0.5), interval_agrees((0.2, 0.3), 0.5)
    (True, False)
    >>> interval_agrees((float("-inf"), float("inf")), 0.0)
    False
    """
    lo, hi = float(ci[0]), float(ci[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return False
    return lo <= expected + tolerance and hi >= expected - tolerance


def agrees_with(
    fit: SlopeFit, expected: float, tolerance: float = FLAT_BAND, *, interval: bool = False
) -> bool:
    """Whether a fitted slope agrees with an expected exponent.

    Point mode (default): the slope lies within ``tolerance`` of ``expected``. Interval mode
    (``interval=True``, what the report uses): the fit's confidence interval meets
    ``[expected − tolerance, expected + tolerance]`` (:func:`interval_agrees`), so a slope whose
    interval excludes the prediction by more than the tolerance disagrees, and a point estimate
    just outside the band with an interval reaching into it agrees.

    >>> agrees_with(fit_slope([1, 10], [[1.0, 1.0], [10.0, 10.0]]), 1.0)
    True
    >>> fit = fit_slope([1, 10, 100], [[1.0, 1.0], [10**0.85, 10**0.87], [100**0.85, 100**0.87]])
    >>> agrees_with(fit, 1.0), agrees_with(fit, 1.0, interval=True)
    (False, True)
    """
    if not math.isfinite(fit.slope):
        return False
    if interval:
        return interval_agrees(fit.ci, expected, tolerance)
    return abs(fit.slope - expected) <= tolerance
