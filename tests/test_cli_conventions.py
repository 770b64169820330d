"""Small things users hit on the command line (issue 27): each checked by running the command."""

from __future__ import annotations

import subprocess
import sys

import pytest


def rsstab(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rsstab.cli", *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_greek_and_root_symbols_get_their_ascii_spelling() -> None:
    err = one_line_error(rsstab("check", "α/√r"))
    assert "α as alpha" in err and "√ as sqrt(...)" in err


@pytest.mark.parametrize("command, extra", [("check", []), ("simulate", ["--ranks", "4,8"]),
                                            ("transfer", ["--from-rank", "4", "--to-rank", "8", "--lr", "1"])])
def test_an_expression_starting_with_minus_suggests_double_dash(command: str, extra: list[str]) -> None:
    err = one_line_error(rsstab(command, "-1/sqrt(r)", *extra))
    assert f"rsstab {command} -- \"-1/sqrt(r)\"" in err


def test_double_dash_then_reads_the_expression() -> None:
    err = one_line_error(rsstab("check", "--", "-1/sqrt(r)"))
    assert "negative" in err


def test_an_unknown_flag_points_to_the_subcommands_help() -> None:
    err = one_line_error(rsstab("check", "alpha/r", "--bogus"))
    assert err.startswith("rsstab check: error: unrecognized arguments: --bogus") and "'rsstab check --help'" in err
    err = one_line_error(rsstab("--bogus"))
    assert "'rsstab --help'" in err


@pytest.mark.parametrize("argv", [["check", "alpha/r"], ["simulate", "alpha/r"], ["peft", "."], ["lint", "."],
                                  ["transfer", "alpha/r", "--from-rank", "4", "--to-rank", "8", "--lr", "1"]])
def test_an_unknown_optimizer_lists_every_accepted_name(argv: list[str]) -> None:
    err = one_line_error(rsstab(*argv, "--optimizer", "rmsprop"))
    assert "unknown optimizer 'rmsprop': expected one of sgd, adam, adamw" in err


def test_transfer_accepts_adamw_as_adams_regime() -> None:
    done = rsstab("transfer", "alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "2e-4",
                  "--optimizer", "adamw")
    assert done.returncode == 0 and "predicted η at r = 256: 5e-05  (adam)" in done.stdout


def test_several_schedules_with_an_invalid_one_print_no_json() -> None:
    err = one_line_error(rsstab("check", "-", "--json", stdin="alpha/r\n1/sqrt(r\n"))
    assert "1/sqrt(r" in err and "never closed" in err


def test_several_schedules_name_the_other_regime_as_one_schema() -> None:
    import json

    done = rsstab("check", "alpha/r", "alpha/sqrt(r)", "--json")
    rows = json.loads(done.stdout)["schedules"]
    assert [r["other_regime"] for r in rows] == [
        {"optimizer": "adam", "label": "rank-stabilized", "lr_exponent": 0.0},
        {"optimizer": "adam", "label": "blow-up", "lr_exponent": -0.5}]
    assert all(set(r) == set(rows[0]) for r in rows)
