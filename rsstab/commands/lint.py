"""``rsstab lint PATH…``: findings about many LoRA adapters, one per line, with stable codes.

Paths may be adapter folders (searched recursively for ``adapter_config.json``, so named
adapters in subfolders are read too), ``adapter_config.json`` / ``adapter_model.safetensors``
files, bare ``.json`` configs, or globs. Output: ``path[:line]:module: CODE message`` lines
(``text``), one JSON object (``json``) or GitHub workflow annotations (``github``).

As with ruff: ``--select`` / ``--ignore`` take codes or prefixes (``RS3``), ``--exit-zero``,
``--explain CODE``, and settings from ``[tool.rsstab.lint]`` in the nearest ``pyproject.toml``
that has one (keys ``select``, ``ignore``, ``optimizer``, ``lr-scaling``, ``format``; a flag
overrides its key; ``--isolated`` reads none).

Exit code: 0 clean (info findings only), 1 findings (an unreadable or non-LoRA adapter, ``RS001``,
included), 2 usage error (a bad flag or setting).
"""

from __future__ import annotations

import argparse
import sys

from rsstab.commands._args import add_optimizer
from rsstab.errors import RsstabError
from rsstab.vocab import canonical_optimizer

HELP = "lint LoRA adapters and configs: one finding per line (path:module: CODE message), stable codes"


def _codes(text: str) -> tuple[str, ...]:
    from rsstab.lint import code_prefixes

    try:
        return code_prefixes(c for c in text.split(",") if c.strip())
    except RsstabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rsstab lint``."""
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="adapter folders, adapter_config.json / adapter_model.safetensors files, or globs")
    parser.add_argument("--format", choices=("text", "json", "github"), default=None,
                        help="text: path[:line]:module: CODE message (default); json; github: workflow annotations")
    add_optimizer(parser, default=None, help="optimizer regime of RS301 (default: adamw, how PEFT adapters are "
                        "trained; sgd: the paper's theorem)")
    parser.add_argument("--lr-scaling", dest="lr_scaling", default=None, metavar="P",
                        help="RS301 for a learning rate scaled as η ∝ r^P across ranks, as 'rsstab check "
                        "--lr-scaling' (e.g. -1/2 for rsLoRA under AdamW; default: a fixed learning rate)")
    parser.add_argument("--select", type=_codes, action="append", default=None, metavar="CODE[,CODE…]",
                        help="report only these codes or prefixes (repeatable), e.g. --select RS2,RS301 "
                        "(default: all; RS001 is always reported)")
    parser.add_argument("--ignore", type=_codes, action="append", default=None, metavar="CODE[,CODE…]",
                        help="codes or prefixes to leave out (repeatable), e.g. --ignore RS3 or --ignore RS301,RS304")
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 even with findings (usage errors still exit 2)")
    parser.add_argument("--explain", metavar="CODE", default=None,
                        help="print what CODE checks, why, and how to fix it, then exit")
    parser.add_argument("--isolated", action="store_true",
                        help="ignore [tool.rsstab.lint] in pyproject.toml")


def _flat(groups: list[tuple[str, ...]] | None) -> tuple[str, ...] | None:
    return None if groups is None else tuple(c for g in groups for c in g)


def run(args: argparse.Namespace) -> int:
    """Print the findings; return 0 (clean), 1 (findings) or 2 (usage error, via RsstabError)."""
    from rsstab.lint import exit_code, explain, find_settings, format_findings, is_selected, lint_paths, parse_settings

    if args.explain is not None:
        if args.paths:
            raise RsstabError("--explain takes a code and no paths")
        print(explain(args.explain))
        return 0
    if not args.paths:
        raise RsstabError("no PATH given: name adapter folders, adapter files or globs (or use --explain CODE)")
    found = None if args.isolated else find_settings()
    settings = parse_settings(found[1], f"{found[0]} [tool.rsstab.lint]") if found else {}
    cli = {"select": _flat(args.select), "ignore": _flat(args.ignore), "optimizer": args.optimizer,
           "lr-scaling": args.lr_scaling, "format": args.format}
    if args.lr_scaling is not None:
        from rsstab.verdict.classify import _as_lr_scaling  # rsstab check's own parsing of P

        _as_lr_scaling(args.lr_scaling)  # a bad P is a usage error before any adapter is read
    opts = {**settings, **{k: v for k, v in cli.items() if v is not None}}  # a flag overrides its key
    optimizer, fmt = opts.get("optimizer", canonical_optimizer("adamw")), opts.get("format", "text")
    findings, n = lint_paths(args.paths, optimizer, opts.get("lr-scaling"))
    findings = [f for f in findings if is_selected(f.code, opts.get("select", ("RS",)), opts.get("ignore", ()))]
    out = format_findings(findings, fmt, optimizer=optimizer, adapters=n)
    if out:
        print(out)
    if fmt != "json":
        bad = sum(f.severity != "info" for f in findings)
        via = f" (settings: {found[0]})" if found else ""
        print(f"rsstab lint: {n} adapter(s), {bad} finding(s), {len(findings) - bad} info{via}", file=sys.stderr)
    return 0 if args.exit_zero else exit_code(findings)
