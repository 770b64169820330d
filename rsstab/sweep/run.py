"""The sweep itself: key the configurations, serve the cached ones, compute the rest."""

from __future__ import annotations

import concurrent.futures as cf
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.io import write_csv
from rsstab.sweep.codec import Config, canonical, normalize_config, one_line
from rsstab.sweep.executors import Backend, Task, check_backend, execute, open_backend
from rsstab.sweep.store import Row, Store, key_of, task_identity

__all__ = ["SweepInterrupted", "SweepResult", "run_sweep"]


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced; ``rows`` come from the store, in the order of ``configs``.

    Rows are exactly what the task returned (numpy scalars become Python scalars); no column is
    added. ``failed`` lists ``(config, "ExcType: message")`` for configurations that raised;
    ``corrupt`` lists ``(key, reason)`` for store files that failed their checks and were
    recomputed.
    """

    rows: list[Row]
    failed: list[tuple[Config, str]]
    n_computed: int
    n_cached: int
    n_corrupt: int
    n_total: int = 0
    out: Path = field(default_factory=Path)
    corrupt: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every configuration finished."""
        return not self.failed

    def summary(self) -> str:
        """One line, e.g. ``sweep: 12 configurations, 4 computed, 8 cached, 0 failed``."""
        text = (
            f"sweep: {self.n_total} configurations, {self.n_computed} computed, "
            f"{self.n_cached} cached, {len(self.failed)} failed"
        )
        if self.n_corrupt:
            text += f", {self.n_corrupt} corrupt store files recomputed"
        return text

    def write_csv(self, path: str | os.PathLike[str]) -> Path:
        """Write :attr:`rows` to ``path`` atomically (see :func:`rsstab.io.write_csv`)."""
        return write_csv(self.rows, path)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; everything finished so far is in the store."""

    def __init__(self, n_kept: int, n_total: int, store: Path) -> None:
        self.n_kept, self.n_total, self.store = n_kept, n_total, store
        super().__init__(
            f"interrupted: {n_kept} of {n_total} configurations are finished and kept in "
            f"{store}; re-run the same command to resume"
        )

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class _Item:
    """One configuration of the sweep: its position, normalized form and store key."""

    index: int
    config: Config
    key: str


@dataclass
class _Tally:
    """The rows of every finished configuration (cached or computed) and the failures."""

    rows_of: dict[str, list[Row]]
    failed: dict[str, str] = field(default_factory=dict)
    n_computed: int = 0


def _items(configs: Sequence[Mapping[str, Any]], identity: Mapping[str, str]) -> list[_Item]:
    """Normalize and key every configuration; a repeated configuration is an error."""
    items: list[_Item] = []
    seen: dict[str, int] = {}
    for index, config in enumerate(configs):
        plain = normalize_config(config, index)
        key = key_of(plain, identity)
        if key in seen:
            raise RsstabError(
                f"config #{index} repeats config #{seen[key]}: {canonical(plain)}",
                parameter="configs",
            )
        seen[key] = index
        items.append(_Item(index, plain, key))
    return items


def _outcome(future: cf.Future[Any]) -> tuple[str, str, Any]:
    """What a finished future brought, in the form of :func:`~rsstab.sweep.executors.execute`."""
    if future.cancelled():
        return ("error", "CancelledError: cancelled", "")
    exc = future.exception()
    if exc is not None:  # the executor itself failed (e.g. a pool worker died)
        return ("error", one_line(exc), "".join(traceback.format_exception(exc)))
    return future.result()


def _finish(store: Store, tally: _Tally, item: _Item, future: cf.Future[Any]) -> None:
    """Write the outcome of one computed configuration to the store (or its failure note)."""
    status, text, extra = _outcome(future)
    if status == "ok":
        tally.rows_of[item.key] = store.save(item.key, item.config, text, float(extra))
        tally.n_computed += 1
    else:
        tally.failed[item.key] = text
        store.save_failure(item.key, item.config, text, extra)


def _progress_bar(enabled: bool | None, total: int, initial: int) -> Any:
    """A tqdm bar on stderr, or ``None`` when disabled (``None``: stderr is not a terminal) or tqdm
    is missing."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="config", desc="sweep", file=sys.stderr)


