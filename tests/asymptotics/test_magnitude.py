"""Interval log-magnitude probes: sound where they decide, undecided (never wrong) elsewhere."""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsstab.asymptotics.magnitude import probe
from rsstab.errors import ScheduleError
from rsstab.schedule import R, evaluate, parse

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ----------------------------------------------------------------------------- random expressions

_small = st.sampled_from([sympy.Integer(1), sympy.Integer(2), sympy.Integer(3), sympy.Integer(7),
                          sympy.Rational(1, 2), sympy.Rational(3, 2), sympy.pi, sympy.E])
_leaf = st.one_of(st.just(R), st.just(R), _small)


def _safe(build):  # type: ignore[no-untyped-def]
    """A builder that returns 1 instead of raising or producing zoo, nan, ±oo or I."""

    def call(*args: sympy.Expr) -> sympy.Expr:
        try:
            e = build(*args)
        except (ValueError, TypeError, ZeroDivisionError):
            return sympy.Integer(1)
        bad = e.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I) or e in (sympy.zoo, sympy.nan)
        return sympy.Integer(1) if bad else e

    return call


def _extend(children: st.SearchStrategy[sympy.Expr]) -> st.SearchStrategy[sympy.Expr]:
    power = st.sampled_from([sympy.Integer(2), sympy.Integer(3), sympy.Integer(-1), sympy.Rational(1, 2),
                             sympy.Rational(-3, 2)])
    funcs = st.sampled_from([sympy.exp, sympy.log, sympy.sqrt, sympy.sin, sympy.cos, sympy.atan, sympy.tanh,
                             sympy.Abs, sympy.floor, sympy.ceiling, lambda x: sympy.exp(-x)])
    return st.one_of(
        st.builds(_safe(lambda a, b: a + b), children, children),
        st.builds(_safe(lambda a, b: a - b), children, children),
        st.builds(_safe(lambda a, b: a * b), children, children),
        st.builds(_safe(lambda a, b: a / b), children, children),
        st.builds(_safe(lambda a, p: a**p), children, power),
        st.builds(_safe(lambda f, a: f(a)), funcs, children),
        st.builds(_safe(sympy.Max), children, children),
        st.builds(_safe(sympy.Min), children, children),
    )


expressions = st.recursive(_leaf, _extend, max_leaves=8).filter(lambda e: e.has(R))


def _reference(expr: sympy.Expr, r: int, bits: int) -> object:
    with mpmath.workprec(bits):
        try:
            return evaluate(expr, mpmath.mpf(r), {})
        except ScheduleError:  # division by zero
            return "undefined"


@SETTINGS
@given(expr=expressions, r=st.sampled_from([1, 2, 3, 5, 8, 13, 100, 256]))
def test_decided_probes_are_sound(expr: sympy.Expr, r: int) -> None:
    """Where a probe decides, plain mpmath at 3000 and 6000 bits (when both agree and nothing
    overflowed) agrees: the sign, and log γ inside the interval."""
    p = probe(expr, r.bit_length(), {}, at=r)
    if not p.decided:
        return
    a, b = _reference(expr, r, 3000), _reference(expr, r, 6000)
    if isinstance(a, str) or isinstance(b, str) or isinstance(a, mpmath.mpc) or isinstance(b, mpmath.mpc):
        return  # undefined or not real for the reference (which has no notion of "positive for large r")
    if not (mpmath.isfinite(a) and mpmath.isfinite(b)) or a == 0 or b == 0:
        return  # the reference overflowed, underflowed or cancelled: it cannot judge
    if abs(a - b) > abs(b) * mpmath.mpf(2) ** -2000:
        return  # the reference itself is not accurate
    if p.status == "positive":
        assert b > 0, (expr, r, p)
        with mpmath.workprec(6000):
            v = mpmath.log(b)
            slack = (1 + abs(v)) * mpmath.mpf(2) ** -1900
            assert p.lo - slack <= v <= p.hi + slack, (expr, r, p, v)
    elif p.status == "negative":
        assert b < 0, (expr, r, p)
    elif p.status == "zero":
        raise AssertionError((expr, r, p, b))  # an exact zero would have given a reference of 0


