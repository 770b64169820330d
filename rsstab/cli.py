"""Thin command-line front end: ``rsstab <command> ...``.

Each command lives in ``rsstab/commands/<name>.py`` and exposes ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import nothing heavy at
module level, so ``rsstab check`` costs about as much as importing sympy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rsstab.errors import RsstabError

COMMANDS = ("check", "peft", "lint", "simulate", "derive")

EXIT_STABLE, EXIT_UNSTABLE, EXIT_USAGE = 0, 1, 2

#: How the command line spells the library's parameters (see ``RsstabError.parameter``); the
#: sweep's own flags live in :data:`rsstab.sweep.cli.FLAGS`.
FLAGS = {"constants": "--set NAME=VALUE"}


def _flag(parameter: str | None) -> str | None:
    if not parameter:
        return None
    if parameter in FLAGS:
        return FLAGS[parameter]
    from rsstab.sweep.cli import FLAGS as SWEEP_FLAGS  # only on an error: keeps start-up light

    return SWEEP_FLAGS.get(parameter)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rsstab",
        description="Derive, classify and measure rank stabilization of LoRA scaling factors.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"rsstab.commands.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 stable / success, 1 not stable, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except RsstabError as exc:
        flag = _flag(getattr(exc, "parameter", None))
        print(f"rsstab: error: {exc}" + (f" (see {flag})" if flag else ""), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # a sweep's interruption says what was kept
        print(f"rsstab: {exc}" if str(exc) else "rsstab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rsstab check ... | head`
        sys.stdout = None  # type: ignore[assignment]  # nothing more can be written
        return EXIT_STABLE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
