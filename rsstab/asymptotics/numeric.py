"""Numeric evidence: γ sampled at r = 2^k in interval log-magnitude arithmetic.

Three uses: the numeric fallback (the order of growth fitted to log γ at r = 2^8 … 2^4096), the
positivity check of a symbolic answer, and the cross-check of orders obtained from log-ratio
limits. A sample that overflows, underflows or cancels beyond the precision cap is *undecided*: it
is left out, never turned into an error or a label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import mpmath
import sympy

from rsstab.asymptotics.magnitude import Point, probe
from rsstab.asymptotics.scales import ZERO, Growth, Scale
from rsstab.errors import ScheduleError
from rsstab.schedule import Schedule

__all__ = ["MP_KS", "FLOAT_KS", "POSITIVITY_KS", "CHECK_KS", "Samples", "cross_check", "fit",
           "log_value_float", "numeric_growth", "positivity", "undecided"]

_oo = sympy.oo

MP_KS = tuple(int(round(8 * 2 ** (i / 2))) for i in range(19))  # k = 8 … 4096, r = 2^k
FLOAT_KS = tuple(range(3, 61, 3))
POSITIVITY_KS = (8, 16, 32, 64, 128, 256, 512)
CHECK_KS = (256, 512, 1024)
_LN2 = math.log(2)


class Samples:
    """Probes of one expression (with its constants), computed on demand and kept."""

    def __init__(self, expr: sympy.Expr, constants: Mapping[str, float]) -> None:
        self.expr = expr
        self.constants = dict(constants)
        self.points: dict[int, Point] = {}
        self.skip_from: int | None = None  # larger k are not tried (cancellation got hopeless)

    def at(self, k: int) -> Point:
        if k not in self.points:
            if self.skip_from is not None and k > self.skip_from:
                return Point(k, "undecided", why="not tried: smaller r already cancel beyond the precision cap")
            self.points[k] = probe(self.expr, k, self.constants)
        return self.points[k]

    def fill(self, ks: Iterable[int]) -> list[Point]:
        """Probe ks in increasing order; after two consecutive unresolved cancellations larger k
        are not tried (a cancellation only gets worse as r grows, and costs more precision)."""
        out: list[Point] = []
        for k in sorted(ks):
            p = self.at(k)
            out.append(p)
            if len(out) >= 2 and all(q.why == "cancellation in a sum" for q in out[-2:]):
                self.skip_from = k if self.skip_from is None else min(self.skip_from, k)
        return out

    def known(self, ks: Iterable[int]) -> list[Point]:
        return [self.points.get(k) or Point(k, "undecided", why="not computed in time") for k in ks]


def where(p: Point) -> str:
    return f"r = 2^{p.k}"


def refusal(expr: sympy.Expr, p: Point) -> ScheduleError:
    """The error for a decided non-positive sample."""
    what = {"negative": "not positive", "zero": "not positive", "not real": "not real"}.get(p.status)
    if what is not None:
        return ScheduleError(f"γ_r = {expr} is {what} at {where(p)}")
    return ScheduleError(f"γ_r = {expr} is undefined at {where(p)}: {p.why}")


def positivity(samples: Samples, ks: tuple[int, ...] = POSITIVITY_KS) -> str:
    """Check that γ is positive for large r; return a note ("" when nothing to say).

    Raises ScheduleError when the largest decided probe is not positive. Probes that cannot be
    decided (overflow, underflow, cancellation) are ignored; a non-positive value at smaller r
    followed by positive ones is allowed and reported: positivity is a property for large r."""
    points = samples.fill(ks)
    decided = [p for p in points if p.decided]
    if not decided:
        return ("positivity for large r not checked numerically: γ_r cannot be evaluated at "
                f"r = 2^{ks[0]} … 2^{ks[-1]} (overflow or cancellation)")
    last = decided[-1]
    if last.status != "positive":
        raise refusal(samples.expr, last)
    bad = [p for p in decided if p.status != "positive"]
    if not bad:
        return ""
    k1 = bad[-1].k
    k2 = min(p.k for p in decided if p.k > k1)
    start = _first_positive(samples, 2**k1, 2**k2) if k2 <= 64 else None
    if start is not None:
        return (f"γ_r is positive from r = {start} on (probed up to 2^{last.k}); "
                f"at r = 2^{k1} it is {bad[-1].status}")
    return f"γ_r is {bad[-1].status} at r = 2^{k1} but positive at every probe from r = 2^{k2} to 2^{last.k}"


def _first_positive(samples: Samples, lo: int, hi: int) -> int | None:
    """Smallest integer r in (lo, hi] at which γ is positive, by bisection (assuming one sign
    change); None when a probe is undecided."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        p = probe(samples.expr, mid.bit_length(), samples.constants, at=mid)
        if not p.decided:
            return None
        lo, hi = (lo, mid) if p.status == "positive" else (mid, hi)
    return hi


