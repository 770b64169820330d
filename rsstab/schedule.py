"""Safe parsing of γ_r schedules: text → AST whitelist → sympy, never ``eval``.

A schedule is γ_r written as an expression in the rank ``r``; every other name is a positive
constant independent of r (``alpha``, ``lora_alpha``, ...). ``**`` and ``^`` both mean power.
A constant in an exponent of r (``beta`` in ``r**(-beta)``) is a *parameter*: it changes the
order in r (:func:`parameters_of`; :mod:`rsstab.asymptotics.parametric` finds the orders region by region).

>>> s = parse("alpha/r^0.5")
>>> s.expr
alpha/sqrt(r)
>>> s.constants
('alpha',)
>>> round(s(16), 6)
0.25
>>> parse("__import__(os).system(rm)")
Traceback (most recent call last):
...
rsstab.errors.ScheduleError: attribute access is not allowed
"""

from __future__ import annotations

import ast
import functools
import math
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import mpmath
import sympy

from rsstab.errors import ScheduleError

__all__ = ["R", "Schedule", "parse", "parameters_of", "from_callable", "as_schedule", "evaluate", "FUNCTIONS"]

#: The rank symbol. Positive; every other name becomes a positive constant.
R = sympy.Symbol("r", positive=True)

MAX_LENGTH = 1000  # characters
MAX_NESTING = 40  # bracket depth, and AST depth
MAX_NODES = 1500  # AST nodes: room for formulas of ~1000 characters (the time limits bound the work)
MAX_DIGITS = 60  # digits in one numeric literal
MAX_LOG10 = 300  # |log10| of any constant the parser is asked to build

_E = sympy.E


def _log(x: sympy.Expr, base: sympy.Expr | None = None) -> sympy.Expr:
    return sympy.log(x) if base is None else sympy.log(x, base)


def _variadic(cls: type) -> Callable[..., sympy.Expr]:
    def build(*args: sympy.Expr) -> sympy.Expr:
        return cls(*args)

    return build


