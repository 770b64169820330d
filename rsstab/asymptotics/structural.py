"""The structural engine: bounds on a positive expression's scale, propagated through its tree.

This is what handles bounded oscillating factors (``2 + sin r``), ``Min``/``Max``,
``floor``/``ceil``, nested logs and r-dependent exponents such as ``r**(-1/2 + 1/log r)``, exactly.
"""

from __future__ import annotations

import functools

import math
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import sympy

from rsstab.asymptotics.scales import LOG, LOGLOG, ZERO, Growth, Scale, Undecided
from rsstab.errors import ScheduleError
from rsstab.schedule import R, evaluate

__all__ = ["structural"]

_oo = sympy.oo

@dataclass(frozen=True)
class _Asy:
    """Eventual behaviour: sign (+1, −1, 0 = unknown/oscillating), bounds on |f|'s scale, and
    bounds [m, M] on f itself when f is bounded (None when unknown)."""

    sign: int
    lo: Scale | None
    hi: Scale
    interval: tuple[float, float] | None = None


def _bounded(a: _Asy) -> bool:
    return a.hi <= ZERO


def _finish(sign: int, lo: Scale | None, hi: Scale, interval: tuple[float, float] | None) -> _Asy:
    if hi < ZERO:
        interval = (0.0, 0.0)
    elif hi > ZERO:
        interval = None
    return _Asy(sign, lo, hi, interval)


def _constant(e: sympy.Expr) -> _Asy:
    if not e.free_symbols:
        with mpmath.workdps(30):
            v = evaluate(e, mpmath.mpf(1), {})
        if isinstance(v, mpmath.mpc) or not mpmath.isfinite(v):
            raise Undecided(f"constant {e} is not a finite real number")
        v = float(v)
        if v == 0:
            return _Asy(0, None, ZERO, (0.0, 0.0))
        return _Asy(1 if v > 0 else -1, ZERO, ZERO, (v, v))
    if e.is_positive:
        return _Asy(1, ZERO, ZERO, None)
    if e.is_negative:
        return _Asy(-1, ZERO, ZERO, None)
    return _Asy(0, None, ZERO, None)


def _analyze(e: sympy.Expr) -> _Asy:
    if not e.has(R):
        return _constant(e)
    if e == R:  # equality, not identity: a cleared sympy cache makes a new, equal symbol
        return _Asy(1, Scale.of(1), Scale.of(1), None)
    if e.is_Add:
        return _add([_analyze(t) for t in e.args])
    if e.is_Mul:
        return _mul([_analyze(t) for t in e.args])
    if e.is_Pow:
        return _pow(*e.args)
    handler = _FUNCTIONS.get(type(e))
    if handler is None:
        raise Undecided(f"no structural rule for {type(e).__name__}")
    return handler(e)


def _mul(fs: list[_Asy]) -> _Asy:
    sign = 1
    lo: Scale | None = ZERO
    hi = ZERO
    for f in fs:
        sign *= f.sign
        lo = None if (lo is None or f.lo is None) else lo + f.lo
        hi = hi + f.hi
    interval = None
    if all(f.interval is not None for f in fs):
        m, M = 1.0, 1.0
        for f in fs:
            cands = [x * y for x in (m, M) for y in f.interval]  # type: ignore[union-attr]  # all() above
            m, M = min(cands), max(cands)
        interval = (m, M)
    return _finish(sign, lo, hi, interval)


def _add(ts: list[_Asy]) -> _Asy:
    top = max((t.hi for t in ts), key=_ScaleKey)
    tops = [t for t in ts if t.hi == top]
    signs = {t.sign for t in tops}
    interval = None
    if all(t.interval is not None for t in ts):
        interval = (sum(t.interval[0] for t in ts), sum(t.interval[1] for t in ts))  # type: ignore[index, misc]  # all() above
    if len(signs) == 1 and 0 not in signs:
        s = signs.pop()
        same_lo = [t.lo for t in ts if t.sign == s and t.lo is not None]
        others = [t.hi for t in ts if t.sign != s]
        P = max(same_lo, key=_ScaleKey) if same_lo else None
        N = max(others, key=_ScaleKey) if others else None
        if P is not None and (N is None or P > N):
            return _finish(s, P, top, interval)
    if top <= ZERO and interval is not None:
        m, M = interval
        if top == ZERO and m > 0:
            return _finish(1, ZERO, ZERO, interval)
        if top == ZERO and M < 0:
            return _finish(-1, ZERO, ZERO, interval)
    return _finish(0, None, top, interval)


