"""The validated inputs of a verdict (rsstab.verdict.request.CheckRequest): check() builds one and
hands it to one engine; every refusal is the request's, with the same message, parameter and order."""

from __future__ import annotations

import dataclasses
from collections import Counter
from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import rsstab.verdict.classify as classify
import rsstab.verdict.parametric as parametric
import rsstab.verdict.request as request_module
from rsstab.errors import RsstabError
from rsstab.testing.strategies import tuples
from rsstab.verdict.classify import check
from rsstab.verdict.request import CheckRequest, Factor

S = "alpha/sqrt(r)"


def _inverse(r: float) -> float:
    return 1 / r


#: Each keyword of check(): good values, bad ones, and ones that only clash with others.
_ARGS = {
    "schedule": (S, "alpha/r**beta", "alpha/rank**0.5", "(-2)**beta/r**beta", "r**(1/0)", "alpha*(", _inverse),
    "optimizer": ("sgd", "adamw", "lion"),
    "constants": (None, {}, {"alpha": 2}, {"beta": Fraction(1, 2)}, {"gamma": 1}, {"eta": 2, "lam": 3},
                  {"alpha": -1}, {"gaussian": 1}),
    "lr_scaling": (None, 0, "-1/2", "x", 1000, True, float("nan")),
    "width": (None, 64, 0, True),
    "ranks": (None, [8, 16], [], [0]),
    "assume": (None, "beta > 0", ("c > 0",)),
    "lr": (None, "eta/sqrt(r)", "eta*r**c", "-1", "eta/(", 3, ""),
    "init_std": (None, "gaussian", " Kaiming ", "true", "-1/r", "sigma/r", 5),
    "lr_ratio": (None, "r", "1", "0", "lam*r", ["r"]),
    "width_expr": (None, "r", "-r", "r**k"),
}


@st.composite
def _arguments(draw: st.DrawFn) -> dict[str, object]:
    # most keywords unset, so that each refusal gets its turn (all of them at once: the first wins)
    return {k: draw(st.sampled_from(v)) if k == "schedule" or draw(st.integers(0, 3)) == 0 else v[0]
            for k, v in _ARGS.items()}


def _outcome(f, kwargs):
    try:
        return "ok", f(**kwargs)
    except RsstabError as exc:
        return type(exc), str(exc), exc.parameter


@settings(max_examples=300, deadline=None, database=None)
@given(_arguments())
def test_check_refuses_exactly_as_the_request_and_hands_it_to_one_engine(kwargs: dict[str, object]) -> None:
    """check() raises what CheckRequest.build raises (type, message, parameter); when the request is
    valid, check() hands an equal request to exactly one engine and validates nothing more."""
    called = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(classify, "_exact_verdict", lambda req: called.append(("exact", req)) or "exact")
        mp.setattr(parametric, "parametric_check", lambda req: called.append(("parametric", req)) or "parametric")
        got = _outcome(check, kwargs)
    built = _outcome(CheckRequest.build, kwargs)
    if built[0] != "ok":
        assert got == built
        assert not called
        return
    request = built[1]
    engine = "parametric" if request.is_parametric else "exact"
    assert got == ("ok", engine)
    assert called == [(engine, request)]


@pytest.mark.parametrize(("kwargs", "parameter", "message"), [
    # several errors at once: the order of check() before the request (optimizer, ranks, width,
    # lr_scaling, schedule, constants, each factor, how they combine) decides which is reported
    ({"optimizer": "lion", "ranks": [8], "lr": "eta/("}, None, "unknown optimizer 'lion'"),
    ({"ranks": [8], "lr_scaling": "x"}, "ranks", "ranks are only used with a width"),
    ({"width": 0, "lr_scaling": "x"}, "width", "the width d must be a positive integer"),
    ({"lr_scaling": "x", "schedule": "alpha*("}, "lr_scaling", "lr_scaling must be a number"),
    ({"constants": {"gamma": 1}, "lr": "eta/("}, "constants", "a value is given for a constant"),
    ({"lr": "eta/(", "init_std": "-1/r"}, "lr", "lr: syntax error"),
    ({"init_std": "-1/r", "width": 64, "width_expr": "r"}, "init_std", "init_std: must be positive"),
    ({"width": 64, "width_expr": "r", "lr": "eta", "lr_scaling": 1}, "width_expr", "give the width either"),
    ({"lr": "eta", "lr_scaling": 1, "width": 64}, "lr", "give the learning rate either"),
    ({"schedule": _inverse, "lr": "eta", "width": 64}, "schedule", "a learning rate or init scale in r needs"),
    ({"init_std": "gaussian", "width": 64}, "width", "the width table is for the schedule alone"),
    ({"schedule": "alpha/r**beta", "width": 64}, "width", "width needs values for the parameters beta"),
    ({"constants": {"beta": 1}, "schedule": "alpha/r**beta", "assume": "beta > 0"}, "assume",
     "assumptions are about parameters (names in an exponent of r), and this schedule has none left"),
])
def test_the_first_refusal_wins(kwargs: dict, parameter: str | None, message: str) -> None:
    kwargs = {"schedule": S, **kwargs}
    for f in (check, CheckRequest.build):
        with pytest.raises(RsstabError) as info:
            f(**kwargs)
        assert str(info.value).startswith(message), (f, str(info.value))
        assert info.value.parameter == parameter


