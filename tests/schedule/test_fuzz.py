"""Fuzzing the schedule parser and ``rsstab check``: no traceback, no hang, nothing evaluated.

The default run tries a few hundred inputs (random token strings, unicode text, random Python
ASTs, random valid schedules); ``pytest -m slow tests/schedule/test_fuzz.py`` tries 10,000, and
``python benchmarks/fuzz_parser.py --n 10000`` prints counts and the slowest inputs.
"""

from __future__ import annotations

import ast
import builtins
import time

from support import fuzz_inputs
import pytest
import sympy
from support.fuzz_inputs import Evaluated, no_evaluation, run_one
from hypothesis import HealthCheck, Phase, given, settings

from rsstab.schedule import parse

FAST = settings(
    max_examples=70,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: the report names the exact input
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=2500)

STRATEGIES = {
    "tokens": fuzz_inputs.token_texts,
    "unicode": fuzz_inputs.raw_texts,
    "ast": fuzz_inputs.ast_texts,
    "valid": fuzz_inputs.valid_texts,
}


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    fuzz_inputs.warm_up()


def _fuzz(strategy, config):  # type: ignore[no-untyped-def]
    @config
    @given(text=strategy, flags=fuzz_inputs.check_flags)
    def run(text: str, flags: list[str]) -> None:
        outcome = run_one(text, flags)
        assert not outcome.problems, (text, flags, outcome.problems)

    return run


#: Default-run examples per generator: valid schedules reach the (slower) classifier.
FAST_EXAMPLES = {"tokens": 80, "unicode": 80, "ast": 80, "valid": 30}


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_fuzz_parse_and_check(kind: str) -> None:
    _fuzz(STRATEGIES[kind], settings(FAST, max_examples=FAST_EXAMPLES[kind]))()


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_fuzz_parse_and_check_10000(kind: str) -> None:
    _fuzz(STRATEGIES[kind], SLOW)()  # 4 × 2500 = 10,000 inputs


HOSTILE = [
    "__import__('os').system('echo pwned')",
    "__import__(os).system(rm)",
    "().__class__.__bases__[0].__subclasses__()",
    "r.__class__.__mro__",
    "(lambda: r)()",
    "eval(r)",
    "exec(r)",
    "sympify(r)",
    "getattr(r, real)",
    "[r for r in r]",
    "r if r else r",
    "r := 2",
    "*r",
    "sqrt(*r)",
    "sqrt(x=r)",
    "9**9**9**9",
    "(10**10**10)",
    "2^2^2^2^2^2",
    "exp(exp(exp(exp(r))))",
    "1e309",
    "1/0",
    "0**-1",
    "log(0)",
    "r" + "**r" * 400,
    "(" * 1000 + "r" + ")" * 1000,
    "-" * 900 + "r",
    "~r",
    "not r",
    "r @ r",
    "r % 2",
    "r // 2",
    "1j",
    "I",
    "nan",
    "inf",
    "oo",
    "zoo",
    "γ",
    "r\x00",
    "r\n+1",
    "f'{r}'",
    "b'r'",
    "",
    " ",
    "-",
    "--",
    "-1/r",
    "...",
    "r,",
    "{r}",
    "[r]",
    "sin(10**300*r)",
    "tan(pi/2)",
    "max(" + ", ".join(["r"] * 9) + ")",
    "floor(r)**-0.5 * ceil(r)**0.5 / sqrt(r)",
    "log(r, 1)",
    "log(r, 0)",
    "sqrt(-r)",
    "(-r)**0.5",
    "abs(sin(r))",
    "alpha/lora_alpha/sqrt(r)",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_inputs(text: str) -> None:
    outcome = run_one(text)
    assert not outcome.problems, outcome.problems


@pytest.mark.parametrize("flags", [["--json"], ["--optimizer", "adam", "--set", "alpha=nan"]])
def test_hostile_inputs_with_flags(flags: list[str]) -> None:
    for text in HOSTILE[:20]:
        outcome = run_one(text, flags)
        assert not outcome.problems, (text, outcome.problems)


def test_the_guard_catches_every_evaluator() -> None:
    """The no-evaluation guard really trips (so the fuzz assertion can fail)."""
    violations: list[str] = []
    with no_evaluation(violations):
        for attempt in (
            lambda: builtins.eval("1+1"),
            lambda: builtins.exec("x = 1"),  # noqa: S102 - must be refused
            lambda: builtins.compile("1", "<s>", "eval"),
            lambda: sympy.sympify("r + 1"),
            lambda: sympy.parse_expr("r"),
        ):
            with pytest.raises(Evaluated):
                attempt()
        assert isinstance(ast.parse("r + 1", mode="eval"), ast.Expression)
        assert parse("alpha/r^0.5").constants == ("alpha",)
    assert len(violations) == 5
    assert builtins.eval("1+1") == 2  # restored


def test_the_guard_allows_sympys_own_code_but_not_the_input() -> None:
    namespace = {"__name__": "sympy.polys.fake"}
    exec("def run(src):\n    return eval(src)\n", namespace)  # noqa: S102 - test fixture
    violations: list[str] = []
    with no_evaluation(violations, text="alpha/r"):
        assert namespace["run"]("1 + 1") == 2
        with pytest.raises(Evaluated):
            namespace["run"]("2 * alpha/r")
    assert violations == ["eval from sympy.polys.fake: '2 * alpha/r'"]


def test_run_one_flags_a_parser_that_evaluates(monkeypatch: pytest.MonkeyPatch) -> None:
    def evaluating_parse(text: str) -> object:
        return builtins.eval(text, {"r": 2})

    monkeypatch.setattr(fuzz_inputs, "parse", evaluating_parse)
    problems = run_one("r + 1").problems
    assert any("parse raised Evaluated" in p for p in problems)
    assert any(p.startswith("evaluated: eval from test_fuzz") for p in problems)


def test_run_one_reports_what_it_sees() -> None:
    good = run_one("alpha/sqrt(r)")
    assert (good.accepted, good.check_code, good.problems) == (True, 0, [])
    bad = run_one("__import__('os')")
    assert (bad.accepted, bad.check_code, bad.problems) == (False, 2, [])
    assert run_one("1/r", ["--optimizer", "adam"]).check_code == 0


def test_run_one_interrupts_and_reports_a_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    def endless_parse(text: str) -> object:
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(fuzz_inputs, "HANG_LIMIT", 0.3)
    monkeypatch.setattr(fuzz_inputs, "parse", endless_parse)
    problems = run_one("r").problems
    assert "hang: still running after 0.3 s, interrupted" in problems


# Findings of the 10,000-input fuzz run, fixed and kept as regression tests.
def test_finding_negative_base_power_of_sin_crashes_check() -> None:
    outcome = run_one("(-(r))**(sin(r))")
    assert not outcome.problems, outcome.problems


def test_finding_syntax_warning_leaks_to_stderr() -> None:
    outcome = run_one("9in r")
    assert (outcome.check_code, outcome.problems) == (2, [])
    assert outcome.warnings == []


def test_finding_negative_base_to_r_dependent_power_is_not_real() -> None:
    outcome = run_one("(-(1/sqrt(r)))**(-(alpha/r^0.5))")
    assert (outcome.check_code, outcome.problems) == (2, [])
