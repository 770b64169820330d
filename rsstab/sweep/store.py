"""The content-addressed store of a sweep: keys, records, and the folders under ``out``.

A key is the sha256 of the canonical JSON of a configuration, the rsstab version and the task's
:func:`task_identity` (see the :mod:`rsstab.sweep` docstring for what that covers).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.io import atomic_write, stale_temporaries
from rsstab.sweep.codec import Config, canonical, dump, load, normalize_config, one_line

__all__ = ["FORMAT", "IDENTITY_FIELDS", "Store", "config_key", "key_of", "read_record",
           "task_identity"]

logger = logging.getLogger(__name__)

#: Format tag written into every store file.
FORMAT = "rsstab-sweep/2"
#: Installed distributions whose versions are part of every task's identity (never imported).
DEPENDENCIES = ("torch", "transformers")
#: The pieces of :func:`task_identity`, in order.
IDENTITY_FIELDS = ("name", "package", "source", "python", *DEPENDENCIES)

_PACKAGE = Path(__file__).resolve().parents[1]  # the installed rsstab/ directory

Row = dict[str, Any]


def version() -> str:
    """The rsstab version (part of every key, checked when a record is read)."""
    import rsstab

    return str(rsstab.__version__)


@functools.cache
def package_fingerprint() -> str:
    """sha256 over the sorted relative paths and bytes of every ``*.py`` of the installed rsstab
    package (``__pycache__`` and hidden files skipped); computed once per process."""
    digest = hashlib.sha256()
    files = sorted(
        (path.relative_to(_PACKAGE).as_posix(), path)
        for path in _PACKAGE.rglob("*.py")
        if not any(part == "__pycache__" or part.startswith(".")
                   for part in path.relative_to(_PACKAGE).parts)
    )
    for name, path in files:
        for chunk in (name.encode("utf-8"), path.read_bytes()):
            digest.update(len(chunk).to_bytes(8, "big"))
            digest.update(chunk)
    return digest.hexdigest()


def _installed(distribution: str) -> str:
    """The installed version of ``distribution`` from its metadata (no import), or ``"absent"``."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _source_file(func: Any) -> Path | None:
    """The source file defining ``func`` (or the class of a callable instance), if any."""
    import inspect

    try:
        source = inspect.getsourcefile(inspect.unwrap(func))
        if source is None and not inspect.isroutine(func):
            source = inspect.getsourcefile(type(func))
    except (TypeError, ValueError):
        return None
    return None if source is None else Path(source).resolve()


def task_identity(task: Callable[..., Any]) -> dict[str, str]:
    """What, besides the configuration and the rsstab version, decides a task's results: the
    pieces of its store keys (see :func:`config_key`), in the order of :data:`IDENTITY_FIELDS`.

    * ``name``: ``module:qualname`` (a :func:`functools.partial` also records its arguments);
    * ``package``: :func:`package_fingerprint`, so an edit to any rsstab module the task calls
      changes it;
    * ``source``: sha256 of the task's source file when it lies outside the rsstab package (e.g.
      ``tests/support/sweep_tasks.py``, ``simulations/*.py``); ``""`` inside the package (the
      fingerprint covers it) or when there is no readable source;
    * ``python``, ``torch``, ``transformers``: their versions (``"absent"`` when not installed).

    >>> identity = task_identity(len)
    >>> list(identity) == list(IDENTITY_FIELDS), identity["name"], identity["source"]
    (True, 'builtins:len', '')
    """
    func: Any = task
    extra = ""
    while isinstance(func, functools.partial):
        extra = f"{extra}partial{func.args!r}{sorted(func.keywords.items())!r}"
        func = func.func
    module = getattr(func, "__module__", None) or type(func).__module__
    qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
    source = ""
    path = _source_file(func)
    if path is not None and not path.is_relative_to(_PACKAGE):
        try:
            source = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            source = ""
    return {
        "name": f"{module}:{qualname}{extra}",
        "package": package_fingerprint(),
        "source": source,
        "python": platform.python_version(),
        **{name: _installed(name) for name in DEPENDENCIES},
    }


