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


# --------------------------------------------------------------------------- simulate, transfer, light install

TINY = ["--ranks", "4,8", "--steps", "2", "--seeds", "2", "--width", "8", "--depth", "1"]

#: Runs the CLI with numpy and torch unimportable (as in `pip install rsstab` without extras):
#: a meta path finder that raises ModuleNotFoundError for them; nothing is uninstalled.
LIGHT = """
import sys
class _NoExtras:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "torch"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoExtras())
from rsstab.cli import main
sys.exit(main(sys.argv[1:]))
"""


def light(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LIGHT, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", [["simulate", "1/sqrt(r)", *TINY], ["simulate", "1/sqrt(r)", "--json"],
                                  ["simulate", "1/sqrt(r)", "--threads", "1"],
                                  ["check", "1/sqrt(r)", "--simulate"], ["check", "1/sqrt(r)", "--simulate", "--json"]])
def test_without_the_sim_extra_a_measurement_is_one_line_naming_it(argv: list[str]) -> None:
    err = one_line_error(light(*argv))  # exit 2, nothing on stdout, no traceback
    assert 'pip install "rsstab[sim]"' in err


@pytest.mark.parametrize("argv", [["check", "1/sqrt(r)"], ["derive", "iid"], ["lint", "--explain", "RS301"],
                                  ["transfer", "1/sqrt(r)", "--from-rank", "4", "--to-rank", "8", "--lr", "1"],
                                  ["simulate", "--help"]])
def test_without_the_sim_extra_the_core_commands_still_run(argv: list[str]) -> None:
    done = light(*argv)
    assert done.returncode == 0 and done.stdout, done.stderr


def test_an_unchecked_missing_extra_is_still_one_line() -> None:
    """The CLI's last line of defence: an ImportError of an extra's module that no command
    checked for becomes the same one-line message (here: torch missing under --threads)."""
    from rsstab.errors import missing_extra

    code = ("import sys; from rsstab.cli import main; import rsstab.commands.simulate as s; "
            "s.require_extra = lambda *a: None; sys.modules['torch'] = None; "
            "sys.exit(main(['simulate', '1/sqrt(r)', '--threads', '1']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert 'this needs torch: pip install "rsstab[sim]"' in one_line_error(done)
    assert missing_extra(ModuleNotFoundError("x", name="some_private_module")) is None  # a real bug surfaces


def test_check_simulate_exit_code_follows_the_verdict_in_text_and_json() -> None:
    """Text and JSON agree: 0 when rank-stabilized, 1 when not — never 2 once a verdict is printed."""
    for expr, code in (("alpha/sqrt(r)", 0), ("alpha/r", 1)):
        text = rsstab("check", expr, "--simulate")
        assert text.returncode == code and "empirical verdict:" in text.stdout and text.stderr == "", text.stderr


def test_simulate_reads_the_schedule_from_stdin() -> None:
    import json

    piped = rsstab("simulate", "-", *TINY, "--json", stdin="# rsLoRA\nalpha/sqrt(r)  # the schedule\n")
    given = rsstab("simulate", "alpha/sqrt(r)", *TINY, "--json")
    assert piped.returncode == given.returncode in (0, 1), piped.stderr
    a, b = json.loads(piped.stdout), json.loads(given.stdout)
    assert a["schedule"] == b["schedule"] == "alpha/sqrt(r)"
    assert a["quantities"]["forward"]["values"] == b["quantities"]["forward"]["values"]  # same seeds, same run
    err = one_line_error(rsstab("simulate", "-", *TINY, stdin="alpha/r\nalpha/sqrt(r)\n"))
    assert "one schedule at a time" in err
    assert "stdin was empty" in one_line_error(rsstab("simulate", "-", *TINY, stdin="# nothing\n"))


def test_simulate_value_table_headers_are_separated() -> None:
    done = rsstab("simulate", "alpha/sqrt(r)", *TINY)
    lines = done.stdout.splitlines()
    head = next(ln for ln in lines if ln.split()[:1] == ["r"])
    names = head.split()
    assert names == ["r", "grad_init", "forward", "backward", "backward_residual"], head
    rows = lines[lines.index(head) + 1: lines.index(head) + 3]
    # every value ends where its header ends (right-aligned), with at least two spaces between headers
    ends = [head.index(n) + len(n) for n in names]
    for row in rows:
        cells = row.split()
        assert [row.index(c, e - len(c)) + len(c) for c, e in zip(cells, ends)] == ends, (head, row)
    assert all(f"  {n}" in head for n in names[1:])
    quantity_rows = [ln for ln in lines if ln.startswith("backward_residual")]
    assert quantity_rows and quantity_rows[0].split()[0] == "backward_residual"  # not run into the slope


def test_simulate_json_has_the_verdicts_headline_and_learning_rate_rule() -> None:
    import json

    d = json.loads(rsstab("simulate", "alpha/r", *TINY, "--json").stdout)
    assert d["headline"] == f"measured {d['label']} at a fixed learning rate (η = 1e-05)"
    assert d["lr"] == "fixed" and d["lr_rule"] == d["symbolic"]["lr_rule"]
    assert d["lr_rule"].startswith("η ∝ r^1 keeps the update Θ(1)")  # α/r under SGD: the theory's rule
    d = json.loads(rsstab("simulate", "alpha/sqrt(r)", *TINY, "--lr", "1e-5/sqrt(r)", "--json").stdout)
    assert d["headline"] == f"measured {d['label']} with η = 1e-5/sqrt(r) at each rank"
    assert d["lr"] == "η = 1e-5/sqrt(r)"


def test_transfer_json_names_things_as_check_does() -> None:
    import json

    argv = ["alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "2e-4", "--json"]
    t = json.loads(rsstab("transfer", *argv, "--optimizer", "adam").stdout)
    c = json.loads(rsstab("check", "alpha/sqrt(r)", "--optimizer", "adam", "--json").stdout)
    assert "rule" not in t and t["lr_rule"] == c["lr_rule"]
    for key in ("stable", "label", "headline", "lr", "lr_exponent", "lr_exponent_exact"):
        assert t[key] == c[key], key  # the schedule's verdict in this regime, as check gives it
    assert t["stable"] is False and t["label"] == "blow-up" and t["lr"] == "fixed"
    assert t["lr_from"] == 2e-4 and t["lr_to"] == pytest.approx(5e-5)
    assert None not in (t["stable"], t["label"])
    assert not {"eps", "grad_scale", "regime_from", "regime_to"} & (set(t) | set(t["regimes"]["adam"]))
    e = json.loads(rsstab("transfer", *argv, "--optimizer", "adam", "--eps", "1e-8", "--grad-scale", "1").stdout)
    assert e["regime_from"] == e["regimes"]["adam"]["regime_from"] == "sign" and e["eps"] == 1e-8
    assert "eps" not in e["regimes"]["sgd"]
    assert json.loads(rsstab("transfer", *argv).stdout)["stable"] is True  # rsLoRA under SGD
