"""Wall-clock limits for work that may not terminate in time (symbolic limits, user regexes).

SIGALRM-based, so a limit can interrupt pure-Python and C-level loops alike; it is available only
on the main thread of a POSIX process (:func:`can_time`), and callers fall back to bounded work
elsewhere.

>>> import time
>>> if can_time():
...     try:
...         with time_limit(0.05, "sleeping"):
...             time.sleep(1)
...     except Timeout as exc:
...         print(exc)
... else:
...     print("sleeping exceeded 0.05 s")
sleeping exceeded 0.05 s
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Timeout", "can_time", "time_limit", "REPEAT"]


class Timeout(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` swallows it."""


def can_time() -> bool:
    """True where :func:`time_limit` works: the main thread of a process with ``setitimer``."""
    return threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")


#: After the first alarm, it repeats this often until the block is left: an alarm that lands in
#: a place where exceptions are ignored (a garbage-collector callback, ``__del__``) is lost.
REPEAT = 0.25


@contextmanager
def time_limit(seconds: float, what: str = "the computation") -> Iterator[None]:
    """Raise :class:`Timeout` ("<what> exceeded <seconds> s") if the block runs longer (again
    every :data:`REPEAT` seconds, should the first one be swallowed). Limits nest: an inner limit
    never outlives an outer one, and leaving it re-arms the outer limit with what remains of it."""
    armed = [True]

    def on_alarm(signum: int, frame: object) -> None:
        if armed[0]:
            signal.setitimer(signal.ITIMER_REAL, REPEAT)
            raise Timeout(f"{what} exceeded {seconds:g} s")

    outer_left = signal.getitimer(signal.ITIMER_REAL)[0]  # 0.0: no enclosing limit
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left > 0 else seconds)
    try:
        yield
    finally:
        armed[0] = False  # first: no call, so no signal can be handled before it
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left > 0:  # the enclosing limit goes on with what is left (at once if spent)
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-4))
