"""Resumable sweeps: a grid of independent configurations → any ``concurrent.futures`` executor.

Each configuration is a JSON-serializable ``dict``; a *task* maps one configuration to a list of
tidy rows (``dict`` of scalars). Every finished configuration is written atomically (temporary
file, ``fsync``, rename, ``fsync`` of the directory) into a content-addressed store::

    <out>/store/<key>.json      key = sha256(canonical JSON of the config, the rsstab version,
                                the task's name and the sha256 of its module's source file)
    <out>/failures/<key>.json   last error of a configuration that raised (retried next run)
    <out>/corrupt/<key>.json    a store file that failed its checks, moved aside, then recomputed

Re-running the same sweep skips what is in the store, so a run killed at any moment (even by
SIGKILL) and re-run yields exactly the rows of an uninterrupted run. The rows of :class:`SweepResult`
are always read back from the store's JSON text, so cached and freshly computed rows are
identical objects; floats round-trip bit-exactly (JSON ``repr``; ``NaN``/``±Infinity`` allowed; a
NaN with a sign bit or payload is stored as ``{"$f64": "<hex bits>"}``).

Executors: in-process (default), a local :class:`~concurrent.futures.ProcessPoolExecutor`
(``workers >= 2``), a Dask cluster (``scheduler="tcp://HOST:PORT"``, needs ``rsstab[dask]``), or
any :class:`~concurrent.futures.Executor` instance. Workers only compute; the calling process
writes the store, so workers need no shared filesystem.

The key depends on the task too: two tasks never share cells, and any edit to the source file
that defines the task (e.g. ``rsstab/sim.py``) invalidates that task's cells, which are then
recomputed. Code the task calls in *other* modules is not fingerprinted.

>>> import tempfile
>>> def square(config):
...     return [{"x": config["x"], "y": config["x"] ** 2}]
>>> with tempfile.TemporaryDirectory() as out:
...     first = run_sweep(square, [{"x": 1}, {"x": 2.5}], out, progress=False)
...     again = run_sweep(square, [{"x": 1}, {"x": 2.5}], out, progress=False)
>>> first.rows
[{'x': 1, 'y': 1}, {'x': 2.5, 'y': 6.25}]
>>> (first.n_computed, again.n_computed, again.n_cached, again.rows == first.rows)
(2, 0, 2, True)
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import logging
import math
import os
import re
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.io import atomic_write, stale_temporaries, write_csv

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "InlineExecutor",
    "SweepInterrupted",
    "SweepResult",
    "add_sweep_arguments",
    "config_key",
    "read_record",
    "run_sweep",
    "run_sweep_command",
    "sweep_kwargs",
    "task_identity",
]

logger = logging.getLogger("rsstab.sweep")

#: Format tag written into every store file.
FORMAT = "rsstab-sweep/1"
#: Exit code of :func:`run_sweep_command` when some configurations failed.
EXIT_FAILED = 1
#: Exit code after Ctrl-C (what shells report for SIGINT).
EXIT_INTERRUPTED = 130
#: Seconds to wait for a Dask scheduler to answer before giving up.
DASK_CONNECT_TIMEOUT = 10.0

Config = dict[str, Any]
Row = dict[str, Any]
Task = Callable[[Config], Sequence[Mapping[str, Any]]]

_SCALARS = (str, int, float, bool, type(None))
_ADDRESS_RE = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$")


# ----------------------------------------------------------------------------------------------
# Canonical JSON, keys, validation
# ----------------------------------------------------------------------------------------------


def _plain(value: Any, where: str, *, scalars_only: bool = False) -> Any:
    """Return ``value`` as plain JSON types (numpy scalars → Python), or raise ``TypeError``."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalar
        item = value.item()
        if isinstance(item, _SCALARS):
            return _plain(item, where)
    if not scalars_only:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"{where} has a non-string key {k!r}")
                out[k] = _plain(v, f"{where}[{k!r}]")
            return out
        if isinstance(value, (list, tuple)):
            return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    kind = "a scalar" if scalars_only else "JSON-serializable"
    raise TypeError(f"{where} is not {kind}: {type(value).__name__} {value!r:.60}")


_CANONICAL_NAN = struct.pack("<d", float("nan"))
_F64 = "$f64"


