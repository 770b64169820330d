"""Order of growth of a positive expression in r as r → ∞.

The answer is a :class:`Growth`: lower and upper bounds on the scale of f(r) in the hierarchy
``r^a0 · (log r)^a1 · (log log r)^a2``, i.e. eventually ``c·lo(r) ≤ f(r) ≤ C·hi(r)``. Equal
bounds mean f ∈ Θ(scale). Three engines are tried in order:

1. a structural analysis that propagates bounds through the expression tree — this is what
   handles bounded oscillating factors (``2 + sin r``), ``Min``/``Max``, ``floor``/``ceil``,
   nested logs and r-dependent exponents such as ``r**(-1/2 + 1/log r)``, exactly;
2. ``sympy.limit`` (Gruntz) for cancellations such as ``sqrt(r+1) - sqrt(r)``;
3. a numeric fallback: high-precision evaluation at r = 2^k up to r = 2^4096, whose answer is
   marked ``method="numeric"``.

Every symbolic step runs under a time limit (on the main thread; elsewhere ``sympy.limit`` is
skipped), so nothing hangs.

>>> from rsstab.schedule import parse
>>> str(growth(parse("(2 + sin(r))/sqrt(r)").expr))
'Θ(r^-1/2)'
>>> str(growth(parse("r**(-1/2 + 1/log(r))").expr))
'Θ(r^-1/2)'
>>> str(growth(parse("log(r)**2/r").expr))
'Θ(r^-1 · log(r)^2)'
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import sympy

from rsstab.errors import ScheduleError
from rsstab.schedule import R, Schedule, evaluate
from rsstab.timelimit import Timeout, can_time
from rsstab.timelimit import time_limit as time_limit_

__all__ = ["Scale", "Growth", "growth", "growth_of", "TIME_LIMIT"]

TIME_LIMIT = 4.0  # seconds for all symbolic work on one expression
_oo = sympy.oo


class _Undecided(Exception):
    """The structural engine cannot decide; try the next engine."""


# --------------------------------------------------------------------------- scales


def _num(x: object) -> sympy.Expr:
    return sympy.sympify(x) if not isinstance(x, sympy.Basic) else x


@dataclass(frozen=True)
class Scale:
    """``r^a0 · (log r)^a1 · (log log r)^a2``; an infinite entry means beyond every power of the
    previous level (``a0 = oo``: faster than any power of r)."""

    a: tuple[sympy.Expr, sympy.Expr, sympy.Expr]

    @staticmethod
    def of(a0: object = 0, a1: object = 0, a2: object = 0) -> Scale:
        return Scale._norm([_num(a0), _num(a1), _num(a2)])

    @staticmethod
    def _norm(a: list[sympy.Expr]) -> Scale:
        for i, v in enumerate(a):
            if v is sympy.nan:
                raise _Undecided("∞ − ∞ in exponents")
            if v.is_infinite:
                a = a[: i + 1] + [sympy.Integer(0)] * (2 - i)
                break
        return Scale(tuple(a))

    def __add__(self, other: Scale) -> Scale:
        return Scale._norm([x + y for x, y in zip(self.a, other.a)])

    def scaled(self, p: sympy.Expr) -> Scale:
        if p == 0:
            return ZERO
        return Scale._norm([x * p if x != 0 else sympy.Integer(0) for x in self.a])

    def _key(self, other: Scale) -> int:
        for x, y in zip(self.a, other.a):
            if x != y:
                lt = sympy.Lt(x, y)
                if lt not in (sympy.true, sympy.false):
                    raise _Undecided(f"cannot compare exponents {x} and {y}")
                return -1 if lt is sympy.true else 1
        return 0

    def __lt__(self, other: Scale) -> bool:
        return self._key(other) < 0

    def __le__(self, other: Scale) -> bool:
        return self._key(other) <= 0

    def __gt__(self, other: Scale) -> bool:
        return self._key(other) > 0

    def __ge__(self, other: Scale) -> bool:
        return self._key(other) >= 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Scale) and all(sympy.simplify(x - y) == 0 if x != y else True
                                                for x, y in zip(self.a, other.a))

    def __hash__(self) -> int:
        # consistent with __eq__, which compares exponents by value: 1/2 and 0.5 hash alike
        return hash(tuple(float(x) if x.is_number else sympy.simplify(x) for x in self.a))

    @property
    def power(self) -> float:
        """The r-exponent a0 as a float (±inf beyond every power)."""
        return float(self.a[0])

    @property
    def log_power(self) -> float:
        return float(self.a[1])

    def __str__(self) -> str:
        a0, a1, a2 = self.a
        if a0.is_infinite:
            return "faster than any power of r" if a0 > 0 else "faster decay than any power of r"
        parts = []
        if a0 != 0:
            parts.append("r" if _fmt(a0) == "1" else f"r^{_fmt(a0)}")
        if a1.is_infinite:
            parts.append("(beyond every power of log r)" if a1 > 0 else "(decays beyond every power of log r)")
        elif a1 != 0:
            parts.append("log(r)" if _fmt(a1) == "1" else f"log(r)^{_fmt(a1)}")
        if a2.is_infinite:
            parts.append("(beyond every power of log log r)" if a2 > 0 else "(decays beyond every power of log log r)")
        elif a2 != 0:
            parts.append("log(log(r))" if a2 == 1 else f"log(log(r))^{_fmt(a2)}")
        return " · ".join(parts) or "1"


def _fmt(x: sympy.Expr) -> str:
    if x.is_Float and x == int(x):
        x = sympy.Integer(int(x))
    if x.is_Rational:
        return str(x)
    if x.is_Float:
        return f"{float(x):.4g}"
    return f"({x})"


ZERO = Scale.of()
LOG = Scale.of(0, 1)
LOGLOG = Scale.of(0, 0, 1)


@dataclass(frozen=True)
class Growth:
    """Bounds on the order of growth of a positive function of r.

    ``lower`` is ``None`` when f comes arbitrarily close to 0 relative to every scale we can
    name (e.g. ``1 + sin r``). ``method`` is ``"symbolic"`` or ``"numeric"``.
    """

    lower: Scale | None
    upper: Scale
    method: str
    note: str = ""
    #: +1 / −1 when f / scale → ∞ / 0 more slowly than any power of the next level (e.g.
    #: log log log r / √r against r^-1/2); 0 for a true Θ.
    strict: int = 0

    @property
    def exact(self) -> bool:
        return self.lower is not None and self.lower == self.upper

    def __str__(self) -> str:
        if self.exact and self.strict:
            how = "grows" if self.strict > 0 else "vanishes"
            return f"{'ω' if self.strict > 0 else 'o'}({self.upper}) (the ratio {how} slowly)"
        if self.exact:
            return f"Θ({self.upper})"
        lo = f"Ω({self.lower})" if self.lower is not None else "liminf → 0"
        return f"between {lo} and O({self.upper})"

    def times(self, k: sympy.Expr, rank_power: sympy.Expr) -> Growth:
        """Growth of ``f^k · r^rank_power`` (k > 0)."""
        shift = Scale.of(rank_power)
        lo = None if self.lower is None else self.lower.scaled(k) + shift
        return Growth(lo, self.upper.scaled(k) + shift, self.method, self.note, self.strict)


# --------------------------------------------------------------------------- structural engine


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
            raise _Undecided(f"constant {e} is not a finite real number")
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
    if e is R:
        return _Asy(1, Scale.of(1), Scale.of(1), None)
    if e.is_Add:
        return _add([_analyze(t) for t in e.args])
    if e.is_Mul:
        return _mul([_analyze(t) for t in e.args])
    if e.is_Pow:
        return _pow(*e.args)
    handler = _FUNCTIONS.get(type(e))
    if handler is None:
        raise _Undecided(f"no structural rule for {type(e).__name__}")
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
            cands = [x * y for x in (m, M) for y in f.interval]
            m, M = min(cands), max(cands)
        interval = (m, M)
    return _finish(sign, lo, hi, interval)


def _add(ts: list[_Asy]) -> _Asy:
    top = max((t.hi for t in ts), key=_ScaleKey)
    tops = [t for t in ts if t.hi == top]
    signs = {t.sign for t in tops}
    interval = None
    if all(t.interval is not None for t in ts):
        interval = (sum(t.interval[0] for t in ts), sum(t.interval[1] for t in ts))
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
        raise _Undecided(f"exponent {p} is not real")
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
                raise _Undecided("negative power of a base that approaches 0 at unknown rate")
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
    raise _Undecided(f"power {p} of a base whose sign is not eventually positive")


_LOG_LEVELS = (sympy.log(R), sympy.log(sympy.log(R)), sympy.log(sympy.log(sympy.log(R))))


def _exp_of(u: sympy.Expr, positive_base: bool = True) -> _Asy:
    if not positive_base:
        raise _Undecided("r-dependent power of a base that is not eventually positive")
    expanded = sympy.expand(u, deep=True, mul=True, log=True, multinomial=False,
                            power_base=False, power_exp=False)
    if sympy.count_ops(expanded) > 10 * sympy.count_ops(u) + 20:
        raise _Undecided("exponent expansion too large")
    lo = [sympy.Integer(0)] * 3
    hi = [sympy.Integer(0)] * 3
    interval: tuple[float, float] | None = (0.0, 0.0)
    for t in sympy.Add.make_args(expanded):
        coeff, rest = t.as_independent(R, as_Add=False)
        if rest in _LOG_LEVELS:
            i = _LOG_LEVELS.index(rest)
            c = _constant_exponent(coeff)
            lo[i] += c
            hi[i] += c
            interval = None
            continue
        if rest.is_Mul and _LOG_LEVELS[0] in rest.args:
            g = _analyze(coeff * rest / _LOG_LEVELS[0])
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
            raise _Undecided(f"unbounded oscillating exponent term {t}")
        interval = None
        level = _beyond_level(a)
        inf = _oo if a.sign > 0 else -_oo
        for bound in (lo, hi):
            if bound[level].is_infinite and bound[level] != inf:
                raise _Undecided("competing super-polynomial terms")
            bound[level] = inf
    lo_s, hi_s = Scale._norm(lo), Scale._norm(hi)
    if lo_s == hi_s == ZERO and interval is not None:
        interval = (math.exp(interval[0]), math.exp(interval[1]))
    else:
        interval = None
    return _finish(1, lo_s, hi_s, interval)


def _beyond_level(a: _Asy) -> int:
    """For an unbounded exponent term t that is not c·log^(k) r: which level exp(t) escapes."""
    if a.lo > LOG:
        return 0
    if a.lo > LOGLOG and a.hi < LOG:
        return 1
    if a.lo > ZERO and a.hi < LOGLOG:
        return 2
    raise _Undecided("exponent term of logarithmic size that is not a multiple of log r")


def _logscale(s: Scale) -> Scale:
    a0, a1, a2 = s.a
    if a0.is_finite and a0 > 0:
        return LOG
    if a0 == 0 and a1.is_finite and a1 > 0:
        return LOGLOG
    raise _Undecided(f"log of a quantity of scale {s}")


def _log(e: sympy.Expr) -> _Asy:
    u = e.args[0]
    a = _analyze(u)
    if a.sign != 1:
        raise _Undecided("log of a quantity that is not eventually positive")
    if a.lo is not None and a.lo > ZERO:
        return _finish(1, _logscale(a.lo), _logscale(a.hi), None)
    if a.hi < ZERO:
        if a.lo is None:
            raise _Undecided("log of a quantity approaching 0 at unknown rate")
        return _finish(-1, _logscale(a.hi.scaled(-1)), _logscale(a.lo.scaled(-1)), None)
    if a.lo == ZERO and a.hi == ZERO:
        if a.interval is not None and a.interval[0] > 1:
            return _finish(1, ZERO, ZERO, (math.log(a.interval[0]), math.log(a.interval[1])))
        if a.interval is not None and 0 < a.interval[0] <= a.interval[1] < 1:
            return _finish(-1, ZERO, ZERO, (math.log(a.interval[0]), math.log(a.interval[1])))
        d = _analyze(sympy.expand(u - 1, deep=False))
        if d.hi < ZERO:
            return d  # log(1 + d) ~ d
    raise _Undecided(f"log of {u}")


def _trig(e: sympy.Expr) -> _Asy:
    a = _analyze(e.args[0])
    if a.hi < ZERO:  # argument → 0
        if isinstance(e, sympy.cos):
            return _Asy(1, ZERO, ZERO, (1.0, 1.0))
        return a  # sin u ~ tan u ~ atan u ~ tanh u ~ u
    if isinstance(e, (sympy.sin, sympy.cos)):
        return _Asy(0, None, ZERO, (-1.0, 1.0))
    raise _Undecided(f"{type(e).__name__} of a non-vanishing argument")


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
        raise _Undecided("Min/Max of quantities that are not eventually positive")
    pick = min if isinstance(e, sympy.Min) else max
    his = [a.hi for a in args]
    los = [a.lo for a in args]
    hi = pick(his, key=_ScaleKey)
    if isinstance(e, sympy.Min):
        lo = None if any(x is None for x in los) else min(los, key=_ScaleKey)
    else:
        known = [x for x in los if x is not None]
        lo = max(known, key=_ScaleKey) if known else None
    interval = None
    if all(a.interval is not None for a in args):
        interval = (pick(a.interval[0] for a in args), pick(a.interval[1] for a in args))
    return _finish(1, lo, hi, interval)


def _rounding(e: sympy.Expr) -> _Asy:
    a = _analyze(e.args[0])
    if a.sign == 1 and a.lo is not None and a.lo > ZERO:
        return _finish(1, a.lo, a.hi, None)  # floor(u)/u → 1 when u → ∞
    raise _Undecided(f"{type(e).__name__} of a bounded argument")


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


# --------------------------------------------------------------------------- engines


def _structural(expr: sympy.Expr) -> Growth:
    a = _analyze(expr)
    if a.sign == -1:
        raise ScheduleError(f"γ_r = {expr} is negative for large r")
    if a.sign != 1:
        raise _Undecided("sign not determined structurally")
    return Growth(a.lo, a.hi, "symbolic")


def _by_limits(expr: sympy.Expr) -> Growth:
    """Gruntz limits for the exponents (no oscillation allowed)."""

    def lim(x: sympy.Expr) -> sympy.Expr:
        v = sympy.limit(x, R, _oo)
        if isinstance(v, sympy.AccumBounds) or v.has(sympy.AccumBounds, sympy.nan, sympy.zoo) \
                or isinstance(v, sympy.Limit):
            raise _Undecided(f"limit of {x} does not exist")
        return v

    a0 = lim(sympy.log(expr) / sympy.log(R))
    if a0.is_infinite:
        return Growth(Scale.of(a0), Scale.of(a0), "symbolic")
    g = expr / R**a0
    a1 = lim(sympy.log(g) / sympy.log(sympy.log(R)))
    if a1.is_infinite:
        return Growth(Scale.of(a0, a1), Scale.of(a0, a1), "symbolic")
    c = lim(g / sympy.log(R) ** a1)
    s = Scale.of(a0, a1)
    if c is _oo or c == 0:  # e.g. log log log r: beyond the hierarchy, but the direction is known
        return Growth(s, s, "symbolic", f"leading factor tends to {c}", strict=1 if c is _oo else -1)
    if not (c.is_positive and c.is_finite):
        raise _Undecided(f"leading coefficient {c} is not a positive constant")
    return Growth(s, s, "symbolic")


def growth(expr: sympy.Expr, constants: dict[str, float] | None = None,
           time_limit: float = TIME_LIMIT) -> Growth:
    """Order of growth of a positive expression in :data:`rsstab.schedule.R` as r → ∞.

    Raises ScheduleError when the expression is not real and positive for large r.

    >>> from rsstab.schedule import parse
    >>> str(growth(parse("max(1/r, 1/sqrt(r))").expr))
    'Θ(r^-1/2)'
    >>> str(growth(parse("sqrt(r + 1) - sqrt(r)").expr))
    'Θ(r^-1/2)'
    """
    return _growth(expr, tuple(sorted((constants or {}).items())), time_limit)


@functools.lru_cache(maxsize=512)
def _growth(expr: sympy.Expr, constants: tuple[tuple[str, float], ...], time_limit: float) -> Growth:
    values = {name: 1.0 for name in (s.name for s in expr.free_symbols if s != R)}
    values.update(dict(constants))
    reasons: list[str] = []
    if can_time():
        try:
            with time_limit_(time_limit, "symbolic analysis"):
                found = _symbolic(expr, values, reasons, use_limits=True)
        except Timeout as exc:
            reasons.append(str(exc))
            found = None
    else:  # no timer off the main thread: only the (bounded) structural engine runs
        found = _symbolic(expr, values, reasons, use_limits=False)
        reasons.append("Gruntz limits skipped off the main thread")
    if found is not None:
        return found
    note = "symbolic analysis undecided (" + "; ".join(r for r in reasons if r) + ")"
    if values:
        note += f"; constants set to {', '.join(f'{k}={v:g}' for k, v in sorted(values.items()))}"
    oscillating = expr.has(sympy.sin, sympy.cos, sympy.tan)
    return _numeric(lambda k: _log_value_mp(expr, k, values), _MP_KS, note, tol=1e-3, oscillating=oscillating)


def _symbolic(expr: sympy.Expr, values: dict[str, float], reasons: list[str],
              use_limits: bool) -> Growth | None:
    """Structural engine, then Gruntz limits; None when neither decides. sympy can fail in
    arbitrary ways on odd input, so every exception but a user error becomes a reason."""
    try:
        return _structural(expr)
    except ScheduleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any internal failure means "undecided"
        reasons.append(_short(exc))
    if not use_limits:
        return None
    try:
        found = _by_limits(expr)
    except ScheduleError:
        raise
    except Exception as exc:  # noqa: BLE001
        reasons.append(_short(exc))
        return None
    for k in (8, 64, 512):  # limits assume a real positive function: make sure it is one
        _log_value_mp(expr, k, values)  # raises when not real or not positive; NaN: overflow
    return found


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def growth_of(schedule: Schedule) -> Growth:
    """Growth of a :class:`Schedule` (symbolic when it has an expression, numeric for callables)."""
    if schedule.expr is not None:
        return growth(schedule.expr, dict(schedule.values))
    return _numeric(lambda k: _log_value_float(schedule, k), _FLOAT_KS,
                    "numeric: a Python callable evaluated at r = 2^3 … 2^60", tol=2e-2)


# --------------------------------------------------------------------------- numeric fallback

_MP_KS = tuple(int(round(8 * 2 ** (i / 2))) for i in range(19))  # k = 8 … 4096, r = 2^k
_FLOAT_KS = tuple(range(3, 61, 3))


def _log_value_mp(expr: sympy.Expr, k: int, values: dict[str, float]) -> float:
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


def _log_value_float(schedule: Schedule, k: int) -> float:
    v = schedule.value(2.0**k)
    if math.isnan(v):
        raise ScheduleError(f"the schedule {schedule.text} returned NaN at r = 2^{k}")
    if v <= 0:
        raise ScheduleError(f"the schedule {schedule.text} is not positive at r = 2^{k}")
    return math.log(v) if math.isfinite(v) else math.inf


def _numeric(logf: Callable[[int], float], ks: tuple[int, ...], note: str, tol: float,
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
