"""Fixtures shared by several test modules."""

from __future__ import annotations

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
