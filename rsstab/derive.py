r"""Symbolic derivations of why the stable LoRA scaling is γ_r ∝ 1/√r (SGD) or 1/r (Adam).

Every result is a :class:`Derivation`: a chain of :class:`Step` objects (assumption → computation →
result), each a sentence plus a sympy expression, and a list of :class:`Check` identities that the
``proofs/`` scripts assert. The CLI (``rsstab derive``) and the report render the same objects.

The quantities are *derived from their index sums*, not typed in. The engine is Isserlis' (Wick's)
theorem for independent zero-mean Gaussian entries: the expectation of a product of entries is a sum
over pairings of the entries of each random matrix; each pairing ties index pairs together
(a Kronecker δ), and summing the tied indices over their ranges gives a product of sizes
(``Σ_{j=1}^{r} 1 = r``) or, for deterministic vectors, inner products such as ``x·x′``. That is how
the factors ``r`` and ``d`` *come out of the computation* at every finite size. A second, independent
route (brute-force expansion at concrete small r, d where every entry is its own symbol) checks the
engine.

>>> y = forward_sum()                      # y_i = γ_r Σ_j Σ_k B_ij A_jk x_k
>>> wick_expectation(y.power(2), IID_VARIANCES)
d*gamma_r**2*r*sigma_A**2*sigma_B**2*sigma_x**2
>>> sorted(RESULTS)[:3]
['adam', 'backward', 'depth']
"""

from __future__ import annotations

import itertools
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TextIO

import sympy as sp

from rsstab.errors import RsstabError

__all__ = [
    "FORMATS",
    "IID_VARIANCES",
    "RESULTS",
    "Check",
    "Derivation",
    "DerivationError",
    "Factor",
    "IndexSum",
    "Step",
    "adam_stability_factor",
    "brute_force_expectation",
    "by_gamma_power",
    "contraction_values",
    "derivation",
    "derivations",
    "expect_nc",
    "expect_nc_square",
    "forward_sum",
    "render",
    "reparametrised_trajectories",
    "run_proof",
    "sgd_stability_factor",
    "sgd_trajectory",
    "sign_step_moments",
    "transpose",
    "vector",
    "wick_expectation",
    "write_markdown",
]

# --------------------------------------------------------------------------------------------------
# Symbols
# --------------------------------------------------------------------------------------------------

r = sp.Symbol("r", positive=True, integer=True)
d = sp.Symbol("d", positive=True, integer=True)
d_out = sp.Symbol("d_out", positive=True, integer=True)
gamma = sp.Symbol("gamma_r", positive=True)
eta = sp.Symbol("eta", positive=True)
sigma_A, sigma_B, sigma_x = (sp.Symbol(f"sigma_{n}", positive=True) for n in "ABx")

#: Variances of the random tensors in the iid route (B, A, x all independent, zero mean).
IID_VARIANCES: dict[str, sp.Expr] = {"B": sigma_B**2, "A": sigma_A**2, "x": sigma_x**2}
#: At initialisation only A is random (B = 0; inputs and output gradients are given vectors).
INIT_VARIANCES: dict[str, sp.Expr] = {"A": sigma_A**2}

_LATEX: dict[sp.Symbol, str] = {}        # LaTeX names of symbols whose names are not LaTeX
_CONTRACTIONS: dict[sp.Symbol, tuple[str, tuple[str, ...]]] = {}
_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")


def _named(name: str, latex: str, **assumptions: bool) -> sp.Symbol:
    s = sp.Symbol(name, **assumptions)
    _LATEX[s] = latex
    return s


def _vec_text(name: str) -> str:
    """Display name of a deterministic vector: ``xp`` → x′, ``v0`` → v₀."""
    return "x′" if name == "xp" else name.translate(_SUB)


def _vec_latex(name: str) -> str:
    if name == "xp":
        return "x'"
    m = re.fullmatch(r"([a-z]+)(\d*)", name)
    base, sub = (m.group(1), m.group(2)) if m else (name, "")
    return f"{base}_{{{sub}}}" if sub else base


def _dot(u: str, w: str) -> sp.Symbol:
    """The contraction Σ_k u_k w_k of two deterministic vectors, as one symbol."""
    u, w = sorted((u, w))
    if u == w:
        s = _named(f"‖{_vec_text(u)}‖²", rf"\lVert {_vec_latex(u)}\rVert^{{2}}", positive=True)
    else:
        s = _named(f"({_vec_text(u)}·{_vec_text(w)})", rf"({_vec_latex(u)} \cdot {_vec_latex(w)})", real=True)
    _CONTRACTIONS[s] = ("dot", (u, w))
    return s


def _component(u: str) -> sp.Symbol:
    """Entry i of a deterministic vector u at the fixed output index i."""
    lat = _vec_latex(u)
    lat = lat[:-1] + ",i}" if lat.endswith("}") else lat + "_{i}"
    s = _named(f"{_vec_text(u)}[i]", lat, real=True)
    _CONTRACTIONS[s] = ("component", (u,))
    return s


def _contraction(vectors: Sequence[str]) -> sp.Symbol:
    """Σ_k Π_u u_k for one, three or more vectors (never needed by the results, kept general)."""
    vs = tuple(sorted(vectors))
    s = _named("Σ(" + "".join(_vec_text(v) for v in vs) + ")",
               r"\sum_k " + " ".join(f"{_vec_latex(v)}_k" for v in vs), real=True)
    _CONTRACTIONS[s] = ("sum", vs)
    return s


# --------------------------------------------------------------------------------------------------
# Index sums and the Wick (Isserlis) engine
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Factor:
    """One entry ``tensor[indices]`` of a random matrix or of a deterministic vector."""

    tensor: str
    indices: tuple[str, ...]


@dataclass(frozen=True)
class IndexSum:
    """``coeff · Σ_{summed indices} Π factors``; indices without a range are fixed (external).

    >>> y = forward_sum()
    >>> y.power(2).summed()
    ('j', 'j1', 'k', 'k1')
    """

    coeff: sp.Expr
    factors: tuple[Factor, ...]
    ranges: tuple[tuple[str, sp.Expr], ...]

    def summed(self) -> tuple[str, ...]:
        """Names of the summed indices, sorted."""
        return tuple(sorted(name for name, _ in self.ranges))

    def times(self, other: IndexSum) -> IndexSum:
        """Product of two sums; the summed indices of ``other`` are renamed apart."""
        taken = {i for f in self.factors for i in f.indices} | set(self.summed())
        rename: dict[str, str] = {}
        for name, _ in other.ranges:
            n = 1
            while f"{name.rstrip('0123456789') or name}{n}" in taken:
                n += 1
            new = f"{name.rstrip('0123456789') or name}{n}"
            rename[name] = new
            taken.add(new)
        factors = tuple(Factor(f.tensor, tuple(rename.get(i, i) for i in f.indices)) for f in other.factors)
        ranges = tuple((rename[n], size) for n, size in other.ranges)
        return IndexSum(self.coeff * other.coeff, self.factors + factors, self.ranges + ranges)

    def power(self, m: int) -> IndexSum:
        """``self**m`` with fresh summation indices for each copy."""
        if m < 1:
            raise RsstabError(f"moment order must be a positive integer, got {m}")
        out = self
        for _ in range(m - 1):
            out = out.times(self)
        return out

    def as_sympy(self) -> sp.Expr:
        """The sum as a displayable sympy ``Sum`` of ``Indexed`` entries."""
        bases = {}
        body = sp.Integer(1)
        for f in self.factors:
            if f.tensor not in bases:
                bases[f.tensor] = sp.IndexedBase(_vec_text(f.tensor) if f.tensor.islower() else f.tensor)
            body *= bases[f.tensor][tuple(sp.Symbol(i) for i in f.indices)]
        limits = [(sp.Symbol(n), 1, size) for n, size in self.ranges]
        return self.coeff * (sp.Sum(body, *limits) if limits else body)


