"""Resumable sweeps: a grid of independent configurations → any ``concurrent.futures`` executor.

Each configuration is a JSON-serializable ``dict``; a *task* maps one configuration to a list of
tidy rows (``dict`` of scalars). Every finished configuration is written atomically (temporary
file, ``fsync``, rename, ``fsync`` of the directory) into a content-addressed store::

    <out>/store/<key>.json      a finished configuration: its config, task identity and rows
    <out>/failures/<key>.json   last error of a configuration that raised (retried next run)
    <out>/corrupt/<key>.json    a store file that failed its checks, moved aside, then recomputed

The key is the sha256 of the canonical JSON of the configuration, the rsstab version and the
task's identity (:func:`task_identity`): its ``module:qualname``; a fingerprint of the *whole*
rsstab package source (sha256 over the sorted relative paths and bytes of every ``*.py`` under
the installed ``rsstab/`` directory, computed once per process); the sha256 of the task's own
source file when it lies outside the package (``tests/support/sweep_tasks.py``, ``simulations/*.py``);
and the installed versions of Python, torch and transformers (read from their metadata, never
imported; ``"absent"`` when not installed). So two tasks never share cells, and an edit to any
rsstab module, the task's own file, or an upgrade of Python, torch or transformers invalidates
the cells, which are then recomputed. Code outside rsstab that an outside task imports, and
other libraries (numpy, ...), are not fingerprinted.

Re-running the same sweep skips what is in the store, so a run killed at any moment (even by
SIGKILL) and re-run yields exactly the rows of an uninterrupted run. The rows of
:class:`SweepResult` are always read back from the store's JSON text, so cached and freshly
computed rows are identical objects; floats round-trip bit-exactly (:mod:`rsstab.sweep.codec`).

Executors: in-process (default), a local :class:`~concurrent.futures.ProcessPoolExecutor`
(``workers >= 2``), a Dask cluster (``scheduler="tcp://HOST:PORT"``, needs ``rsstab[dask]``), or
any :class:`~concurrent.futures.Executor` instance. Workers only compute; the calling process
writes the store, so workers need no shared filesystem.

Modules: :mod:`~rsstab.sweep.codec` (JSON), :mod:`~rsstab.sweep.store` (keys and records),
:mod:`~rsstab.sweep.executors`, :mod:`~rsstab.sweep.run` (:func:`run_sweep`) and
:mod:`~rsstab.sweep.cli` (command-line flags). Standard library only.

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

from typing import TYPE_CHECKING

from rsstab._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from rsstab.sweep.cli import (EXIT_FAILED, EXIT_INTERRUPTED, add_sweep_arguments, error_message,
                                  int_at_least, run_sweep_command, sweep_kwargs)
    from rsstab.sweep.executors import InlineExecutor
    from rsstab.sweep.run import SweepInterrupted, SweepResult, run_sweep
    from rsstab.sweep.store import FORMAT, config_key, read_record, task_identity

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "FORMAT",
    "InlineExecutor",
    "SweepInterrupted",
    "SweepResult",
    "add_sweep_arguments",
    "config_key",
    "error_message",
    "int_at_least",
    "read_record",
    "run_sweep",
    "run_sweep_command",
    "sweep_kwargs",
    "task_identity",
]

# Lazy: a command line that only needs the argparse helpers (``rsstab.sweep.cli``) does not pay for
# the executors, the store and the run loop.
_LAZY = {
    **dict.fromkeys(("EXIT_FAILED", "EXIT_INTERRUPTED", "add_sweep_arguments", "error_message", "int_at_least",
                     "run_sweep_command", "sweep_kwargs"), "rsstab.sweep.cli"),
    "InlineExecutor": "rsstab.sweep.executors",
    **dict.fromkeys(("SweepInterrupted", "SweepResult", "run_sweep"), "rsstab.sweep.run"),
    **dict.fromkeys(("FORMAT", "config_key", "read_record", "task_identity"), "rsstab.sweep.store"),
}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
