"""``adamw`` is accepted wherever an optimizer regime is named, and means Adam's regime."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

import rsstab
import rsstab.testing
from rsstab import theory
from rsstab.cli import build_parser, main
from rsstab.errors import RsstabError
from rsstab.vocab import OPTIMIZER_NAMES, canonical_optimizer, normalize_optimizer


@pytest.mark.parametrize("name", ["adamw", "AdamW", "ADAMW"])
def test_alias_normalizes_to_adam(name):
    assert normalize_optimizer(name) == "adam" and canonical_optimizer(name) == "adam"


@pytest.mark.parametrize("bad", ["lion", "", None, 3, "adam w"])
def test_unknown_optimizer_is_a_one_line_error_naming_the_alias(bad):
    with pytest.raises(RsstabError, match="expected one of sgd, adam, adamw") as exc:
        normalize_optimizer(bad)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("expr", ["alpha/r", "alpha/sqrt(r)", "alpha"])
def test_check_and_theory_treat_adamw_as_adam(expr):
    a, w = rsstab.check(expr, optimizer="adam"), rsstab.check(expr, optimizer="adamw")
    assert w.to_dict() == a.to_dict() and w.optimizer == "adam"
    assert theory.law("forward", "adamw") == theory.law("forward", "adam")
    assert theory.quantities("adamw") == theory.quantities("adam")


def test_check_cli_accepts_adamw(capsys):
    assert main(["check", "alpha/r", "--optimizer", "adamw", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["optimizer"] == "adam" and out["label"] == "rank-stabilized"
    assert main(["check", "alpha/sqrt(r)", "--optimizer", "adamw"]) == 1
    capsys.readouterr()
    assert main(["check", "alpha/r", "--optimizer", "sgd"]) == 1  # and sgd is still sgd


def test_cli_parsers_accept_adamw_and_show_it():
    parser = build_parser()
    for argv in (["check", "x", "--optimizer", "adamw"], ["simulate", "x", "--optimizer", "adamw"],
                 ["peft", "p", "--optimizer", "adamw"]):
        assert parser.parse_args(argv).optimizer == "adam"
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["check", "x", "--optimizer", "lion"])
    assert exc.value.code == 2


def test_simconfig_and_testing_accept_adamw():
    pytest.importorskip("torch")
    from rsstab.sim import SimConfig
    from rsstab.testing.stability import RankStabilityResult

    assert SimConfig(rank=4, gamma=0.5, optimizer="adamw").optimizer == "adam"
    with pytest.raises(RsstabError, match="adamw"):
        SimConfig(rank=4, gamma=0.5, optimizer="lion")
    flat = [[1.0, 1.01], [1.0, 0.99], [1.0, 1.0]]
    res = RankStabilityResult.from_values([16, 64, 256], {"grad_init": flat, "forward": flat, "backward": flat},
                                          optimizer="adamw")
    assert res.optimizer == "adam"


@settings(max_examples=10, deadline=None)
@given(rsstab.testing.labelled_schedules(optimizer="adamw"))
def test_testing_strategies_accept_adamw(pair):
    expr, label = pair
    assert rsstab.check(expr, optimizer="adam").label == label


def test_names_listed_once():
    assert OPTIMIZER_NAMES == ("sgd", "adam", "adamw")