def key_of(config: Config, identity: Mapping[str, str] | None) -> str:
    """Key of a normalized configuration under a task identity (``None``: no task)."""
    material: dict[str, Any] = {"config": config, "version": version()}
    if identity is not None:
        material["task"] = dict(identity)
    return hashlib.sha256(canonical(material).encode("ascii")).hexdigest()


def config_key(config: Mapping[str, Any], task: Callable[..., Any] | None = None) -> str:
    """Content address of a configuration: sha256 of its canonical JSON, the rsstab version and,
    when ``task`` is given, the task's :func:`task_identity` (its name, the rsstab package
    fingerprint, its own source file outside the package, the Python, torch and transformers
    versions). :func:`~rsstab.sweep.run_sweep` always passes its task, so its store files are
    named ``config_key(config, task)``; without ``task`` the key covers the config and version.

    Key order does not matter; ``1`` and ``1.0`` are different configurations.

    >>> config_key({"rank": 8, "seed": 0}) == config_key({"seed": 0, "rank": 8})
    True
    >>> len(config_key({"rank": 8}))
    64
    >>> config_key({"rank": 8}, task=len) != config_key({"rank": 8}, task=abs)
    True
    """
    return key_of(normalize_config(config, 0), None if task is None else task_identity(task))


def _record_text(
    key: str, config: Config, rows_text: str, seconds: float, identity: Mapping[str, str]
) -> str:
    """A store file: ``{"sha256": <of the record's JSON>, "record": {...}}`` on one line.
    ``rows_text`` (:func:`~rsstab.sweep.codec.rows_text`'s compact JSON, which a
    :func:`~rsstab.sweep.codec.load`/:func:`~rsstab.sweep.codec.dump` round trip leaves as it is)
    is the last member as written: ``body`` is ``dump(record)`` without parsing the rows again."""
    record: dict[str, Any] = {
        "format": FORMAT,
        "key": key,
        "version": version(),
        "config": config,
        "task": dict(identity),
        "seconds": round(seconds, 6),
    }
    body = dump(record)[:-1] + ',"rows":' + rows_text + "}"
    digest = hashlib.sha256(body.encode("ascii")).hexdigest()
    return '{"sha256":"' + digest + '","record":' + body + "}\n"


def read_record(path: str | os.PathLike[str], key: str | None = None) -> dict[str, Any]:
    """Read and verify one store file; return its record (``config``, ``task``, ``rows``, ...).

    Raises :class:`ValueError` naming the problem if the file is truncated, garbled, fails its
    checksum, belongs to another key, or was written by another rsstab version; ``OSError`` if it
    cannot be read (e.g. ``FileNotFoundError``, or ``IsADirectoryError`` for a folder).
    """
    path = Path(path)
    key = path.stem if key is None else key
    raw = path.read_bytes()
    try:
        doc = load(raw.decode("ascii"))
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not valid JSON ({one_line(exc)})") from None
    if not isinstance(doc, dict) or set(doc) != {"sha256", "record"}:
        raise ValueError("not a store file")
    record = doc["record"]
    if not isinstance(record, dict):
        raise ValueError("not a store file")  # noqa: TRY004 - bad data, not a bad argument
    if hashlib.sha256(dump(record).encode("ascii")).hexdigest() != doc["sha256"]:
        raise ValueError("checksum mismatch")
    if record.get("format") != FORMAT:
        raise ValueError(f"unknown format {record.get('format')!r}")
    if record.get("version") != version():
        raise ValueError(f"written by rsstab {record.get('version')!r}, not {version()!r}")
    if record.get("key") != key or not isinstance(record.get("config"), dict):
        raise ValueError("record does not belong to this key")
    identity = record.get("task")
    if not (
        isinstance(identity, dict)
        and tuple(identity) == IDENTITY_FIELDS
        and all(isinstance(v, str) for v in identity.values())
    ):
        raise ValueError("bad task identity")
    if key_of(normalize_config(record["config"], 0), identity) != key:
        raise ValueError("config does not hash to the key")
    rows = record.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("rows are not a list of dicts")
    return record


