"""The one writer of every file rsstab produces: atomic text, bytes, CSV and figures; and the
reader of the CSV tables it writes (:func:`read_table`).

Readers see the old file or the new one, never a part: each write goes to a temporary file in the
same folder (named ``.tmp-<pid>@<host>-<random>-<name>`` so that a dead writer's leftovers can be
recognised, see :func:`stale_temporaries`), is fsynced, renamed into place, and the folder is
fsynced. Standard library only.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     p = write_csv([{"r": 4, "v": 0.1}, {"r": 8, "v": float("nan"), "note": None}],
...                   pathlib.Path(d) / "t.csv")
...     print(p.read_text(), end="")
r,v,note
4,0.1,
8,nan,
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_csv", "read_table", "save_figure", "set_figure_formats", "stale_temporaries", "fsync_dir"]

#: Formats every figure is written in (``set_figure_formats``); empty: the path's own suffix only.
_FIGURE_FORMATS: list[str] = []
FIGURE_FORMATS = ("png", "svg", "pdf")

TMP_PREFIX = ".tmp-"
_TMP_RE = re.compile(r"^\.tmp-(\d+)@(.+)-[0-9a-f]{8}-")


def _host() -> str:
    return socket.gethostname().replace("/", "_")


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a folder, so that a rename inside it survives a crash (no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}@{_host()}-{secrets.token_hex(4)}-{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if isinstance(data, str):
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)
    return path


def stale_temporaries(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Temporary files in ``directory`` left by dead writers on this host (e.g. after SIGKILL):
    their rename can never happen, so they are safe to delete. POSIX only (elsewhere: none)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return
    host = _host()
    for path in Path(directory).glob(f"{TMP_PREFIX}*"):
        match = _TMP_RE.match(path.name)
        if not match or match.group(2) != host:
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            continue  # one of our own writes, in progress in another thread
        try:
            os.kill(pid, 0)
            continue  # the writer is alive
        except ProcessLookupError:
            pass  # the writer is dead
        except PermissionError:
            continue  # alive, owned by someone else
        yield path


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same bits
    return str(value)


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write tidy rows as CSV, atomically; columns in order of first appearance.

    Floats are written with ``repr`` (bit-exact), ``None`` as an empty cell.
    """
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(_csv_cell(row.get(c)) for c in columns)
    return atomic_write(path, buffer.getvalue())


def _csv_value(v: str) -> Any:
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def read_table(path: Path) -> list[dict[str, Any]]:
    """A CSV written by :func:`write_csv`, read back: numbers, booleans and ``None`` (an empty cell)
    converted back, other cells as text."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _csv_value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def set_figure_formats(formats: Sequence[str] | None) -> None:
    """Write every later figure in these formats (``png``, ``svg``, ``pdf``: vector output for
    talks) instead of its path's own suffix; ``None`` or empty restores the default.

    >>> set_figure_formats(["svg", "pdf"]); set_figure_formats(None)
    >>> set_figure_formats(["gif"])
    Traceback (most recent call last):
    ...
    ValueError: unknown figure format 'gif': expected png, svg or pdf
    """
    formats = [f.lower().lstrip(".") for f in (formats or [])]
    for f in formats:
        if f not in FIGURE_FORMATS:
            raise ValueError(f"unknown figure format {f!r}: expected png, svg or pdf")
    _FIGURE_FORMATS[:] = formats


def save_figure(fig: Any, path: str | os.PathLike[str], *, dpi: int = 110) -> Path:
    """Render a matplotlib figure in the format of ``path``'s suffix — or, after
    :func:`set_figure_formats`, in each chosen format beside it (same stem) — write it atomically,
    close it, and return the first path written."""
    path = Path(path)
    targets = [path.with_suffix("." + f) for f in _FIGURE_FORMATS] or [path]
    for target in targets:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=target.suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight")
        atomic_write(target, buffer.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)
    return targets[0]
