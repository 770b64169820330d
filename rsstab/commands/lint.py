"""``rsstab lint PATH…``: findings about many LoRA adapters, one per line, with stable codes.

Paths may be adapter folders (searched recursively for ``adapter_config.json``, so named
adapters in subfolders are read too), ``adapter_config.json`` / ``adapter_model.safetensors``
files, bare ``.json`` configs, or globs. Output: ``path:module: CODE message`` lines (``text``),
one JSON object (``json``) or GitHub workflow annotations (``github``).

Exit code: 0 clean (info findings only), 1 findings, 2 unreadable input (``RS001``).
"""

from __future__ import annotations

import argparse
import sys

from rsstab.vocab import OPTIMIZER_METAVAR, OPTIMIZERS, canonical_optimizer

HELP = "lint LoRA adapters and configs: one finding per line (path:module: CODE message), stable codes"


def _codes(text: str) -> list[str]:
    from rsstab.lint import CODES

    codes = [c.strip().upper() for c in text.split(",") if c.strip()]
    unknown = [c for c in codes if c not in CODES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown code(s) {', '.join(unknown)}: see the README's list")
    return codes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rsstab lint``."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="adapter folders, adapter_config.json / adapter_model.safetensors files, or globs")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text",
                        help="text: path:module: CODE message (default); json; github: workflow annotations")
    parser.add_argument("--optimizer", type=canonical_optimizer, choices=OPTIMIZERS, metavar=OPTIMIZER_METAVAR,
                        default="adamw", help="optimizer regime of RS301 (default: adamw, how PEFT adapters are "
                        "trained; sgd: the paper's theorem)")
    parser.add_argument("--ignore", type=_codes, action="append", default=[], metavar="CODE[,CODE…]",
                        help="codes to leave out (repeatable), e.g. --ignore RS301,RS304")


def run(args: argparse.Namespace) -> int:
    """Print the findings; return 0 (clean), 1 (findings) or 2 (unreadable input)."""
    from rsstab.lint import exit_code, format_findings, lint_paths

    ignored = {c for group in args.ignore for c in group}
    findings, n = lint_paths(args.paths, args.optimizer)
    findings = [f for f in findings if f.code not in ignored or f.code == "RS001"]
    out = format_findings(findings, args.format, optimizer=args.optimizer, adapters=n)
    if out:
        print(out)
    if args.format != "json":
        bad = sum(f.severity != "info" for f in findings)
        print(f"rsstab lint: {n} adapter(s), {bad} finding(s), {len(findings) - bad} info", file=sys.stderr)
    return exit_code(findings)
