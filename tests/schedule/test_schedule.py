"""The safe parser: accepted spellings, precise refusals, no evaluation of user text."""

from __future__ import annotations

import builtins
import math
import time

import pytest
import sympy

from rsstab.errors import ScheduleError
from rsstab.schedule import R, as_schedule, from_callable, parse

ALPHA = sympy.Symbol("alpha", positive=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("alpha/r**0.5", ALPHA / sympy.sqrt(R)),
        ("alpha/r^0.5", ALPHA / sympy.sqrt(R)),
        ("alpha * r ** (-1/2)", ALPHA / sympy.sqrt(R)),
        ("16/sqrt(r)", 16 / sympy.sqrt(R)),
        ("lora_alpha*log(r)/r", sympy.Symbol("lora_alpha", positive=True) * sympy.log(R) / R),
        ("max(1/r, 1/sqrt(r))", sympy.Max(1 / R, 1 / sympy.sqrt(R))),
        ("floor(sqrt(r))/r", sympy.floor(sympy.sqrt(R)) / R),
        ("ceil(r/3)", sympy.ceiling(R / 3)),
        ("cbrt(r)", R ** sympy.Rational(1, 3)),
        ("log(r, 2)", sympy.log(R) / sympy.log(2)),
        ("exp(-r) + e + pi", sympy.exp(-R) + sympy.E + sympy.pi),
        ("abs(sin(r)) + tanh(r) + atan(r) + cos(r) + tan(1/r) + min(r, 2, 3)",
         sympy.Abs(sympy.sin(R)) + sympy.tanh(R) + sympy.atan(R) + sympy.cos(R) + sympy.tan(1 / R)
         + sympy.Min(R, 2)),
        ("2^3^2", sympy.Integer(2) ** 9),  # ^ is power, right-associative like **
        ("2*r^2", 2 * R**2),  # ^ binds tighter than * (it is not Python's xor)
        ("r**-0.5001", R ** sympy.Rational(-5001, 10000)),  # decimals are exact rationals
    ],
)
def test_accepts_documented_spellings(text: str, expected: sympy.Expr) -> None:
    assert sympy.simplify(parse(text).expr - expected) == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty expression"),
        ("1/", "syntax error"),
        ("foo(r)", "unknown function 'foo'"),
        ("r.real", "attribute access"),
        ("sqrt.__call__(r)", "attribute access"),
        ("(1/r)(2)", "only calls of plain function names"),
        ("r(2)", "unknown function 'r'"),
        ("__import__(os)", "names starting with '_'"),
        ("__builtins__", "names starting with '_'"),
        ("'r'", "strings are not allowed"),
        ("lambda: r", "lambdas are not allowed"),
        ("[r for r in r]", "comprehensions are not allowed"),
        ("r if r else 1", "conditional expressions"),
        ("r < 1", "comparisons"),
        ("r[0]", "indexing"),
        ("sqrt(r, 2)", "takes 1 argument"),
        ("log(r, 2, 3)", "takes 1 or 2 argument"),
        ("sqrt(x=r)", "keyword"),
        ("r % 2", "operator % is not allowed"),
        ("r // 2", "operator // is not allowed"),
        ("9**9**9**9", "out of range"),
        ("2**(2**100)", "out of range"),
        ("10**400", "out of range"),
        ("1e999", "overflows"),
        ("(" * 10_000 + "r" + ")" * 10_000, "too long"),
        ("(" * 60 + "r" + ")" * 60, "nested too deeply"),
        ("*".join(["(" + "+".join(["r"] * 30) + ")"] * 16), "too large"),  # 1919 syntax nodes
        ("+".join(["r"] * 200), "nested too deeply"),
        ("nan", "NaN, infinity"),
        ("inf", "NaN, infinity"),
        ("1/0", "division by zero"),
        ("0**-1", "division by zero"),
        ("r - r", "identically zero"),
        ("0", "identically zero"),
        ("sqrt(-r)", "not real"),
        # Found by the fuzz test on a fresh clone: sympy's Min raised ValueError ("not comparable").
        ("min(cbrt(-(r**-0.5)), (-(r))-(r**-0.5), (r)+(r))", "min() is undefined for these arguments"),
        ("max(cbrt(-r), r)", "fractional power of a negative value"),
        ("sqrt", "used without arguments"),
        ("r\x00", "non-printable"),
        ("1j*r", "complex literals are not allowed"),
        ("True", "bool literals are not allowed"),
    ],
)
def test_refuses_with_precise_one_line_message(text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ScheduleError) as info:
        parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 2.0  # a hang guard, not a performance test


def test_never_evaluates_user_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("user text reached an evaluator")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sympy, "sympify", forbidden)
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", forbidden)
    for text in ["alpha/sqrt(r)", "max(1/r, floor(sqrt(r))/r)", "(2+sin(r))/r^0.5"]:
        parse(text)
    with pytest.raises(ScheduleError):
        parse("__import__(os)")


def test_constants_are_positive_symbols_and_values_substitute() -> None:
    s = parse("alpha*log(r)/beta/r")
    assert s.constants == ("alpha", "beta")
    assert s.value(8, {"alpha": 2.0, "beta": 4.0}) == pytest.approx(2 * math.log(8) / 4 / 8)
    t = s.with_values({"alpha": 16})
    assert t.constants == ("beta",)
    assert t(8) == pytest.approx(16 * math.log(8) / 8)
    with pytest.raises(ScheduleError, match="does not have"):
        s.with_values({"gamma": 1})
    with pytest.raises(ScheduleError, match="positive finite"):
        s.with_values({"alpha": -1})


def test_numeric_values_are_exact_and_overflow_to_inf() -> None:
    assert parse("1/sqrt(r)")(4) == 0.5
    assert parse("floor(sqrt(r))/r")(10) == pytest.approx(0.3)
    assert parse("exp(exp(exp(exp(r))))")(2048) == math.inf
    assert parse("exp(-r)")(10**6) == 0.0


def test_callable_schedules() -> None:
    s = as_schedule(lambda r: 2 / math.sqrt(r))
    assert s.expr is None and s(16) == 0.5
    assert from_callable(math.sqrt, "root").text == "root"
    with pytest.raises(ScheduleError, match="failed at r=4"):
        from_callable(lambda r: math.log(-r))(4)
    with pytest.raises(ScheduleError, match="text or a callable"):
        as_schedule(3)


def test_the_rank_symbol_is_matched_by_equality_not_identity() -> None:
    """Regression: ``expr is R`` failed once sympy's cache had evicted (or a user had cleared)
    the symbol r, so long sessions got "no value for constant 'r'" or "undecided"."""
    import mpmath
    import sympy

    from rsstab.asymptotics import growth
    from rsstab.schedule import evaluate, parse

    sympy.core.cache.clear_cache()
    e = parse("sqrt(r+1) - sqrt(r) - 67/r").expr
    assert float(evaluate(e, mpmath.mpf(17957), {})) > 0
    assert str(growth(parse("r**(-1/2) + 1/r").expr)) == "Θ(r^-1/2)"