def _clean_tmp(directory: Path) -> None:
    """Remove temporary files left by dead writers on this host (e.g. after SIGKILL)."""
    for path in stale_temporaries(directory):
        path.unlink(missing_ok=True)


def _move_aside(path: Path, target: Path) -> None:
    """Move a corrupt store entry (a file, or a folder squatting on its name) to ``target``."""
    if path.is_dir() or target.is_dir():  # os.replace cannot swap a file and a folder
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    os.replace(path, target)


@dataclass
class Store:
    """The folders of a sweep under ``root``::

        store/<key>.json      a finished configuration (see :func:`read_record`)
        failures/<key>.json   the last error of a configuration that raised (retried next run)
        corrupt/<key>.json    a store file that failed its checks, moved aside, then recomputed

    Only the calling process writes here (workers just compute), so workers need no shared
    filesystem. ``corrupt`` collects ``(key, reason)`` of the entries :meth:`lookup` moved aside.
    """

    root: Path
    identity: Mapping[str, str]
    corrupt: list[tuple[str, str]] = field(default_factory=list)

    @property
    def directory(self) -> Path:
        """``root/store``: one file per finished configuration."""
        return self.root / "store"

    @classmethod
    def open(cls, out: str | os.PathLike[str], identity: Mapping[str, str]) -> Store:
        """Create the store under ``out`` if needed and remove dead writers' temporary files.

        Raises:
            RsstabError: (``parameter="out"``) the folder cannot be created.
        """
        store = cls(Path(out), identity)
        try:
            store.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RsstabError(
                f"cannot create the sweep store in {store.root}: {one_line(exc)}", parameter="out"
            ) from None
        _clean_tmp(store.directory)
        if (store.root / "failures").is_dir():
            _clean_tmp(store.root / "failures")
        return store

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def has(self, key: str) -> bool:
        """Whether a finished configuration is stored under ``key``."""
        return self._path(key).exists()

    def lookup(self, key: str) -> list[Row] | None:
        """The stored rows of ``key``; ``None`` when absent or corrupt (then logged, recorded in
        :attr:`corrupt` and moved to ``corrupt/``, so that it is recomputed).

        Raises:
            RsstabError: (``parameter="out"``) a corrupt entry cannot be moved aside.
        """
        path = self._path(key)
        try:
            return read_record(path, key)["rows"]
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as exc:  # OSError: a folder or an unreadable file
            reason = str(exc) if isinstance(exc, ValueError) else f"unreadable ({one_line(exc)})"
        self.corrupt.append((key, reason))
        logger.warning("store file %s is corrupt (%s); recomputing it", path, reason)
        corrupt_dir = self.root / "corrupt"
        try:
            corrupt_dir.mkdir(exist_ok=True)
            _move_aside(path, corrupt_dir / path.name)
        except OSError as exc:
            raise RsstabError(
                f"store file {path} is corrupt ({reason}) and cannot be moved aside to"
                f" {corrupt_dir}: {one_line(exc)}",
                parameter="out",
            ) from None
        return None

    def save(self, key: str, config: Config, rows_text: str, seconds: float) -> list[Row]:
        """Store a finished configuration atomically, drop its failure note, return its rows as
        read back from the stored text."""
        rows = load(rows_text)  # first: text that is not JSON never reaches the store
        atomic_write(self._path(key), _record_text(key, config, rows_text, seconds, self.identity))
        (self.root / "failures" / f"{key}.json").unlink(missing_ok=True)
        return rows

    def save_failure(self, key: str, config: Config, error: str, traceback: str) -> None:
        """Keep the last error (and traceback) of a configuration that raised."""
        note = {"config": config, "error": error, "traceback": traceback}
        failures = self.root / "failures"
        failures.mkdir(exist_ok=True)
        atomic_write(failures / f"{key}.json", json.dumps(note, indent=1, allow_nan=True) + "\n")