def test_a_request_is_immutable_hashable_and_equal_when_built_alike() -> None:
    kwargs = {"constants": {"alpha": 16, "eta": 2}, "lr": "eta*r**c", "init_std": "gaussian", "lr_ratio": "r"}
    a, b = CheckRequest.build(S, "adamw", **kwargs), CheckRequest.build(S, "adam", **kwargs)
    assert a.lr_text == "η_A = eta*r**c, η_B = 2*r**(c + 1)"  # cached: equality and hash stay the fields'
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.lr = None  # type: ignore[misc]
    assert a.optimizer == "adam" and a.params == ("c",) and a.is_tuple and a.is_parametric
    assert a.schedule.values == (("alpha", 16.0),)
    assert (a.lr.text, a.init_std.text, a.lr_ratio.text) == ("eta*r**c", "gaussian", "r")
    assert [f.parameter for f in a.factors] == ["lr", "init_std", "lr_ratio"]
    assert {str(f.expr) for f in a.factors} == {"2*r**c", "1/r", "r"}
    assert all(isinstance(f.expr, sympy.Expr) for f in a.factors)
    plain = CheckRequest.build(S, width=512.0, ranks=[32, 8, 8])
    assert (plain.width, plain.ranks, plain.is_tuple, plain.is_parametric) == (512, (8, 32), False, False)
    assert CheckRequest.build(S, lr_scaling="-0.5").lr_text == "η ∝ r^-1/2"
    # the learning-rate text of a tuple without η stays "fixed", whatever the scaling
    assert CheckRequest.build(S, init_std="gaussian", lr_scaling=1).lr_text == "fixed"


def test_each_expression_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """γ_r and each factor go through the parser once, even when the constants' names are looked up
    in the factors first; the engines work on the request's sympy expressions."""
    calls: Counter[object] = Counter()
    parse = request_module.as_schedule

    def counting(text, *args, **kwargs):
        calls[text] += 1
        return parse(text, *args, **kwargs)

    monkeypatch.setattr(request_module, "as_schedule", counting)
    texts = {"lr": "eta/sqrt(r)", "init_std": "sigma/r", "lr_ratio": "lam*r", "width_expr": "r"}
    v = check(S, constants={"alpha": 2, "eta": 3, "lam": 4}, **texts)
    assert v.label == "collapse"
    assert calls == Counter({S: 1, **dict.fromkeys(texts.values(), 1)})
    calls.clear()
    CheckRequest.build(S, init_std="gaussian", constants={"alpha": 2})  # an init name: its σ_A is parsed
    assert calls == Counter({S: 1, "gaussian": 1, "1/r": 1})


def test_factor_parse_names_the_factor() -> None:
    assert Factor.parse(None, "lr") is None
    f = Factor.parse(" Gaussian ", "init_std")
    assert (f.text, str(f.expr), f.symbol) == (" Gaussian ", "1/r", "σ_A")
    assert str(Factor.parse("eta*a", "lr", {"a": 2}).expr) == "2*eta"
    with pytest.raises(RsstabError) as info:
        Factor.parse("0*r", "lr_b")
    assert info.value.parameter == "lr_b" and str(info.value).startswith("lr_b: ")
    with pytest.raises(RsstabError, match="^lr_ratio must be text, an expression in r$"):
        Factor.parse(["r"], "lr_ratio")


@settings(max_examples=25, deadline=None, database=None)
@given(tuples())
def test_a_drawn_tuple_is_a_valid_request(t) -> None:
    req = t.request()
    assert req.optimizer == t.optimizer and req.schedule.text == t.schedule
    assert [f.text for f in req.factors] == [x for x in (t.lr, t.init_std, t.lr_ratio) if x is not None]
    assert req.is_tuple == any(x is not None for x in (t.lr, t.init_std, t.lr_ratio))