class _ScaleKey:
    """Adapter so ``max(..., key=_ScaleKey)`` uses Scale ordering."""

    def __init__(self, s: Scale) -> None:
        self.s = s

    def __lt__(self, other: _ScaleKey) -> bool:
        return self.s < other.s


def _constant_exponent(p: sympy.Expr) -> sympy.Expr:
    if p.free_symbols:
        raise ScheduleError(
            f"the exponent {p} depends on the constant(s) "
            f"{', '.join(sorted(s.name for s in p.free_symbols))}; give them values",
            parameter="constants",
        )
    if not p.is_real:
        raise Undecided(f"exponent {p} is not real")
    return p


def _pow(base: sympy.Expr, ex: sympy.Expr) -> _Asy:
    if ex.has(R):
        return _exp_of(sympy.Mul(ex, sympy.log(base)), positive_base=_analyze(base).sign == 1)
    p = _constant_exponent(ex)
    b = _analyze(base)
    if b.sign == 1:
        if p > 0:
            lo, hi = (None if b.lo is None else b.lo.scaled(p)), b.hi.scaled(p)
        else:
            if b.lo is None:
                raise Undecided("negative power of a base that approaches 0 at unknown rate")
            lo, hi = b.hi.scaled(p), b.lo.scaled(p)
        interval = None
        if b.interval is not None and b.interval[0] > 0:
            v = sorted(float(x) ** float(p) for x in b.interval)
            interval = (v[0], v[1])
        return _finish(1, lo, hi, interval)
    if p.is_integer and p > 0:
        lo = None if b.lo is None else b.lo.scaled(p)
        sign = b.sign if p % 2 else 1  # an even power of a nonzero base is positive; 0 stays 0
        if b.sign == 0 and p % 2:
            sign = 0
        return _finish(sign, lo if b.sign != 0 else None, b.hi.scaled(p), None)
    raise Undecided(f"power {p} of a base whose sign is not eventually positive")


@functools.cache
def _log_levels() -> tuple[sympy.Expr, sympy.Expr, sympy.Expr]:
    """log r, log log r, log log log r — built on first use: building log log log r at import time
    makes sympy load its tensor and combinatorics modules (≈ 40 ms of every ``rsstab check``)."""
    return (sympy.log(R), sympy.log(sympy.log(R)), sympy.log(sympy.log(sympy.log(R))))


def _exp_of(u: sympy.Expr, positive_base: bool = True) -> _Asy:
    if not positive_base:
        raise Undecided("r-dependent power of a base that is not eventually positive")
    expanded = sympy.expand(u, deep=True, mul=True, log=True, multinomial=False,
                            power_base=False, power_exp=False)
    if sympy.count_ops(expanded) > 10 * sympy.count_ops(u) + 20:
        raise Undecided("exponent expansion too large")
    lo = [sympy.Integer(0)] * 3
    hi = [sympy.Integer(0)] * 3
    interval: tuple[float, float] | None = (0.0, 0.0)
    for t in sympy.Add.make_args(expanded):
        coeff, rest = t.as_independent(R, as_Add=False)
        if rest in _log_levels():
            i = _log_levels().index(rest)
            c = _constant_exponent(coeff)
            lo[i] += c
            hi[i] += c
            interval = None
            continue
        if rest.is_Pow and rest.base == _log_levels()[2] and rest.exp.is_Rational and rest.exp > 0:
            # c·λ^k with λ = log log log r and c ≠ 0 a number. k > 1: c·λ^k/λ → ±∞ and λ^k/log log r
            # → 0, so e^(c·λ^k) is beyond every power of log log r and below every power of log r
            # (up or down with c); k < 1: |c|·λ^k ≤ ε·log log r eventually, for ε the bound of
            # _logscale, so e^(c·λ^k) lies between 1 and (log log r)^(±ε)
            c = _constant_exponent(coeff)
            if c != 0 and rest.exp != 1:
                interval = None
                if rest.exp > 1:
                    inf = _oo if c > 0 else -_oo
                    for bound in (lo, hi):
                        if bound[2].is_infinite and bound[2] != inf:
                            raise Undecided("competing super-polynomial terms")
                        bound[2] = inf
                elif c > 0:
                    hi[2] += _LOGLOGLOG_EPSILON
                else:
                    lo[2] -= _LOGLOGLOG_EPSILON
                continue
        if rest.is_Mul and _log_levels()[0] in rest.args:
            g = _analyze(coeff * rest / _log_levels()[0])
            # g·log r with g oscillating in [m, M] gives r^g between r^m and r^M; a coefficient
            # that tends to a limit (e.g. 1/log log r → 0) must not be reduced to that limit:
            # log r / log log r is beyond every power of log r. Those go through _analyze below.
            if g.hi == ZERO and g.interval is not None and g.interval[0] < g.interval[1]:
                lo[0] += sympy.Float(g.interval[0])
                hi[0] += sympy.Float(g.interval[1])
                interval = None
                continue
        a = _analyze(t)
        if _bounded(a):
            if interval is not None and a.interval is not None:
                interval = (interval[0] + a.interval[0], interval[1] + a.interval[1])
            else:
                interval = None
            continue
        if a.sign == 0 or a.lo is None:
            raise Undecided(f"unbounded oscillating exponent term {t}")
        interval = None
        level = _beyond_level(a.lo, a.hi)
        inf = _oo if a.sign > 0 else -_oo
        for bound in (lo, hi):
            if bound[level].is_infinite and bound[level] != inf:
                raise Undecided("competing super-polynomial terms")
            bound[level] = inf
    lo_s, hi_s = Scale._norm(lo), Scale._norm(hi)
    if lo_s == hi_s == ZERO and interval is not None:
        interval = (math.exp(interval[0]), math.exp(interval[1]))
    else:
        interval = None
    return _finish(1, lo_s, hi_s, interval)