def _tag(obj: Any) -> Any:
    """Replace NaNs other than the canonical one (sign bit, payload) by ``{"$f64": hex bits}``,
    so that every float round-trips through JSON bit for bit."""
    if isinstance(obj, float):
        if math.isnan(obj) and struct.pack("<d", obj) != _CANONICAL_NAN:
            return {_F64: struct.pack(">d", obj).hex()}
        return obj
    if isinstance(obj, dict):
        return {k: _tag(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_tag(v) for v in obj]
    return obj


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get(_F64), str):
        try:
            return struct.unpack(">d", bytes.fromhex(obj[_F64]))[0]
        except (ValueError, struct.error):
            raise ValueError(f"bad {_F64} value {obj[_F64]!r}") from None
    return obj


def _canonical(obj: Any) -> str:
    """Canonical JSON used for hashing: sorted keys, no spaces, ASCII, NaN/Infinity allowed."""
    return json.dumps(
        _tag(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )


def _dump(obj: Any) -> str:
    """JSON in insertion order (stable under a :func:`_load`/_dump round trip)."""
    return json.dumps(_tag(obj), separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def _load(text: str) -> Any:
    return json.loads(text, object_hook=_untag)


def _version() -> str:
    import rsstab

    return str(rsstab.__version__)


def _normalize_config(config: Any, index: int) -> Config:
    if not isinstance(config, Mapping):
        raise RsstabError(f"config #{index} is a {type(config).__name__}, not a dict")
    try:
        plain = _plain(config, f"config #{index}")
    except TypeError as exc:
        raise RsstabError(str(exc)) from None
    return _load(_dump(plain))


def task_identity(task: Callable[..., Any]) -> dict[str, str]:
    """Name and code fingerprint of a task, part of its store keys (see :func:`config_key`).

    ``name`` is ``module:qualname`` (a :func:`functools.partial` also records its arguments);
    ``code`` is the sha256 of the source file of the module defining the task, or ``""`` when
    there is no readable source (then only the name distinguishes tasks).
    """
    import functools
    import inspect

    func: Any = task
    extra = ""
    while isinstance(func, functools.partial):
        extra = f"{extra}partial{func.args!r}{sorted(func.keywords.items())!r}"
        func = func.func
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    code = ""
    try:
        source = inspect.getsourcefile(inspect.unwrap(func))
        if source is None and not inspect.isroutine(func):
            source = inspect.getsourcefile(type(func))
    except (TypeError, ValueError):
        source = None
    if source is not None:
        try:
            code = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        except OSError:
            code = ""
    return {"name": f"{module}:{qualname}{extra}", "code": code}


def _key(plain: Config, identity: Mapping[str, str] | None) -> str:
    material: dict[str, Any] = {"config": plain, "version": _version()}
    if identity is not None:
        material["task"] = {"name": identity["name"], "code": identity["code"]}
    return hashlib.sha256(_canonical(material).encode("ascii")).hexdigest()


def config_key(config: Mapping[str, Any], task: Callable[..., Any] | None = None) -> str:
    """Content address of a configuration: sha256 of its canonical JSON, the rsstab version and,
    when ``task`` is given, the task's :func:`task_identity` (its ``module:qualname`` and the
    sha256 of the source file defining it). :func:`run_sweep` always passes its task, so its
    store files are named ``config_key(config, task)``; without ``task`` the key covers the
    config and version only.

    Key order does not matter; ``1`` and ``1.0`` are different configurations.

    >>> config_key({"rank": 8, "seed": 0}) == config_key({"seed": 0, "rank": 8})
    True
    >>> len(config_key({"rank": 8}))
    64
    >>> config_key({"rank": 8}, task=len) != config_key({"rank": 8}, task=abs)
    True
    """
    plain = _normalize_config(config, 0)
    return _key(plain, None if task is None else task_identity(task))


def _rows_text(rows: Any) -> str:
    """Validate a task's return value and serialize it; raise ``TypeError`` if it is not tidy."""
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"task must return a list of dicts, got {type(rows).__name__}")
    plain = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}, not a dict")
        out = {}
        for k, v in row.items():
            if not isinstance(k, str):
                raise TypeError(f"row {i} has a non-string column {k!r}")
            out[k] = _plain(v, f"row {i} column {k!r}", scalars_only=True)
        plain.append(out)
    return _dump(plain)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ----------------------------------------------------------------------------------------------
# The store
# ----------------------------------------------------------------------------------------------


