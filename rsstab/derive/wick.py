"""Index sums over random matrices and deterministic vectors, and their exact Gaussian expectations.

The engine is Isserlis' (Wick's) theorem for independent zero-mean Gaussian entries: the expectation
of a product of entries is a sum over pairings of the entries of each random matrix; each pairing
ties index pairs together (a Kronecker δ), and summing the tied indices over their ranges gives a
product of sizes (``Σ_{j=1}^{r} 1 = r``) or, for deterministic vectors, inner products such as
``x·x′``. :func:`brute_force_expectation` is a second, independent route at concrete small sizes.

>>> wick_expectation(forward_sum().power(2), {"B": 1, "A": 1, "x": 1})   # unit variances
d*gamma_r**2*r
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import sympy as sp

from rsstab.derive.symbols import (
    CONTRACTIONS,
    component,
    contraction,
    d,
    dot,
    gamma,
    r,
    vec_text,
)
from rsstab.errors import RsstabError

__all__ = [
    "Factor",
    "IndexSum",
    "brute_force_expectation",
    "contraction_values",
    "explicit",
    "forward_sum",
    "wick_expectation",
]


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
                bases[f.tensor] = sp.IndexedBase(vec_text(f.tensor) if f.tensor.islower() else f.tensor)
            body *= bases[f.tensor][tuple(sp.Symbol(i) for i in f.indices)]
        limits = [(sp.Symbol(n), 1, size) for n, size in self.ranges]
        return self.coeff * (sp.Sum(body, *limits) if limits else body)


def _pairings(items: list[Factor]) -> Iterator[list[tuple[Factor, Factor]]]:
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
        return sp.Mul(*[component(u) for u in vecs])
    sizes = {ranges[m] for m in members}
    if len(sizes) != 1:
        raise RsstabError(f"indices {sorted(members)} are tied together but range over {sorted(map(str, sizes))}")
    (size,) = sizes
    if not vecs:
        return _free_index_sum(size)
    if len(vecs) == 2:
        return dot(*vecs)
    return contraction(vecs)


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
    compared with the engine's answer via :func:`explicit`.
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


def explicit(expr: sp.Expr, s: IndexSum, sizes: Mapping[sp.Symbol, int]) -> sp.Expr:
    """Replace contraction symbols by explicit entry sums at concrete sizes (for brute-force checks)."""
    dims: dict[str, int] = {}
    ranges = dict(s.ranges)
    for f in s.factors:
        if len(f.indices) == 1 and f.indices[0] in ranges:
            dims[f.tensor] = int(sp.sympify(ranges[f.indices[0]]).subs(sizes))
    subs: dict[sp.Symbol, sp.Expr] = {}
    for sym in expr.free_symbols:
        if sym not in CONTRACTIONS:
            continue
        kind, vecs = CONTRACTIONS[sym]
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

    >>> xxp, xx = dot("x", "xp"), dot("x", "x")  # registered when first named
    >>> vals = contraction_values({"x": [1.0, 2.0], "xp": [3.0, -1.0]})
    >>> vals[xxp], vals[xx]
    (1.0, 5.0)
    """
    out: dict[sp.Symbol, float] = {}
    for sym, (kind, vecs) in list(CONTRACTIONS.items()):
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
