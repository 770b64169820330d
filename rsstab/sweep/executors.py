"""Where a sweep's configurations run: in-process, a local process pool, a Dask cluster, or any
:class:`concurrent.futures.Executor`. Workers only compute; the calling process writes the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rsstab.errors import RsstabError
from rsstab.sweep.codec import Config, one_line, rows_text

__all__ = ["Backend", "InlineExecutor", "check_backend", "execute", "open_backend"]

#: Seconds to wait for a Dask scheduler to answer before giving up.
DASK_CONNECT_TIMEOUT = 10.0

Task = Callable[[Config], Sequence[Mapping[str, Any]]]

_ADDRESS_RE = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


class InlineExecutor(cf.Executor):
    """Run each submitted call immediately in the calling thread (``KeyboardInterrupt`` passes).

    >>> InlineExecutor().submit(pow, 2, 10).result()
    1024
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Call ``fn(*args, **kwargs)`` now; its result or exception is in the returned future."""
        future: cf.Future[Any] = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future


def execute(task: Task, config: Config) -> tuple[str, str, Any]:
    """Worker side: run one configuration; return ``("ok", rows_json, seconds)`` or
    ``("error", "ExcType: message", traceback)``."""
    start = time.perf_counter()
    try:
        text = rows_text(task(config))
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep continues
        return ("error", one_line(exc), traceback.format_exc())
    return ("ok", text, time.perf_counter() - start)


@dataclass
class Backend:
    """An executor, how many calls to keep in flight on it, and how to close it
    (``close(interrupted)``: after Ctrl-C, stop without waiting for running work)."""

    executor: cf.Executor
    window: int
    close: Callable[[bool], None]


def _worker_init(parent: int) -> None:
    """Pool initializer: ignore Ctrl-C (the driver stops the workers itself) and exit when the
    driver dies (e.g. SIGKILL), instead of waiting forever for work as an orphan."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="rsstab-parent-watch", daemon=True).start()


def _stop_pool(pool: cf.ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
    else:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _local_pool(workers: int) -> Backend:
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),)
    )

    def close(interrupted: bool) -> None:
        if interrupted:
            _stop_pool(pool)
        else:
            pool.shutdown(wait=True)

    return Backend(pool, 2 * workers, close)


def _connect_dask(address: str) -> Backend:
    try:
        import distributed
    except ImportError:
        raise RsstabError(
            "a Dask scheduler needs Dask: pip install 'rsstab[dask]'", parameter="scheduler"
        ) from None
    try:
        client = distributed.Client(address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the user's address
        raise RsstabError(
            f"cannot reach the Dask scheduler at {address}: {one_line(exc)}", parameter="scheduler"
        ) from None
    executor = client.get_executor(pure=False)

    def close(interrupted: bool) -> None:
        try:
            executor.shutdown(wait=not interrupted)
        finally:
            client.close()

    return Backend(executor, sys.maxsize, close)


def check_backend(scheduler: str | cf.Executor | None, workers: int | None) -> None:
    """Validate the ``scheduler`` and ``workers`` arguments of
    :func:`~rsstab.sweep.run_sweep` without starting anything.

    Raises:
        RsstabError: naming the parameter at fault.
    """
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
    ):
        raise RsstabError(
            f"workers must be a non-negative integer, got {workers!r}", parameter="workers"
        )
    if scheduler is None or isinstance(scheduler, cf.Executor):
        return
    if not isinstance(scheduler, str):
        raise RsstabError(
            f"scheduler must be an address or an Executor, got {scheduler!r}",
            parameter="scheduler",
        )
    if not _ADDRESS_RE.match(scheduler):
        raise RsstabError(
            f"scheduler must look like tcp://HOST:PORT, got {scheduler!r}", parameter="scheduler"
        )
    if workers not in (None, 0, 1):
        raise RsstabError(
            "workers is for the local pool; a Dask cluster brings its own", parameter="workers"
        )


def open_backend(scheduler: str | cf.Executor | None, workers: int | None) -> Backend:
    """Start what runs the configurations (arguments as :func:`check_backend` accepts them):
    an executor instance as given; a Dask scheduler address; a local process pool of
    ``workers >= 2``; otherwise an :class:`InlineExecutor`."""
    check_backend(scheduler, workers)
    if isinstance(scheduler, cf.Executor):
        return Backend(scheduler, sys.maxsize, lambda interrupted: None)
    if isinstance(scheduler, str):
        return _connect_dask(scheduler)
    if workers is None or workers <= 1:
        return Backend(InlineExecutor(), 1, lambda interrupted: None)
    return _local_pool(workers)