def _clean_tmp(directory: Path) -> None:
    """Remove temporary files left by dead writers on this host (e.g. after SIGKILL)."""
    for path in stale_temporaries(directory):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _record_text(
    key: str,
    config: Config,
    rows_text: str,
    seconds: float,
    identity: Mapping[str, str] | None = None,
) -> str:
    record: dict[str, Any] = {
        "format": FORMAT,
        "key": key,
        "version": _version(),
        "config": config,
    }
    if identity is not None:
        record["task"] = {"name": identity["name"], "code": identity["code"]}
    record |= {
        "seconds": round(seconds, 6),
        "rows": _load(rows_text),
    }
    body = _dump(record)
    digest = hashlib.sha256(body.encode("ascii")).hexdigest()
    return '{"sha256":"' + digest + '","record":' + body + "}\n"


def read_record(path: str | os.PathLike[str], key: str | None = None) -> dict[str, Any]:
    """Read and verify one store file; return its record (``config``, ``rows``, ...).

    Raises :class:`ValueError` naming the problem if the file is truncated, garbled, fails its
    checksum, belongs to another key, or was written by another rsstab version; ``OSError`` if it
    cannot be read (e.g. ``FileNotFoundError``, or ``IsADirectoryError`` for a folder).
    """
    path = Path(path)
    key = path.stem if key is None else key
    raw = path.read_bytes()
    try:
        doc = _load(raw.decode("ascii"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not valid JSON ({_one_line(exc)})") from None
    if not isinstance(doc, dict) or set(doc) != {"sha256", "record"}:
        raise ValueError("not a store file")
    record = doc["record"]
    if not isinstance(record, dict):
        raise ValueError("not a store file")  # noqa: TRY004 - bad data, not a bad argument
    body = _dump(record)
    if hashlib.sha256(body.encode("ascii")).hexdigest() != doc["sha256"]:
        raise ValueError("checksum mismatch")
    if record.get("format") != FORMAT:
        raise ValueError(f"unknown format {record.get('format')!r}")
    if record.get("version") != _version():
        raise ValueError(f"written by rsstab {record.get('version')!r}, not {_version()!r}")
    if record.get("key") != key or not isinstance(record.get("config"), dict):
        raise ValueError("record does not belong to this key")
    identity = record.get("task")
    if identity is not None and not (
        isinstance(identity, dict)
        and set(identity) == {"name", "code"}
        and all(isinstance(v, str) for v in identity.values())
    ):
        raise ValueError("bad task identity")
    if _key(_normalize_config(record["config"], 0), identity) != key:
        raise ValueError("config does not hash to the key")
    rows = record.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows are not a list of dicts")
    return record


# ----------------------------------------------------------------------------------------------
# Executors
# ----------------------------------------------------------------------------------------------


class InlineExecutor(cf.Executor):
    """Run each submitted call immediately in the calling thread (``KeyboardInterrupt`` passes).

    >>> InlineExecutor().submit(pow, 2, 10).result()
    1024
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future


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


@dataclass
class _Backend:
    executor: cf.Executor
    window: int
    close: Callable[[bool], None]


def _connect_dask(address: str) -> _Backend:
    if not _ADDRESS_RE.match(address):
        raise RsstabError(f"--scheduler must look like tcp://HOST:PORT, got {address!r}")
    try:
        import distributed
    except ImportError:
        raise RsstabError(
            "--scheduler needs Dask: pip install 'rsstab[dask]'"
        ) from None
    try:
        client = distributed.Client(
            address, timeout=DASK_CONNECT_TIMEOUT, set_as_default=False
        )
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the user's address
        raise RsstabError(
            f"cannot reach the Dask scheduler at {address}: {_one_line(exc)}"
        ) from None
    executor = client.get_executor(pure=False)

    def close(interrupted: bool) -> None:
        try:
            executor.shutdown(wait=not interrupted)
        finally:
            client.close()

    return _Backend(executor, sys.maxsize, close)


def _backend(scheduler: str | cf.Executor | None, workers: int | None) -> _Backend:
    if workers is not None and (not isinstance(workers, int) or workers < 0):
        raise RsstabError(f"--workers must be a non-negative integer, got {workers!r}")
    if isinstance(scheduler, cf.Executor):
        return _Backend(scheduler, sys.maxsize, lambda interrupted: None)
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise RsstabError(f"scheduler must be an address or an Executor, got {scheduler!r}")
        if workers not in (None, 0, 1):
            raise RsstabError("--workers is for the local pool; a Dask cluster brings its own")
        return _connect_dask(scheduler)
    if workers in (None, 0, 1):
        return _Backend(InlineExecutor(), 1, lambda interrupted: None)
    assert workers is not None
    pool = cf.ProcessPoolExecutor(
        max_workers=workers, initializer=_worker_init, initargs=(os.getpid(),)
    )

    def close(interrupted: bool) -> None:
        if interrupted:
            _stop_pool(pool)
        else:
            pool.shutdown(wait=True)

    return _Backend(pool, 2 * workers, close)


def _execute(task: Task, config: Config) -> tuple[str, str, Any]:
    """Worker side: run one configuration; return ``("ok", rows_json, seconds)`` or an error."""
    start = time.perf_counter()
    try:
        text = _rows_text(task(config))
    except Exception as exc:  # noqa: BLE001 - recorded, the sweep continues
        return ("error", _one_line(exc), traceback.format_exc())
    return ("ok", text, time.perf_counter() - start)


# ----------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------


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
        """Write :attr:`rows` to ``path`` atomically (see :func:`write_csv`)."""
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


def _progress_bar(enabled: bool, total: int, initial: int) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="config", desc="sweep", file=sys.stderr)


def _move_aside(path: Path, target: Path) -> None:
    """Move a corrupt store entry (a file, or a folder squatting on its name) to ``target``."""
    if path.is_dir() or target.is_dir():  # os.replace cannot swap a file and a folder
        import shutil

        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    os.replace(path, target)


@dataclass
class _Item:
    index: int
    config: Config
    key: str


def run_sweep(
    task: Task,
    configs: Sequence[Mapping[str, Any]],
    out: str | os.PathLike[str],
    *,
    scheduler: str | cf.Executor | None = None,
    workers: int | None = None,
    progress: bool = True,
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
        progress: show a tqdm progress bar on stderr (silently none if tqdm is missing).

    Returns:
        A :class:`SweepResult`. A configuration whose task raised is listed in ``failed`` (its
        traceback is kept in ``out/failures/<key>.json``) and retried on the next run.

    Raises:
        RsstabError: bad configs, workers or scheduler address.
        SweepInterrupted: on Ctrl-C (a ``KeyboardInterrupt``), after cancelling pending work;
            finished configurations stay in the store.
    """
    if not callable(task):
        raise RsstabError(f"task must be callable, got {type(task).__name__}")
    identity = task_identity(task)
    items: list[_Item] = []
    seen: dict[str, int] = {}
    for index, config in enumerate(configs):
        plain = _normalize_config(config, index)
        key = _key(plain, identity)
        if key in seen:
            raise RsstabError(f"config #{index} repeats config #{seen[key]}: {_canonical(plain)}")
        seen[key] = index
        items.append(_Item(index, plain, key))
    root = Path(out)
    store, failures, corrupt_dir = root / "store", root / "failures", root / "corrupt"
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RsstabError(f"cannot create the sweep store in {root}: {_one_line(exc)}") from None
    _clean_tmp(store)
    if failures.is_dir():
        _clean_tmp(failures)

    rows_of: dict[str, list[Row]] = {}
    corrupt: list[tuple[str, str]] = []
    todo: list[_Item] = []
    for item in items:
        path = store / f"{item.key}.json"
        try:
            rows_of[item.key] = read_record(path, item.key)["rows"]
            continue
        except FileNotFoundError:
            pass
        except (ValueError, OSError) as exc:  # OSError: a folder or an unreadable file
            reason = str(exc) if isinstance(exc, ValueError) else f"unreadable ({_one_line(exc)})"
            corrupt.append((item.key, reason))
            logger.warning("store file %s is corrupt (%s); recomputing it", path, reason)
            try:
                corrupt_dir.mkdir(exist_ok=True)
                _move_aside(path, corrupt_dir / path.name)
            except OSError as move_exc:
                raise RsstabError(
                    f"store file {path} is corrupt ({reason}) and cannot be moved aside to"
                    f" {corrupt_dir}: {_one_line(move_exc)}"
                ) from None
        todo.append(item)
    n_cached = len(items) - len(todo)

    failed: dict[str, str] = {}
    n_computed = 0

    def finish(item: _Item, future: cf.Future[Any]) -> None:
        nonlocal n_computed
        if future.cancelled():
            outcome: tuple[str, str, Any] = ("error", "CancelledError: cancelled", "")
        elif future.exception() is not None:
            exc = future.exception()
            assert exc is not None
            outcome = ("error", _one_line(exc), "".join(traceback.format_exception(exc)))
        else:
            outcome = future.result()
        fail_path = failures / f"{item.key}.json"
        if outcome[0] == "ok":
            text = _record_text(
                item.key, item.config, outcome[1], float(outcome[2]), identity
            )
            atomic_write(store / f"{item.key}.json", text)
            rows_of[item.key] = _load(text)["record"]["rows"]
            n_computed += 1
            if fail_path.exists():
                fail_path.unlink()
        else:
            failed[item.key] = outcome[1]
            note = {"config": item.config, "error": outcome[1], "traceback": outcome[2]}
            failures.mkdir(exist_ok=True)
            atomic_write(fail_path, json.dumps(note, indent=1, allow_nan=True) + "\n")

    if todo:
        backend = _backend(scheduler, workers)
        bar = None
        pending: dict[cf.Future[Any], _Item] = {}
        aborted = True
        queue: Iterator[_Item] = iter(todo)
        try:
            while True:
                while len(pending) < backend.window:
                    nxt = next(queue, None)
                    if nxt is None:
                        break
                    pending[backend.executor.submit(_execute, task, nxt.config)] = nxt
                if bar is None:  # after the first submissions: pools fork before tqdm's thread
                    bar = _progress_bar(progress, len(items), n_cached)
                if not pending:
                    break
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    finish(pending.pop(future), future)
                    if bar is not None:
                        bar.update(1)
                        if failed:
                            bar.set_postfix(failed=len(failed))
            aborted = False
        except KeyboardInterrupt:
            for future, item in list(pending.items()):
                if not future.cancel() and future.done() and future.exception() is None:
                    finish(item, future)  # finished before Ctrl-C: keep it
            kept = sum((store / f"{item.key}.json").exists() for item in items)
            raise SweepInterrupted(kept, len(items), store) from None
        finally:
            if bar is not None:
                bar.close()
            backend.close(aborted)

    rows = [dict(row) for item in items if item.key in rows_of for row in rows_of[item.key]]
    return SweepResult(
        rows=rows,
        failed=[(item.config, failed[item.key]) for item in items if item.key in failed],
        n_computed=n_computed,
        n_cached=n_cached,
        n_corrupt=len(corrupt),
        n_total=len(items),
        out=root,
        corrupt=corrupt,
    )


# ----------------------------------------------------------------------------------------------
# Tables and command-line helpers
# ----------------------------------------------------------------------------------------------


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ≥ ``minimum`` (one-line errors, exit 2).

    >>> int_at_least(1)("3")
    3
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        return value

    return parse


def add_sweep_arguments(parser: argparse.ArgumentParser, *, default_out: str | None = None) -> None:
    """Add ``--out``, ``--scheduler``, ``--workers`` and ``--no-progress`` to ``parser``.

    >>> p = argparse.ArgumentParser()
    >>> add_sweep_arguments(p, default_out="results/demo")
    >>> sweep_kwargs(p.parse_args(["--workers", "4", "--no-progress"]))
    {'out': 'results/demo', 'scheduler': None, 'workers': 4, 'progress': False}
    """
    group = parser.add_argument_group("sweep")
    group.add_argument(
        "--out",
        default=default_out,
        required=default_out is None,
        metavar="DIR",
        help="result store; re-running skips finished configurations"
        + (f" (default: {default_out})" if default_out else ""),
    )
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run on a Dask cluster (needs rsstab[dask])",
    )
    group.add_argument(
        "--workers",
        type=int_at_least(0),
        default=None,
        metavar="N",
        help="local worker processes (default: in-process)",
    )
    group.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress bar"
    )


def sweep_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`run_sweep` from arguments added by
    :func:`add_sweep_arguments`."""
    return {
        "out": args.out,
        "scheduler": args.scheduler,
        "workers": args.workers,
        "progress": args.progress,
    }


def run_sweep_command(
    task: Task,
    configs: Sequence[Mapping[str, Any]],
    args: argparse.Namespace,
    *,
    csv_name: str = "rows.csv",
) -> int:
    """Run a sweep for a command-line front end; write ``<out>/<csv_name>``; return an exit code.

    Prints the summary and each failure on stderr. Returns 0 when every configuration finished,
    :data:`EXIT_FAILED` (1) when some failed, :data:`EXIT_INTERRUPTED` (130) after Ctrl-C.
    Raises :class:`~rsstab.errors.RsstabError` for bad input (the CLI prints it, exit 2).
    """
    try:
        result = run_sweep(task, configs, **sweep_kwargs(args))
    except SweepInterrupted as exc:
        print(f"rsstab: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    path = result.write_csv(Path(args.out) / csv_name)
    for config, error in result.failed:
        print(f"rsstab: failed: {_canonical(config)}: {error}", file=sys.stderr)
    print(f"rsstab: {result.summary()}; rows in {path}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED
