"""Gruntz limits (``sympy.limit``) for the exponents of a positive expression's scale."""

from __future__ import annotations

import sympy

from rsstab.asymptotics.scales import Growth, Scale, Undecided
from rsstab.schedule import R

__all__ = ["by_limits"]

_oo = sympy.oo


def by_limits(expr: sympy.Expr) -> Growth:
    """Gruntz limits for the exponents (no oscillation allowed)."""

    def lim(x: sympy.Expr) -> sympy.Expr:
        v = sympy.limit(x, R, _oo)
        if isinstance(v, sympy.AccumBounds) or v.has(sympy.AccumBounds, sympy.nan, sympy.zoo) \
                or isinstance(v, sympy.Limit):
            raise Undecided(f"limit of {x} does not exist")
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
        raise Undecided(f"leading coefficient {c} is not a positive constant")
    return Growth(s, s, "symbolic")