#: name → (sympy builder, allowed argument counts)
FUNCTIONS: dict[str, tuple[Callable[..., sympy.Expr], tuple[int, ...]]] = {
    "sqrt": (sympy.sqrt, (1,)),
    "cbrt": (lambda x: sympy.Pow(x, sympy.Rational(1, 3)), (1,)),
    "exp": (sympy.exp, (1,)),
    "log": (_log, (1, 2)),
    "ln": (sympy.log, (1,)),
    "log2": (lambda x: sympy.log(x, 2), (1,)),
    "log10": (lambda x: sympy.log(x, 10), (1,)),
    "sin": (sympy.sin, (1,)),
    "cos": (sympy.cos, (1,)),
    "tan": (sympy.tan, (1,)),
    "tanh": (sympy.tanh, (1,)),
    "atan": (sympy.atan, (1,)),
    "abs": (sympy.Abs, (1,)),
    "min": (_variadic(sympy.Min), (2, 3, 4, 5, 6, 7, 8)),
    "max": (_variadic(sympy.Max), (2, 3, 4, 5, 6, 7, 8)),
    "floor": (sympy.floor, (1,)),
    "ceil": (sympy.ceiling, (1,)),
}
_CONSTANTS = {"pi": sympy.pi, "e": _E}
_RESERVED = {"inf", "nan", "oo", "zoo", "I", "j", "infinity", "Infinity", "NaN", "None", "True", "False"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_BINOPS: dict[type[ast.operator], Callable[[sympy.Expr, sympy.Expr], sympy.Expr]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: sympy.Pow(a, b),
}
_FORBIDDEN_WHY = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.NamedExpr: "assignment expressions are not allowed",
    ast.Starred: "starred arguments are not allowed",
    ast.JoinedStr: "strings are not allowed",
    ast.List: "lists are not allowed",
    ast.Tuple: "tuples are not allowed",
    ast.Set: "sets are not allowed",
    ast.Dict: "dicts are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


@dataclass(frozen=True)
class Schedule:
    """A scaling factor γ_r: a sympy expression in :data:`R`, or a numeric callable.

    Attributes:
        text: how the user wrote it (display name).
        expr: the sympy expression, or ``None`` for a callable schedule.
        func: the callable ``f(r) -> float`` for a numeric schedule, else ``None``.
        constants: names of the positive constants in ``expr`` (sorted).
        values: numeric values substituted for constants when evaluating (default 1).
    """

    text: str
    expr: sympy.Expr | None = None
    func: Callable[[float], float] | None = field(default=None, compare=False)
    constants: tuple[str, ...] = ()
    values: tuple[tuple[str, float], ...] = ()

    @property
    def symbolic(self) -> bool:
        return self.expr is not None

    def value(self, r: float, constants: Mapping[str, float] | None = None) -> float:
        """γ at rank ``r`` as a float (constants default to 1, or to :attr:`values`)."""
        if self.func is not None:
            return _call_numeric(self.func, float(r))
        env = {name: 1.0 for name in self.constants}
        env.update(dict(self.values))
        env.update(constants or {})
        with mpmath.workdps(30):
            v = evaluate(self.expr, mpmath.mpf(r), env)
        return _to_float(v)

    def __call__(self, r: float) -> float:
        return self.value(r)

    def with_values(self, values: Mapping[str, float | Fraction]) -> Schedule:
        """Substitute numbers for named constants (``with_values({"alpha": 16})``).

        A :class:`~fractions.Fraction` is substituted exactly (``beta=Fraction(1, 3)`` makes
        ``r**(3*beta - 1)`` exactly Θ(1)); a float as the rational its repr spells. Constants must
        be positive, except parameters (names in an exponent of r), which may be any real number:

        >>> parse("r**(3*beta - 1)").with_values({"beta": Fraction(1, 3)}).expr
        1
        >>> parse("r**(-beta)").with_values({"beta": -1}).expr
        r
        """
        unknown = sorted(set(values) - set(self.constants))
        if unknown:
            raise ScheduleError(f"a value is given for a constant the schedule does not have: {unknown[0]!r}",
                                parameter="constants")
        params = set(parameters_of(self.expr))
        for name, v in values.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, Fraction)) or not math.isfinite(v):
                raise ScheduleError(f"constant {name!r} must be a finite number, got {v!r}", parameter="constants")
            if not v > 0 and name not in params:
                raise ScheduleError(f"constant {name!r} must be a positive finite number, got {v!r}",
                                    parameter="constants")
        subs = {sympy.Symbol(n, positive=True): _exact(v) for n, v in values.items()}
        # a callable schedule has no constants: only with_values({}) gets here, and fails as before
        expr = self.expr.subs(subs)  # type: ignore[union-attr]
        left = tuple(c for c in self.constants if c not in values)
        merged = dict(self.values) | {k: float(v) for k, v in values.items()}
        return Schedule(self.text, expr, None, left, tuple(sorted(merged.items())))


def _exact(v: float | Fraction) -> sympy.Rational:
    if isinstance(v, Fraction):
        return sympy.Rational(v.numerator, v.denominator)
    return sympy.Rational(repr(float(v)))


def _to_float(v: mpmath.mpf | mpmath.mpc) -> float:
    if isinstance(v, mpmath.mpc):
        return math.nan
    try:
        return float(v)
    except (OverflowError, TypeError, ValueError):
        return math.inf if v > 0 else -math.inf


def _call_numeric(func: Callable[[float], float], r: float) -> float:
    try:
        v = func(r)
        return float(v)
    except OverflowError:
        return math.inf
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ScheduleError(f"the callable schedule failed at r={r:g}: {exc}") from None


# --------------------------------------------------------------------------- which names are parameters


@functools.cache
def _logs() -> tuple[sympy.Expr, sympy.Expr]:
    """log r and log log r, built on first need: building log log r makes sympy import its tensor
    and combinatorics modules (≈ 40 ms), which a schedule without ``exp`` never needs."""
    return sympy.log(R), sympy.log(sympy.log(R))


