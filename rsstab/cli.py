"""Thin command-line front end: ``rsstab <command> ...``.

Each command lives in ``rsstab/commands/<name>.py`` and exposes ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Command modules import nothing heavy at
module level, so ``rsstab check`` costs about as much as importing sympy.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from rsstab import __version__
from rsstab.errors import RsstabError

COMMANDS = ("check", "peft", "lint", "simulate", "derive", "transfer", "schema")

EXIT_STABLE, EXIT_UNSTABLE, EXIT_USAGE = 0, 1, 2

#: How the command line spells the library's parameters (see ``RsstabError.parameter``); the
#: sweep's own flags live in :data:`rsstab.sweep.cli.FLAGS`.
FLAGS = {"constants": "--set NAME=VALUE", "lr_scaling": "--lr-scaling", "eps": "--eps",
         "grad_scale": "--grad-scale", "assume": "--assume", "init_std": "--init-std", "from_rank": "--from-rank", "to_rank": "--to-rank", "lr": "--lr"}


#: How the command line spells an argument that a library message names (``RsstabError.names``).
SPELLINGS = {"width": "--width", "constants": "--set", "assume": "--assume"}


def _flag(parameter: str | None) -> str | None:
    if not parameter:
        return None
    if parameter in FLAGS:
        return FLAGS[parameter]
    from rsstab.sweep.cli import FLAGS as SWEEP_FLAGS  # only on an error: keeps start-up light

    return SWEEP_FLAGS.get(parameter)


#: What each command's exit code means, and one example, shown at the end of its --help.
EXIT_CODES = {
    "check": "0 rank-stabilized, 1 not (collapse, blow-up or indeterminate), 2 invalid input",
    "simulate": "0 measured rank-stabilized, 1 not, 2 invalid input",
    "peft": "0 every module rank-stabilized, 1 some module not, 2 unreadable or invalid adapter",
    "derive": "0 every identity holds, 1 an identity fails, 2 invalid input",
    "transfer": "0 a learning rate was predicted, 2 invalid input",
    "lint": "0 no findings (info findings do not fail), 1 findings (unreadable adapters, RS001, included), 2 usage error",
    "schema": "0 the schema was printed, 2 a command without JSON output",
}
EXAMPLES = {
    "check": 'rsstab check "alpha/sqrt(r)" --optimizer adam --json',
    "simulate": 'rsstab simulate "alpha/sqrt(r)" --ranks 64,256,1024 --seeds 4',
    "peft": "rsstab peft path/to/adapter_dir --json",
    "derive": "rsstab derive first-step --format markdown",
    "lint": "rsstab lint adapters/ configs/*.json --format github",
    "transfer": 'rsstab transfer "alpha/sqrt(r)" --from-rank 16 --to-rank 256 --lr 2e-4 --optimizer adam',
    "schema": "rsstab schema simulate > simulate.schema.json",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage dump) that points to ``--help``, and exit code 2.

    ``argv`` (set by :func:`main`) lets the error spot an expression that starts with "-"
    (``rsstab check "-1/sqrt(r)"``), which argparse reads as an unknown flag."""

    argv: Sequence[str] = ()

    def error(self, message: str) -> None:  # type: ignore[override]
        known = {s for a in self._actions for s in a.option_strings}
        dashed = [a for a in self.argv if a.startswith("-") and a.split("=")[0] not in known and a != "--"
                  and _EXPRESSION_LIKE.match(a)]
        if dashed and any(a.dest == "expr" for a in self._actions):
            message += (f"; an expression that starts with '-' goes after '--': {self.prog} -- "
                        f"\"{dashed[0]}\"")
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


#: A token starting with "-" that reads as an expression, not a flag: "-1/sqrt(r)", "-r**2", "-(r)".
_EXPRESSION_LIKE = re.compile(r"^-(?:[\d.(]|r$|[A-Za-z_]\w*\s*[-+*/^(])")


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append "(default: X)" to the help of options that have a default and do not say it."""
    for action in parser._actions:
        default = action.default
        if (action.help in (None, argparse.SUPPRESS) or default in (None, False, True, [], argparse.SUPPRESS)
                or "default" in action.help or not action.option_strings):
            continue
        action.help += f" (default: {default})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rsstab",
        description="Derive, classify and measure rank stabilization of LoRA scaling factors.",
        epilog="Run 'rsstab COMMAND --help' for a command's options, exit codes and an example.",
    )
    parser.add_argument("--version", action="version", version=f"rsstab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    parser.set_defaults(_parsers={})
    for name in COMMANDS:
        module = importlib.import_module(f"rsstab.commands.{name}")
        epilog = "\n".join(filter(None, [f"exit codes: {EXIT_CODES[name]}" if name in EXIT_CODES else "",
                                         f"example: {EXAMPLES[name]}" if name in EXAMPLES else ""]))
        p = sub.add_parser(name, help=module.HELP, description=module.HELP, epilog=epilog or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        _show_defaults(p)
        p.set_defaults(_run=module.run)
        parser.get_default("_parsers")[name] = p
    return parser


#: Flags whose value may start with "-" without looking like a number to argparse ("-1/2").
SIGNED_FLAGS = ("--lr-scaling",)


def _join_signed(argv: Sequence[str]) -> list[str]:
    """``--lr-scaling -1/2`` → ``--lr-scaling=-1/2`` (argparse would read "-1/2" as a flag)."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg in SIGNED_FLAGS:
            value = next(it, None)
            out.append(arg if value is None else f"{arg}={value}")
        else:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (0 stable / success, 1 not stable, 2 bad input)."""
    parser = build_parser()
    _Parser.argv = _join_signed(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(_Parser.argv)
    if args.command is None:  # bare `rsstab`: say what there is
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if unknown:  # said by the subcommand, so that the hint points to its own --help
        args._parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args._run(args))
    except RsstabError as exc:
        flag = _flag(getattr(exc, "parameter", None))
        where = f"rsstab {args.command}"
        hint = f"see {flag} in '{where} --help'" if flag else f"see '{where} --help'"
        print(f"rsstab: error: {exc.spelled(lambda name: SPELLINGS.get(name) or _flag(name))} ({hint})",
              file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:  # an optional dependency missing where no command checked it first
        from rsstab.errors import missing_extra

        error = missing_extra(exc)
        if error is None:
            raise
        print(f"rsstab: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # a sweep's interruption says what was kept
        print(f"rsstab: {exc}" if str(exc) else "rsstab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `rsstab check ... | head`
        sys.stdout = None  # nothing more can be written
        return EXIT_STABLE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