def _compute(
    task: Task,
    todo: list[_Item],
    backend: Backend,
    store: Store,
    tally: _Tally,
    new_bar: Callable[[], Any],
) -> None:
    """Keep ``backend.window`` configurations in flight and write each one as it completes.

    On Ctrl-C, pending work is cancelled, what had already finished is still written, and the
    ``KeyboardInterrupt`` propagates.
    """
    bar = None
    pending: dict[cf.Future[Any], _Item] = {}
    queue: Iterator[_Item] = iter(todo)
    try:
        while True:
            while len(pending) < backend.window and (nxt := next(queue, None)) is not None:
                pending[backend.executor.submit(execute, task, nxt.config)] = nxt
            if bar is None:  # after the first submissions: pools fork before tqdm's thread
                bar = new_bar()
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                _finish(store, tally, pending.pop(future), future)
                if bar is not None:
                    bar.update(1)
                    if tally.failed:
                        bar.set_postfix(failed=len(tally.failed))
    except KeyboardInterrupt:
        for future, item in list(pending.items()):
            if not future.cancel() and future.done() and future.exception() is None:
                _finish(store, tally, item, future)  # finished before Ctrl-C: keep it
        raise
    finally:
        if bar is not None:
            bar.close()


def run_sweep(
    task: Task,
    configs: Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    *,
    scheduler: str | cf.Executor | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> SweepResult:
    """Run ``task`` on every configuration not yet in the store under ``out``.

    Args:
        task: picklable top-level function ``task(config) -> list[dict]`` of tidy rows whose
            values are scalars (str, int, float, bool, None; numpy scalars are converted).
        configs: JSON-serializable dicts, no two equal.
        out: directory of the store (created if needed).
        scheduler: ``None`` (in-process, or a local process pool when ``workers >= 2``), a Dask
            scheduler address ``"tcp://HOST:PORT"``, or a :class:`concurrent.futures.Executor`.
        workers: size of the local process pool; ``None``, 0 or 1 run in-process.
        progress: show a tqdm progress bar on stderr (silently none if tqdm is missing); ``None``:
            when stderr is a terminal (tqdm's convention: on interactively, off when piped).

    Returns:
        A :class:`SweepResult`. A configuration whose task raised is listed in ``failed`` (its
        traceback is kept in ``out/failures/<key>.json``) and retried on the next run.

    Raises:
        RsstabError: bad ``task``, ``configs``, ``out``, ``workers`` or ``scheduler`` (its
            ``parameter`` names which).
        SweepInterrupted: on Ctrl-C (a ``KeyboardInterrupt``), after cancelling pending work;
            finished configurations stay in the store.
    """
    if not callable(task):
        raise RsstabError(f"task must be callable, got {type(task).__name__}", parameter="task")
    check_backend(scheduler, workers)
    identity = task_identity(task)
    items = _items(configs, identity)
    store = Store.open(out, identity)
    cached = {item.key: store.lookup(item.key) for item in items}
    tally = _Tally({key: rows for key, rows in cached.items() if rows is not None})
    todo = [item for item in items if item.key not in tally.rows_of]
    n_cached = len(items) - len(todo)

    if todo:
        backend = open_backend(scheduler, workers)
        stop_now = True  # unless the loop ends normally: Ctrl-C or an error
        try:
            _compute(task, todo, backend, store, tally,
                     lambda: _progress_bar(progress, len(items), n_cached))
            stop_now = False
        except KeyboardInterrupt:
            kept = sum(store.has(item.key) for item in items)
            raise SweepInterrupted(kept, len(items), store.directory) from None
        finally:
            backend.close(stop_now)

    return SweepResult(
        rows=[dict(row) for item in items for row in tally.rows_of.get(item.key, ())],
        failed=[(i.config, tally.failed[i.key]) for i in items if i.key in tally.failed],
        n_computed=tally.n_computed,
        n_cached=n_cached,
        n_corrupt=len(store.corrupt),
        n_total=len(items),
        out=store.root,
        corrupt=store.corrupt,
    )
