"""The command-line side of sweeps: the only place that knows the sweep flags' names."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rsstab.errors import RsstabError

if TYPE_CHECKING:  # pragma: no cover
    from rsstab.sweep.executors import Task

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "FLAGS",
    "add_sweep_arguments",
    "error_message",
    "int_at_least",
    "run_sweep_command",
    "sweep_kwargs",
]

#: Exit code of :func:`run_sweep_command` when some configurations failed.
EXIT_FAILED = 1
#: Exit code for bad input (an :class:`~rsstab.errors.RsstabError`), as argparse uses.
EXIT_USAGE = 2
#: Exit code after Ctrl-C (what shells report for SIGINT).
EXIT_INTERRUPTED = 130
#: The flag that sets each parameter of :func:`~rsstab.sweep.run_sweep`.
FLAGS = {"out": "--out", "scheduler": "--scheduler", "workers": "--workers"}


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
    """Add ``--out``, ``--scheduler``, ``--workers`` and ``--progress/--no-progress`` to ``parser``.

    >>> p = argparse.ArgumentParser()
    >>> add_sweep_arguments(p, default_out="results/demo")
    >>> sweep_kwargs(p.parse_args(["--workers", "4", "--no-progress"]))
    {'out': 'results/demo', 'scheduler': None, 'workers': 4, 'progress': False}
    """
    group = parser.add_argument_group("sweep")
    group.add_argument(
        FLAGS["out"],
        dest="out",
        default=default_out,
        required=default_out is None,
        metavar="DIR",
        help="result store; re-running skips finished configurations"
        + (f" (default: {default_out})" if default_out else ""),
    )
    group.add_argument(
        FLAGS["scheduler"],
        dest="scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="run on a Dask cluster (needs rsstab[dask])",
    )
    group.add_argument(
        FLAGS["workers"],
        dest="workers",
        type=int_at_least(0),
        default=None,
        metavar="N",
        help="local worker processes (default: in-process)",
    )
    group.add_argument(
        "--progress", dest="progress", action=argparse.BooleanOptionalAction, default=None,
        help="progress bar on stderr (default: on when stderr is a terminal, off when piped)",
    )


def sweep_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`~rsstab.sweep.run_sweep` from arguments added by
    :func:`add_sweep_arguments`."""
    return {
        "out": args.out,
        "scheduler": args.scheduler,
        "workers": args.workers,
        "progress": args.progress,
    }


def error_message(exc: RsstabError) -> str:
    """The message of a library error, pointing at the sweep flag of its parameter if any.

    >>> error_message(RsstabError("workers must be a non-negative integer", parameter="workers"))
    'workers must be a non-negative integer (see --workers)'
    """
    flag = FLAGS.get(exc.parameter or "")
    return f"{exc} (see {flag})" if flag else str(exc)


def run_sweep_command(
    task: Task,
    configs: Sequence[Mapping[str, Any]],
    args: argparse.Namespace,
    *,
    csv_name: str = "rows.csv",
) -> int:
    """Run a sweep for a command-line front end; write ``<out>/<csv_name>``; return an exit code.

    Prints the summary and each failure on stderr. Returns 0 when every configuration finished,
    :data:`EXIT_FAILED` (1) when some failed, :data:`EXIT_USAGE` (2) for bad input (printed as
    ``rsstab: error: <message> (see <flag>)``), :data:`EXIT_INTERRUPTED` (130) after Ctrl-C.
    """
    from rsstab.sweep.codec import canonical
    from rsstab.sweep.run import SweepInterrupted, run_sweep

    try:
        result = run_sweep(task, configs, **sweep_kwargs(args))
    except SweepInterrupted as exc:
        print(f"rsstab: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RsstabError as exc:
        print(f"rsstab: error: {error_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    path = result.write_csv(Path(args.out) / csv_name)
    for config, error in result.failed:
        print(f"rsstab: failed: {canonical(config)}: {error}", file=sys.stderr)
    print(f"rsstab: {result.summary()}; rows in {path}", file=sys.stderr)
    return 0 if result.ok else EXIT_FAILED
