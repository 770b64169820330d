"""``rsstab derive [RESULT]``: print the chain of steps (assumption → computation → result) of a derivation."""

from __future__ import annotations

import argparse
import sys

from rsstab.errors import RsstabError

HELP = "print the symbolic derivations behind the √r law (one result or all), as text, markdown or LaTeX"

# Kept in sync with rsstab.derive.RESULTS by a test; listed here so --help stays free of sympy.
RESULT_KEYS = ("iid", "first-step", "trajectory", "backward", "iff", "depth", "adam", "reparam",
               "finite-width", "adam-finite-width", "adam-epsilon", "hyperparameter-tuple",
               "expansion-range", "finite-eta")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("result", nargs="?", default="all", metavar="RESULT",
                   help=f"one of {', '.join(RESULT_KEYS)}, its number 1-{len(RESULT_KEYS)}, or 'all' (default)")
    p.add_argument("--format", choices=("text", "markdown", "latex"), default="text",
                   help="text for a terminal, markdown for GitHub (math in $…$), latex for a document")
    p.add_argument("--output", "-o", metavar="PATH",
                   help="write to PATH (atomically) instead of printing")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="one line per result on stderr as it is derived (default: on when stderr is a terminal); "
                        "never mixed into the output on stdout")


def resolve(result: str) -> list[str] | None:
    """Map RESULT (key, number or 'all') to the keys to derive; None means all."""
    if result == "all":
        return None
    if result.isdigit() and 1 <= int(result) <= len(RESULT_KEYS):
        return [RESULT_KEYS[int(result) - 1]]
    if result in RESULT_KEYS:
        return [result]
    raise RsstabError(f"unknown result {result!r}: expected 'all', 1-{len(RESULT_KEYS)} or one of "
                      f"{', '.join(RESULT_KEYS)}")


def run(args: argparse.Namespace) -> int:
    keys = resolve(args.result)
    import time
    from pathlib import Path

    from rsstab.derive import RESULTS, derivations, render

    show = sys.stderr.isatty() if args.progress is None else args.progress
    todo = list(RESULTS) if keys is None else keys
    ds, start = [], time.monotonic()
    for i, key in enumerate(todo, 1):
        if show:
            print(f"rsstab derive: [{i}/{len(todo)}] {key} …", file=sys.stderr, flush=True)
        ds += derivations([key])  # one at a time, for the progress line
    if show:
        print(f"rsstab derive: {len(todo)} result(s) derived in {time.monotonic() - start:.1f} s", file=sys.stderr,
              flush=True)
    text = render(ds, args.format)
    if args.output:
        from rsstab.io import atomic_write

        path = Path(args.output)
        try:
            atomic_write(path, text)
        except OSError as exc:
            raise RsstabError(f"cannot write {path}: {exc.strerror}") from None
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    failed = [f"{D.number} ({D.key})" for D in ds if D.failures()]
    if failed:
        print(f"rsstab: identities fail in result(s) {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
