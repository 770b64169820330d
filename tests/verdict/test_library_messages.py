"""Library errors name the library's arguments; the command line spells them as its flags."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rsstab

CASES = [  # (check's arguments, CLI argv, what the library says, what the command line says)
    (dict(schedule="alpha/r**beta", width=64), ["alpha/r**beta", "--width", "64"],
     "width needs values for the parameters beta (constants NAME=VALUE)",
     "--width needs values for the parameters beta (--set NAME=VALUE)"),
    (dict(schedule="alpha/sqrt(r)", assume="beta > 0", constants={"alpha": 2}),
     ["alpha/sqrt(r)", "--assume", "beta > 0", "--set", "alpha=2"],
     "has none left (constants gave them values)", "has none left (--set gave them values)"),
    (dict(schedule="alpha/sqrt(r)", width_expr="r**c"), ["alpha/sqrt(r)", "--width-expr", "r**c"],
     "(restrict with assume)", "--width-expr: the width d = r**c must not shrink as r grows; it does for c < 0 "
                               "(restrict with --assume)"),
]


@pytest.mark.parametrize("kwargs, argv, library, cli", CASES)
def test_a_library_error_names_no_flag_and_the_cli_names_its_own(kwargs, argv, library, cli) -> None:
    with pytest.raises(rsstab.RsstabError) as info:
        rsstab.check(**kwargs)
    assert library in str(info.value) and "--" not in str(info.value)
    run = subprocess.run([sys.executable, "-m", "rsstab.cli", "check", *argv], capture_output=True, text=True)
    assert run.returncode == 2 and run.stdout == ""
    assert cli in run.stderr and run.stderr.count("\n") == 1, run.stderr


def test_spelled_fills_only_the_names_it_lists() -> None:
    e = rsstab.RsstabError("{width} and {other} {constants}", names=("width", "constants"))
    assert str(e) == "width and {other} constants"
    assert e.spelled({"width": "--width"}.get) == "--width and {other} constants"
    assert rsstab.RsstabError("plain {x}").spelled(str.upper) == "plain {x}"