def _pairings(items: Sequence[Factor]) -> Iterator[list[tuple[Factor, Factor]]]:
    """All perfect matchings of ``items`` ((n−1)!! of them)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for k in range(len(rest)):
        for tail in _pairings(rest[:k] + rest[k + 1:]):
            yield [(first, rest[k]), *tail]


@cache
def _free_index_sum(size: sp.Expr) -> sp.Expr:
    """``Σ_{j=1}^{size} 1``: what a summed index that no vector touches contributes."""
    j = sp.Dummy("j")
    return sp.Sum(sp.Integer(1), (j, 1, size)).doit()


def _class_value(members: list[str], ranges: Mapping[str, sp.Expr], vectors: Sequence[Factor]) -> sp.Expr:
    fixed = {m for m in members if m not in ranges}
    vecs = sorted(f.tensor for f in vectors if f.indices[0] in members)
    if len(fixed) > 1:
        return sp.Integer(0)  # distinct external indices take distinct values
    if fixed:
        return sp.Mul(*[_component(u) for u in vecs])
    sizes = {ranges[m] for m in members}
    if len(sizes) != 1:
        raise RsstabError(f"indices {sorted(members)} are tied together but range over {sorted(map(str, sizes))}")
    (size,) = sizes
    if not vecs:
        return _free_index_sum(size)
    if len(vecs) == 2:
        return _dot(*vecs)
    return _contraction(vecs)


def _find(parent: dict[str, str], i: str) -> str:
    """Union-find root with path halving."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def wick_expectation(s: IndexSum, variances: Mapping[str, sp.Expr]) -> sp.Expr:
    """Exact expectation of an index sum over independent zero-mean Gaussian tensors.

    ``variances`` maps each random tensor to the variance of its (iid) entries; every other tensor
    is a deterministic vector. Isserlis: E[Π entries] = Σ_pairings Π E[pair], and
    E[T_a T_b] = σ_T² δ_ab, so each pairing ties indices; summing them gives sizes or inner products.
    """
    ranges = dict(s.ranges)
    groups: dict[str, list[Factor]] = {}
    vectors: list[Factor] = []
    for f in s.factors:
        if f.tensor in variances:
            groups.setdefault(f.tensor, []).append(f)
        elif len(f.indices) == 1:
            vectors.append(f)
        else:
            raise RsstabError(f"deterministic tensor {f.tensor!r} must be a vector (one index)")
    if any(len(g) % 2 for g in groups.values()):
        return sp.Integer(0)  # odd moments of a centred Gaussian vanish
    indices = sorted({i for f in s.factors for i in f.indices})
    counts: Counter[tuple[sp.Expr, ...]] = Counter()
    for combo in itertools.product(*(list(_pairings(g)) for g in groups.values())):
        parent = {i: i for i in indices}
        for pairs in combo:
            for a, b in pairs:
                for ia, ib in zip(a.indices, b.indices):
                    parent[_find(parent, ia)] = _find(parent, ib)
        classes: dict[str, list[str]] = {}
        for i in indices:
            classes.setdefault(_find(parent, i), []).append(i)
        key = tuple(sorted((_class_value(m, ranges, vectors) for m in classes.values()), key=sp.default_sort_key))
        counts[key] += 1
    weight = sp.Mul(*[variances[t] ** (len(g) // 2) for t, g in groups.items()])
    total = sp.Add(*[n * sp.Mul(*key) for key, n in counts.items()])
    return sp.expand(s.coeff * weight * total)


def _gaussian_moment(var: sp.Expr, power: int) -> sp.Expr:
    return sp.Integer(0) if power % 2 else sp.factorial2(power - 1) * var ** (power // 2)


def brute_force_expectation(s: IndexSum, variances: Mapping[str, sp.Expr], sizes: Mapping[sp.Symbol, int]) -> sp.Expr:
    """Independent check of :func:`wick_expectation` at concrete sizes.

    Every entry is its own symbol, the sum is expanded term by term, and each monomial's expectation
    is the product of one-dimensional Gaussian moments E[z^{2k}] = (2k−1)!! σ^{2k}. The result is
    compared with the engine's answer via :func:`_explicit`.
    """
    ranges = {n: int(sp.sympify(size).subs(sizes)) for n, size in s.ranges}
    fixed = sorted({i for f in s.factors for i in f.indices} - set(ranges))
    fixed_values = {name: k for k, name in enumerate(fixed)}
    names = sorted(ranges)
    total = sp.Integer(0)
    for values in itertools.product(*(range(ranges[n]) for n in names)):
        at = dict(zip(names, values)) | fixed_values
        powers: Counter[tuple[str, tuple[int, ...]]] = Counter()
        for f in s.factors:
            powers[(f.tensor, tuple(at[i] for i in f.indices))] += 1
        term = sp.Integer(1)
        for (tensor, idx), p in powers.items():
            if tensor in variances:
                term *= _gaussian_moment(variances[tensor], p)
            else:
                term *= sp.Symbol(f"{tensor}_{'_'.join(map(str, idx))}") ** p
            if term == 0:
                break
        total += term
    return sp.expand(s.coeff * total)


def _explicit(expr: sp.Expr, s: IndexSum, sizes: Mapping[sp.Symbol, int]) -> sp.Expr:
    """Replace contraction symbols by explicit entry sums at concrete sizes (for brute-force checks)."""
    dims: dict[str, int] = {}
    ranges = dict(s.ranges)
    for f in s.factors:
        if len(f.indices) == 1 and f.indices[0] in ranges:
            dims[f.tensor] = int(sp.sympify(ranges[f.indices[0]]).subs(sizes))
    subs: dict[sp.Symbol, sp.Expr] = {}
    for sym in expr.free_symbols:
        if sym not in _CONTRACTIONS:
            continue
        kind, vecs = _CONTRACTIONS[sym]
        if kind == "component":
            subs[sym] = sp.Symbol(f"{vecs[0]}_0")
        else:
            n = dims[vecs[0]]
            subs[sym] = sp.Add(*[sp.Mul(*[sp.Symbol(f"{v}_{k}") for v in vecs]) for k in range(n)])
    return sp.expand(expr.subs(subs).subs(sizes))


def contraction_values(vectors: Mapping[str, Sequence[float]], component: int = 0) -> dict[sp.Symbol, float]:
    """Numeric values of every registered contraction symbol whose vectors are all given.

    ``vectors`` maps engine names (``x``, ``xp``, ``v0``, ``x1``, ``u`` …) to float sequences; the
    component symbols (``v₀[i]``) take entry ``component``. Used by Monte Carlo tests.

    >>> vals = contraction_values({"x": [1.0, 2.0], "xp": [3.0, -1.0]})
    >>> vals[_dot("x", "xp")], vals[_dot("x", "x")]
    (1.0, 5.0)
    """
    out: dict[sp.Symbol, float] = {}
    for sym, (kind, vecs) in list(_CONTRACTIONS.items()):
        if not all(v in vectors for v in vecs):
            continue
        if kind == "component":
            out[sym] = float(vectors[vecs[0]][component])
        else:
            n = len(vectors[vecs[0]])
            out[sym] = float(sum(math.prod(float(vectors[v][k]) for v in vecs) for k in range(n)))
    return out


def forward_sum() -> IndexSum:
    """Entry i of the adapter output in the iid route: ``y_i = γ_r Σ_{j≤r} Σ_{k≤d} B_ij A_jk x_k``."""
    return IndexSum(gamma, (Factor("B", ("i", "j")), Factor("A", ("j", "k")), Factor("x", ("k",))),
                    (("j", r), ("k", d)))


# --------------------------------------------------------------------------------------------------
# Non-commutative matrix words (SGD trajectories) and their expectations
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Letter:
    tensor: str
    rows: sp.Expr
    cols: sp.Expr
    transposed: bool


_LETTERS: dict[sp.Symbol, _Letter] = {}
_TRANSPOSE: dict[sp.Symbol, sp.Symbol] = {}


def _matrix(tensor: str, rows: sp.Expr, cols: sp.Expr, latex: str) -> sp.Symbol:
    text = _vec_text(tensor) if tensor.islower() else tensor
    m = _named(text, latex, commutative=False)
    mt = _named(text + "ᵀ", latex + r"^{\top}", commutative=False)
    _LETTERS[m] = _Letter(tensor, rows, cols, False)
    _LETTERS[mt] = _Letter(tensor, cols, rows, True)
    _TRANSPOSE[m], _TRANSPOSE[mt] = mt, m
    return m


A0 = _matrix("A", r, d, "A_{0}")
_ONE = sp.Integer(1)


@cache
def vector(name: str) -> sp.Symbol:
    """Deterministic column vector (a matrix letter): ``x<k>``/``xp`` live in R^d, ``v<k>``/``u`` in R^{d_out}.

    >>> vector("x0"), transpose(vector("x0"))
    (x₀, x₀ᵀ)
    """
    rows = d if name.startswith("x") else d_out
    return _matrix(name, rows, _ONE, _vec_latex(name))


def transpose(expr: sp.Expr) -> sp.Expr:
    """Transpose of a polynomial in matrix letters: reverse each word and transpose each letter."""
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        c, nc = term.args_cnc()
        out.append(sp.Mul(*c) * sp.Mul(*[_TRANSPOSE[x] for x in reversed(_letters(nc))]))
    return sp.Add(*out)


def _letters(nc: Sequence[sp.Expr]) -> list[sp.Symbol]:
    out: list[sp.Symbol] = []
    for x in nc:
        if isinstance(x, sp.Pow):
            out.extend([x.base] * int(x.exp))
        else:
            out.append(x)
    return out


def _chain_sum(letters: Sequence[sp.Symbol]) -> IndexSum:
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
            factors.append(Factor(info.tensor, (prev if info.cols == 1 else col,)))
        else:
            pair = (prev, col)
            factors.append(Factor(info.tensor, pair[::-1] if info.transposed else pair))
        prev = col
    if prev is not None:
        raise RsstabError("a word must end with a column vector")
    return IndexSum(_ONE, tuple(factors), tuple(ranges))


def _terms(expr: sp.Expr) -> list[tuple[sp.Expr, tuple[sp.Symbol, ...]]]:
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        c, nc = term.args_cnc()
        out.append((sp.Mul(*c), tuple(_letters(nc))))
    return out


@cache
def _expect_word(letters: tuple[sp.Symbol, ...]) -> sp.Expr:
    return wick_expectation(_chain_sum(letters), INIT_VARIANCES)


def expect_nc(expr: sp.Expr) -> sp.Expr:
    """Exact expectation over A₀ (iid N(0, σ_A²)) of a vector-valued matrix polynomial, entry i."""
    return sp.expand(sp.Add(*[c * (_expect_word(w) if w else 1) for c, w in _terms(expr)]))


def expect_nc_square(expr: sp.Expr) -> sp.Expr:
    """Exact E[(entry i of expr)²] over A₀ — every pair of words shares the fixed index i."""
    total = sp.Integer(0)
    terms = _terms(expr)
    for (c1, w1), (c2, w2) in itertools.product(terms, terms):
        total += c1 * c2 * wick_expectation(_chain_sum(w1).times(_chain_sum(w2)), INIT_VARIANCES)
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

    ``∇_B L = γ_r v xᵀ Aᵀ`` and ``∇_A L = γ_r Bᵀ v xᵀ`` (checked in :func:`_gradient_check`).
    Both updates use the parameters before the step.
    """
    if n < 0:
        raise RsstabError(f"number of SGD steps must be non-negative, got {n}")
    A, B = A0, sp.Integer(0)
    for t in range(n):
        v, x = vector(f"v{t}"), vector(f"x{t}")
        A, B = (sp.expand(A - eta * gamma * transpose(B) * v * _TRANSPOSE[x]),
                sp.expand(B - eta * gamma * v * _TRANSPOSE[x] * transpose(A)))
    return A, B


def _r_degree(e: sp.Expr) -> sp.Expr:
    """Largest power of r among the terms of ``e`` (rational powers allowed).

    >>> _r_degree(3 * r**2 + r * gamma), _r_degree(sp.sqrt(r) + 1)
    (2, 1/2)
    """
    degrees = []
    for term in sp.Add.make_args(sp.expand(e)):
        dep = term.as_independent(r, as_Add=False)[1]
        degrees.append(sp.Integer(0) if dep == 1 else dep.as_coeff_exponent(r)[1])
    return max(degrees, key=lambda x: float(x))


# --------------------------------------------------------------------------------------------------
# Derivation objects
# --------------------------------------------------------------------------------------------------

KINDS = ("assumption", "computation", "result")


@dataclass(frozen=True)
class Step:
    """One link of the chain: ``kind`` is assumption, computation or result."""

    kind: str
    text: str
    lhs: sp.Expr | str | None = None
    rhs: sp.Expr | None = None


@dataclass(frozen=True)
class Check:
    """An asserted identity ``lhs == rhs`` (exact: the simplified difference must be 0)."""

    statement: str
    lhs: sp.Expr
    rhs: sp.Expr

    def holds(self) -> bool:
        """True when lhs − rhs simplifies to zero."""
        lhs, rhs = sp.sympify(self.lhs), sp.sympify(self.rhs)
        if lhs == rhs:  # structural equality (also the only way to compare ±oo)
            return True
        if any(x in (sp.oo, -sp.oo, sp.zoo, sp.nan) for x in (lhs, rhs)):
            return False
        if isinstance(lhs, sp.Tuple) or isinstance(rhs, sp.Tuple):
            return (isinstance(lhs, sp.Tuple) and isinstance(rhs, sp.Tuple) and len(lhs) == len(rhs)
                    and all(Check(self.statement, a, b).holds() for a, b in zip(lhs, rhs)))
        diff = lhs - rhs
        if isinstance(diff, sp.MatrixBase):
            return all(sp.simplify(sp.expand(e)) == 0 for e in diff)
        return sp.simplify(sp.expand(diff)) == 0


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

    def step(self, kind: str, text: str, lhs: sp.Expr | str | None = None, rhs: sp.Expr | None = None) -> None:
        """Append a step."""
        if kind not in KINDS:
            raise ValueError(f"unknown step kind {kind!r}")
        self.steps.append(Step(kind, text, lhs, rhs))

    def check(self, statement: str, lhs: sp.Expr, rhs: sp.Expr) -> None:
        """Append an identity to assert."""
        self.checks.append(Check(statement, sp.sympify(lhs), sp.sympify(rhs)))

    def failures(self) -> list[Check]:
        """The checks that do not hold (a check whose evaluation raises does not hold)."""
        bad = []
        for c in self.checks:
            try:
                ok = c.holds()
            except Exception:  # noqa: BLE001 - a broken identity must fail the proof, not crash it
                ok = False
            if not ok:
                bad.append(c)
        return bad

    def verify(self) -> None:
        """Raise :class:`DerivationError` naming the first failing identity."""
        bad = self.failures()
        if bad:
            c = bad[0]
            raise DerivationError(
                f"result {self.number} ({self.key}): identity fails: {c.statement}: "
                f"{_text_expr(c.lhs)} ≠ {_text_expr(c.rhs)}"
            )


def _lhs(text: str, latex: str) -> sp.Symbol:
    return _named(text, latex)


# --------------------------------------------------------------------------------------------------
# Result 1: iid forward variance and higher moments
# --------------------------------------------------------------------------------------------------


def _chi2_moment(n: sp.Expr, q: int) -> sp.Expr:
    """E[(χ²_n)^q] = 2^q Γ(n/2 + q) / Γ(n/2), simplified to a polynomial in n."""
    return sp.expand(sp.gammasimp(2**q * sp.gamma(n / 2 + q) / sp.gamma(n / 2)))


def _iid_forward() -> Derivation:
    D = Derivation("iid", 1, "iid forward variance and moments",
                   r"With independent entries, $\mathrm{Var}((\gamma_r B A x)_i) = \gamma_r^2\, r\, d\, "
                   r"\sigma_A^2\sigma_B^2\sigma_x^2$ exactly, and $\mathbb{E}[y_i^m] = \Theta((\gamma_r^2 r)^{m/2})$.")
    y = forward_sum()
    D.step("assumption", r"$B\in\mathbb{R}^{d_{out}\times r}$, $A\in\mathbb{R}^{r\times d}$ and $x\in\mathbb{R}^d$ "
           r"have independent zero-mean Gaussian entries with variances $\sigma_B^2, \sigma_A^2, \sigma_x^2$ "
           r"(the heuristic route: B treated as independent of A).")
    D.step("computation", r"Entry $i$ of the adapter output is a double index sum.", _lhs("y_i", "y_{i}"), y.as_sympy())
    m2 = wick_expectation(y.power(2), IID_VARIANCES)
    D.step("computation", r"Isserlis: $\mathbb{E}[B_{ij}B_{ij'}] = \sigma_B^2\delta_{jj'}$, "
           r"$\mathbb{E}[A_{jk}A_{j'k'}] = \sigma_A^2\delta_{jj'}\delta_{kk'}$, $\mathbb{E}[x_k x_{k'}] = "
           r"\sigma_x^2\delta_{kk'}$; the deltas leave one free $j$ (r values) and one free $k$ (d values).",
           _lhs("E[y_i²]", r"\mathbb{E}[y_i^2]"), m2)
    claim = gamma**2 * r * d * sigma_A**2 * sigma_B**2 * sigma_x**2
    D.check("Var(y_i) = γ_r² r d σ_A² σ_B² σ_x² (mean 0)", m2, claim)
    D.check("E[y_i] = 0", wick_expectation(y, IID_VARIANCES), 0)
    moments = {}
    for m in (2, 4, 6):
        moments[m] = wick_expectation(y.power(m), IID_VARIANCES)
        # Independent route: given A and x, y is N(0, γ²σ_B²‖Ax‖²); ‖Ax‖² = σ_A²‖x‖² χ²_r; ‖x‖² = σ_x² χ²_d.
        route2 = (sp.factorial2(m - 1) * gamma**m * sigma_B**m * sigma_A**m * sigma_x**m
                  * _chi2_moment(r, m // 2) * _chi2_moment(d, m // 2))
        D.check(f"E[y_i^{m}] by pairings = (m−1)!! γ^m σ^m E[(χ²_r)^{m // 2}] E[(χ²_d)^{m // 2}] (conditional-Gaussian route)",
                moments[m], route2)
    D.step("computation", r"Fourth moment: 3 pairings of the four $B$ entries × 3 of the $A$ entries × 3 of the $x$ "
           r"entries; each pairing contributes a product of sizes.", _lhs("E[y_i⁴]", r"\mathbb{E}[y_i^4]"),
           sp.factor(moments[4]))
    D.step("computation", "Sixth moment (15³ pairings).", _lhs("E[y_i⁶]", r"\mathbb{E}[y_i^6]"), sp.factor(moments[6]))
    kurt = sp.simplify(moments[4] / moments[2] ** 2)
    D.step("result", r"The kurtosis tends to 3 (Gaussian) as $r, d \to \infty$ but is exact at every finite size.",
           _lhs("E[y_i⁴]/E[y_i²]²", r"\mathbb{E}[y_i^4]/\mathbb{E}[y_i^2]^2"), sp.factor(kurt))
    for m, mom in moments.items():
        lead = sp.limit(mom / (gamma**2 * r) ** sp.Rational(m, 2), r, sp.oo)
        D.check(f"E[y_i^{m}] has degree m/2 = {m // 2} in r", sp.sympify(_r_degree(mom)), sp.Integer(m // 2))
        D.check(f"E[y_i^{m}] / (γ_r² r)^{m // 2} has a finite non-zero limit as r → ∞",
                sp.Integer(int(lead.is_positive and lead.is_finite)), 1)
    D.step("result", r"Every even moment is a polynomial of degree $m/2$ in $r$ times $\gamma_r^m$: "
           r"$\mathbb{E}[y_i^m] = \Theta((\gamma_r^2 r)^{m/2})$, so the moments stay $\Theta(1)$ iff "
           r"$\gamma_r^2 r = \Theta(1)$.")
    # Brute-force cross-check at concrete sizes (every entry its own symbol).
    for m, sizes in ((2, {r: 3, d: 2}), (2, {r: 2, d: 3}), (4, {r: 2, d: 2}), (4, {r: 3, d: 1})):
        s = y.power(m)
        D.check(f"pairing engine = brute-force expansion for E[y_i^{m}] at r={sizes[r]}, d={sizes[d]}",
                _explicit(moments[m], s, sizes), brute_force_expectation(s, IID_VARIANCES, sizes))
    _check_law(D, "iid_variance", "sgd", m2)
    return D


def _check_law(D: Derivation, quantity: str, optimizer: str, expr: sp.Expr) -> None:
    """Tie a derived quantity to rsstab.theory: its r-exponent under γ_r = r^p equals the law's."""
    from rsstab.theory import law

    L = law(quantity, optimizer)
    e = _r_exponent(expr, P)
    D.check(f"r-exponent of the derived {quantity} under γ_r ∝ r^p equals rsstab.theory's law {L.text} ({optimizer})",
            e, sp.Rational(L.gamma_power) * P + sp.Rational(L.rank_power))


P = sp.Symbol("p", real=True)


def _r_exponent(expr: sp.Expr, p: sp.Symbol = P) -> sp.Expr:
    """Exponent of r in the leading (largest r-degree) part of a polynomial in r and γ_r, with γ_r = r^p.

    All top-degree terms must carry the same power of γ_r (true for every quantity derived here).

    >>> _r_exponent(gamma**2 * r * (r + 2))
    2*p + 2
    """
    poly = sp.Poly(sp.expand(expr), r, gamma)
    top = max(m[0] for m in poly.monoms())
    powers = {m[1] for m in poly.monoms() if m[0] == top}
    if len(powers) != 1:
        raise RsstabError("leading r-degree terms carry different powers of gamma_r")
    return powers.pop() * p + top


# --------------------------------------------------------------------------------------------------
# Result 2: the first SGD step
# --------------------------------------------------------------------------------------------------


def _gradient_check(D: Derivation, sizes: tuple[int, int, int] = (2, 3, 2)) -> None:
    """Chain rule at a concrete size: with v = ∂L/∂h and h = γ B A x, L ≈ Σ_i v_i h_i locally."""
    n_out, n_r, n_in = sizes
    B = sp.Matrix(n_out, n_r, lambda a, b: sp.Symbol(f"B_{a}{b}"))
    A = sp.Matrix(n_r, n_in, lambda a, b: sp.Symbol(f"A_{a}{b}"))
    x = sp.Matrix(n_in, 1, lambda a, _: sp.Symbol(f"x_{a}"))
    v = sp.Matrix(n_out, 1, lambda a, _: sp.Symbol(f"v_{a}"))
    h = gamma * B * A * x
    loss = (v.T * h)[0, 0]
    grad_B = sp.Matrix(n_out, n_r, lambda a, b: sp.diff(loss, B[a, b]))
    grad_A = sp.Matrix(n_r, n_in, lambda a, b: sp.diff(loss, A[a, b]))
    D.check(f"∇_B L = γ_r v (A x)ᵀ entry by entry (sympy diff, sizes {sizes})", grad_B, gamma * v * (A * x).T)
    D.check(f"∇_A L = γ_r Bᵀ v xᵀ entry by entry (sympy diff, sizes {sizes})", grad_A, gamma * B.T * v * x.T)


def _xp() -> sp.Symbol:
    return vector("xp")


@cache
def _one_step() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(γ B₁ A₁ x′, its exact mean, its exact variance) for entry i."""
    A1, B1 = sgd_trajectory(1)
    out = sp.expand(gamma * B1 * A1 * _xp())
    mean = expect_nc(out)
    var = sp.expand(expect_nc_square(out) - mean**2)
    return out, mean, var


def sgd_stability_factor() -> sp.Expr:
    """γ_r² r, *derived*: the exact mean of the learned output after one SGD step divided by −η σ_A² (x₀·x′) v₀[i].

    >>> sgd_stability_factor()
    gamma_r**2*r
    """
    _, mean, _ = _one_step()
    return sp.simplify(mean / (-eta * sigma_A**2 * _dot("x0", "xp") * _component("v0")))


def _first_step() -> Derivation:
    D = Derivation("first-step", 2, "first SGD step: the coherent sum",
                   r"From $B_0 = 0$: $\mathbb{E}[\gamma_r B_1 A x'] = -\eta\gamma_r^2 r\sigma_A^2 (x\cdot x') v$ "
                   r"exactly; its fluctuation is $O(\sqrt r)$ against a $\Theta(r)$ mean.")
    D.step("assumption", r"$h = \gamma_r B A x$ with $B_0 = 0$, $A_0$ iid $N(0, \sigma_A^2)$ (variance independent of $r$); "
           r"the loss gradient at the output is a given vector $v_0 = \partial L/\partial h$ for the input $x_0$; "
           r"plain SGD with learning rate $\eta$.")
    _gradient_check(D)
    D.step("computation", r"Chain rule (checked entry by entry): $\nabla_B L = \gamma_r v x^\top A^\top$, "
           r"$\nabla_A L = \gamma_r B^\top v x^\top$; at $B_0 = 0$ only $B$ moves.")
    A1, B1 = sgd_trajectory(1)
    D.step("computation", "One SGD step.", _lhs("B₁", "B_{1}"), B1)
    D.check("A₁ = A₀ (the A-gradient vanishes at B = 0)", A1 - A0, 0)
    out, mean, var = _one_step()
    D.step("computation", r"The learned adapter applied to a new input $x'$.",
           _lhs("γ_r B₁ A₁ x′", r"\gamma_r B_1 A_1 x'"), out)
    D.step("computation", r"$x_0^\top A^\top A x' = \sum_{j=1}^{r} (a_j\cdot x_0)(a_j\cdot x')$ over the $r$ rows $a_j$; "
           r"pairing the two $A$ entries ties the row indices, so the $r$ terms add coherently.",
           _lhs("E[(γ_r B₁ A x′)_i]", r"\mathbb{E}[(\gamma_r B_1 A x')_i]"), mean)
    D.check("E[γ_r B₁ A x′] = −η γ_r² r σ_A² (x₀·x′) v₀ (entry i)", mean,
            -eta * gamma**2 * r * sigma_A**2 * _dot("x0", "xp") * _component("v0"))
    D.step("computation", r"Second moment by pairing four $A$ entries (3 pairings), minus the squared mean.",
           _lhs("Var((γ_r B₁ A x′)_i)", r"\mathrm{Var}((\gamma_r B_1 A x')_i)"), sp.factor(var))
    D.check("Var = η² γ_r⁴ r σ_A⁴ v₀[i]² (‖x₀‖²‖x′‖² + (x₀·x′)²)", var,
            eta**2 * gamma**4 * r * sigma_A**4 * _component("v0") ** 2
            * (_dot("x0", "x0") * _dot("xp", "xp") + _dot("x0", "xp") ** 2))
    s1 = _chain_sum(_terms(out)[0][1])
    for sizes in ({r: 3, d: 2, d_out: 1}, {r: 2, d: 3, d_out: 1}):
        D.check(f"pairing engine = brute-force expansion for the mean at r={sizes[r]}, d={sizes[d]}",
                _explicit(mean, s1, sizes), _explicit(brute_force_expectation(
                    IndexSum(_terms(out)[0][0], s1.factors, s1.ranges), INIT_VARIANCES, sizes), s1, sizes))
        s2 = s1.times(s1)
        D.check(f"pairing engine = brute-force expansion for the second moment at r={sizes[r]}, d={sizes[d]}",
                _explicit(sp.expand(var + mean**2), s2, sizes),
                brute_force_expectation(IndexSum((eta * gamma**2) ** 2, s2.factors, s2.ranges), INIT_VARIANCES, sizes))
    D.check("the mean is Θ(r): degree 1 in r", sp.sympify(_r_degree(mean)), 1)
    D.check("the variance is Θ(r) (standard deviation Θ(√r)): degree 1 in r", sp.sympify(_r_degree(var)), 1)
    rel = sp.simplify(var / mean**2)
    D.step("result", r"Relative fluctuation: the $r$ row terms are independent, so their sum has mean $\Theta(r)$ and "
           r"standard deviation $\Theta(\sqrt r)$ (incoherent sums would give only $\sqrt r$). The learned "
           r"adapter is $\Theta(\eta\gamma_r^2 r)$: stable iff $\gamma_r^2 r = \Theta(1)$.",
           _lhs("Var/mean²", r"\mathrm{Var}/\mathrm{mean}^2"), sp.factor(rel))
    D.check("Var/mean² → 0 as r → ∞", sp.limit(rel, r, sp.oo), 0)
    D.check("r · Var/mean² = (‖x₀‖²‖x′‖² + (x₀·x′)²)/(x₀·x′)², independent of r: relative fluctuation exactly Θ(1/√r)",
            rel * r, (_dot("x0", "x0") * _dot("xp", "xp") + _dot("x0", "xp") ** 2) / _dot("x0", "xp") ** 2)
    D.step("result", "The stability factor, read off the derived mean.", _lhs("S_SGD", r"S_{\mathrm{SGD}}"),
           sgd_stability_factor())
    _check_law(D, "forward", "sgd", mean)
    return D


# --------------------------------------------------------------------------------------------------
# Result 3: n-step SGD trajectory (Appendix A induction)
# --------------------------------------------------------------------------------------------------

TRAJECTORY_STEPS = (1, 2, 3)


def _remainder_orders(expr: sp.Expr) -> list[tuple[int, int]]:
    """(γ-power a, r-degree s) of each non-zero expected term beyond γ_r²; each is γ^(a−2s)·(γ²r)^s."""
    out = []
    for a, part in sorted(by_gamma_power(expr).items()):
        if a <= 2:
            continue
        e = expect_nc(part)
        if e != 0:
            out.append((a, _r_degree(e)))
    return out


def _trajectory() -> Derivation:
    D = Derivation("trajectory", 3, "n-step SGD trajectory to leading order in γ_r",
                   r"$B_n = -\eta\gamma_r\sum_{k<n} v_k x_k^\top A_0^\top + O(\gamma_r^3)$, $A_n = A_0 + O(\gamma_r^2)$, and "
                   r"$\mathbb{E}[\gamma_r B_n A_n x'] = -\eta\gamma_r^2 r\sigma_A^2\sum_k (x_k\cdot x') v_k + "
                   r"\sum_{s} O(\gamma_r^{2}(\gamma_r^2 r)^s)$: the remainder vanishes only if $\gamma_r \to 0$.")
    D.step("assumption", r"SGD from $(A_0, B_0 = 0)$ with output gradients $v_t$ and inputs $x_t$ given "
           r"($\Theta(1)$, $r$-independent) at each step; both updates use the parameters before the step.")
    Pm = _matrix("P", r, d, "P")
    Qm = _matrix("Q", d_out, r, "Q")
    v, x = vector("v"), vector("x")
    A_t, B_t = A0 + gamma**2 * Pm, gamma * Qm
    A_n = sp.expand(A_t - eta * gamma * transpose(B_t) * v * _TRANSPOSE[x])
    B_n = sp.expand(B_t - eta * gamma * v * _TRANSPOSE[x] * transpose(A_t))
    D.step("assumption", r"Induction hypothesis: $A_t = A_0 + \gamma_r^2 P_t$, $B_t = \gamma_r Q_t$ with $P_t, Q_t$ "
           r"polynomials in $\gamma_r$ (true at $t = 0$ with $P_0 = Q_0 = 0$).")
    D.step("computation", "One SGD step applied to the hypothesis.", _lhs("A_{t+1}", "A_{t+1}"), A_n)
    D.step("computation", "", _lhs("B_{t+1}", "B_{t+1}"), B_n)
    D.check("induction: A_{t+1} − A₀ has only γ_r^≥2 terms",
            sp.Integer(min(by_gamma_power(A_n - A0))), 2)
    bB = by_gamma_power(B_n)
    D.check("induction: B_{t+1} has only odd γ_r powers ≥ 1", sp.Integer(all(k % 2 == 1 for k in bB)), 1)
    D.check("induction: γ_r¹ part of B_{t+1} = γ_r (Q_t − η v xᵀ A₀ᵀ)", bB[1],
            gamma * (Qm - eta * v * _TRANSPOSE[x] * _TRANSPOSE[A0]))
    Mm, Nm = _matrix("M", d, d, "M"), _matrix("N", d_out, d, "N")
    A_s = sp.expand(A0 * Mm - eta * gamma * transpose(Nm * _TRANSPOSE[A0]) * v * _TRANSPOSE[x])
    B_s = sp.expand(Nm * _TRANSPOSE[A0] - eta * gamma * v * _TRANSPOSE[x] * transpose(A0 * Mm))
    D.check("induction: A_t = A₀ M_t ⇒ every word of A_{t+1} starts with A₀ (and contains no other A₀)",
            sp.Tuple(*sorted({(w[0] == A0, sum(l in (A0, _TRANSPOSE[A0]) for l in w)) for _, w in _terms(A_s)})),
            sp.Tuple((True, 1)))
    D.check("induction: B_t = N_t A₀ᵀ ⇒ every word of B_{t+1} ends with A₀ᵀ (and contains no other A₀)",
            sp.Tuple(*sorted({(w[-1] == _TRANSPOSE[A0], sum(l in (A0, _TRANSPOSE[A0]) for l in w)) for _, w in _terms(B_s)})),
            sp.Tuple((True, 1)))
    D.step("result", r"So $Q_n = -\eta\sum_{k<n} v_k x_k^\top A_0^\top + O(\gamma_r^2)$ by induction: the leading "
           r"order of $B_n$ only ever sees $A_0$.")
    for n in TRAJECTORY_STEPS:
        A_n, B_n = sgd_trajectory(n)
        lead_B = -eta * gamma * sp.Add(*[vector(f"v{k}") * _TRANSPOSE[vector(f"x{k}")] for k in range(n)]) * _TRANSPOSE[A0]
        D.check(f"n={n}: γ_r¹ part of B_n = −η γ_r Σ_k v_k x_kᵀ A₀ᵀ (exact recursion)", by_gamma_power(B_n)[1],
                sp.expand(lead_B))
        D.check(f"n={n}: B_n − leading has no γ_r² term and starts at γ_r³ or later",
                sp.Integer(min([k for k in by_gamma_power(B_n) if k > 1], default=3) >= 3), 1)
        out = sp.expand(gamma * B_n * A_n * _xp())
        a_counts = {sum(1 for x in w if x in (A0, _TRANSPOSE[A0])) for _, w in _terms(out)}
        D.check(f"n={n}: every word of γ_r B_n A_n x′ contains A₀ exactly twice (A_n = A₀ M_n, B_n = N_n A₀ᵀ), "
                "so no expected term grows faster than r", sp.Tuple(*sorted(a_counts)), sp.Tuple(2))
        parts = by_gamma_power(out)
        lead = expect_nc(parts[2])
        D.check(f"n={n}: E[γ_r² part of γ_r B_n A_n x′] = −η γ_r² r σ_A² Σ_k (x_k·x′) v_k[i]", lead,
                -eta * gamma**2 * r * sigma_A**2 * sp.Add(*[_dot(f"x{k}", "xp") * _component(f"v{k}") for k in range(n)]))
        orders = _remainder_orders(out)
        D.check(f"n={n}: every remainder term γ_r^a r^s has a − 2s ≥ 2, i.e. is O(γ_r² (γ_r² r)^s)",
                sp.Integer(all(a - 2 * s >= 2 for a, s in orders)), 1)
        if n == max(TRAJECTORY_STEPS):
            D.step("computation", f"Exact recursion for n = {n}: expected learned output, leading part.",
                   _lhs(f"E[γ_r B_{n} A_{n} x′]_lead", rf"\mathbb{{E}}[\gamma_r B_{n} A_{n} x']_{{\gamma_r^2}}"), lead)
            D.step("computation", f"Orders (a, s) of the expected remainder terms γ_r^a r^s for n = {n}.",
                   _lhs("(a, s)", "(a, s)"), sp.Tuple(*[sp.Tuple(a, s) for a, s in orders]))
            D.check(f"n={n}: the remainder is non-zero (so γ_r → 0 is really needed)", sp.Integer(len(orders) > 0), 1)
    D.step("computation", r"Structure (induction step checked with opaque $M_t, N_t$): $A_n = A_0 M_n$ and $B_n = N_n A_0^\top$ "
           r"($M_n, N_n$ free of $A_0$), so every word of $\gamma_r B_n A_n x'$ holds exactly one $A_0^\top A_0$ "
           r"and its expectation is at most linear in $r$ ($s = 1$).")
    D.step("result", r"The remainder terms are $\gamma_r^{a-2s}(\gamma_r^2 r)^s$ with $a - 2s \ge 2$: when "
           r"$\gamma_r^2 r = \Theta(1)$ they are $O(\gamma_r^2)$ and vanish only because $\gamma_r \to 0$ "
           r"(the theorem's hypothesis). The learned adapter is $\Theta(\eta\gamma_r^2 r)$ at every step.")
    return D


# --------------------------------------------------------------------------------------------------
# Result 4: backward pass
# --------------------------------------------------------------------------------------------------


def _backward() -> Derivation:
    D = Derivation("backward", 4, "backward pass after training",
                   r"The gradient into the adapter input after $n$ SGD steps is "
                   r"$\mathbb{E}[\gamma_r A_n^\top B_n^\top u] = -\eta\gamma_r^2 r\sigma_A^2\sum_k (v_k\cdot u)\, x_k + "
                   r"O(\gamma_r^2(\gamma_r^2 r)^s)$: $\Theta(\eta\gamma_r^2 r)$.")
    D.step("assumption", r"As in result 3; a later loss sends a $\Theta(1)$ gradient $u$ to the adapter output. The "
           r"gradient with respect to the adapter's input $x$ is $(\gamma_r B_n A_n)^\top u$.")
    u = vector("u")
    means = {}
    for n in (1, 2):
        A_n, B_n = sgd_trajectory(n)
        g = sp.expand(transpose(gamma * B_n * A_n) * u)
        parts = by_gamma_power(g)
        lead = expect_nc(parts[2])
        means[n] = lead
        D.check(f"n={n}: E[γ_r² part of (γ_r B_n A_n)ᵀ u] = −η γ_r² r σ_A² Σ_k (v_k·u) x_k[i]", lead,
                -eta * gamma**2 * r * sigma_A**2 * sp.Add(*[_dot(f"v{k}", "u") * _component(f"x{k}") for k in range(n)]))
        orders = _remainder_orders(g)
        D.check(f"n={n}: every remainder term has a − 2s ≥ 2", sp.Integer(all(a - 2 * s >= 2 for a, s in orders)), 1)
        if n == 1:
            D.step("computation", "After one step (transpose of result 2's learned map).",
                   _lhs("(γ_r B₁ A₁)ᵀ u", r"(\gamma_r B_1 A_1)^\top u"), g)
            var = sp.expand(expect_nc_square(g) - lead**2)
            D.step("computation", "Pairings give the exact mean and variance of entry i.",
                   _lhs("E[((γ_r B₁ A₁)ᵀ u)_i]", r"\mathbb{E}[((\gamma_r B_1 A_1)^\top u)_i]"), lead)
            D.step("computation", "", _lhs("Var(((γ_r B₁ A₁)ᵀ u)_i)", r"\mathrm{Var}(((\gamma_r B_1 A_1)^\top u)_i)"),
                   sp.factor(var))
            D.check("n=1: the variance has degree 1 in r (fluctuation O(√r) against the Θ(r) mean)",
                    sp.sympify(_r_degree(var)), 1)
            _check_law(D, "backward", "sgd", lead)
        else:
            D.step("computation", f"After {n} steps (exact recursion), leading part.",
                   _lhs(f"E[(γ_r B_{n} A_{n})ᵀ u]_lead", rf"\mathbb{{E}}[(\gamma_r B_{n} A_{n})^\top u]_{{\gamma_r^2}}"),
                   lead)
    D.step("result", r"The backward signal through the adapter is $\Theta(\eta\gamma_r^2 r)$ — the same factor as the "
           r"forward pass, so condition (2) of Definition 3.1 holds iff $\gamma_r^2 r = \Theta(1)$.")
    return D


# --------------------------------------------------------------------------------------------------
# Result 7: Adam / sign descent (before 5 and 6, which use its factor)
# --------------------------------------------------------------------------------------------------


@cache
def sign_step_moments() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(per-row E[sign(U) W], per-row Var, E[Σ_j sign(U_j) W_j]) for U = a·x, W = a·x′, a ~ N(0, σ_A² I).

    The learned output after Adam's first step is −η γ_r sign(v_i) Σ_j sign(U_j) W_j.
    """
    nx2, nxp2, dxx = _dot("x", "x"), _dot("xp", "xp"), _dot("x", "xp")
    s_u = sigma_A * sp.sqrt(nx2)                       # sd of U
    z = sp.Symbol("z", real=True)
    abs_mean = sp.integrate(sp.Abs(z) * sp.exp(-z**2 / (2 * s_u**2)) / sp.sqrt(2 * sp.pi * s_u**2), (z, -sp.oo, sp.oo))
    beta = dxx / nx2                                   # regression coefficient of W on U: Cov/Var
    row_mean = sp.simplify(beta * abs_mean)            # E[sign(U)(βU + Z)] = β E|U|, Z ⟂ U
    row_second = sigma_A**2 * nxp2                     # E[sign(U)² W²] = E[W²]
    row_var = sp.simplify(row_second - row_mean**2)
    j = sp.Symbol("j", integer=True, positive=True)
    total = sp.Sum(row_mean, (j, 1, r)).doit()
    return row_mean, row_var, total


def adam_stability_factor() -> sp.Expr:
    """γ_r r, *derived*: the mean learned output after one Adam step over −η √(2/π) σ_A (x·x′)/‖x‖ sign(v_i).

    >>> adam_stability_factor()
    gamma_r*r
    """
    _, _, total = sign_step_moments()
    mean = -eta * gamma * total * sp.Symbol("s_v")
    return sp.simplify(mean / (-eta * sp.sqrt(2 / sp.pi) * sigma_A * _dot("x", "xp") / sp.sqrt(_dot("x", "x"))
                              * sp.Symbol("s_v")))


def _adam() -> Derivation:
    D = Derivation("adam", 7, "Adam / sign descent: the stable scaling is Θ(1/r)",
                   r"Adam's first step is sign descent; the learned output is $\Theta(\eta\gamma_r r)$, "
                   r"so update-stability needs $\gamma_r \in \Theta(1/r)$ (beyond the paper's SGD theorem).")
    g = sp.Symbol("g", real=True, nonzero=True)
    b1, b2, eps = sp.symbols("beta_1 beta_2 epsilon", positive=True)
    m_hat = ((1 - b1) * g) / (1 - b1)
    v_hat = ((1 - b2) * g**2) / (1 - b2)
    step = m_hat / (sp.sqrt(v_hat) + eps)
    D.step("assumption", r"Adam from zero moments: $m_1 = (1-\beta_1) g$, $v_1 = (1-\beta_2) g^2$, bias-corrected, "
           r"update $-\eta\,\hat m/(\sqrt{\hat v} + \epsilon)$; the adapter and data are as in result 2.",
           _lhs("Δ/(−η)", r"\Delta/(-\eta)"), step)
    gp, gn = sp.Symbol("g", positive=True), sp.Symbol("g", negative=True)
    D.check("with ε → 0 the first Adam step is −η sign(g) (g > 0)", sp.limit(step, eps, 0).subs(g, gp), 1)
    D.check("with ε → 0 the first Adam step is −η sign(g) (g < 0)", sp.limit(step, eps, 0).subs(g, gn), -1)
    D.step("computation", r"$\nabla_B L = \gamma_r v (Ax)^\top$ and $\gamma_r > 0$, so $\Delta B = -\eta\,"
           r"\mathrm{sign}(v)\,\mathrm{sign}(Ax)^\top$: entries $\pm\eta$ whatever $\gamma_r$ is; then "
           r"$\gamma_r \Delta B A x' = -\eta\gamma_r\,\mathrm{sign}(v)\sum_{j=1}^r \mathrm{sign}(a_j\cdot x)(a_j\cdot x')$.")
    row_mean, row_var, total = sign_step_moments()
    D.step("computation", r"Per row, $U = a\cdot x$ and $W = a\cdot x'$ are jointly Gaussian; $W = \beta U + Z$ with "
           r"$\beta = (x\cdot x')/\lVert x\rVert^2$ and $Z$ independent of $U$, so "
           r"$\mathbb{E}[\mathrm{sign}(U) W] = \beta\,\mathbb{E}|U|$ (integrated by sympy).",
           _lhs("E[sign(U) W]", r"\mathbb{E}[\mathrm{sign}(U)W]"), row_mean)
    D.check("E[sign(U)W] = √(2/π) σ_A (x·x′)/‖x‖", row_mean,
            sp.sqrt(2 / sp.pi) * sigma_A * _dot("x", "xp") / sp.sqrt(_dot("x", "x")))
    D.step("computation", r"Summing the $r$ identically distributed rows.",
           _lhs("E[Σ_j sign(U_j) W_j]", r"\mathbb{E}[\textstyle\sum_j \mathrm{sign}(U_j)W_j]"), total)
    D.step("computation", "The rows are independent, so the variance also adds r times.",
           _lhs("Var(Σ_j sign(U_j) W_j)", r"\mathrm{Var}(\textstyle\sum_j \mathrm{sign}(U_j)W_j)"), sp.expand(r * row_var))
    D.check("the summed mean has degree 1 in r", sp.sympify(_r_degree(total)), 1)
    mean = -eta * gamma * total
    _check_law(D, "forward", "adam", mean)
    D.step("result", r"The learned output after one Adam step is $\Theta(\eta\gamma_r r)$ with $\Theta(\sqrt r)$ "
           r"fluctuations: stable iff $\gamma_r r = \Theta(1)$, i.e. LoRA's $\alpha/r$.",
           _lhs("S_Adam", r"S_{\mathrm{Adam}}"), adam_stability_factor())
    return D


# --------------------------------------------------------------------------------------------------
# Result 5: the iff over power-law-times-log families
# --------------------------------------------------------------------------------------------------

_GRID_P = (sp.Rational(-3, 2), -1, sp.Rational(-3, 4), sp.Rational(-1, 2), sp.Rational(-1, 4), 0, sp.Rational(1, 2))
_GRID_K = (-1, 0, 1)


def _family_exponents(factor: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """(log S, coefficient of log r, coefficient of log log r, c) for γ_r = c r^p (log r)^k."""
    c = sp.Symbol("c", positive=True)
    k = sp.Symbol("k", real=True)
    S = factor.subs(gamma, c * r**P * sp.log(r) ** k)
    logS = sp.expand(sp.expand_log(sp.log(S), force=True))
    return logS, sp.expand(logS.coeff(sp.log(r))), sp.expand(logS.coeff(sp.log(sp.log(r)))), c


def _regime(e_r: sp.Expr, e_l: sp.Expr) -> str:
    if e_r != 0:
        return "blow-up" if e_r > 0 else "collapse"
    if e_l != 0:
        return "blow-up" if e_l > 0 else "collapse"
    return "rank-stabilized"


def _limit_regime(S: sp.Expr) -> str:
    lim = sp.limit(S, r, sp.oo)
    if lim == 0:
        return "collapse"
    if lim in (sp.oo, sp.zoo):
        return "blow-up"
    return "rank-stabilized" if lim.is_positive and lim.is_finite else "indeterminate"


def _iff() -> Derivation:
    D = Derivation("iff", 5, "the iff: γ_r ∈ Θ(1/√r) exactly",
                   r"Over $\gamma_r = c\,r^p(\log r)^k$, $\gamma_r^2 r = \Theta(1)$ iff $(p, k) = (-1/2, 0)$: "
                   r"$\gamma_r \in \Theta(1/\sqrt r)$; every other exponent collapses or blows up. Under Adam: $\Theta(1/r)$.")
    k = sp.Symbol("k", real=True)
    t = sp.Symbol("t", positive=True)
    for opt, factor, claim in (("sgd", sgd_stability_factor(), sp.Rational(-1, 2)),
                               ("adam", adam_stability_factor(), sp.Integer(-1))):
        logS, e_r, e_l, c = _family_exponents(factor)
        D.step("computation", f"{opt.upper()}: the derived stability factor (results 2 and 7) on the family; "
               r"with $t = \log r \to \infty$ it is $\text{const} + e_r t + e_\ell \log t$.",
               _lhs(f"log S_{opt}", rf"\log S_{{\mathrm{{{opt}}}}}"), logS)
        sol = sp.solve([e_r, e_l], [P, k], dict=True)
        D.step("computation", r"Bounded iff both coefficients vanish ($t$ and $\log t$ are different scales): "
               r"solving $e_r = 0$, $e_\ell = 0$.", sp.Tuple(P, k), sp.Tuple(sol[0].get(P, P), sol[0].get(k, k)))
        D.check(f"{opt}: the exponent equations have exactly one solution", sp.Integer(len(sol)), 1)
        D.check(f"{opt}: the solution is p = {claim}", sol[0][P], claim)
        D.check(f"{opt}: the solution is k = 0 (no log factor)", sol[0][k], 0)
        e_pos = sp.Symbol("e", positive=True)
        f = sp.Symbol("f", real=True)
        D.check(f"{opt}: e_r > 0 ⇒ log S → +∞ (blow-up) whatever e_ℓ", sp.limit(e_pos * t + f * sp.log(t), t, sp.oo), sp.oo)
        D.check(f"{opt}: e_r < 0 ⇒ log S → −∞ (collapse) whatever e_ℓ", sp.limit(-e_pos * t + f * sp.log(t), t, sp.oo), -sp.oo)
        D.check(f"{opt}: e_r = 0, e_ℓ ≠ 0 ⇒ log S → ±∞ with the sign of e_ℓ", sp.limit(e_pos * sp.log(t), t, sp.oo), sp.oo)
        rows = []
        agree = True
        for pv in _GRID_P:
            for kv in _GRID_K:
                rule = _regime(e_r.subs(P, pv), e_l.subs(k, kv))
                by_limit = _limit_regime(factor.subs(gamma, r**pv * sp.log(r) ** kv))
                agree &= rule == by_limit
                rows.append((pv, kv, rule))
        D.check(f"{opt}: sympy limits of S on a grid of (p, k) agree with the exponent rule", sp.Integer(agree), 1)
        stable = [(pv, kv) for pv, kv, lab in rows if lab == "rank-stabilized"]
        D.check(f"{opt}: on the grid only (p, k) = ({claim}, 0) is stable", sp.Tuple(*stable[0]) if len(stable) == 1
                else sp.Integer(len(stable)), sp.Tuple(claim, 0))
        D.step("result", rf"{opt.upper()}: stable iff $\gamma_r \in \Theta(r^{{{claim}}})$; collapse below, blow-up above.",
               _lhs(f"γ_r ({opt})", rf"\gamma_r\ ({opt})"), c * r**claim)
        _check_classifier(D, opt, rows)
    return D


def _check_classifier(D: Derivation, optimizer: str, rows: Sequence[tuple[sp.Expr, int, str]]) -> None:
    """Cross-check against the foundation's asymptotic classifier, when the package provides one."""
    import rsstab

    check = getattr(rsstab, "check", None)
    if check is None:
        D.step("computation", f"(rsstab.check is not available in this install: the {optimizer} classifier "
               "cross-check was skipped.)")
        return
    mismatches = 0
    for pv, kv, label in rows:
        text = f"r**({pv})" + (f"*log(r)**({kv})" if kv else "")
        verdict = check(text, optimizer)
        mismatches += verdict.label != label
    D.check(f"{optimizer}: rsstab.check agrees with the derived regime on every grid point",
            sp.Integer(mismatches), 0)


# --------------------------------------------------------------------------------------------------
# Result 6: depth
# --------------------------------------------------------------------------------------------------

DEPTHS = (1, 2, 3, 4)


def _depth_words(L: int, backward: bool) -> list[int]:
    """Number of adapter factors Δ in each word of Π(W_ℓ + Δ_ℓ) − Π W_ℓ (or its transpose)."""
    Ws = [_matrix(f"W{l}", d, d, f"W_{{{l}}}") for l in range(1, L + 1)]
    Ds = [_matrix(f"D{l}", d, d, rf"\Delta_{{{l}}}") for l in range(1, L + 1)]
    prod = sp.Integer(1)
    for W, Dm in zip(Ws, Ds):  # layer 1 acts first: h_L = (W_L + Δ_L) ⋯ (W_1 + Δ_1) x
        prod = sp.expand((W + Dm) * prod)
    pert = sp.expand(prod - sp.Mul(*reversed(Ws)))
    if backward:
        pert = transpose(pert)
    dset = set(Ds) | {_TRANSPOSE[x] for x in Ds}
    return [sum(1 for x in w if x in dset) for _, w in _terms(pert)]


def _depth() -> Derivation:
    D = Derivation("depth", 6, "depth: composing L adapted layers",
                   r"If each layer's learned adapter is $\Theta(r^e)$ relative to its frozen map, the output "
                   r"perturbation of $L$ layers is $\Theta(r^{L e})$ when $e > 0$, $\Theta(r^{e})$ when $e < 0$ "
                   r"and $\Theta(1)$ when $e = 0$ — forward and backward.")
    D.step("assumption", r"Model: $h_L = (W_L + \Delta_L)\cdots(W_1 + \Delta_1)x$ with frozen $W_\ell = \Theta(1)$ and "
           r"$\Delta_\ell = \gamma_r B_\ell A_\ell$. After the first SGD step from $B = 0$ every layer sees "
           r"$\Theta(1)$ inputs $W_{\ell-1}\cdots W_1 x$ and $\Theta(1)$ output gradients, so by result 2 "
           r"$\Delta_\ell = \Theta(r^e)$ with $e$ the exponent of $S$; orders multiply along a word "
           r"(no cancellation between words — generic alignment).")
    epos, eneg = sp.Symbol("e", positive=True), sp.Symbol("e", negative=True)
    table = []
    for L in DEPTHS:
        fw, bw = _depth_words(L, False), _depth_words(L, True)
        D.check(f"L={L}: forward and backward perturbations have the same Δ-counts", sp.Tuple(*sorted(fw)),
                sp.Tuple(*sorted(bw)))
        D.check(f"L={L}: the perturbation has 2^L − 1 words", sp.Integer(len(fw)), 2**L - 1)
        up = sp.Max(*[m * epos for m in fw])
        down = sp.Max(*[m * eneg for m in fw])
        zero = sp.Max(*[m * 0 for m in fw])
        D.check(f"L={L}: e > 0 ⇒ exponent L·e (blow-up compounds)", up, L * epos)
        D.check(f"L={L}: e < 0 ⇒ exponent e (the one-adapter words dominate)", down, eneg)
        D.check(f"L={L}: e = 0 ⇒ exponent 0 (stable at every depth)", zero, 0)
        table.append(fw)
    D.step("computation", r"Expanding the product gives $2^L - 1$ perturbation words; a word with $m$ adapter factors "
           r"is $\Theta(r^{m e})$, so the exponent is $\max_m m e$ over the words. Counts of $\Delta$ per word, "
           r"$L = 1..4$:", _lhs("#Δ per word", r"\#\Delta\text{ per word}"),
           sp.Tuple(*[sp.Tuple(*sorted(w)) for w in table]))
    D.step("computation", r"The backward pass multiplies by $(W_\ell + \Delta_\ell)^\top$ in reverse order: the same "
           r"words transposed, hence the same exponents.")
    ps = (sp.Integer(-1), sp.Rational(-1, 2), sp.Integer(0))
    for opt, factor in (("sgd", sgd_stability_factor()), ("adam", adam_stability_factor())):
        e_opt = _r_exponent(factor)
        rows = []
        for pv in ps:
            ev = e_opt.subs(P, pv)
            rows.append([max(m * ev for m in _depth_words(L, False)) for L in DEPTHS])
        D.step("result", f"{opt.upper()}: ${'e = ' + sp.latex(e_opt)}$ (exponent of S with $\\gamma_r = r^p$); exponent of "
               f"the $L$-layer perturbation for $p = {', '.join(map(str, ps))}$ (rows) and "
               f"$L = {', '.join(map(str, DEPTHS))}$ (columns).",
               _lhs(f"exponent ({opt})", rf"\text{{exponent}}\ ({opt})"), sp.Matrix(rows))
        stable_p = sp.solve(e_opt, P)
        D.check(f"{opt}: the only depth-independent Θ(1) exponent is at p = {stable_p}",
                sp.Tuple(*[sp.Integer(int(all(x == 0 for x in row))) for row in rows]),
                sp.Tuple(*[sp.Integer(int(pv in stable_p)) for pv in ps]))
    D.step("result", r"Stability propagates through any depth; blow-up compounds to $r^{L e}$, while collapse stays "
           r"$r^{e}$ (the adapters' total effect vanishes, it does not compound).")
    return D


# --------------------------------------------------------------------------------------------------
# Result 8: SGD reparametrisation identity (the bridge to LoRA+)
# --------------------------------------------------------------------------------------------------


def _matmul(X: list[list[float]], Y: list[list[float]]) -> list[list[float]]:
    return [[sum(a * b for a, b in zip(row, col)) for col in zip(*Y)] for row in X]


def _tr(X: list[list[float]]) -> list[list[float]]:
    return [list(c) for c in zip(*X)]


def _axpy(X: list[list[float]], Y: list[list[float]], c: float) -> list[list[float]]:
    return [[a + c * b for a, b in zip(rx, ry)] for rx, ry in zip(X, Y)]


def reparametrised_trajectories(gamma_value: float = 0.37, eta_value: float = 0.05, steps: int = 25,
                                seed: int = 0, eta_b_scale: float | None = None) -> float:
    """Max |Δ| between (A, γB) trained with (γ, η) and (A, B̃) trained with γ′ = 1, η_A = η, η_B̃ = η γ².

    Plain-Python float64 SGD on a mean-squared loss with fixed random data (no numpy needed).
    ``eta_b_scale`` overrides the factor γ² (a negative control uses 1.0).

    >>> reparametrised_trajectories() < 1e-12
    True
    """
    rng = random.Random(seed)
    n_out, n_r, n_in, n_data = 3, 4, 5, 6
    A_init = [[rng.gauss(0, 1) for _ in range(n_in)] for _ in range(n_r)]
    data = [([[rng.gauss(0, 1)] for _ in range(n_in)], [[rng.gauss(0, 1)] for _ in range(n_out)]) for _ in range(n_data)]
    scale = gamma_value**2 if eta_b_scale is None else eta_b_scale

    def train(g: float, eta_a: float, eta_b: float) -> list[tuple[list[list[float]], list[list[float]]]]:
        A = [row[:] for row in A_init]
        B = [[0.0] * n_r for _ in range(n_out)]
        path = []
        for t in range(steps):
            x, target = data[t % n_data]
            Ax = _matmul(A, x)
            h = [[g * e[0]] for e in _matmul(B, Ax)]
            v = [[a[0] - b[0]] for a, b in zip(h, target)]            # ∂(½‖h − target‖²)/∂h
            grad_B = [[g * e for e in row] for row in _matmul(v, _tr(Ax))]
            grad_A = [[g * e for e in row] for row in _matmul(_matmul(_tr(B), v), _tr(x))]
            A, B = _axpy(A, grad_A, -eta_a), _axpy(B, grad_B, -eta_b)
            path.append((A, [[g * e for e in row] for row in B]))   # (A, B̃ = γ B)
        return path

    one = train(gamma_value, eta_value, eta_value)
    two = train(1.0, eta_value, eta_value * scale)
    return max(abs(a - b) for (A1, B1), (A2, B2) in zip(one, two)
               for M1, M2 in ((A1, A2), (B1, B2)) for r1, r2 in zip(M1, M2) for a, b in zip(r1, r2))


def _reparam() -> Derivation:
    D = Derivation("reparam", 8, "SGD reparametrisation: γ_r is a B-vs-A learning-rate ratio",
                   r"With $\tilde B = \gamma_r B$, SGD on $(A, B)$ with $(\gamma_r, \eta)$ is SGD on $(A, \tilde B)$ "
                   r"with $\gamma = 1$, $\eta_A = \eta$, $\eta_{\tilde B} = \eta\gamma_r^2$ — the bridge to LoRA+.")
    n_out, n_r, n_in = 2, 2, 3
    A = sp.Matrix(n_r, n_in, lambda a, b: sp.Symbol(f"A_{a}{b}"))
    Bt = sp.Matrix(n_out, n_r, lambda a, b: sp.Symbol(f"Bt_{a}{b}"))
    x = sp.Matrix(n_in, 1, lambda a, _: sp.Symbol(f"x_{a}"))
    v = sp.Matrix(n_out, 1, lambda a, _: sp.Symbol(f"v_{a}"))
    B = Bt / gamma
    D.step("assumption", r"SGD on $(A, B)$ with scale $\gamma_r$; write $\tilde B = \gamma_r B$. The output "
           r"$h = \gamma_r B A x = \tilde B A x$ and hence $v = \partial L/\partial h$ do not involve $\gamma_r$ "
           r"given $(A, \tilde B)$. Checked on explicit $2\times 2$, $2\times 3$ symbolic matrices.")
    _gradient_check(D, (n_out, n_r, n_in))
    A_next = A - eta * gamma * B.T * v * x.T
    Bt_next = gamma * (B - eta * gamma * v * x.T * A.T)
    D.check("h = γ_r B A x equals B̃ A x (γ_r-free)", (gamma * B * A * x).diff(gamma), sp.zeros(n_out, 1))
    D.check("A′ = A − η B̃ᵀ v xᵀ: no γ_r left", A_next.diff(gamma), sp.zeros(n_r, n_in))
    eta_b = sp.Symbol("eta_Bt", positive=True)
    D.check("B̃′ = B̃ − (η γ_r²) v xᵀ Aᵀ: with η γ_r² = η_B̃ no γ_r is left",
            Bt_next.subs(eta, eta_b / gamma**2).diff(gamma), sp.zeros(n_out, n_r))
    D.check("B̃′ = B̃ − η γ_r² v xᵀ Aᵀ", Bt_next, Bt - eta * gamma**2 * v * x.T * A.T)
    D.step("computation", r"The updates in the new variables.", _lhs("A′", "A'"),
           _named("A − η·B̃ᵀ·v·xᵀ", r"A - \eta\,\tilde B^\top v x^\top"))
    D.step("computation", "", _lhs("B̃′", r"\tilde B'"), _named("B̃ − η·γ_r²·v·xᵀ·Aᵀ", r"\tilde B - \eta\gamma_r^2\, v x^\top A^\top"))
    diff = reparametrised_trajectories()
    control = reparametrised_trajectories(eta_b_scale=1.0)
    D.step("computation", "Numerical check (float64, 25 SGD steps on a squared loss, γ_r = 0.37, η = 0.05): max |Δ| "
           "between the two trajectories, and for a control run that ignores the γ_r² factor.",
           _lhs("max|Δ| (matched, control)", r"\max|\Delta|\ (\text{matched}, \text{control})"),
           sp.Tuple(sp.Float(diff, 3), sp.Float(control, 3)))
    D.check("the matched trajectories agree to 1e-12", sp.Integer(diff < 1e-12), 1)
    D.check("the control trajectories differ (> 1e-6)", sp.Integer(control > 1e-6), 1)
    D.step("result", r"Under SGD, $\gamma_r$ only sets the learning rate of $\tilde B$ relative to $A$: "
           r"$\eta_{\tilde B}/\eta_A = \gamma_r^2$. rsLoRA ($\gamma_r = \alpha/\sqrt r$) is $\eta_{\tilde B}/\eta_A = "
           r"\alpha^2/r$, LoRA is $\alpha^2/r^2$ — a LoRA+-style ratio, here dictated by the rank.")
    return D


# --------------------------------------------------------------------------------------------------
# Registry, rendering, proofs
# --------------------------------------------------------------------------------------------------

_BUILDERS: dict[str, Callable[[], Derivation]] = {
    "iid": _iid_forward,
    "first-step": _first_step,
    "trajectory": _trajectory,
    "backward": _backward,
    "iff": _iff,
    "depth": _depth,
    "adam": _adam,
    "reparam": _reparam,
}
#: Result keys in issue order.
RESULTS: tuple[str, ...] = tuple(_BUILDERS)
FORMATS = ("text", "markdown", "latex")


def derivation(key: str) -> Derivation:
    """Build one result's derivation (the sympy work happens here)."""
    try:
        builder = _BUILDERS[key]
    except KeyError:
        raise RsstabError(f"unknown result {key!r}: expected one of {', '.join(RESULTS)}") from None
    return builder()


def derivations(keys: Sequence[str] | None = None) -> list[Derivation]:
    """Build several (default: all) derivations in issue order."""
    return [derivation(k) for k in (RESULTS if keys is None else keys)]


_GREEK = {"gamma_r": "γ_r", "eta": "η", "sigma_A": "σ_A", "sigma_B": "σ_B", "sigma_x": "σ_x", "pi": "π",
          "eta_Bt": "η_B̃", "beta_1": "β₁", "beta_2": "β₂", "epsilon": "ε", "oo": "∞"}
_TEX_TEXT = [(r"^\top", "ᵀ"), (r"^{\top}", "ᵀ"), (r"\top", "ᵀ"), (r"\mathbb{E}", "E"), (r"\mathrm{Var}", "Var"), (r"\mathrm{sign}", "sign"), (r"\mathrm{mean}", "mean"),
             (r"\gamma", "γ"), (r"\sigma", "σ"), (r"\eta", "η"), (r"\beta", "β"), (r"\Theta", "Θ"),
             (r"\delta", "δ"), (r"\Delta", "Δ"), (r"\alpha", "α"), (r"\epsilon", "ε"), (r"\ell", "ℓ"),
             (r"\sum", "Σ"), (r"\cdots", "⋯"), (r"\cdot", "·"), (r"\times", "×"), (r"\to", "→"), (r"\infty", "∞"),
             (r"\le", "≤"), (r"\ge", "≥"), (r"\in", "∈"), (r"\partial", "∂"), (r"\lVert", "‖"), (r"\rVert", "‖"),
             (r"\Rightarrow", "⇒"), (r"\pm", "±"), (r"\log", "log"), (r"\textstyle", ""), (r"\tilde B", "B̃"),
             (r"\mathbb{R}", "ℝ"), (r"\sqrt r", "√r"), (r"\,", " "), (r"\nabla", "∇"), (r"\hat m", "m̂"),
             (r"\sqrt{\hat v}", "√v̂"), (r"\max", "max"),
             (r"\ ", " "), ("^2", "²"), ("^3", "³"), ("^4", "⁴"), (r"\text", ""), (r"\frac", "")]


def _tex_to_text(s: str) -> str:
    """Turn the small LaTeX vocabulary of the step sentences into readable Unicode text."""
    for a, b in _TEX_TEXT:
        s = s.replace(a, b)
    s = re.sub(r"\^\{([^{}]*)\}", lambda m: "^" + (m.group(1) if len(m.group(1)) == 1 else f"({m.group(1)})"), s)
    s = s.replace("$", "").replace("{", "").replace("}", "").replace("\\", "")
    return re.sub(r"  +", " ", s)


def _text_expr(e: sp.Expr | str) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, sp.MatrixBase):
        return "[" + "; ".join(", ".join(_text_expr(x) for x in e.row(i)) for i in range(e.rows)) + "]"
    s = sp.sstr(e).replace("**", "^").replace("*", "·")
    return re.sub(r"\b[A-Za-z_][A-Za-z_0-9]*\b", lambda m: _GREEK.get(m.group(0), m.group(0)), s)


def _latex_expr(e: sp.Expr | str) -> str:
    if isinstance(e, str):
        return e
    return sp.latex(e, symbol_names=_LATEX, mat_delim="(")


def _kind_title(kind: str) -> str:
    return {"assumption": "Assumption", "computation": "Computation", "result": "Result"}[kind]


def render(ds: Sequence[Derivation], fmt: str = "text") -> str:
    """Render derivations as ``text`` (terminal), ``markdown`` (GitHub, math in ``$…$``) or ``latex``."""
    if fmt not in FORMATS:
        raise RsstabError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out: list[str] = []
    if fmt == "markdown":
        out += ["# Derivations: why the stable LoRA scale is $1/\\sqrt{r}$ under SGD",
                "", "Generated by `rsstab derive --format markdown` (rsstab.derive.write_markdown); do not edit by hand.",
                "Every identity listed under *Checks* is asserted by the matching script in `proofs/`.", ""]
    elif fmt == "latex":
        out += [r"\section*{Derivations: why the stable LoRA scale is $1/\sqrt{r}$ under SGD}", ""]
    for D in ds:
        if fmt == "text":
            head = f"Result {D.number} [{D.key}]: {D.title}"
            out += [head, "=" * len(head), _tex_to_text(D.statement), ""]
        elif fmt == "markdown":
            out += [f"## {D.number}. {D.title} (`{D.key}`)", "", D.statement, ""]
        else:
            out += [rf"\subsection*{{{D.number}. {_tex_to_text(D.title)}}}", D.statement, r"\begin{enumerate}"]
        for n, s in enumerate(D.steps, 1):
            eq = None
            if s.lhs is not None:
                if fmt == "text":
                    eq = f"{_text_expr(s.lhs)} = {_text_expr(s.rhs)}" if s.rhs is not None else _text_expr(s.lhs)
                else:
                    eq = f"{_latex_expr(s.lhs)} = {_latex_expr(s.rhs)}" if s.rhs is not None else _latex_expr(s.lhs)
            if fmt == "text":
                out.append(f"  {n}. {_kind_title(s.kind)}. {_tex_to_text(s.text)}".rstrip())
                if eq:
                    out.append(f"       {eq}")
            elif fmt == "markdown":
                line = f"{n}. **{_kind_title(s.kind)}.** {s.text}".rstrip()
                out.append(line + (f"\n   $${eq}$$" if eq else ""))
            else:
                out.append(rf"\item \textbf{{{_kind_title(s.kind)}.}} {s.text}" + (f"\n\\[ {eq} \\]" if eq else ""))
        failing = {id(c) for c in D.failures()}
        checks = [(c.statement, id(c) not in failing) for c in D.checks]
        if fmt == "text":
            out.append(f"  Checks ({sum(ok for _, ok in checks)}/{len(checks)} hold):")
            out += [f"    [{'ok' if ok else 'FAIL'}] {st}" for st, ok in checks]
        elif fmt == "markdown":
            summary = (f"<details><summary>Checks: {sum(ok for _, ok in checks)}/{len(checks)} identities hold "
                       f"(<code>python proofs/{_PROOF_FILES[D.key]}</code>)</summary>")
            out += ["", summary, ""]
            out += [f"- {'✅' if ok else '❌'} {st}" for st, ok in checks]
            out += ["", "</details>"]
        else:
            out.append(r"\end{enumerate}")
            out.append(rf"\noindent Checks: {sum(ok for _, ok in checks)}/{len(checks)} identities hold.")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


_PROOF_FILES = {"iid": "iid_forward_variance.py", "first-step": "first_sgd_step.py", "trajectory": "sgd_trajectory.py",
                "backward": "backward_pass.py", "iff": "stability_iff.py", "depth": "depth.py",
                "adam": "adam_sign_descent.py", "reparam": "sgd_reparametrisation.py"}


def write_markdown(path: str | Path = "reports/derivations.md", keys: Sequence[str] | None = None) -> Path:
    """Render all (or some) derivations as GitHub markdown and write them atomically to ``path``."""
    from rsstab.io import atomic_write

    return atomic_write(path, render(derivations(keys), "markdown"))


def run_proof(key: str, stream_out: TextIO | None = None, stream_err: TextIO | None = None) -> int:
    """Build one derivation, print its chain, assert every identity; return 0 or 1 (for ``sys.exit``)."""
    out = sys.stdout if stream_out is None else stream_out
    err = sys.stderr if stream_err is None else stream_err
    try:
        D = derivation(key)
    except RsstabError:
        raise
    except Exception as exc:  # noqa: BLE001 - a derivation that cannot be carried out is a failed proof
        print(f"PROOF FAILED: result {key!r}: the derivation itself broke: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''}", file=err)
        return 1
    print(render([D], "text"), file=out)
    try:
        D.verify()
    except DerivationError as exc:
        print(f"PROOF FAILED: {exc}", file=err)
        return 1
    print(f"proof of result {D.number} ({key}): all {len(D.checks)} identities hold", file=out)
    return 0
