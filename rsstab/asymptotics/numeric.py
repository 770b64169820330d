"""The numeric fallback: the order of growth estimated from log γ sampled at r = 2^k."""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import sympy

from rsstab.asymptotics.scales import Growth, Scale
from rsstab.errors import ScheduleError
from rsstab.schedule import Schedule, evaluate

__all__ = ["MP_KS", "FLOAT_KS", "log_value_mp", "log_value_float", "numeric"]

_oo = sympy.oo

MP_KS = tuple(int(round(8 * 2 ** (i / 2))) for i in range(19))  # k = 8 … 4096, r = 2^k
FLOAT_KS = tuple(range(3, 61, 3))


def log_value_mp(expr: sympy.Expr, k: int, values: dict[str, float]) -> float:
    """log γ at r = 2^k; NaN when the value cannot be computed (overflow inside the expression).

    Precision starts at enough digits for cancellation between terms of size r and doubles while
    the result is not positive, so that cancellations such as r^(3/2)·(1 − cos(1/r)) resolve."""
    dps = 40 + int(0.35 * k)
    while True:
        with mpmath.workdps(dps):
            v = evaluate(expr, mpmath.mpf(2) ** k, values)
            if isinstance(v, mpmath.mpc):
                raise ScheduleError(f"γ_r = {expr} is not real at r = 2^{k}")
            if mpmath.isnan(v):
                return math.nan
            if v > 0:
                return math.inf if mpmath.isinf(v) else float(mpmath.log(v))
        if dps > 4000 + 2 * k:
            raise ScheduleError(f"γ_r = {expr} is not positive at r = 2^{k}")
        dps *= 2


def log_value_float(schedule: Schedule, k: int) -> float:
    v = schedule.value(2.0**k)
    if math.isnan(v):
        raise ScheduleError(f"the schedule {schedule.text} returned NaN at r = 2^{k}")
    if v <= 0:
        raise ScheduleError(f"the schedule {schedule.text} is not positive at r = 2^{k}")
    return math.log(v) if math.isfinite(v) else math.inf


def numeric(logf: Callable[[int], float], ks: tuple[int, ...], note: str, tol: float,
             oscillating: bool = False) -> Growth:
    """Estimate r-exponents from log f at r = 2^k. Exponents within `tol` of a simple rational
    (denominator ≤ 12) are snapped to it; the note says so. With oscillating factors (sin, cos,
    tan) samples cannot show how close f comes to 0 or how high it peaks between them, so only an
    upper bound, widened by `10·tol`, is claimed."""
    ys = [logf(k) for k in ks]
    if all(math.isnan(y) for y in ys[len(ks) // 2:]):
        raise ScheduleError("cannot evaluate the schedule at large r (it overflows)")
    if ys[-1] == math.inf or (ys[-1] > 0 and all(y == math.inf for y in ys[-3:])):
        s = Scale.of(_oo)
        return Growth(s, s, "numeric", note + "; overflows: faster than any power of r")
    xs = [k * math.log(2) for k in ks]
    tail = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)][len(ks) // 2:]
    if len(tail) < 4:
        raise ScheduleError("cannot evaluate the schedule at large r")
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
