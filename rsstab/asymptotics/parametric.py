"""Parametric orders: exponents linear in real parameters, and the regions where a label holds.

A name other than ``r`` that appears in an exponent of an r-dependent base (``r**(-beta)``,
``log(r)**k``, ``exp(c*log(r))``) is a *parameter*: a real number that changes the order in r.
The order of γ_r is then a list of pieces, each a region of parameter space (a conjunction of
exact linear constraints with rational coefficients) and the exponents ``(a0, a1, a2)`` of
``r^a0 (log r)^a1 (log log r)^a2`` there, linear in the parameters. Regions are split where the
comparison of two exponents changes sign (sums, ``min``, ``max``, and the final comparison with
Θ(1)); whether a region is empty is decided exactly by Fourier–Motzkin elimination over the
rationals. Anything outside this class (an exponent not linear in the parameters, a parameter
inside a log, a factor whose sign depends on them) raises :class:`NotParametric` with the reason,
and the caller reports ``indeterminate``.

>>> from rsstab.schedule import parameters_of, parse
>>> e = parse("alpha/r**beta").expr
>>> parameters_of(e)
('beta',)
>>> [(when(c), lab) for c, lab in labelled_regions(e, 2, 1)]
[('beta < 1/2', 'blow-up'), ('beta = 1/2', 'rank-stabilized'), ('beta > 1/2', 'collapse')]
>>> [(when(c), lab) for c, lab in labelled_regions(e, 2, 1, parse_assumptions(["beta >= 1"]))]
[('beta >= 1', 'collapse')]
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any, TypeVar, overload

import sympy

from rsstab.errors import RsstabError, ScheduleError
from rsstab.schedule import R, parameters_of
from rsstab.vocab import BLOW_UP, COLLAPSE, CONDITIONAL, STABLE, Label, VerdictLabel

__all__ = ["NotParametric", "Constraint", "to_real", "pgrowth", "labelled_regions",
           "feasible", "when", "parse_assumptions", "order_text", "one_label"]

#: ``(L, op)``: the linear form L (in real parameter symbols) and ``op`` in ``>``, ``>=``, ``=``,
#: meaning ``L op 0``.
Constraint = tuple[sympy.Expr, str]
Region = tuple[Constraint, ...]
Triple = tuple[sympy.Expr, sympy.Expr, sympy.Expr]
_V = TypeVar("_V")  # the value of a piece (a label, an order)

MAX_PIECES = 64  # pieces of one parametric order before giving up (no blow-up of case splits)
MAX_ASSUME_LENGTH = 200


class NotParametric(Exception):
    """The expression is outside the class of exponents linear (piecewise) in the parameters."""


def to_real(expr: sympy.Expr, names: Iterable[str]) -> sympy.Expr:
    """``expr`` with the named (positive) constants replaced by real symbols."""
    names = set(names)
    return expr.xreplace({s: sympy.Symbol(s.name, real=True) for s in expr.free_symbols if s.name in names})


def _real(name: str) -> sympy.Symbol:
    return sympy.Symbol(name, real=True)


# --------------------------------------------------------------------------- linear forms


def _linear(e: sympy.Expr, params: Sequence[sympy.Symbol]) -> dict[object, sympy.Rational]:
    """Coefficients of a linear form with rational coefficients (key 1: the constant term)."""
    e = sympy.nsimplify(e, rational=True) if e.has(sympy.Float) else e
    if e.has(R) or not e.free_symbols <= set(params):
        raise NotParametric(f"{e} is not a linear form in the parameters")
    try:
        poly = sympy.Poly(e, *params) if params else None
    except sympy.PolynomialError:
        raise NotParametric(f"{e} is not linear in the parameters") from None
    if poly is None:
        if not e.is_Rational:
            raise NotParametric(f"{e} is not a rational number")
        return {1: sympy.Rational(e)}
    if poly.total_degree() > 1:
        raise NotParametric(f"the exponent {e} is not linear in the parameters")
    out: dict[object, sympy.Rational] = {}
    for monom, coeff in poly.terms():
        if not coeff.is_Rational:
            raise NotParametric(f"the exponent {e} has a coefficient {coeff} that is not rational")
        key = 1 if sum(monom) == 0 else params[monom.index(1)]
        out[key] = sympy.Rational(coeff)
    return out


def _form(c: dict[object, sympy.Rational]) -> sympy.Expr:
    return sum((v if k == 1 else v * k for k, v in c.items()), sympy.Integer(0))


def _fm_feasible(cons: list[tuple[dict[object, sympy.Rational], str]]) -> bool:
    """Fourier–Motzkin over the rationals: is ``{L op 0}`` satisfiable by some real point?"""
    cons = [({k: v for k, v in c.items() if v != 0}, op) for c, op in cons]
    # equalities: solve for one variable and substitute
    while True:
        eq = next(((c, op) for c, op in cons if op == "=" and any(k != 1 for k in c)), None)
        if eq is None:
            break
        c, _ = eq
        x = next(k for k in c if k != 1)
        a = c[x]
        sub = {k: -v / a for k, v in c.items() if k != x}  # x = sub
        new = []
        for d, op in cons:
            if d is c:
                continue
            b = d.get(x, 0)
            nd = {k: v for k, v in d.items() if k != x}
            if b:
                for k, v in sub.items():
                    nd[k] = nd.get(k, 0) + b * v
            new.append(({k: v for k, v in nd.items() if v != 0}, op))
        cons = new
    ineq = []
    for c, op in cons:
        if all(k == 1 for k in c):
            v = c.get(1, 0)
            if (op == "=" and v != 0) or (op == ">" and not v > 0) or (op == ">=" and not v >= 0):
                return False
        else:
            ineq.append((c, op))
    while ineq:
        x = next(k for c, _ in ineq for k in c if k != 1)
        pos = [(c, op) for c, op in ineq if c.get(x, 0) > 0]
        neg = [(c, op) for c, op in ineq if c.get(x, 0) < 0]
        rest = [(c, op) for c, op in ineq if c.get(x, 0) == 0]
        for p, op1 in pos:
            for n, op2 in neg:
                a, b = p[x], -n[x]
                d = {}
                for k in set(p) | set(n):
                    if k != x:
                        d[k] = p.get(k, 0) / a + n.get(k, 0) / b
                rest.append(({k: v for k, v in d.items() if v != 0}, ">" if ">" in (op1, op2) else ">="))
        ineq = []
        for c, op in rest:
            if all(k == 1 for k in c):
                v = c.get(1, 0)
                if (op == ">" and not v > 0) or (op == ">=" and not v >= 0):
                    return False
            else:
                ineq.append((c, op))
    return True


def _coeffs(region: Iterable[Constraint]) -> list[tuple[dict[object, sympy.Rational], str]]:
    out = []
    for L, op in region:
        params = sorted(L.free_symbols, key=lambda s: s.name)
        out.append((_linear(L, params), op))
    return out


def feasible(region: Iterable[Constraint]) -> bool:
    """Whether some real parameter values satisfy every constraint (exactly).

    >>> b = sympy.Symbol("beta", real=True)
    >>> feasible([(b - 1, ">"), (2 - b, ">")]), feasible([(b - 1, ">"), (1 - b, ">=")])
    (True, False)
    """
    return _fm_feasible(_coeffs(region))


def _negations(c: Constraint) -> list[Constraint]:
    L, op = c
    return {">": [(-L, ">=")], ">=": [(-L, ">")], "=": [(L, ">"), (-L, ">")]}[op]


def _implied(region: Region, c: Constraint) -> bool:
    return all(not feasible(region + (n,)) for n in _negations(c))


def _add(region: Region, c: Constraint) -> Region | None:
    """``region ∧ c`` (None when empty; c left out when the region already implies it)."""
    L, op = c
    if not L.free_symbols:
        ok = {">": L > 0, ">=": L >= 0, "=": L == 0}[op]
        return region if ok else None
    if _implied(region, c):
        return region
    new = region + (c,)
    return new if feasible(new) else None


def _sign_split(region: Region, L: sympy.Expr) -> list[tuple[Region, int]]:
    """The sub-regions where L < 0, = 0, > 0 (empty ones left out)."""
    out = []
    for sign, c in ((-1, (-L, ">")), (0, (L, "=")), (1, (L, ">"))):
        sub = _add(region, c)
        if sub is not None:
            out.append((sub, sign))
    return out


def _compare(region: Region, a: Triple, b: Triple) -> list[tuple[Region, int]]:
    """Sub-regions with the lexicographic sign of ``a − b`` (scale of a versus scale of b)."""
    out: list[tuple[Region, int]] = []

    def go(reg: Region, i: int) -> None:
        if i == 3:
            out.append((reg, 0))
            return
        for sub, s in _sign_split(reg, sympy.expand(a[i] - b[i])):
            if s == 0:
                go(sub, i + 1)
            else:
                out.append((sub, s))

    go(region, 0)
    return out


# --------------------------------------------------------------------------- the parametric order

Pieces = list[tuple[Region, Triple]]


def _check_linear(t: Triple, params: Sequence[sympy.Symbol]) -> Triple:
    return tuple(_form(_linear(sympy.expand(x), params)) for x in t)


def pgrowth(expr: sympy.Expr, params: Sequence[sympy.Symbol], region: Region = (),
            constants: dict[str, float] | None = None) -> Pieces:
    """Pieces ``(region, (a0, a1, a2))``: in each region γ ∈ Θ(r^a0 (log r)^a1 (log log r)^a2).

    ``params`` are real symbols; sub-expressions free of them go to :func:`rsstab.asymptotics.growth`
    and must have an exact Θ order. Raises :class:`NotParametric` outside the class.

    >>> from rsstab.schedule import parse
    >>> e = to_real(parse("min(r**(-beta), 1/sqrt(r))").expr, ["beta"])
    >>> [(when(c), t[0]) for c, t in pgrowth(e, sorted(e.free_symbols - {R}, key=str))]
    [('beta > 1/2', -beta), ('beta = 1/2', -1/2), ('beta < 1/2', -1/2)]
    """
    pieces = _pg(expr, tuple(params), region, dict(constants or {}))
    if len(pieces) > MAX_PIECES:
        raise NotParametric(f"more than {MAX_PIECES} regions")
    return pieces


def _delegate(expr: sympy.Expr, constants: dict[str, float]) -> Triple:
    from rsstab.asymptotics import growth

    try:
        g = growth(expr, constants)
    except ScheduleError as exc:
        raise NotParametric(f"{expr}: {exc}") from None
    if not g.exact or g.strict:
        raise NotParametric(f"{expr} has no exact order ({g})")
    a = tuple(sympy.nsimplify(x, rational=True) if x.is_Float else x for x in g.upper.a)
    if any(x.is_infinite or not x.is_Rational for x in a):
        raise NotParametric(f"{expr} is {g}, not a power of r, log r and log log r with rational exponents")
    return a


def _positive(expr: sympy.Expr, params: tuple[sympy.Symbol, ...], region: Region) -> bool:
    """Whether an r-free factor is positive in the whole region (products and powers of positive
    factors; linear forms the region keeps positive)."""
    if expr.is_positive:
        return True
    if isinstance(expr, sympy.Mul):
        return all(_positive(a, params, region) for a in expr.args)
    if isinstance(expr, sympy.Pow) and expr.exp.is_real is not False:
        return _positive(expr.base, params, region)
    try:
        lin = _form(_linear(expr, params))
    except NotParametric:
        return False
    return _implied(region, (lin, ">"))


def _pg(expr: sympy.Expr, params: tuple[sympy.Symbol, ...], region: Region, constants: dict[str, float]) -> Pieces:
    pset = set(params)
    if not (expr.free_symbols & pset):
        return [(region, _delegate(expr, constants))]
    zero = (sympy.Integer(0),) * 3
    if not expr.has(R):
        if _positive(expr, params, region):
            return [(region, zero)]
        raise NotParametric(f"the factor {expr} may not be positive for every admissible value of the "
                            "parameters (add an assumption)")
    if isinstance(expr, sympy.Mul):
        out: Pieces = [(region, zero)]
        for arg in expr.args:
            new: Pieces = []
            for reg, t in out:
                for reg2, t2 in _pg(arg, params, reg, constants):
                    new.append((reg2, tuple(sympy.expand(x + y) for x, y in zip(t, t2))))
            out = new
            if len(out) > MAX_PIECES:
                raise NotParametric(f"more than {MAX_PIECES} regions")
        return out
    if isinstance(expr, sympy.Pow):
        base, ex = expr.args
        if ex.has(R):
            raise NotParametric(f"the exponent {ex} depends on both r and the parameters")
        if not base.has(R):
            raise NotParametric(f"{expr} is not a factor the parametric analysis handles")
        out = []
        for reg, t in _pg(base, params, region, constants):
            out.append((reg, _check_linear(tuple(x * ex for x in t), params)))
        return out
    if isinstance(expr, sympy.exp):
        t0, t1, t2 = sympy.Integer(0), sympy.Integer(0), sympy.Integer(0)
        for term in sympy.Add.make_args(sympy.expand(expr.args[0])):
            coeff, rest = term.as_independent(R, as_Add=False)
            if rest == sympy.log(R):
                t0 += coeff
            elif rest == sympy.log(sympy.log(R)):
                t2 += coeff
            elif not term.has(R):
                continue  # e^(constant): a positive constant factor
            else:
                raise NotParametric(f"exp({expr.args[0]}): the term {term} is not c·log(r) or c·log(log(r))")
        return [(region, _check_linear((t0, t1, t2), params))]
    if isinstance(expr, (sympy.Add, sympy.Max, sympy.Min)):
        sign = -1 if isinstance(expr, sympy.Min) else 1
        out = [(region, None)]  # type: ignore[list-item]
        for arg in expr.args:
            new = []
            for reg, best in out:
                for reg2, t in _pg(arg, params, reg, constants):
                    if best is None:
                        new.append((reg2, t))
                        continue
                    for reg3, s in _compare(reg2, t, best):
                        new.append((reg3, t if s * sign > 0 else best))
            out = new
            if len(out) > MAX_PIECES:
                raise NotParametric(f"more than {MAX_PIECES} regions")
        return out
    raise NotParametric(f"{type(expr).__name__.lower()}(…) of an expression with parameters is outside the "
                        "parametric class (powers, products, sums, min/max and exp of c·log r)")


# --------------------------------------------------------------------------- labels per region


def labelled_regions(expr: sympy.Expr, k: object, m: object, region: Region = (),
                     names: Sequence[str] | None = None,
                     constants: dict[str, float] | None = None) -> list[tuple[Region, Label]]:
    """Regions and the label of ``γ^k · r^m`` there (Θ(1): rank-stabilized; → 0: collapse; → ∞: blow-up).

    ``m`` may itself be linear in the parameters (a learning rate ``η ∝ r^c``).
    """
    names = parameters_of(expr) if names is None else names
    params = [_real(n) for n in names]
    e = to_real(expr, names)
    kk = sympy.nsimplify(k, rational=True)
    mm = sympy.nsimplify(m, rational=True)
    out = []
    for reg, t in pgrowth(e, params, region, constants):
        q = (sympy.expand(kk * t[0] + mm), kk * t[1], kk * t[2])
        for sub, s in _compare(reg, q, (sympy.Integer(0),) * 3):
            out.append((sub, {-1: COLLAPSE, 0: STABLE, 1: BLOW_UP}[s]))
    return tidy(out)


@overload
def one_label(labels: Sequence[Label]) -> VerdictLabel: ...
@overload
def one_label(labels: Sequence[str]) -> str: ...
def one_label(labels: Sequence[str]) -> str:
    """The label every region has, or ``conditional`` when the regions disagree.

    >>> one_label(["collapse", "collapse"]), one_label(["collapse", "blow-up"])
    ('collapse', 'conditional')
    """
    distinct = list(dict.fromkeys(labels))
    return distinct[0] if len(distinct) == 1 else CONDITIONAL


def merge(pieces: list[tuple[Region, _V]]) -> list[tuple[Region, _V]]:
    """Adjacent pieces with the same value whose regions are equal are merged (keeps order)."""
    out: list[tuple[Region, _V]] = []
    for reg, v in pieces:
        if any(v == w and set(reg) == set(r2) for r2, w in out):
            continue
        out.append((reg, v))
    return out


def _relation(c: Constraint) -> str:
    L, op = c
    params = sorted(L.free_symbols, key=lambda s: s.name)
    coeff = _linear(L, params)
    x = next(p for p in params if coeff.get(p, 0) != 0)
    a = coeff[x]
    rhs = sympy.expand(-_form({k: v for k, v in coeff.items() if k != x}) / a)
    sym = {">": ">", ">=": "≥", "=": "="}[op]
    if a < 0:
        sym = {">": "<", "≥": "≤", "=": "="}[sym]
    return f"{x} {sym} {rhs}".replace("≥", ">=").replace("≤", "<=")


def when(region: Region) -> str:
    """The region as text: ``beta > 1/2 and k = 0``, ``0 < beta < 1/2``; ``all values`` for no constraint."""
    syms = set().union(*(L.free_symbols for L, _ in region)) if region else set()
    if len(region) == 2 and len(syms) == 1 and all(op != "=" for _, op in region):
        (x,) = syms
        lo, lo_c, hi, hi_c = _interval(region, x)
        if lo != -sympy.oo and hi != sympy.oo:
            return f"{lo} {'<=' if lo_c else '<'} {x} {'<=' if hi_c else '<'} {hi}"
    return " and ".join(_relation(c) for c in region) or "all values"


def order_text(t: Triple) -> str:
    """``Θ(r^(1 - 2*beta))`` for exponents that depend on parameters."""
    parts = []
    for x, base in zip(t, ("r", "log(r)", "log(log(r))")):
        if x == 0:
            continue
        parts.append(base if x == 1 else f"{base}^{x}" if x.is_Rational else f"{base}^({x})")
    return f"Θ({' · '.join(parts) or '1'})"


# --------------------------------------------------------------------------- assumptions


_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "="}


def _lin_ast(node: ast.AST, names: set[str], depth: int = 0) -> sympy.Expr:
    if depth > 20:
        raise RsstabError("assumption: the expression is nested too deeply", parameter="assume")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        if isinstance(node.value, int) and abs(node.value) > 10**30:
            raise RsstabError("assumption: number too large", parameter="assume")
        return sympy.Rational(str(node.value))
    if isinstance(node, ast.Name):
        if node.id == "r" or node.id not in names:
            known = ", ".join(sorted(names)) or "none"
            raise RsstabError(f"assumption: {node.id!r} is not a parameter of the schedule (parameters: {known})",
                              parameter="assume")
        return _real(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _lin_ast(node.operand, names, depth + 1)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        a, b = _lin_ast(node.left, names, depth + 1), _lin_ast(node.right, names, depth + 1)
        if isinstance(node.op, ast.Add):
            return a + b
        if isinstance(node.op, ast.Sub):
            return a - b
        if isinstance(node.op, ast.Mult):
            if a.free_symbols and b.free_symbols:
                raise RsstabError("assumptions are linear (in)equalities only", parameter="assume")
            return a * b
        if b.free_symbols or b == 0:
            raise RsstabError("assumption: divide by nonzero numbers only", parameter="assume")
        return a / b
    raise RsstabError("assumptions are linear (in)equalities in the parameters, such as "
                      "\"beta > 0\" or \"0 <= c - beta <= 1/2\"", parameter="assume")


def parse_assumptions(items: Iterable[str], names: Iterable[str] | None = None) -> Region:
    """Linear (in)equalities (``"beta > 0"``, ``"0 < beta <= 1"``, comma-separated or repeated)
    as constraints, parsed by a whitelist (nothing is evaluated). ``names``: the parameters allowed
    (default: any name but r).

    >>> [when((c,)) for c in parse_assumptions(["0 < beta <= 1, c = 2*beta"])]
    ['beta > 0', 'beta <= 1', 'beta = c/2']
    >>> parse_assumptions(["beta**2 > 1"])
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: assumptions are linear (in)equalities in the parameters, such as "beta > 0" or "0 <= c - beta <= 1/2"
    """
    out: list[Constraint] = []
    for item in items:
        if not isinstance(item, str) or len(item) > MAX_ASSUME_LENGTH:
            raise RsstabError(f"assumption: expected text of at most {MAX_ASSUME_LENGTH} characters",
                              parameter="assume")
        for part in item.replace("==", "=").replace("≤", "<=").replace("≥", ">=").replace("−", "-").split(","):
            part = part.strip()
            if not part:
                continue
            src = part.replace("<=", "\0le").replace(">=", "\0ge").replace("=", "==")
            src = src.replace("\0le", "<=").replace("\0ge", ">=")
            try:
                tree = ast.parse(src, mode="eval").body
            except SyntaxError:
                raise RsstabError(f"assumption: cannot read {part!r}", parameter="assume") from None
            if not isinstance(tree, ast.Compare):
                raise RsstabError(f"assumption: {part!r} is not an (in)equality", parameter="assume")
            allowed = None
            if names is not None:
                allowed = set(names)
            else:
                allowed = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            terms = [_lin_ast(n, allowed) for n in (tree.left, *tree.comparators)]
            for (a, b), op in zip(zip(terms, terms[1:]), tree.ops):
                sym = _CMP.get(type(op))
                if sym is None:
                    raise RsstabError(f"assumption: use <, <=, >, >= or = in {part!r}", parameter="assume")
                L = sympy.expand(a - b)
                c = {"<": (-L, ">"), "<=": (-L, ">="), ">": (L, ">"), ">=": (L, ">="), "=": (L, "=")}[sym]
                if not c[0].free_symbols:
                    raise RsstabError(f"assumption: {part!r} names no parameter", parameter="assume")
                out.append(c)
    region = tuple(out)
    if not feasible(region):
        raise RsstabError("assumption: the assumptions contradict each other (no parameter value satisfies all)",
                          parameter="assume")
    return region


def contains(region: Region, values: dict[str, Fraction]) -> bool:
    """Whether the parameter values lie in the region (exact)."""
    subs = {_real(k): sympy.Rational(v.numerator, v.denominator) for k, v in values.items()}
    for L, op in region:
        v = L.xreplace(subs)
        if v.free_symbols:
            raise RsstabError("a value is missing for " + ", ".join(sorted(map(str, v.free_symbols))))
        if not {">": v > 0, ">=": v >= 0, "=": v == 0}[op]:
            return False
    return True


# --------------------------------------------------------------------------- tidy regions


def simplify_region(region: Region) -> Region:
    """Drop every constraint the others imply (``beta > 1/2 and beta > 1`` → ``beta > 1``)."""
    cons = list(region)
    i = 0
    while i < len(cons):
        others = tuple(cons[:i] + cons[i + 1:])
        if _implied(others, cons[i]):
            del cons[i]
        else:
            i += 1
    return tuple(cons)


def _interval(region: Region, x: sympy.Symbol) -> tuple[object, bool, object, bool]:
    lo, lo_c, hi, hi_c = -sympy.oo, False, sympy.oo, False
    for L, op in region:
        c = _linear(L, [x])
        a, b = c.get(x, 0), c.get(1, 0)
        v = -b / a
        if op == "=":
            lo, lo_c, hi, hi_c = v, True, v, True
            continue
        closed = op == ">="
        if a > 0 and (v > lo or (v == lo and not closed)):
            lo, lo_c = v, closed
        elif a < 0 and (v < hi or (v == hi and not closed)):
            hi, hi_c = v, closed
    return lo, lo_c, hi, hi_c


def _from_interval(x: sympy.Symbol, lo: object, lo_c: bool, hi: object, hi_c: bool) -> Region:
    if lo == hi:
        return ((x - lo, "="),)
    out: list[Constraint] = []
    if lo != -sympy.oo:
        out.append((x - lo, ">=" if lo_c else ">"))
    if hi != sympy.oo:
        out.append((hi - x, ">=" if hi_c else ">"))
    return tuple(out)


def tidy(pieces: list[tuple[Region, _V]]) -> list[tuple[Region, _V]]:
    """Simplified regions; with one parameter, the intervals of each value merged and sorted.

    >>> b = sympy.Symbol("beta", real=True)
    >>> [(when(r), v) for r, v in tidy([(((b - 1, ">"),), "c"), (((b - 1, "="),), "c"), (((1 - b, ">"),), "s")])]
    [('beta < 1', 's'), ('beta >= 1', 'c')]
    """
    pieces = [(simplify_region(r), v) for r, v in pieces]
    syms = set().union(*(L.free_symbols for r, _ in pieces for L, _ in r)) if pieces else set()
    if len(syms) != 1:
        return merge(pieces)
    (x,) = syms
    ivs = sorted(((_interval(r, x), v) for r, v in pieces),
                 key=lambda t: (t[0][0], not t[0][1]))
    out: list[list[Any]] = []  # [lo, lo_c, hi, hi_c, value], merged in place
    for (lo, lo_c, hi, hi_c), v in ivs:
        if out and out[-1][4] == v and out[-1][2] == lo and (out[-1][3] or lo_c):
            out[-1][2], out[-1][3] = hi, hi_c
        else:
            out.append([lo, lo_c, hi, hi_c, v])
    return [(_from_interval(x, *iv[:4]), iv[4]) for iv in out]
