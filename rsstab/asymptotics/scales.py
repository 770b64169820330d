"""Scales ``r^a0 · (log r)^a1 · (log log r)^a2`` and the :class:`Growth` bounds built from them."""

from __future__ import annotations

from dataclasses import dataclass

import sympy

__all__ = ["Undecided", "Scale", "Growth", "ZERO", "LOG", "LOGLOG"]


class Undecided(Exception):
    """An engine cannot decide; try the next engine."""


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
                raise Undecided("∞ − ∞ in exponents")
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
                    raise Undecided(f"cannot compare exponents {x} and {y}")
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
        if self.lower is None and self.upper.a[0] is sympy.oo:
            return "undecided"
        lo = f"Ω({self.lower})" if self.lower is not None else "liminf → 0"
        return f"between {lo} and O({self.upper})"

    def times(self, k: sympy.Expr, rank_power: sympy.Expr) -> Growth:
        """Growth of ``f^k · r^rank_power`` (k > 0)."""
        shift = Scale.of(rank_power)
        lo = None if self.lower is None else self.lower.scaled(k) + shift
        return Growth(lo, self.upper.scaled(k) + shift, self.method, self.note, self.strict)

