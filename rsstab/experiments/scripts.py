"""The plumbing shared by the ``simulations/*.py`` scripts: their arguments and their sweep.

A script parses its arguments with :func:`script_parser`, runs its grid of simulation cells with
:func:`run_configs` (resumable store and ``rows.csv`` under ``--out``), and writes its tables and
text through :mod:`rsstab.io`.

Quick or exploratory runs never overwrite the published results: without ``--out``, a full run
writes to ``reports/<name>`` and a ``--quick`` run to ``reports/_quick/<name>``.

>>> script_parser("demo", "A demo.").parse_args([]).out
'reports/demo'
>>> script_parser("demo", "A demo.").parse_args(["--quick"]).out
'reports/_quick/demo'
>>> script_parser("demo", "A demo.").parse_args(["--quick", "--out", "x"]).out
'x'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ScriptParser", "script_parser", "run_configs", "with_settings"]


class ScriptParser(argparse.ArgumentParser):
    """An argument parser whose ``--out`` defaults to ``reports/<name>``, or ``reports/_quick/<name>``
    for a ``--quick`` run (so a quick run never replaces the committed results)."""

    def __init__(self, name: str, description: str, quick_help: str) -> None:
        from rsstab.sweep import add_sweep_arguments

        super().__init__(prog=f"{name}.py", description=description)
        self.name = name
        self.add_argument("--quick", action="store_true", help=quick_help + f" (written to reports/_quick/{name} "
                          "unless --out is given)")
        add_sweep_arguments(self, default_out=str(Path("reports") / name))
        self.set_defaults(out=None)
        self.add_argument("--figure-format", dest="figure_format", default=None, metavar="FMT[,FMT]",
                          help="write figures as png, svg and/or pdf (vector output for talks), e.g. svg,pdf "
                               "(default: png)")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        ns, rest = super().parse_known_args(args, namespace)
        if getattr(ns, "figure_format", None):
            from rsstab.io import set_figure_formats

            try:
                set_figure_formats(ns.figure_format.split(","))
            except ValueError as exc:
                self.error(str(exc))
        if getattr(ns, "out", None) is None:
            ns.out = str(Path("reports") / "_quick" / self.name if ns.quick else Path("reports") / self.name)
        return ns, rest


def script_parser(name: str, description: str,
                  quick_help: str = "a small grid that finishes in under a minute") -> ScriptParser:
    """Arguments shared by ``simulations/*.py``: ``--quick``, ``--out`` (see :class:`ScriptParser`),
    ``--scheduler``, ``--workers``, ``--no-progress``."""
    return ScriptParser(name, description, quick_help)


def with_settings(configs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``configs`` whose tags also carry the cell's width, learning rate and number of
    steps, so that its rows — and the slope tables fitted from them — say under which settings
    they were measured.

    >>> from rsstab.sim import make_configs
    >>> tags = with_settings(make_configs("alpha/r", [4], width=8, steps=3))[0]["tags"]
    >>> tags["width"], tags["lr"], tags["steps"]
    (8, 1e-05, 3)
    """
    from rsstab.sim import SimConfig

    out = []
    for config in configs:
        cfg = SimConfig.from_dict(config)
        tags = {**dict(config.get("tags") or {}), "width": cfg.width, "lr": cfg.learning_rate, "steps": cfg.steps}
        out.append({**config, "tags": tags})
    return out


def run_configs(configs: Sequence[Mapping[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run :func:`rsstab.sim.run_cell` over ``configs`` (tagged with their settings by
    :func:`with_settings`) with :func:`rsstab.sweep.run_sweep` (resumable store under
    ``args.out``), write ``<out>/rows.csv``, and return the rows. Failed cells are reported on
    stderr; their rows are simply absent."""
    from rsstab.sim import run_cell
    from rsstab.sweep import run_sweep, sweep_kwargs

    result = run_sweep(run_cell, with_settings(configs), **sweep_kwargs(args))
    path = result.write_csv(Path(args.out) / "rows.csv")
    for config, error in result.failed:
        print(f"failed cell rank={config.get('rank')} {config.get('tags')}: {error}", file=sys.stderr)
    print(f"{result.summary()}; rows in {path}", file=sys.stderr)
    return result.rows