def parameters_of(expr: sympy.Expr) -> tuple[str, ...]:
    """Names (other than r) in an exponent of an r-dependent base, or in ``exp`` of an r-dependent
    argument: they change the order in r. Sorted.

    >>> from rsstab.schedule import parse
    >>> parameters_of(parse("alpha*r**(c - beta)*log(r)**k").expr)
    ('beta', 'c', 'k')
    >>> parameters_of(parse("alpha/sqrt(r)").expr), parameters_of(parse("alpha**r").expr)
    ((), ('alpha',))
    """
    names: set[str] = set()
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow) and node.base.has(R):
            names |= {s.name for s in node.exp.free_symbols if s != R}
        elif isinstance(node, sympy.Pow) and node.exp.has(R):  # alpha**r: grows or decays with alpha
            names |= {s.name for s in node.base.free_symbols}
        elif isinstance(node, sympy.exp) and node.args[0].has(R):
            for term in sympy.Add.make_args(sympy.expand(node.args[0])):
                coeff, rest = term.as_independent(R, as_Add=False)
                if rest in _logs():  # exp(beta*log(r)) = r^beta
                    names |= {s.name for s in coeff.free_symbols}
    return tuple(sorted(names))


# --------------------------------------------------------------------------- parsing


#: ASCII spellings of the symbols people paste from papers (a suggestion only: nothing is rewritten).
_ASCII = {"√": "sqrt", "∛": "cbrt", "·": "*", "×": "*", "−": "-", "–": "-", "⁄": "/", "÷": "/", "²": "**2",
          "³": "**3", "½": "1/2", "π": "pi", "α": "alpha", "β": "beta", "γ": "gamma", "η": "eta", "σ": "sigma",
          "κ": "kappa", "ρ": "rho", "τ": "tau", "ε": "eps", "θ": "theta", "μ": "mu"}


def _ascii_hint(src: str) -> str:
    """``: write α as alpha, √ as sqrt(...)`` for the non-ASCII symbols of ``src`` that have a name.

    >>> _ascii_hint("α/√r")
    ': write α as alpha, √ as sqrt(...)'
    >>> _ascii_hint("r€")
    ''
    """
    seen = [c for c in dict.fromkeys(src) if c in _ASCII]
    if not seen:
        return ""
    return ": write " + ", ".join(f"{c} as {_ASCII[c]}" + ("(...)" if _ASCII[c] in ("sqrt", "cbrt") else "")
                                  for c in seen)


