"""Sign and size of γ at one large rank r = 2^k, without overflow: interval log-magnitudes.

A real number x is held as its sign (decided: +1, −1 or exactly 0) and an interval [lo, hi] that
contains log|x|, with ends rounded outward. mpmath's exponents are unbounded integers, so exp of an
argument as large as 2^4096 is an ordinary bound: towers such as ``2**((4/3)**r)`` at r = 2^4096
neither overflow nor underflow, and ``exp(-2*r**2/(1+r))`` is a positive number, never 0. Beyond
:data:`LOG_CAP` a bound becomes ±∞ ("too large to tell"), never a wrong number. Where the sign of a
sum cannot be decided at the working precision (cancellation), :func:`probe` doubles the precision
and tries again; what stays undecided is reported as undecided, never as an error.

>>> from rsstab.schedule import parse
>>> p = probe(parse("((1 + r)/(1 + 2*r))**(r**2)").expr, 64, {})
>>> p.status, p.log_value < -1e37
('positive', True)
>>> probe(parse("1 - r").expr, 8, {}).status
'negative'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mpmath
import sympy

from rsstab.schedule import R

__all__ = ["LOG_CAP", "Point", "probe"]

_inf = mpmath.inf
_ZERO = mpmath.mpf(0)
_ONE = mpmath.mpf(1)
#: exp(x) is computed for |x| ≤ LOG_CAP only (it costs about log2|x| extra bits); beyond, a bound
#: of e^x becomes +∞ or the cap itself, so values up to about e^(e^(2^8192)) keep a finite bound.
LOG_CAP = mpmath.mpf(2) ** 8192
_TRIG_CAP = mpmath.mpf(2) ** 20000  # argument reduction beyond this costs too much
_IV = type(mpmath.iv)()  # a private interval context (its precision is set per call)
_GUARD = 30  # extra bits for transcendental functions; results are then widened by 2^-prec

Interval = tuple[mpmath.mpf, mpmath.mpf]


class _Imprecise(Exception):
    """A sign or a bound cannot be decided at this precision; ``hopeless`` when more precision
    cannot help (the bounds involved are already infinite)."""

    def __init__(self, why: str, hopeless: bool = False) -> None:
        super().__init__(why)
        self.hopeless = hopeless


class _Decided(Exception):
    """γ is decidedly not a positive real at this point: ``status`` says how."""

    def __init__(self, status: str, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class _Mag:
    """sign(x) ∈ {+1, −1, 0} and bounds [lo, hi] on log|x| (unused when x is exactly 0)."""

    sign: int
    lo: mpmath.mpf = _ZERO
    hi: mpmath.mpf = _ZERO


_EXACT_ZERO = _Mag(0)


@dataclass(frozen=True)
class Point:
    """What γ is at r = 2^k.

    ``status`` is ``"positive"`` (then ``lo ≤ log γ ≤ hi``, either end possibly infinite when the
    magnitude is beyond what can be bounded), ``"negative"``, ``"zero"``, ``"not real"``,
    ``"undefined"`` (division by zero, log 0), or ``"undecided"``: overflow, underflow, or a
    cancellation that the precision cap could not resolve. Only the last one is not a decision.
    """

    k: int
    status: str
    lo: mpmath.mpf = _ZERO
    hi: mpmath.mpf = _ZERO
    why: str = ""

    @property
    def decided(self) -> bool:
        return self.status != "undecided"

    @property
    def log_value(self) -> float:
        """log γ as a float: ±inf when it is beyond ±1e300 either way, NaN when not known to
        relative accuracy 1e-6 (or γ is not positive)."""
        if self.status != "positive":
            return math.nan
        if self.lo > 1e300:
            return math.inf
        if self.hi < -1e300:
            return -math.inf
        if not (mpmath.isfinite(self.lo) and mpmath.isfinite(self.hi)):
            return math.nan
        mid = (self.lo + self.hi) / 2
        if self.hi - self.lo > 1e-6 * max(1, abs(mid)):
            return math.nan
        return float(mid)


def probe(expr: sympy.Expr, k: int, constants: Mapping[str, float], max_bits: int | None = None,
          at: int | None = None) -> Point:
    """Evaluate ``expr`` at r = 2^k (or at the integer r = ``at`` < 2^k) in interval log-magnitude
    arithmetic.

    Precision starts at about k + 64 bits (enough for cancellation between terms of size r) and
    doubles while a sign is undecided or log γ is not known to relative accuracy 1e-6, up to
    ``max_bits`` (default 8× the start, at least 4096 bits). Never raises for a value it cannot
    compute: that is a Point with status ``"undecided"``."""
    prec = 64 + k + k // 4
    cap = max_bits if max_bits is not None else max(8 * prec, 4096)
    r = mpmath.mpf(2) ** k if at is None else mpmath.mpf(at)
    while True:
        try:
            with mpmath.workprec(prec + _GUARD):
                m = _Evaluator(r, constants, prec)(expr)
        except _Imprecise as exc:
            if exc.hopeless or 2 * prec > cap:
                return Point(k, "undecided", why=str(exc))
            prec *= 2
            continue
        except _Decided as exc:
            return Point(k, exc.status, why=str(exc))
        except (ZeroDivisionError, ValueError, OverflowError, TypeError, ArithmeticError) as exc:
            return Point(k, "undecided", why=f"{type(exc).__name__} in mpmath")
        if m.sign < 0:
            return Point(k, "negative", why=f"γ_r < 0 at r = 2^{k}")
        if m.sign == 0:
            return Point(k, "zero", why=f"γ_r = 0 at r = 2^{k}")
        point = Point(k, "positive", m.lo, m.hi)
        finite = mpmath.isfinite(m.lo) and mpmath.isfinite(m.hi)
        if finite and math.isnan(point.log_value) and 2 * prec <= cap:
            prec *= 2
            continue
        return point


class _Evaluator:
    """One evaluation of an expression tree at one r and one precision (memoized per subtree)."""

    def __init__(self, r: mpmath.mpf, constants: Mapping[str, float], prec: int) -> None:
        self.r = r
        self.constants = constants
        self.prec = prec
        self.memo: dict[sympy.Basic, _Mag] = {}

    def __call__(self, e: sympy.Expr) -> _Mag:
        m = self.memo.get(e)
        if m is None:
            m = self.memo[e] = self._eval(e)
        return m

    # ------------------------------------------------------------------ rounding helpers

    def _down(self, x: mpmath.mpf) -> mpmath.mpf:
        """A lower bound of the true value of x, computed to within a few ulps at prec + guard."""
        if not mpmath.isfinite(x) or x == 0:
            return x
        return mpmath.fsub(x, abs(x) * mpmath.ldexp(1, -self.prec), prec=self.prec + _GUARD, rounding="f")

    def _up(self, x: mpmath.mpf) -> mpmath.mpf:
        if not mpmath.isfinite(x) or x == 0:
            return x
        return mpmath.fadd(x, abs(x) * mpmath.ldexp(1, -self.prec), prec=self.prec + _GUARD, rounding="c")

    def _add(self, a: mpmath.mpf, b: mpmath.mpf, up: bool) -> mpmath.mpf:
        return mpmath.fadd(a, b, prec=self.prec + _GUARD, rounding="c" if up else "f")

    def _exp_down(self, x: mpmath.mpf) -> mpmath.mpf:
        if x == -_inf or x < -LOG_CAP:
            return _ZERO
        return _ONE if x == 0 else self._down(_exp(min(x, LOG_CAP)))  # e^0 = 1 stays exact

    def _exp_up(self, x: mpmath.mpf) -> mpmath.mpf:
        if x > LOG_CAP:
            return _inf
        return _ONE if x == 0 else self._up(_exp(max(x, -LOG_CAP)))

    def _log_down(self, x: mpmath.mpf) -> mpmath.mpf:
        return -_inf if x == 0 else _inf if x == _inf else self._down(mpmath.log(x))

    def _log_up(self, x: mpmath.mpf) -> mpmath.mpf:
        return -_inf if x == 0 else _inf if x == _inf else self._up(mpmath.log(x))

    def _mul(self, x: Interval, y: Interval) -> Interval:
        """Interval product with 0·∞ = 0 (a bounded unknown times an exact zero)."""

        def prod(a: mpmath.mpf, b: mpmath.mpf, up: bool) -> mpmath.mpf:
            if a == 0 or b == 0:
                return _ZERO
            return mpmath.fmul(a, b, prec=self.prec + _GUARD, rounding="c" if up else "f")

        cands_lo = [prod(a, b, False) for a in x for b in y]
        cands_hi = [prod(a, b, True) for a in x for b in y]
        return min(cands_lo), max(cands_hi)

    # ------------------------------------------------------------------ conversions

    def linear(self, m: _Mag) -> Interval:
        """Bounds on x itself (ends may be ±∞ beyond LOG_CAP)."""
        if m.sign == 0:
            return _ZERO, _ZERO
        lo, hi = self._exp_down(m.lo), self._exp_up(m.hi)
        return (lo, hi) if m.sign > 0 else (-hi, -lo)

    def from_linear(self, lo: mpmath.mpf, hi: mpmath.mpf, what: str) -> _Mag:
        if lo > 0:
            return _Mag(1, self._log_down(lo), self._log_up(hi))
        if hi < 0:
            return _Mag(-1, self._log_down(-hi), self._log_up(-lo))
        if lo == 0 and hi == 0:
            return _EXACT_ZERO
        raise _Imprecise(f"sign of {what} not resolved", hopeless=not (mpmath.isfinite(lo) and mpmath.isfinite(hi)))

    def exact(self, lo: mpmath.mpf, hi: mpmath.mpf | None = None) -> _Mag:
        return self.from_linear(lo, lo if hi is None else hi, "a constant")

    # ------------------------------------------------------------------ the tree

    def _eval(self, e: sympy.Expr) -> _Mag:
        if e == R:  # equality, not identity (a cleared sympy cache makes a new, equal symbol)
            return _Mag(1, self._log_down(self.r), self._log_up(self.r))
        if e.is_Symbol:
            try:
                return self.exact(mpmath.mpf(self.constants[e.name]))
            except KeyError:
                raise _Imprecise(f"no value for constant {e.name!r}", hopeless=True) from None
        if e.is_Integer:
            return self.exact(mpmath.mpf(int(e)))
        if e.is_Rational:
            p, q = int(e.p), int(e.q)
            return self.exact(mpmath.fdiv(p, q, prec=self.prec + _GUARD, rounding="f"),
                              mpmath.fdiv(p, q, prec=self.prec + _GUARD, rounding="c"))
        if e.is_Float:
            return self.exact(mpmath.mpf(e._mpf_))
        if e is sympy.pi or e is sympy.E:
            v = +mpmath.pi if e is sympy.pi else +mpmath.e
            return self.exact(self._down(v), self._up(v))
        if e.is_Add:
            return self._sum([self(a) for a in e.args])
        if e.is_Mul:
            return self._product([self(a) for a in e.args])
        if e.is_Pow:
            return self._pow(*e.args)
        if isinstance(e, (sympy.Min, sympy.Max)):
            return self._minmax([self(a) for a in e.args], isinstance(e, sympy.Max))
        handler = _FUNCTIONS.get(type(e))
        if handler is None:
            raise _Imprecise(f"cannot evaluate {type(e).__name__}", hopeless=True)
        return handler(self, self(e.args[0]))

    def _product(self, fs: list[_Mag]) -> _Mag:
        sign, lo, hi = 1, _ZERO, _ZERO
        for f in fs:
            if f.sign == 0:
                return _EXACT_ZERO
            sign *= f.sign
            lo, hi = self._add(lo, f.lo, False), self._add(hi, f.hi, True)
        return _Mag(sign, lo, hi)

    def _lse(self, logs: list[mpmath.mpf], up: bool) -> mpmath.mpf:
        """log Σ e^(logs), rounded down or up; −∞ for an empty sum."""
        finite = [x for x in logs if x != -_inf]
        if not finite:
            return -_inf
        if up and any(x == _inf for x in finite):
            return _inf
        m = max(finite)
        s = _ZERO
        for x in _others(finite, m):
            d = self._add(x, -m, up)
            s = self._add(s, self._exp_up(d) if up else self._exp_down(d), up)
        if s == 0:
            return m
        if s == _inf:
            return _inf
        v = mpmath.log1p(s)
        return self._add(m, self._up(v) if up else self._down(v), up)

    def _sum(self, ts: list[_Mag]) -> _Mag:
        pos = [t for t in ts if t.sign > 0]
        neg = [t for t in ts if t.sign < 0]
        if not pos and not neg:
            return _EXACT_ZERO
        p = (self._lse([t.lo for t in pos], False), self._lse([t.hi for t in pos], True))
        n = (self._lse([t.lo for t in neg], False), self._lse([t.hi for t in neg], True))
        if not neg:
            return _Mag(1, *p)
        if not pos:
            return _Mag(-1, *n)
        if p[0] == p[1] == n[0] == n[1]:  # rigorous bounds that are points: |P| = |N| exactly
            return _EXACT_ZERO
        if p[0] > n[1]:
            return _Mag(1, *self._difference(p, n))
        if n[0] > p[1]:
            return _Mag(-1, *self._difference(n, p))
        hopeless = not all(mpmath.isfinite(x) for x in (*p, *n))
        raise _Imprecise("cancellation in a sum", hopeless=hopeless)

    def _difference(self, big: Interval, small: Interval) -> Interval:
        """Bounds on log(e^b − e^s) for b ∈ big, s ∈ small, b > s always."""

        def log1m_exp(d: mpmath.mpf, up: bool) -> mpmath.mpf:  # log(1 − e^d), d < 0, decreasing
            if d == -_inf:
                return _ZERO
            if d < -LOG_CAP:  # −2u ≤ log(1 − u) ≤ 0 for u = e^d < e^-LOG_CAP
                return _ZERO if up else -2 * self._exp_up(d)
            v = mpmath.log(-mpmath.expm1(d)) if d > -1 else mpmath.log1p(-_exp(d))
            return self._up(v) if up else self._down(v)

        lo = self._add(big[0], log1m_exp(self._add(small[1], -big[0], True), False), False) \
            if mpmath.isfinite(big[0]) else big[0]
        hi = self._add(big[1], log1m_exp(self._add(small[0], -big[1], False), True), True) \
            if mpmath.isfinite(big[1]) else big[1]
        return lo, hi

    def _pow(self, base: sympy.Expr, ex: sympy.Expr) -> _Mag:
        b = self(base)
        if not ex.is_Integer and b.sign < 0 and not ex.has(R):  # e.g. (-alpha)**(-alpha) at alpha = 1
            ex = ex.subs({sympy.Symbol(k, positive=True): sympy.Rational(repr(float(v)))
                          for k, v in self.constants.items()})
        if ex.is_Integer:
            n = int(ex)
            if b.sign == 0:
                if n < 0:
                    raise _Decided("undefined", "γ_r divides by zero")
                return _EXACT_ZERO if n > 0 else self.exact(mpmath.mpf(1))
            lo, hi = self._mul((mpmath.mpf(n), mpmath.mpf(n)), (b.lo, b.hi))
            return _Mag(b.sign if n % 2 else 1, lo, hi)
        e = self(ex)
        if b.sign < 0:
            raise _Decided("not real", f"a negative number to the non-integer power {ex}")
        if b.sign == 0:
            if e.sign < 0:
                raise _Decided("undefined", "γ_r divides by zero")
            return _EXACT_ZERO if e.sign > 0 else self.exact(mpmath.mpf(1))
        lo, hi = self._mul(self.linear(e), (b.lo, b.hi))
        return _Mag(1, lo, hi)

    def _minmax(self, args: list[_Mag], is_max: bool) -> _Mag:
        want = 1 if is_max else -1  # the sign that wins
        winners = [a for a in args if a.sign == want]
        if winners:  # the largest magnitude of the winning sign for max of positives / min of negatives
            return _Mag(want, max(a.lo for a in winners), max(a.hi for a in winners))
        if any(a.sign == 0 for a in args):
            return _EXACT_ZERO
        # all of the losing sign: the smallest magnitude wins
        return _Mag(-want, min(a.lo for a in args), min(a.hi for a in args))

    # ------------------------------------------------------------------ functions

    def exp(self, x: _Mag) -> _Mag:
        lo, hi = self.linear(x)
        return _Mag(1, lo, hi)

    def log(self, x: _Mag) -> _Mag:
        if x.sign < 0:
            raise _Decided("not real", "log of a negative number")
        if x.sign == 0:
            raise _Decided("undefined", "log of zero")
        return self.from_linear(x.lo, x.hi, "a logarithm")

    def monotone(self, f: Callable[[mpmath.mpf], mpmath.mpf], x: _Mag, what: str,
                 at_inf: tuple[mpmath.mpf, mpmath.mpf]) -> _Mag:
        """An increasing function of x, with its limits at −∞ and +∞."""
        lo, hi = self.linear(x)
        a = at_inf[0] if lo == -_inf else self._down(f(lo))
        b = at_inf[1] if hi == _inf else self._up(f(hi))
        return self.from_linear(a, b, what)

    def trig(self, f: Callable[[mpmath.ctx_iv.ivmpf], mpmath.ctx_iv.ivmpf], x: _Mag, what: str) -> _Mag:
        lo, hi = self.linear(x)
        if not (mpmath.isfinite(lo) and mpmath.isfinite(hi)) or max(abs(lo), abs(hi)) > _TRIG_CAP:
            raise _Imprecise(f"{what} of a huge argument", hopeless=True)
        if hi - lo > 7:
            raise _Imprecise(f"{what} of an argument known too loosely")
        _IV.prec = self.prec + _GUARD
        v = f(_IV.mpf([lo, hi]))
        a, b = mpmath.mpf(v.a), mpmath.mpf(v.b)
        if not (mpmath.isfinite(a) and mpmath.isfinite(b)):
            raise _Imprecise(f"{what} near a pole")
        return self.from_linear(a, b, what)

    def rounding(self, f: Callable[[mpmath.mpf], mpmath.mpf], x: _Mag) -> _Mag:
        if x.sign != 0 and x.lo > 64:  # |x| > e^64: floor/ceil change log|x| by less than 2^-90
            eps = mpmath.ldexp(1, -90)
            return _Mag(x.sign, self._add(x.lo, -eps, False), self._add(x.hi, eps, True))
        lo, hi = self.linear(x)
        return self.from_linear(f(lo), f(hi), "floor/ceil")


def _exp(x: mpmath.mpf) -> mpmath.mpf:
    """exp at the working precision; for |x| > 2^64 as 2^n·e^t with t = x − n·log 2 reduced at
    log2|x| extra bits (mpmath would raise e to the integer power x bit by bit when x is an
    integer, which takes seconds for x = 2^8192)."""
    mag = mpmath.mag(x)
    if mag <= 64:
        return mpmath.exp(x)
    with mpmath.workprec(mpmath.mp.prec + mag + 16):
        n = mpmath.floor(x / mpmath.ln2)
        t = x - n * mpmath.ln2
    return mpmath.ldexp(mpmath.exp(t), int(n))


def _others(xs: list[mpmath.mpf], m: mpmath.mpf) -> list[mpmath.mpf]:
    """xs without one occurrence of m."""
    out = list(xs)
    out.remove(m)
    return out


_FUNCTIONS: dict[type, Callable[[_Evaluator, _Mag], _Mag]] = {
    sympy.exp: _Evaluator.exp,
    sympy.log: _Evaluator.log,
    sympy.sin: lambda ev, x: ev.trig(_IV.sin, x, "sin"),
    sympy.cos: lambda ev, x: ev.trig(_IV.cos, x, "cos"),
    sympy.tan: lambda ev, x: ev.trig(_IV.tan, x, "tan"),
    sympy.tanh: lambda ev, x: ev.monotone(mpmath.tanh, x, "tanh", (mpmath.mpf(-1), mpmath.mpf(1))),
    sympy.atan: lambda ev, x: ev.monotone(mpmath.atan, x, "atan", (-ev._up(mpmath.pi / 2), ev._up(mpmath.pi / 2))),
    sympy.Abs: lambda ev, x: _Mag(abs(x.sign), x.lo, x.hi),
    sympy.floor: lambda ev, x: ev.rounding(mpmath.floor, x),
    sympy.ceiling: lambda ev, x: ev.rounding(mpmath.ceil, x),
}