# ----------------------------------------------------------------------------- overflow never decides

_big = st.sampled_from([R**3, sympy.exp(R), 2**R * R, R**R, sympy.exp(sympy.sqrt(R)), sympy.Rational(4, 3) ** (R**2),
                        sympy.exp(sympy.exp(R)), 2 ** (sympy.Rational(4, 3) ** R)])


def _positive(children: st.SearchStrategy[sympy.Expr]) -> st.SearchStrategy[sympy.Expr]:
    return st.one_of(
        st.builds(_safe(lambda a, b: a + b), children, children),
        st.builds(_safe(lambda a, b: a * b), children, children),
        st.builds(_safe(lambda a, b: a / b), children, children),
        st.builds(_safe(sympy.exp), children),
        st.builds(_safe(lambda a: sympy.exp(-a)), children),
        st.builds(_safe(lambda a, p: a**p), children,
                  st.sampled_from([sympy.Rational(1, 2), sympy.Integer(-2), sympy.Integer(3)])),
        st.builds(_safe(lambda a: sympy.log(1 + a)), children),
        st.builds(_safe(lambda a: sympy.atan(a) + 1), children),
    )


positive_expressions = st.recursive(st.one_of(_big, st.just(R), _small), _positive, max_leaves=6)


@settings(SETTINGS, max_examples=100)
@given(expr=positive_expressions, k=st.sampled_from([8, 64, 512, 4096]))
def test_overflow_and_underflow_never_decide_a_sign(expr: sympy.Expr, k: int) -> None:
    """Expressions positive by construction, with exp of huge arguments everywhere: a probe says
    positive or undecided, never negative, zero, undefined or not real, and never raises."""
    p = probe(expr, k, {}, max_bits=2048)
    assert p.status in ("positive", "undecided"), (expr, k, p)


@pytest.mark.parametrize("text, k, log_value", [
    ("exp(-2*r**2/(1+r))", 64, -2 * (2.0**64) ** 2 / (1 + 2.0**64)),
    ("((1+r)/(1+2*r))**(r**2)", 64, -(2.0**128) * math.log(2)),
    ("sqrt(1+4**(1+r))/2**r", 512, math.log(2)),
    ("exp(exp(r))/exp(exp(r) - 1)", 8, 1.0),  # e^(e^256): far beyond floats
])
def test_probe_values_beyond_floating_point(text: str, k: int, log_value: float) -> None:
    p = probe(parse(text).expr, k, {})
    assert p.status == "positive"
    assert p.log_value == pytest.approx(log_value, rel=1e-6)


@pytest.mark.parametrize("text, status", [
    ("1 - r", "negative"), ("floor(1/r)", "zero"), ("1/floor(1/r)", "undefined"), ("log(1 - r)", "not real"),
    ("exp(r**3) - exp(r**3 + 1/r)", "negative"), ("exp(-r**3) - exp(-r**3 - 1/r)", "positive"),
])
def test_probe_decides_what_is_decided(text: str, status: str) -> None:
    assert probe(parse(text).expr, 64, {}).status == status


def test_exact_values_stay_exact() -> None:
    assert probe(parse("log(sqrt(alpha) - alpha)").expr, 8, {"alpha": 1.0}).status == "undefined"  # log 0
    assert probe(parse("-(-alpha)**(-alpha)").expr, 8, {"alpha": 1.0}).status == "positive"  # (-1)^-1
    assert probe(parse("-(-alpha)**(-alpha)").expr, 8, {"alpha": 0.5}).status == "not real"
    assert probe(parse("ceil(-alpha**alpha)").expr, 8, {"alpha": 1.0}).status == "negative"  # exactly -1
    assert probe(parse("floor(alpha*alpha)*sin(ceil(alpha))").expr, 8, {"alpha": 1.0}).log_value == \
        pytest.approx(math.log(math.sin(1)))


def test_cancellation_beyond_the_cap_is_undecided() -> None:
    p = probe(parse("(2**r*(2+(2+r-2*2**r)/2**r)/(1+r))**(1+r)").expr, 64, {})
    assert (p.status, p.why) == ("undecided", "cancellation in a sum")
    assert math.isnan(p.log_value)
