"""Optional pytest plugin: a ``rank_stability`` fixture, command-line overrides and a summary.

Enable it in a ``conftest.py`` with ``pytest_plugins = ["rsstab.testing.plugin"]`` (or run
``pytest -p rsstab.testing.plugin``). It adds:

* the fixture ``rank_stability``: ``rank_stability(factory, **options)`` is
  :func:`rsstab.testing.assert_rank_stabilized` with defaults taken from the command line;
* options ``--rsstab-seeds N`` and ``--rsstab-ranks 64,256,1024,4096`` to run the same tests more
  thoroughly in a nightly job (arguments written in a test still win);
* a terminal-summary section listing every check the fixture ran, with its forward and backward
  slopes, passed or not.

Nothing here is needed for :func:`~rsstab.testing.assert_rank_stabilized` itself.

>>> parse_ranks("64, 256,1024")
(64, 256, 1024)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rsstab.validate import parse_ranks as read_ranks

__all__ = ["parse_ranks", "rank_stability", "pytest_addoption", "pytest_terminal_summary"]

_RECORDS = pytest.StashKey[list]()


def parse_ranks(text: str) -> tuple[int, ...]:
    """Ranks from a comma-separated command-line value (:func:`rsstab.validate.parse_ranks`; their
    values are checked by the assertion, as a ``ranks=`` written in a test)."""
    return tuple(read_ranks(text, "--rsstab-ranks must be comma-separated integers", count=2,
                            invalid="--rsstab-ranks needs at least two ranks", positive=False))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rsstab", "rank-stability checks (rsstab.testing)")
    group.addoption("--rsstab-seeds", type=int, default=None, metavar="N",
                    help="seeds per rank for checks run through the rank_stability fixture")
    group.addoption("--rsstab-ranks", default=None, metavar="R1,R2,...",
                    help="ranks for checks run through the rank_stability fixture")


def pytest_configure(config: pytest.Config) -> None:
    """``--rsstab-seeds`` / ``--rsstab-ranks`` become the session's defaults, so they reach every
    check — ``assert_rank_stabilized(...)`` written as in the README as well as the fixture —
    that does not pass ``seeds=`` / ``ranks=`` itself."""
    from rsstab.testing.stability import SESSION_DEFAULTS

    seeds = config.getoption("--rsstab-seeds", None)
    if seeds is not None:
        SESSION_DEFAULTS["seeds"] = seeds
    ranks = config.getoption("--rsstab-ranks", None)
    if ranks is not None:
        SESSION_DEFAULTS["ranks"] = parse_ranks(ranks)


def pytest_unconfigure(config: pytest.Config) -> None:
    from rsstab.testing.stability import SESSION_DEFAULTS

    SESSION_DEFAULTS.clear()


@pytest.fixture
def rank_stability(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """``rank_stability(factory, **options)``: assert that ``factory(r)`` is rank-stabilized."""
    from rsstab.testing import assert_rank_stabilized, check_rank_stability

    config = request.config
    defaults: dict[str, Any] = {}
    seeds = config.getoption("--rsstab-seeds")
    if seeds is not None:
        defaults["seeds"] = seeds
    ranks = config.getoption("--rsstab-ranks")
    if ranks is not None:
        defaults["ranks"] = parse_ranks(ranks)
    records = config.stash.setdefault(_RECORDS, [])

    def run(factory: Callable[[int], Any], **options: Any) -> Any:
        result = check_rank_stability(factory, **{**defaults, **options})
        records.append((request.node.nodeid, result))
        if not result.passed:
            raise AssertionError(result.report())
        return result

    run.__doc__ = assert_rank_stabilized.__doc__
    yield run


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    records = config.stash.get(_RECORDS, [])
    if not records:
        return
    terminalreporter.section("rsstab rank stability")
    for nodeid, result in records:
        slopes = ", ".join(f"{q} {result.fits[q].slope:+.2f}" for q in ("forward", "backward"))
        status = "passed" if result.passed else "FAILED"
        terminalreporter.write_line(
            f"{status:6}  {result.optimizer:4}  {result.label:15}  {slopes}  "
            f"({result.seconds:.2f} s)  {nodeid}"
        )
