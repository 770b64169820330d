"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def generous_time_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check answers, not speed: on a loaded or slow machine the default budgets can
    run out and turn a decidable case into "undecided". Larger budgets (and no answers cached
    under other budgets) keep the outcome independent of the machine; speed is measured in
    benchmarks/classical_limits.py."""
    import rsstab.asymptotics as asymptotics

    monkeypatch.setattr(asymptotics, "TIME_LIMIT", 12.0)
    monkeypatch.setattr(asymptotics, "NUMERIC_TIME_LIMIT", 3.0)
    asymptotics._growth.cache_clear()


@pytest.fixture
def slow_parametric_step(monkeypatch: pytest.MonkeyPatch) -> Callable[[object, str], None]:
    """``slow(module, name)``: the parametric analysis gets 0.5 s (``PARAMETRIC_TIME_LIMIT``) and
    ``module.name``, one of its steps, first sleeps 5 s — a verdict must come back in time anyway."""
    import time

    import rsstab.verdict.parametric as pv

    monkeypatch.setattr(pv, "PARAMETRIC_TIME_LIMIT", 0.5)

    def slow(module: object, name: str) -> None:
        real = getattr(module, name)

        def slowed(*args, **kwargs):  # type: ignore[no-untyped-def]
            time.sleep(5)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, slowed)

    return slow


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets one core: its torch (and the subprocesses it starts)
    run on one thread, so that two workers on two cores do not each start two threads."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
