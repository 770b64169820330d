"""Held-out classical limits at r → ∞ (tests/support/classical_limits.py, and sympy's own in
tests/support/sympy_limits.py): never wrong, never refused.

Each γ_r is real and positive for large r with a known answer (→ 0, Θ(1) or → ∞), so a refusal is
a bug as much as a wrong answer; only the cases marked ``hard`` may come out indeterminate, and
where a case pins down the order, the order must be exactly that.
"""

from __future__ import annotations

import time

import pytest
from support.classical_limits import CASES, Case, verdict
from support.sympy_limits import SYMPY_CASES

from rsstab.asymptotics import growth
from rsstab.schedule import parse


pytestmark = pytest.mark.usefixtures("generous_time_limits")  # see tests/conftest.py


@pytest.mark.parametrize("case", [pytest.param(c, id=c.text, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES + SYMPY_CASES])
def test_classical_limit(case: Case) -> None:
    start = time.perf_counter()
    g = growth(parse(case.text).expr)  # a ScheduleError here is a refusal: the test fails
    seconds = time.perf_counter() - start
    got = verdict(g)
    assert got in (case.expected, "indeterminate"), f"WRONG: {g} ({g.method}; {g.note})"
    if not case.hard:
        assert got == case.expected, f"undecided: {g} ({g.note})"
    if case.order and got == case.expected:
        assert str(g) == case.order, g.note
    assert seconds < 30, f"{seconds:.1f} s"  # ~5 s on a quiet machine (benchmarks/classical_limits.py)


def test_the_set_is_big_and_balanced() -> None:
    kinds = [c.expected for c in CASES]
    assert len(CASES) >= 40
    assert min(kinds.count(k) for k in ("0", "1", "oo")) >= 10
