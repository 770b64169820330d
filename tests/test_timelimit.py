"""Time limits (rsstab.timelimit)."""

from __future__ import annotations

import time

import pytest

from rsstab.timelimit import Timeout, can_time, time_limit


def test_a_swallowed_timeout_is_raised_again() -> None:
    """An alarm landing where exceptions are ignored (a gc callback, ``__del__``) must not let the
    block run on unbounded."""
    if not can_time():
        pytest.skip("no timer here")
    swallowed = []
    start = time.monotonic()
    with pytest.raises(Timeout), time_limit(0.05, "spinning"):
        while time.monotonic() - start < 5:
            try:
                while True:
                    time.sleep(0.001)
            except Timeout as exc:  # the first one is lost, as in an ignored-exception context
                if swallowed:
                    raise
                swallowed.append(exc)
    assert len(swallowed) == 1 and time.monotonic() - start < 1.0


@pytest.mark.skipif(not can_time(), reason="SIGALRM only on the main thread of a POSIX process")
def test_nested_limits_keep_the_outer_one() -> None:
    """An inner limit that finishes in time must not cancel the enclosing one."""
    import time

    t0 = time.monotonic()
    with pytest.raises(Timeout, match="outer"):
        with time_limit(0.3, "outer"):
            with time_limit(5.0, "inner"):
                time.sleep(0.05)
            while True:  # the outer limit must still fire
                time.sleep(0.01)
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(Timeout):  # an inner limit cannot outlive the outer one
        with time_limit(0.2, "outer"):
            with time_limit(10.0, "inner"):
                time.sleep(3)