def cross_check(g: Growth, samples: Samples) -> tuple[str, str]:
    """Do the samples at r = 2^256 … 2^1024 agree with the exact growth ``g``?

    Returns ("agrees" | "contradicts" | "unknown", why). Only gross disagreement counts: the local
    exponent between the two largest decided samples must be within 0.25 + 10 % of the claimed
    r-exponent (0.5 + 10 % when the claim has a factor beyond every power of log r); an exponent
    beyond every power of r needs a local exponent of the right sign and at least 1/2 in size."""
    pts = [(p.k, p.log_value) for p in samples.fill(CHECK_KS) if p.status == "positive"]
    pts = [(k, y) for k, y in pts if not math.isnan(y)]
    if len(pts) < 2:
        return "unknown", f"γ_r could be evaluated at {len(pts)} of r = 2^{CHECK_KS[0]} … 2^{CHECK_KS[-1]}"
    (k1, y1), (k2, y2) = pts[-2], pts[-1]
    x1, x2 = k1 * _LN2, k2 * _LN2
    at = f"r = 2^{k1} … 2^{k2}"
    a0, a1, _ = g.upper.a
    if a0.is_infinite:
        sign = 1 if a0 > 0 else -1
        if math.isinf(y2):
            ok = math.copysign(1, y2) == sign
            return ("agrees" if ok else "contradicts"), f"log γ_r = {y2} at r = 2^{k2}"
        slope = (y2 - y1) / (x2 - x1) if math.isfinite(y1) else math.nan
        ok = sign * slope >= 0.5
        return ("agrees" if ok else "contradicts"), f"local exponent {slope:.4g} at {at}"
    if math.isinf(y1) or math.isinf(y2):
        return "contradicts", f"|log γ_r| exceeds 1e300 at r = 2^{k2 if math.isinf(y2) else k1}"
    a1f = float(a1) if a1.is_finite else 0.0
    slope = (y2 - y1 - a1f * (math.log(x2) - math.log(x1))) / (x2 - x1)
    allowance = (0.5 if a1.is_infinite else 0.25) + 0.1 * abs(float(a0))
    ok = abs(slope - float(a0)) <= allowance
    return ("agrees" if ok else "contradicts"), f"local exponent {slope:.4g} at {at}"


def undecided(note: str) -> Growth:
    """The growth that claims nothing (its label is indeterminate)."""
    return Growth(None, Scale.of(_oo), "numeric", note)


