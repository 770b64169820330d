"""``rsstab schema [COMMAND]``: the JSON Schema (draft 2020-12) of the commands' ``--json`` output.

The schema lives in :func:`rsstab.schema.json_schema`; this prints it. Without COMMAND it is
every command's (``oneOf``, told apart by ``command``); with one, that command's alone.

Exit code: 0, or 2 for a command without JSON output.
"""

from __future__ import annotations

import argparse

HELP = "print the JSON Schema (draft 2020-12) of every command's --json output, or of one command's"

# Kept equal to rsstab.schema.SCHEMA_COMMANDS by a test; listed here so --help stays light.
SCHEMA_COMMANDS = ("check", "simulate", "transfer", "peft", "lint")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("command_name", nargs="?", default=None, metavar="COMMAND",
                   help=f"one of {', '.join(SCHEMA_COMMANDS)} (default: all of them); lint's is for --format json")


def run(args: argparse.Namespace) -> int:
    import json

    from rsstab.schema import json_schema

    print(json.dumps(json_schema(args.command_name), ensure_ascii=False, indent=2))
    return 0