def _beyond_level(lo: Scale, hi: Scale) -> int:
    """For an unbounded exponent term t that is not c·log^(k) r: which level exp(t) escapes
    (``lo`` and ``hi``: the bounds on its scale)."""
    if lo > LOG:
        return 0
    if lo > LOGLOG and hi < LOG:
        return 1
    if lo > ZERO and hi < LOGLOG:
        return 2
    raise Undecided("exponent term of logarithmic size that is not a multiple of log r")


#: ε in the bound log log log r = O((log log r)^ε): any ε > 0 is sound; a small one keeps the
#: bounds built on it tight (sqrt(log log r)·(log log log r)^3 stays below log log r).
_LOGLOGLOG_EPSILON = sympy.Rational(1, 1000)


def _logscale(s: Scale, upper: bool) -> Scale:
    """The scale of log u, as a lower (``upper`` False) or upper bound, for u → ∞ of scale ``s``.

    u of scale (log log r)^a2 with 0 < a2 < ∞ has log u = a2·log log log r + O(1), which lies
    below the hierarchy: it tends to ∞, so it is eventually ≥ 1 (lower bound Θ(1)), and it is
    eventually ≤ (log log r)^ε for every ε > 0 (upper bound, with ε = :data:`_LOGLOGLOG_EPSILON`).
    The two bounds differ, so nothing built on them is ever exact by accident; they suffice for
    ``exp(sqrt(log log r)·(log log log r)^3)``, which lies beyond every power of log log r and
    below every power of log r (:func:`_beyond_level`), as in Gruntz's example 8.9."""
    a0, a1, a2 = s.a
    if a0.is_finite and a0 > 0:
        return LOG
    if a0 == 0 and a1.is_finite and a1 > 0:
        return LOGLOG
    if a0 == 0 and a1 == 0 and a2.is_finite and a2 > 0:
        return Scale.of(0, 0, _LOGLOGLOG_EPSILON) if upper else ZERO
    raise Undecided(f"log of a quantity of scale {s}")


def _log(e: sympy.Expr) -> _Asy:
    u = e.args[0]
    a = _analyze(u)
    if a.sign != 1:
        raise Undecided("log of a quantity that is not eventually positive")
    if a.lo is not None and a.lo > ZERO:
        return _finish(1, _logscale(a.lo, False), _logscale(a.hi, True), None)
    if a.hi < ZERO:
        if a.lo is None:
            raise Undecided("log of a quantity approaching 0 at unknown rate")
        return _finish(-1, _logscale(a.hi.scaled(-1), False), _logscale(a.lo.scaled(-1), True), None)
    if a.lo == ZERO and a.hi == ZERO:
        if a.interval is not None and a.interval[0] > 1:
            return _finish(1, ZERO, ZERO, (math.log(a.interval[0]), math.log(a.interval[1])))
        if a.interval is not None and 0 < a.interval[0] <= a.interval[1] < 1:
            return _finish(-1, ZERO, ZERO, (math.log(a.interval[0]), math.log(a.interval[1])))
        try:
            d = _analyze(sympy.expand(u - 1, deep=False))
        except Undecided:
            d = None
        if d is not None and d.hi < ZERO:
            return d  # log(1 + d) ~ d
        if a.interval is not None and a.interval[0] > 0:  # u in [m, M] with m ≤ 1 ≤ M, e.g. 2 + cos r
            return _finish(0, None, ZERO, (math.log(a.interval[0]), math.log(a.interval[1])))
    raise Undecided(f"log of {u}")


