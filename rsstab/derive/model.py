"""The derivation model: a :class:`Derivation` is a chain of :class:`Step` objects (assumption →
computation → result) and a list of :class:`Check` identities that the ``proofs/`` scripts assert.

Each check is evaluated at most once: its outcome is kept on the check, so rendering a derivation
and then verifying it (or asking for its failures again) does not redo the sympy work.

>>> D = Derivation("demo", 0, "a demo", "two checks")
>>> D.check("1 + 1 = 2", sp.Integer(1) + 1, 2)
>>> D.check("x = x²", sp.Symbol("x"), sp.Symbol("x") ** 2)
>>> [c.statement for c in D.failures()]
['x = x²']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import sympy as sp

from rsstab.derive.symbols import P, text_expr
from rsstab.derive.words import r_exponent
from rsstab.errors import RsstabError
from rsstab.theory import law
from rsstab.vocab import Optimizer

__all__ = ["KINDS", "Check", "Derivation", "DerivationError", "Step", "check_law"]

Kind = Literal["assumption", "computation", "result"]
KINDS: tuple[Kind, ...] = ("assumption", "computation", "result")


@dataclass(frozen=True)
class Step:
    """One link of the chain: ``kind`` is assumption, computation or result."""

    kind: Kind
    text: str
    lhs: sp.Expr | str | None = None
    rhs: sp.Expr | None = None


def _identical(lhs: sp.Basic, rhs: sp.Basic) -> bool:
    """True when lhs − rhs simplifies to zero (tuples element by element, matrices entry by entry)."""
    if lhs == rhs:  # structural equality (also the only way to compare ±oo)
        return True
    if any(x in (sp.oo, -sp.oo, sp.zoo, sp.nan) for x in (lhs, rhs)):
        return False
    if isinstance(lhs, sp.Tuple) or isinstance(rhs, sp.Tuple):
        return (isinstance(lhs, sp.Tuple) and isinstance(rhs, sp.Tuple) and len(lhs) == len(rhs)
                and all(_identical(a, b) for a, b in zip(lhs, rhs)))
    diff = lhs - rhs
    if isinstance(diff, sp.MatrixBase):
        return all(sp.simplify(sp.expand(e)) == 0 for e in diff)
    return sp.simplify(sp.expand(diff)) == 0


@dataclass(frozen=True)
class Check:
    """An asserted identity ``lhs == rhs`` (exact: the simplified difference must be 0)."""

    statement: str
    lhs: sp.Expr
    rhs: sp.Expr

    def holds(self) -> bool:
        """True when lhs − rhs simplifies to zero; evaluates the identity on every call (see :attr:`ok`)."""
        return _identical(sp.sympify(self.lhs), sp.sympify(self.rhs))

    @cached_property
    def ok(self) -> bool:
        """Whether the identity holds, evaluated once; a check whose evaluation raises does not hold."""
        try:
            return self.holds()
        except Exception:  # noqa: BLE001 - a broken identity must fail the proof, not crash it
            return False


class DerivationError(AssertionError):
    """An asserted identity of a derivation does not hold."""


@dataclass
class Derivation:
    """A named result: its statement, the chain of steps, and the identities a proof asserts."""

    key: str
    number: int
    title: str
    statement: str
    steps: list[Step] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    def step(self, kind: Kind, text: str, lhs: sp.Expr | str | None = None, rhs: sp.Expr | None = None) -> None:
        """Append a step."""
        if kind not in KINDS:
            raise RsstabError(f"unknown step kind {kind!r}: expected one of {', '.join(KINDS)}")
        self.steps.append(Step(kind, text, lhs, rhs))

    def check(self, statement: str, lhs: sp.Expr, rhs: sp.Expr) -> None:
        """Append an identity to assert."""
        self.checks.append(Check(statement, sp.sympify(lhs), sp.sympify(rhs)))

    def failures(self) -> list[Check]:
        """The checks that do not hold (each is evaluated once, on the first call that needs it)."""
        return [c for c in self.checks if not c.ok]

    def verify(self) -> None:
        """Raise :class:`DerivationError` naming the first failing identity."""
        bad = self.failures()
        if bad:
            c = bad[0]
            raise DerivationError(
                f"result {self.number} ({self.key}): identity fails: {c.statement}: "
                f"{text_expr(c.lhs)} ≠ {text_expr(c.rhs)}"
            )


def check_law(D: Derivation, quantity: str, optimizer: Optimizer, expr: sp.Expr) -> None:
    """Tie a derived quantity to rsstab.theory: its r-exponent under γ_r = r^p equals the law's."""
    L = law(quantity, optimizer)
    e = r_exponent(expr, P)
    D.check(f"r-exponent of the derived {quantity} under γ_r ∝ r^p equals rsstab.theory's law {L.text} ({optimizer})",
            e, sp.Rational(L.gamma_power) * P + sp.Rational(L.rank_power))