def parse(text: str) -> Schedule:
    """Parse a γ_r expression. Raises :class:`ScheduleError` with a one-line reason.

    >>> parse("16/sqrt(r)").expr
    16/sqrt(r)
    >>> parse("max(1/r, 1/sqrt(r))").expr
    Max(1/r, 1/sqrt(r))
    >>> parse("r.real")
    Traceback (most recent call last):
    ...
    rsstab.errors.ScheduleError: attribute access is not allowed
    """
    if not isinstance(text, str):
        raise ScheduleError(f"a schedule must be text, got {type(text).__name__}")
    src = text.strip()
    if not src:
        raise ScheduleError("empty expression")
    if len(src) > MAX_LENGTH:
        raise ScheduleError(f"expression too long ({len(src)} characters, limit {MAX_LENGTH})")
    if not src.isprintable() or not src.isascii():
        raise ScheduleError("expression contains non-printable or non-ASCII characters" + _ascii_hint(src))
    if any(q in src for q in "'\"`"):
        raise ScheduleError("strings are not allowed")
    _check_nesting(src)
    src = src.replace("^", "**")
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal": we report our own error
            warnings.simplefilter("ignore")
            tree = ast.parse(src, mode="eval")
    except SyntaxError as exc:
        raise ScheduleError(f"syntax error at column {exc.offset or 0}: {exc.msg}") from None
    except (ValueError, MemoryError, RecursionError) as exc:
        raise ScheduleError(f"cannot parse expression: {type(exc).__name__}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ScheduleError(f"expression too large ({nodes} syntax nodes, limit {MAX_NODES})")
    expr = _Builder().build(tree.body, 0)
    _check_result(expr)
    constants = tuple(sorted(s.name for s in expr.free_symbols if s != R))
    return Schedule(text.strip(), expr, None, constants)


def _check_nesting(src: str) -> None:
    depth = 0
    for ch in src:
        if ch in "([{":
            depth += 1
            if depth > MAX_NESTING:
                raise ScheduleError(f"expression nested too deeply (limit {MAX_NESTING} brackets)")
        elif ch in ")]}":
            depth -= 1


class _Builder:
    """Turns a whitelisted AST into sympy, refusing anything else."""

    def build(self, node: ast.AST, depth: int) -> sympy.Expr:
        if depth > MAX_NESTING:
            raise ScheduleError(f"expression nested too deeply (limit {MAX_NESTING})")
        d = depth + 1
        if isinstance(node, ast.Constant):
            return self._constant(node.value)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.build(node.operand, d)
            if isinstance(node.op, ast.UAdd):
                return self.build(node.operand, d)
            raise ScheduleError(f"operator {type(node.op).__name__} is not allowed")
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                raise ScheduleError(f"operator {_op_symbol(node.op)} is not allowed")
            a, b = self.build(node.left, d), self.build(node.right, d)
            if isinstance(node.op, ast.Pow):
                _check_power(a, b)
            if isinstance(node.op, ast.Div) and b == 0:
                raise ScheduleError("division by zero")
            return op(a, b)
        if isinstance(node, ast.Call):
            return self._call(node, d)
        why = _FORBIDDEN_WHY.get(type(node), f"{type(node).__name__} is not allowed in an expression")
        raise ScheduleError(why)

    def _constant(self, value: object) -> sympy.Expr:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            kind = "strings" if isinstance(value, (str, bytes)) else f"{type(value).__name__} literals"
            raise ScheduleError(f"{kind} are not allowed")
        if isinstance(value, int):
            if len(str(abs(value))) > MAX_DIGITS:
                raise ScheduleError(f"number literal too long (limit {MAX_DIGITS} digits)")
            return sympy.Integer(value)
        if not math.isfinite(value):
            raise ScheduleError("number literal overflows")
        # repr gives the shortest decimal that round-trips: exact rational of what was typed.
        return sympy.Rational(repr(value))

    def _name(self, name: str) -> sympy.Expr:
        if name.startswith("_"):
            raise ScheduleError(f"names starting with '_' are not allowed: {name!r}")
        if name == "r":
            return R
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in FUNCTIONS:
            raise ScheduleError(f"function {name!r} used without arguments")
        if name in _RESERVED:
            raise ScheduleError(f"{name!r} is not allowed: NaN, infinity and complex numbers are not schedules")
        if not _NAME.match(name):
            raise ScheduleError(f"invalid name {name!r}")
        return sympy.Symbol(name, positive=True)

    def _call(self, node: ast.Call, depth: int) -> sympy.Expr:
        if isinstance(node.func, ast.Attribute):
            raise ScheduleError(_FORBIDDEN_WHY[ast.Attribute])
        if not isinstance(node.func, ast.Name):
            raise ScheduleError("only calls of plain function names are allowed (e.g. sqrt(r))")
        name = node.func.id
        if name.startswith("_"):
            raise ScheduleError(f"names starting with '_' are not allowed: {name!r}")
        if name not in FUNCTIONS:
            raise ScheduleError(f"unknown function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
        if node.keywords:
            raise ScheduleError(f"{name}() takes no keyword arguments")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ScheduleError("starred arguments are not allowed")
        builder, counts = FUNCTIONS[name]
        if len(node.args) not in counts:
            want = " or ".join(map(str, counts)) if len(counts) < 3 else f"{counts[0]} to {counts[-1]}"
            raise ScheduleError(f"{name}() takes {want} argument(s), got {len(node.args)}")
        args = [self.build(a, depth) for a in node.args]
        for a in args:
            if a.is_number:
                _check_magnitude(a)
        try:
            return builder(*args)
        except (ValueError, TypeError) as exc:  # sympy refuses, e.g. min() of a complex value
            why = " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
            hint = (" (a fractional power of a negative value, like cbrt(-r), is complex)"
                    if name in ("min", "max") else "")
            raise ScheduleError(f"{name}() is undefined for these arguments: {why}{hint}") from None


def _op_symbol(op: ast.operator) -> str:
    return {ast.BitXor: "^", ast.BitAnd: "&", ast.BitOr: "|", ast.Mod: "%", ast.FloorDiv: "//",
            ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@"}.get(type(op), type(op).__name__)


def _log10_abs(x: sympy.Expr) -> float:
    """log10 |x| for a numeric sympy expression, computed without building huge numbers."""
    with mpmath.workdps(20):
        v = evaluate(x, mpmath.mpf(1), {})
        if isinstance(v, mpmath.mpc):
            v = abs(v)
        if not mpmath.isfinite(v):
            return math.inf
        if v == 0:
            return -math.inf
        return float(mpmath.log10(abs(v)))


def _check_magnitude(x: sympy.Expr) -> None:
    m = _log10_abs(x)
    if m > MAX_LOG10 or (m != -math.inf and m < -MAX_LOG10):
        raise ScheduleError(f"constant out of range (|log10| > {MAX_LOG10})")


def _check_power(base: sympy.Expr, exponent: sympy.Expr) -> None:
    """Refuse powers whose exact evaluation would be astronomically large (9**9**9**9)."""
    if exponent.is_number:
        le = _log10_abs(exponent)
        if le > 6:
            raise ScheduleError("exponent out of range (more than 10^6 in size)")
        if base.is_number:
            lb = _log10_abs(base)
            if lb != -math.inf and abs(lb * float(sympy.Abs(exponent).evalf(15))) > MAX_LOG10:
                raise ScheduleError(f"constant out of range (|log10| > {MAX_LOG10})")
            if lb == -math.inf and (exponent.is_negative or exponent == 0):
                raise ScheduleError("division by zero")


def _check_result(expr: sympy.Expr) -> None:
    if expr.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) or expr is sympy.nan:
        raise ScheduleError("expression is undefined (division by zero, NaN or infinity)")
    if expr == 0:
        raise ScheduleError("γ_r is identically zero")
    if expr.has(sympy.I):
        raise ScheduleError("expression is not real")


# --------------------------------------------------------------------------- numeric evaluation

_MP_FUNCS: dict[type, Callable[..., object]] = {
    sympy.exp: mpmath.exp,
    sympy.log: mpmath.log,
    sympy.sin: mpmath.sin,
    sympy.cos: mpmath.cos,
    sympy.tan: mpmath.tan,
    sympy.tanh: mpmath.tanh,
    sympy.atan: mpmath.atan,
    sympy.Abs: abs,
    sympy.floor: mpmath.floor,
    sympy.ceiling: mpmath.ceil,
}
_TRIG_CAP = mpmath.mpf(2) ** 20000  # argument reduction beyond this costs too much
_EXP_CAP = 10**7  # exp(x) with |x| beyond this is returned as +inf / 0 (never builds huge numbers)


def evaluate(expr: sympy.Expr, r: mpmath.mpf, constants: Mapping[str, float]) -> mpmath.mpf:
    """Evaluate a parsed schedule with mpmath at the current precision, without ``eval``.

    Overflowing intermediate results become ``inf``; results that are not real become ``mpc``.

    >>> round(float(evaluate(parse("log(r, 2)/r").expr, mpmath.mpf(8), {})), 12)
    0.375
    """
    if expr == R:  # equality, not identity: a cleared sympy cache makes a new, equal symbol
        return r
    if expr.is_Symbol:
        try:
            return mpmath.mpf(constants[expr.name])
        except KeyError:
            raise ScheduleError(f"no value for constant {expr.name!r}") from None
    if expr.is_Integer or expr.is_Rational:
        return mpmath.mpf(expr.p) / expr.q
    if expr.is_Float:
        return mpmath.mpf(str(expr))
    if expr is sympy.pi:
        return +mpmath.pi
    if expr is sympy.E:
        return +mpmath.e
    args = [evaluate(a, r, constants) for a in expr.args]
    if expr.is_Add:
        return mpmath.fsum(args)
    if expr.is_Mul:
        out = mpmath.mpf(1)
        for a in args:
            out = out * a
        return out
    if expr.is_Pow:
        return _mp_pow(*args)
    if isinstance(expr, (sympy.Min, sympy.Max)):
        real = [a for a in args if not isinstance(a, mpmath.mpc)]
        if len(real) < len(args):
            return mpmath.mpc(mpmath.nan, mpmath.nan)
        return (min if isinstance(expr, sympy.Min) else max)(real)
    func = _MP_FUNCS.get(type(expr))
    if func is None:
        raise ScheduleError(f"cannot evaluate {type(expr).__name__} numerically")
    x = args[0]
    if func is mpmath.exp and not isinstance(x, mpmath.mpc) and abs(x) > _EXP_CAP:
        return mpmath.inf if x > 0 else mpmath.mpf(0)
    if func is mpmath.log and not isinstance(x, mpmath.mpc) and x < 0:
        return mpmath.mpc(mpmath.nan, mpmath.nan)
    if func in (mpmath.sin, mpmath.cos, mpmath.tan) and (not mpmath.isfinite(x) or abs(x) > _TRIG_CAP):
        return mpmath.nan
    return func(x)


def _mp_pow(base: mpmath.mpf, exponent: mpmath.mpf) -> mpmath.mpf:
    if isinstance(base, mpmath.mpc) or isinstance(exponent, mpmath.mpc):
        return mpmath.mpc(mpmath.nan, mpmath.nan)
    if base == 0:
        if exponent < 0:
            raise ScheduleError("γ_r divides by zero")
        return mpmath.mpf(0) if exponent > 0 else mpmath.mpf(1)
    if not (mpmath.isfinite(base) and mpmath.isfinite(exponent)):
        if mpmath.isnan(base) or mpmath.isnan(exponent):
            return mpmath.nan
        return mpmath.exp(min(max(exponent * mpmath.log(abs(base)), -_EXP_CAP - 1), _EXP_CAP + 1)) \
            if base > 0 else mpmath.nan
    if base < 0:
        if exponent == mpmath.floor(exponent):
            sign = -1 if int(exponent) % 2 else 1
            return sign * _mp_pow(-base, exponent)
        return mpmath.mpc(mpmath.nan, mpmath.nan)
    logv = exponent * mpmath.log(base)
    if abs(logv) > _EXP_CAP:
        return mpmath.inf if logv > 0 else mpmath.mpf(0)
    return mpmath.power(base, exponent)


# --------------------------------------------------------------------------- other sources


def from_callable(func: Callable[[float], float], name: str | None = None) -> Schedule:
    """Wrap a Python callable ``f(r) -> float`` (analysed numerically).

    >>> from_callable(lambda r: r ** -0.5, "inv_sqrt")(4)
    0.5
    """
    if not callable(func):
        raise ScheduleError(f"expected a callable, got {type(func).__name__}")
    label = name or getattr(func, "__name__", None) or "callable"
    return Schedule(label, None, func, ())


def as_schedule(obj: str | Callable[[float], float] | Schedule) -> Schedule:
    """Accept text, a callable or a :class:`Schedule`.

    >>> as_schedule("1/r").expr
    1/r
    """
    if isinstance(obj, Schedule):
        return obj
    if isinstance(obj, str):
        return parse(obj)
    if callable(obj):
        return from_callable(obj)
    raise ScheduleError(f"a schedule is text or a callable f(r) -> float, got {type(obj).__name__}")