def numeric_growth(samples: Samples, note: str, oscillating: bool) -> Growth:
    """The numeric fallback on the samples at MP_KS (computed beforehand, possibly in part)."""
    points = samples.known(MP_KS)
    tail = points[len(points) // 2:]
    bad = [p for p in tail if p.decided and p.status != "positive"]
    if bad:
        raise refusal(samples.expr, bad[0])
    early = [p for p in points[: len(points) // 2] if p.decided and p.status != "positive"]
    if early:
        note += (f"; γ_r is {early[-1].status} at r = 2^{early[-1].k}: only larger r, where it is "
                 "positive, are used")
    ys = [p.log_value for p in points]
    return fit(MP_KS, ys, note, tol=1e-3, oscillating=oscillating)


def log_value_float(schedule: Schedule, k: int) -> float:
    v = schedule.value(2.0**k)
    if math.isnan(v):
        raise ScheduleError(f"the schedule {schedule.text} returned NaN at r = 2^{k}")
    if v <= 0:
        raise ScheduleError(f"the schedule {schedule.text} is not positive at r = 2^{k}")
    return math.log(v) if math.isfinite(v) else math.inf


def fit(ks: tuple[int, ...], ys: list[float], note: str, tol: float, oscillating: bool = False) -> Growth:
    """Estimate r-exponents from y = log f at r = 2^k (NaN: undecided sample; ±inf: |log f| beyond
    1e300). Only the larger half of the ks is used. Exponents within `tol` of a simple rational
    (denominator ≤ 12) are snapped to it; the note says so. With oscillating factors (sin, cos,
    tan) samples cannot show how close f comes to 0 or how high it peaks between them, so only an
    upper bound, widened by `10·tol`, is claimed. Too few decided samples: :func:`undecided`."""
    half = len(ks) // 2
    known = [(k * _LN2, y) for k, y in zip(ks[half:], ys[half:]) if not math.isnan(y)]
    if not known:
        return undecided(note + "; undecided: γ_r cannot be evaluated at large r (overflow, underflow "
                         "or cancellation beyond the precision cap)")
    last = known[-1][1]
    if oscillating and any(math.isinf(y) for _, y in known):  # samples of an oscillating γ that
        # overflow say nothing about its liminf, nor (between samples) about its limsup
        return undecided(note + "; undecided: oscillating factors and |log γ_r| beyond 1e300 at large r")
    if abs(last) == math.inf and sum(1 for _, y in known if y == last) >= min(2, len(known)):
        s = Scale.of(_oo if last > 0 else -_oo)
        what = "faster than any power of r" if last > 0 else "faster decay than any power of r"
        return Growth(s, s, "numeric", note + f"; |log γ_r| exceeds 1e300 at large r: {what}")
    tail = [(x, y) for x, y in known if math.isfinite(y)]
    if len(tail) < 4 or any(math.isinf(y) for _, y in known):
        return undecided(note + f"; undecided: only {len(tail)} of the samples at large r could be evaluated")
    effective = [y / x for x, y in tail]
    slopes = [(y2 - y1) / (x2 - x1) for (x1, y1), (x2, y2) in zip(tail, tail[1:])]
    lo_e, hi_e = min(slopes), max(slopes)
    if oscillating:
        hi = Scale.of(sympy.Float(max(max(effective), _fit_power_log(tail)[0]) + 10 * tol, 4))
        return Growth(None, hi, "numeric", note + "; oscillating factors: sampled values bound the growth "
                      "from above only (the liminf cannot be sampled)")
    if hi_e - lo_e > 10 * tol:  # the exponent itself oscillates
        lo = Scale.of(sympy.Float(min(effective), 4))
        hi = Scale.of(sympy.Float(max(effective), 4))
        return Growth(lo, hi, "numeric", note + "; the local exponent oscillates")
    a0, a1 = _fit_power_log(tail)
    snapped = sympy.nsimplify(round(a0, 6), rational=True, tolerance=tol)
    if snapped.is_Rational and snapped.q <= 12 and abs(float(snapped) - a0) <= tol:
        a0s: sympy.Expr = snapped
    else:
        a0s = sympy.Float(a0, 5)
    a1s = sympy.Integer(round(a1)) if abs(a1 - round(a1)) < 0.25 else sympy.Float(a1, 3)
    s = Scale.of(a0s, a1s)
    return Growth(s, s, "numeric", note + f"; fitted exponent {a0:.5f}, log power {a1:.2f}")


def _fit_power_log(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least squares y = a0·x + a1·log x + c."""
    rows = [(x, math.log(x), 1.0) for x, _ in points]
    ys = [y for _, y in points]
    # normal equations, 3×3
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(3)] for i in range(3)]
    aty = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(3)]
    sol = mpmath.lu_solve(mpmath.matrix(ata), mpmath.matrix(aty))
    return float(sol[0]), float(sol[1])


def callable_growth(logf: Callable[[int], float], note: str) -> Growth:
    """The numeric fallback for a Python callable, sampled in floats at r = 2^3 … 2^60."""
    return fit(FLOAT_KS, [logf(k) for k in FLOAT_KS], note, tol=2e-2)


def agrees_with_limit(g: Growth, limit: sympy.Expr) -> bool:
    """Whether growth ``g`` is compatible with lim γ_r = ``limit`` (0, ∞ or a positive number)."""
    exact_one = g.exact and g.upper == ZERO
    if limit == 0:
        return not (g.lower is not None and g.lower >= ZERO and not (exact_one and g.strict < 0))
    if limit is _oo:
        return not (g.upper <= ZERO and not (exact_one and g.strict > 0))
    return not (g.upper < ZERO or (g.lower is not None and g.lower > ZERO) or (exact_one and g.strict != 0))
