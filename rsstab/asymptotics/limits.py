"""Gruntz limits (``sympy.limit``), never trusted blindly.

lim γ_r itself comes first: a positive finite limit is Θ(1) outright. Only when γ_r → 0 or ∞ are
the exponents asked for, as limits of log-ratios (lim log γ / log r, …), which are harder limits
than lim γ and which sympy sometimes gets wrong (it returns 0 for lim log γ / log r on
``(1+(2/3)**(1+r))**(2**r)/2**((4/3)**(r-1))``, which is exp(Θ((4/3)^r))). So every order obtained
from log-ratios must agree with lim γ_r and with a numeric cross-check; disagreement is undecided,
and when the numbers cannot tell, only what lim γ_r says is claimed.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

from rsstab.asymptotics.scales import ZERO, Growth, Scale, Undecided
from rsstab.schedule import R
from rsstab.timelimit import Timeout

__all__ = ["by_limits", "lim", "weak", "Check"]

_oo = sympy.oo

#: Cross-check of a claimed growth: ("agrees" | "contradicts" | "unknown", why).
Check = Callable[[Growth], tuple[str, str]]


def lim(x: sympy.Expr, number: bool = False) -> sympy.Expr:
    """lim x as r → ∞, or Undecided when it does not exist or is not real (±∞ allowed). It may
    involve the (positive) constants of γ unless ``number`` is set."""
    v = sympy.limit(x, R, _oo)
    if isinstance(v, (sympy.AccumBounds, sympy.Limit)) or v.has(sympy.AccumBounds, sympy.nan, sympy.zoo, sympy.I) \
            or v.has(sympy.Limit):
        raise Undecided(f"limit of {x} does not exist")
    if (number and v.free_symbols) or not v.is_extended_real:
        raise Undecided(f"limit {v} of {x} is not a real {'number' if number else 'quantity'}")
    return v


def _positive_finite(v: sympy.Expr) -> bool:
    return bool(v.is_positive) and bool(v.is_finite)


def by_limits(expr: sympy.Expr, check: Check, facts: dict[str, sympy.Expr]) -> Growth:
    """Growth of ``expr`` from Gruntz limits; ``facts["limit"]`` receives lim γ_r when it is 0, ∞
    or a positive number (what the caller may hold a numeric answer against)."""
    limit = lim(expr)
    if limit != 0 and limit is not _oo and not _positive_finite(limit):
        raise Undecided(f"lim γ_r = {limit} is not positive")
    facts["limit"] = limit
    if _positive_finite(limit):
        return Growth(ZERO, ZERO, "symbolic", f"lim γ_r = {limit}")
    up = limit is _oo  # γ → ∞ (else γ → 0)

    def sided(a: sympy.Expr, what: str) -> sympy.Expr:
        if a != 0 and bool(a.is_extended_positive) != up:
            raise Undecided(f"log-ratio limit {what} = {a} contradicts lim γ_r = {limit}")
        return a

    a0 = sided(lim(sympy.log(expr) / sympy.log(R), number=True), "a0")
    if a0.is_infinite:  # beyond every power of r: γ/r^±64 must tend to the same side
        bracket = [(expr / R ** (64 if up else -64), limit)]
        return _confirmed(Growth(Scale.of(a0), Scale.of(a0), "symbolic"), check, limit, bracket)
    rough = Scale.of(a0, _oo)  # a0 alone, log factors unknown: refuted early, before two more limits
    verdict, why = check(Growth(rough, rough, "symbolic"))
    if verdict == "contradicts":
        raise Undecided(f"log-ratio limit a0 = {a0} contradicted numerically ({why})")
    g = expr / R**a0
    a1 = lim(sympy.log(g) / sympy.log(sympy.log(R)), number=True)
    if a0 == 0:
        sided(a1, "a1")
    q = sympy.Rational(1, 4)
    if a1.is_infinite:  # r^a0 times a factor beyond every power of log r
        bracket = [(expr / R ** (a0 + q), 0), (expr / R ** (a0 - q), _oo),
                   (g / sympy.log(R) ** (64 if a1 > 0 else -64), _oo if a1 > 0 else 0)]
        return _confirmed(Growth(Scale.of(a0, a1), Scale.of(a0, a1), "symbolic"), check, limit, bracket)
    c = lim(g / sympy.log(R) ** a1)
    s = Scale.of(a0, a1)
    if a0 == 0 and a1 == 0 and c != limit:
        raise Undecided(f"lim γ_r is {limit} once and {c} once")
    if c is _oo or c == 0:  # e.g. log log log r: beyond the hierarchy, but the direction is known
        slow = sympy.log(sympy.log(R)) ** (q if c is _oo else -q)
        bracket = [(g / sympy.log(R) ** a1 / slow, 0 if c is _oo else _oo)]
        claim = Growth(s, s, "symbolic", f"leading factor tends to {c}", strict=1 if c is _oo else -1)
        return _confirmed(claim, check, limit, bracket)
    if not _positive_finite(c):
        raise Undecided(f"leading coefficient {c} is not a positive constant")
    # γ / (r^a0 · log(r)^a1) → c > 0 is itself a direct limit: it confirms the scale
    return _confirmed(Growth(s, s, "symbolic"), check, limit, [])


class _Contradicted(Exception):
    """A direct limit disagrees with a claimed order."""


def _confirmed(claim: Growth, check: Check, limit: sympy.Expr,
               bracket: list[tuple[sympy.Expr, sympy.Expr]]) -> Growth:
    """``claim``, if nothing contradicts it and something confirms it: the direct limits in
    ``bracket`` (expression, expected limit) all come out as expected, or (when they cannot be
    computed) the numeric cross-check agrees. Undecided when either contradicts it; only what
    lim γ_r says when nothing can confirm it."""
    verdict, why = check(claim)
    if verdict == "contradicts":
        raise Undecided(f"log-ratio limits give {claim}, contradicted numerically ({why})")
    how = ["numerically"] if verdict == "agrees" else []
    try:
        for x, expected in bracket:
            got = lim(x)
            if got != expected:
                raise _Contradicted(f"log-ratio limits give {claim}, but lim {x} = {got}, not {expected}")
        how.insert(0, "by direct limits" if bracket else "by the limit of γ_r over its scale")
    except _Contradicted as exc:
        raise Undecided(str(exc)) from None
    except (Undecided, Timeout) as exc:  # a direct limit that does not exist or takes too long
        why = f"{why}; {_short(exc)}"
    if not how:
        return weak(limit, f"log-ratio limits give {claim}, which could not be confirmed ({why}); "
                           f"only lim γ_r = {limit} is claimed")
    note = "; ".join(x for x in (claim.note, f"order from log-ratio limits, confirmed {' and '.join(how)}") if x)
    return Growth(claim.lower, claim.upper, claim.method, note, claim.strict)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def weak(limit: sympy.Expr, note: str) -> Growth:
    """What lim γ_r = 0 or ∞ alone says: γ_r = O(1), or γ_r = Ω(1)."""
    if limit is _oo:
        return Growth(ZERO, Scale.of(_oo), "symbolic", note)
    return Growth(None, ZERO, "symbolic", note)
