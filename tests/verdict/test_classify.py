"""The classifier: labels follow from the exponents exactly, per optimizer regime."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsstab import check
from rsstab.verdict.classify import Verdict
from rsstab.errors import RsstabError


def expected_label(p: Fraction, k: int, optimizer: str) -> str:
    """γ = c·r^p·(log r)^k: the stability quantity is γ²r (SGD) or γr (Adam)."""
    a, b = (2 * p + 1, 2 * k) if optimizer == "sgd" else (p + 1, k)
    if a != 0:
        return "blow-up" if a > 0 else "collapse"
    return "blow-up" if b > 0 else "collapse" if b < 0 else "rank-stabilized"


# exponents near the critical ones (−1/2, −1) are over-represented on purpose
exponents = st.one_of(
    st.fractions(min_value=-3, max_value=2, max_denominator=24),
    st.sampled_from([Fraction(-1, 2), Fraction(-1), Fraction(0)]),
    st.integers(-3, 3).map(lambda s: Fraction(-1, 2) + Fraction(s, 10_000)),
)
log_powers = st.integers(-3, 3)
coefficients = st.fractions(min_value=Fraction(1, 50), max_value=100, max_denominator=50)
optimizers = st.sampled_from(["sgd", "adam"])


def spell(c: Fraction, p: Fraction, k: int, style: int) -> str:
    cs = f"({c.numerator}/{c.denominator})"
    ps = f"({p.numerator}/{p.denominator})"
    if style == 0:
        return f"{cs}*r**{ps}*log(r)**({k})"
    if style == 1:
        return f"{cs}*r^{ps}*log(r)^({k})"
    if style == 2:
        return f"{cs}/(r**(-{ps})*log(r)**({-k}))"
    return f"{cs}*exp({ps}*log(r))*exp({k}*log(log(r)))"


@settings(max_examples=60, deadline=None)
@given(coefficients, exponents, log_powers, optimizers, st.integers(0, 3))
def test_label_follows_from_exponents(c: Fraction, p: Fraction, k: int, optimizer: str, style: int) -> None:
    v = check(spell(c, p, k, style), optimizer=optimizer)
    assert v.method == "symbolic"
    assert v.label == expected_label(p, k, optimizer)
    assert v.gamma_exponent == pytest.approx(float(p))


FACTORS = ["(2 + sin(r))", "(3 + cos(r))/2", "(1 + 1/r)", "(2 + sin(r))*(1 + 1/r)"]


@settings(max_examples=40, deadline=None)
@given(exponents, log_powers, optimizers, st.sampled_from(FACTORS))
def test_bounded_positive_factors_never_change_the_label(p: Fraction, k: int, optimizer: str,
                                                         factor: str) -> None:
    base = spell(Fraction(1), p, k, 0)
    assert check(f"{factor}*{base}", optimizer).label == check(base, optimizer).label


EQUIVALENT = [
    ["alpha/r**0.5", "alpha/r^0.5", "alpha/sqrt(r)", "alpha*r**(-1/2)", "alpha*exp(-log(r)/2)",
     "2**(-log(r, 2)/2)*alpha", "max(1/r, 1/sqrt(r))*alpha", "floor(sqrt(r))/r*alpha"],
    ["16/r", "16*r**-1", "16*r^(-1)", "min(1/r, 1/sqrt(r))*16", "exp(-log(r))*16", "ceil(r)/r**2*16"],
    ["1", "alpha", "pi", "e**0", "tanh(r)", "atan(r)", "(2+sin(r))"],
]


@pytest.mark.parametrize("group", EQUIVALENT)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_equivalent_spellings_give_the_same_verdict(group: list[str], optimizer: str) -> None:
    verdicts = [check(s, optimizer) for s in group]
    assert len({(v.label, v.gamma_order, v.stability_order) for v in verdicts}) == 1


@settings(max_examples=25, deadline=None)
@given(coefficients, exponents, log_powers, optimizers)
def test_json_round_trips(c: Fraction, p: Fraction, k: int, optimizer: str) -> None:
    v = check(spell(c, p, k, 0), optimizer)
    assert Verdict.from_dict(json.loads(v.to_json())) == v


@pytest.mark.parametrize(
    "expr, sgd, adam",
    [
        ("alpha", "blow-up", "blow-up"),  # seed table: naive γ = α
        ("alpha/r", "collapse", "rank-stabilized"),  # LoRA
        ("alpha/sqrt(r)", "rank-stabilized", "blow-up"),  # rsLoRA
        ("alpha/r**0.5001", "collapse", "blow-up"),
        ("alpha/r**0.4999", "blow-up", "blow-up"),
        ("log(r)/sqrt(r)", "blow-up", "blow-up"),
        ("1/sqrt(r*log(r))", "collapse", "blow-up"),
        ("r**sin(r)/sqrt(r)", "indeterminate", "indeterminate"),
        ("abs(sin(r))/sqrt(r)", "indeterminate", "indeterminate"),  # liminf 0, limsup Θ(1)
    ],
)
def test_regime_table(expr: str, sgd: str, adam: str) -> None:
    assert check(expr, "sgd").label == sgd
    assert check(expr, "adam").label == adam


def test_reasons_and_notes() -> None:
    stable = check("alpha/sqrt(r)")
    assert stable.gamma_to_zero is True and "Theorem 3.2" in stable.reason
    naive = check("alpha")
    assert naive.gamma_to_zero is False
    assert any("hypothesis of Theorem 3.2 fails" in n for n in naive.notes)
    assert naive.quantities["forward"].exponent == 1.0
    assert naive.quantities["grad_init"].exponent == 0.5
    lora_adam = check("alpha/r", "adam")
    assert lora_adam.quantities["grad_init"].label == "collapse"  # Adam normalises it away
    assert lora_adam.quantities["forward"].label == "rank-stabilized"
    assert "iid_variance" not in lora_adam.quantities


def test_table_uses_constant_values() -> None:
    v = check("alpha/sqrt(r)", constants={"alpha": 16})
    r, gamma, q = v.table[0]
    assert (r, gamma, q) == (4, 8.0, pytest.approx(256.0))
    assert v.constants == {"alpha": 16.0}


def test_callable_is_numeric() -> None:
    v = check(lambda r: 2.0 / r**0.5)
    assert v.method == "numeric" and v.label == "rank-stabilized"


def test_bad_optimizer() -> None:
    with pytest.raises(RsstabError, match="unknown optimizer 'rmsprop'"):
        check("1/r", "rmsprop")


def test_scale_hash_agrees_with_equality() -> None:
    """Regression: ``Scale.__eq__`` compared exponents by value but ``__hash__`` by form."""
    import sympy

    from rsstab.asymptotics import Scale

    assert Scale.of(0.5) == Scale.of(sympy.Rational(1, 2))
    assert hash(Scale.of(0.5)) == hash(Scale.of(sympy.Rational(1, 2)))
    assert len({Scale.of(-1.0, 2), Scale.of(-1, 2.0)}) == 1


def test_library_errors_name_parameters_and_the_cli_names_flags() -> None:
    from rsstab.errors import RsstabError

    # issue 15: r**(-beta) is a parametric verdict now; a bad value of beta is the error here
    with pytest.raises(RsstabError) as info:
        check("r**(-beta)", constants={"beta": float("inf")})
    assert "--" not in str(info.value) and info.value.parameter == "constants"
    with pytest.raises(RsstabError) as info:
        check("r**(-beta)", assume="beta**2 > 1")
    assert "--" not in str(info.value) and info.value.parameter == "assume"
    from rsstab.cli import main

    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["check", "r**(-beta)", "--set", "beta=inf"]) == 2
    assert "--set NAME=VALUE" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["check", "r**(-beta)", "--assume", "beta*beta > 1"]) == 2
    assert "--assume" in err.getvalue() and len(err.getvalue().strip().splitlines()) == 1


# --------------------------------------------------------------------------- issue 12: the learning-rate rule


def rule_exponent(p: Fraction, optimizer: str) -> Fraction:
    """η ∝ r^q keeps η·γ²·r (SGD) or η·γ·r (Adam) Θ(1) for γ ∝ r^p: q = −(2p+1) or −(p+1)."""
    return -(2 * p + 1) if optimizer == "sgd" else -(p + 1)


@settings(max_examples=60, deadline=None)
@given(coefficients, exponents, log_powers, optimizers, st.integers(0, 3))
def test_lr_exponent_follows_from_the_exponents(c: Fraction, p: Fraction, k: int, optimizer: str, style: int) -> None:
    v = check(spell(c, p, k, style), optimizer=optimizer)
    assert v.lr == "fixed" and v.lr_scaling == 0.0
    assert "at a fixed learning rate" in v.headline and "at a fixed learning rate" in v.reason
    if k == 0:
        q = rule_exponent(p, optimizer)
        assert v.lr_exponent_exact == str(q) and v.lr_exponent == float(q)
        assert v.lr_scale == f"r^{q}" and (f"η ∝ r^{q}" in v.lr_rule)
    else:  # log factors: no pure power, but the scale η must follow
        assert v.lr_exponent is None and v.lr_exponent_exact is None
        assert v.lr_scale is not None and "log(r)" in v.lr_scale and "not a pure power" in v.lr_rule
    if v.label != "rank-stabilized":
        assert v.headline.endswith(f"rank-stabilized with η ∝ {v.lr_scale}")


@settings(max_examples=60, deadline=None)
@given(coefficients, exponents, optimizers, st.fractions(min_value=-2, max_value=2, max_denominator=12))
def test_the_rule_stabilizes_and_any_other_power_does_not(c: Fraction, p: Fraction, optimizer: str,
                                                          delta: Fraction) -> None:
    expr = spell(c, p, 0, 0)
    q = rule_exponent(p, optimizer)
    scaled = check(expr, optimizer, lr_scaling=str(q + delta))
    expected = "rank-stabilized" if delta == 0 else "blow-up" if delta > 0 else "collapse"
    assert scaled.label == expected
    assert scaled.lr_exponent_exact == str(q)  # the rule does not depend on the scaling asked about
    assert scaled.quantities["forward"].exponent == pytest.approx(float(delta))
    if "grad_init" in scaled.quantities:  # the onset gradient has no η in it
        assert scaled.quantities["grad_init"].exponent == check(expr, optimizer).quantities["grad_init"].exponent
    assert Verdict.from_dict(json.loads(scaled.to_json())) == scaled


@pytest.mark.parametrize(
    "expr, optimizer, fragment",
    [("r**sin(r)/sqrt(r)", "sgd", "no single order"),
     ("log(log(log(r)))/sqrt(r)", "sgd", "slowly varying"),
     ("exp(-r)", "adam", "no power of r does it")],
)
def test_no_rule_exponent_says_why(expr: str, optimizer: str, fragment: str) -> None:
    v = check(expr, optimizer)
    assert v.lr_exponent is None and fragment in v.lr_rule
    assert v.lr_rule.startswith("η ∝ 1/(γ_r")


@pytest.mark.parametrize("bad", ["x", "1/0", "nan", "inf", float("nan"), True, [1], "1000"])
def test_bad_lr_scaling_names_the_parameter(bad: object) -> None:
    with pytest.raises(RsstabError) as info:
        check("1/r", lr_scaling=bad)
    assert info.value.parameter == "lr_scaling"


def test_a_rank_where_gamma_is_undefined_is_a_gap_in_the_table_not_an_error() -> None:
    v = check("1/(r - 4)")  # Θ(r^-1) for large r; division by zero at the table's r = 4
    assert (v.label, v.gamma_order) == ("collapse", "Θ(r^-1)")
    assert math.isnan(v.table[0][1]) and v.table[0][0] == 4 and v.table[1][1] == 0.25
    assert any("undefined at r = 4" in n for n in v.notes)
    assert "nan" in v.to_json()