def _trig(e: sympy.Expr) -> _Asy:
    a = _analyze(e.args[0])
    if a.hi < ZERO:  # argument → 0
        if isinstance(e, sympy.cos):
            return _Asy(1, ZERO, ZERO, (1.0, 1.0))
        return a  # sin u ~ tan u ~ atan u ~ tanh u ~ u
    if isinstance(e, (sympy.sin, sympy.cos)):
        return _Asy(0, None, ZERO, (-1.0, 1.0))
    raise Undecided(f"{type(e).__name__} of a non-vanishing argument")


def _saturating(e: sympy.Expr) -> _Asy:
    a = _analyze(e.args[0])
    f = math.tanh if isinstance(e, sympy.tanh) else math.atan
    limit = 1.0 if isinstance(e, sympy.tanh) else math.pi / 2
    if a.hi < ZERO:
        return a
    if a.sign != 0 and a.lo is not None and a.lo > ZERO:
        return _Asy(a.sign, ZERO, ZERO, (a.sign * limit, a.sign * limit))
    if a.interval is not None:
        m, M = f(a.interval[0]), f(a.interval[1])
        sign = 1 if m > 0 else -1 if M < 0 else 0
        return _Asy(sign, ZERO if sign else None, ZERO, (m, M))
    return _Asy(0, None, ZERO, (-limit, limit))


def _abs(e: sympy.Expr) -> _Asy:
    a = _analyze(e.args[0])
    interval = None
    if a.interval is not None:
        m, M = a.interval
        interval = (0.0 if m <= 0 <= M else min(abs(m), abs(M)), max(abs(m), abs(M)))
    return _finish(1, a.lo if a.sign != 0 else None, a.hi, interval)


def _minmax(e: sympy.Expr) -> _Asy:
    args = [_analyze(x) for x in e.args]
    if any(a.sign != 1 for a in args):
        raise Undecided("Min/Max of quantities that are not eventually positive")
    pick = min if isinstance(e, sympy.Min) else max
    his = [a.hi for a in args]
    los = [a.lo for a in args]
    hi = pick(his, key=_ScaleKey)
    if isinstance(e, sympy.Min):
        lo = None if any(x is None for x in los) else min(los, key=_ScaleKey)  # type: ignore[arg-type]  # any() above
    else:
        known = [x for x in los if x is not None]
        lo = max(known, key=_ScaleKey) if known else None
    interval = None
    if all(a.interval is not None for a in args):
        interval = (pick(a.interval[0] for a in args), pick(a.interval[1] for a in args))  # type: ignore[index]  # all() above
    return _finish(1, lo, hi, interval)


def _rounding(e: sympy.Expr) -> _Asy:
    a = _analyze(e.args[0])
    if a.sign == 1 and a.lo is not None and a.lo > ZERO:
        return _finish(1, a.lo, a.hi, None)  # floor(u)/u → 1 when u → ∞
    raise Undecided(f"{type(e).__name__} of a bounded argument")


_FUNCTIONS: dict[type, Callable[[sympy.Expr], _Asy]] = {
    sympy.exp: lambda e: _exp_of(e.args[0]),
    sympy.log: _log,
    sympy.sin: _trig,
    sympy.cos: _trig,
    sympy.tan: _trig,
    sympy.tanh: _saturating,
    sympy.atan: _saturating,
    sympy.Abs: _abs,
    sympy.Min: _minmax,
    sympy.Max: _minmax,
    sympy.floor: _rounding,
    sympy.ceiling: _rounding,
}



def structural(expr: sympy.Expr) -> Growth:
    """Growth of ``expr`` from the structural rules; raises Undecided when they do not decide."""
    a = _analyze(expr)
    if a.sign == -1:
        raise ScheduleError(f"γ_r = {expr} is negative for large r")
    if a.sign != 1:
        raise Undecided("sign not determined structurally")
    return Growth(a.lo, a.hi, "symbolic")
