"""Non-commutative matrix words (SGD trajectories) and their exact expectations over A₀.

A matrix polynomial is a sympy expression in non-commutative letters (``A0``, ``vector("x0")``,
their transposes); each word ending in a column vector is turned into an index sum and its
expectation is taken by the pairing engine of :mod:`rsstab.derive.wick`.

>>> A1, B1 = sgd_trajectory(1)
>>> B1
-eta*gamma_r*v₀*x₀ᵀ*Aᵀ
>>> expect_nc(gamma * B1 * A1 * vector("xp"))
-(x₀·x′)*eta*gamma_r**2*r*sigma_A**2*v₀[i]
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import sympy as sp

from rsstab.derive.symbols import INIT_VARIANCES, P, d, d_out, eta, gamma, named, r, vec_latex, vec_text
from rsstab.derive.wick import Factor, IndexSum, wick_expectation
from rsstab.errors import RsstabError

__all__ = [
    "A0",
    "TRANSPOSE",
    "by_gamma_power",
    "chain_sum",
    "expect_nc",
    "expect_nc_square",
    "matrix",
    "r_degree",
    "r_exponent",
    "sgd_trajectory",
    "terms",
    "transpose",
    "vector",
]


@dataclass(frozen=True)
class _Letter:
    tensor: str
    rows: sp.Expr
    cols: sp.Expr
    transposed: bool


_LETTERS: dict[sp.Symbol, _Letter] = {}
#: Each matrix letter → its transpose (both ways).
TRANSPOSE: dict[sp.Symbol, sp.Symbol] = {}


def matrix(tensor: str, rows: sp.Expr, cols: sp.Expr, latex: str) -> sp.Symbol:
    """A non-commutative matrix letter of shape rows × cols (its transpose is registered too)."""
    text = vec_text(tensor) if tensor.islower() else tensor
    m = named(text, latex, commutative=False)
    mt = named(text + "ᵀ", latex + r"^{\top}", commutative=False)
    _LETTERS[m] = _Letter(tensor, rows, cols, False)
    _LETTERS[mt] = _Letter(tensor, cols, rows, True)
    TRANSPOSE[m], TRANSPOSE[mt] = mt, m
    return m


#: The random initial A (iid N(0, σ_A²) entries), r × d.
A0 = matrix("A", r, d, "A_{0}")
_ONE = sp.Integer(1)


@cache
def vector(name: str) -> sp.Symbol:
    """Deterministic column vector (a matrix letter): ``x<k>``/``xp`` live in R^d, ``v<k>``/``u`` in R^{d_out}.

    >>> vector("x0"), transpose(vector("x0"))
    (x₀, x₀ᵀ)
    """
    rows = d if name.startswith("x") else d_out
    return matrix(name, rows, _ONE, vec_latex(name))


def transpose(expr: sp.Expr) -> sp.Expr:
    """Transpose of a polynomial in matrix letters: reverse each word and transpose each letter."""
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        c, nc = term.args_cnc()
        out.append(sp.Mul(*c) * sp.Mul(*[TRANSPOSE[x] for x in reversed(_letters(nc))]))
    return sp.Add(*out)


def _letters(nc: Sequence[sp.Expr]) -> list[sp.Symbol]:
    out: list[sp.Symbol] = []
    for x in nc:
        if isinstance(x, sp.Pow):
            out.extend([x.base] * int(x.exp))
        else:
            out.append(x)
    return out


def chain_sum(letters: Sequence[sp.Symbol]) -> IndexSum:
    """The index sum of a matrix word ending in a column vector; its first row index is fixed (i)."""
    factors: list[Factor] = []
    ranges: list[tuple[str, sp.Expr]] = []
    prev = "i" if _LETTERS[letters[0]].rows != 1 else None
    for n, x in enumerate(letters):
        info = _LETTERS[x]
        col = None
        if info.cols != 1:
            col = f"k{n}"
            ranges.append((col, info.cols))
        if info.rows == 1 and info.cols == 1:
            raise RsstabError("scalar letters are not supported")
        if info.rows == 1 or info.cols == 1:  # a vector or a transposed vector
            # a well-formed word chains its indices: no None among them
            factors.append(Factor(info.tensor, (prev if info.cols == 1 else col,)))  # type: ignore[arg-type]
        else:
            pair = (prev, col)
            factors.append(Factor(info.tensor, pair[::-1] if info.transposed else pair))  # type: ignore[arg-type]
        prev = col
    if prev is not None:
        raise RsstabError("a word must end with a column vector")
    return IndexSum(_ONE, tuple(factors), tuple(ranges))


def terms(expr: sp.Expr) -> list[tuple[sp.Expr, tuple[sp.Symbol, ...]]]:
    """The expanded polynomial as (commutative coefficient, word of letters) pairs."""
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        c, nc = term.args_cnc()
        out.append((sp.Mul(*c), tuple(_letters(nc))))
    return out


@cache
def _expect_word(letters: tuple[sp.Symbol, ...]) -> sp.Expr:
    return wick_expectation(chain_sum(letters), INIT_VARIANCES)


def expect_nc(expr: sp.Expr) -> sp.Expr:
    """Exact expectation over A₀ (iid N(0, σ_A²)) of a vector-valued matrix polynomial, entry i."""
    return sp.expand(sp.Add(*[c * (_expect_word(w) if w else 1) for c, w in terms(expr)]))


def expect_nc_square(expr: sp.Expr) -> sp.Expr:
    """Exact E[(entry i of expr)²] over A₀ — every pair of words shares the fixed index i."""
    total = sp.Integer(0)
    pairs = terms(expr)
    for (c1, w1), (c2, w2) in itertools.product(pairs, pairs):
        total += c1 * c2 * wick_expectation(chain_sum(w1).times(chain_sum(w2)), INIT_VARIANCES)
    return sp.expand(total)


def _gamma_power(c: sp.Expr) -> int:
    return int(sp.Poly(c, gamma).degree()) if c.has(gamma) else 0


def by_gamma_power(expr: sp.Expr) -> dict[int, sp.Expr]:
    """Group the terms of a (commutative or matrix) polynomial by their power of γ_r."""
    out: dict[int, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        c, _ = term.args_cnc()
        k = _gamma_power(sp.Mul(*c))
        out[k] = out.get(k, sp.Integer(0)) + term
    return out


def sgd_trajectory(n: int) -> tuple[sp.Expr, sp.Expr]:
    """(A_n, B_n) after n exact SGD steps from (A₀, B₀ = 0) with given output gradients v_t, inputs x_t.

    ``∇_B L = γ_r v xᵀ Aᵀ`` and ``∇_A L = γ_r Bᵀ v xᵀ`` (checked in
    :func:`rsstab.derive.results.sgd.gradient_check`). Both updates use the parameters before the step.
    """
    if n < 0:
        raise RsstabError(f"number of SGD steps must be non-negative, got {n}")
    A, B = A0, sp.Integer(0)
    for t in range(n):
        v, x = vector(f"v{t}"), vector(f"x{t}")
        A, B = (sp.expand(A - eta * gamma * transpose(B) * v * TRANSPOSE[x]),
                sp.expand(B - eta * gamma * v * TRANSPOSE[x] * transpose(A)))
    return A, B


# --------------------------------------------------------------------------------------------------
# Orders in r
# --------------------------------------------------------------------------------------------------


def r_degree(e: sp.Expr) -> sp.Expr:
    """Largest power of r among the terms of ``e`` (rational powers allowed).

    >>> r_degree(3 * r**2 + r * gamma), r_degree(sp.sqrt(r) + 1)
    (2, 1/2)
    """
    degrees = []
    for term in sp.Add.make_args(sp.expand(e)):
        dep = term.as_independent(r, as_Add=False)[1]
        degrees.append(sp.Integer(0) if dep == 1 else dep.as_coeff_exponent(r)[1])
    return max(degrees, key=lambda x: float(x))


def r_exponent(expr: sp.Expr, p: sp.Symbol = P) -> sp.Expr:
    """Exponent of r in the leading (largest r-degree) part of a polynomial in r and γ_r, with γ_r = r^p.

    All top-degree terms must carry the same power of γ_r (true for every quantity derived here).

    >>> r_exponent(gamma**2 * r * (r + 2))
    2*p + 2
    """
    poly = sp.Poly(sp.expand(expr), r, gamma)
    top = max(m[0] for m in poly.monoms())
    powers = {m[1] for m in poly.monoms() if m[0] == top}
    if len(powers) != 1:
        raise RsstabError("leading r-degree terms carry different powers of gamma_r")
    return powers.pop() * p + top
