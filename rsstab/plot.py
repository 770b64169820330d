"""Figures and reports of simulation sweeps: the layer between measurements and theory.

:mod:`rsstab.sim` measures and :mod:`rsstab.fit` fits without knowing the theory; this module puts
the theory's exponents (:func:`rsstab.check`) beside the fitted slopes, draws the figures
(matplotlib, Agg backend, log-log axes wherever the rank is on an axis) and holds the shared
plumbing of the ``simulations/*.py`` scripts (arguments, sweep, CSV, markdown summary).

>>> markdown_table([{"a": 1, "b": 0.12345}], ["a", "b"])
'| a | b |\\n|---|---|\\n| 1 | 0.1235 |'
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "script_parser",
    "run_configs",
    "slope_records",
    "theory_exponent",
    "theory_label",
    "markdown_table",
    "loglog_vs_rank",
    "curves_vs_step",
    "save_figure",
    "series",
    "write_text",
]

from rsstab.vocab import SUMMARY_QUANTITIES


# --------------------------------------------------------------------------- script plumbing


def script_parser(name: str, description: str) -> argparse.ArgumentParser:
    """Arguments shared by ``simulations/*.py``: ``--out`` (default ``reports/<name>``),
    ``--quick``, ``--scheduler``, ``--workers``, ``--no-progress``."""
    from rsstab.sweep import add_sweep_arguments

    p = argparse.ArgumentParser(prog=f"{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="a small grid that finishes in under a minute")
    add_sweep_arguments(p, default_out=str(Path("reports") / name))
    return p


def run_configs(configs: Sequence[Mapping[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Run :func:`rsstab.sim.run_cell` over ``configs`` with :func:`rsstab.sweep.run_sweep`
    (resumable store under ``args.out``), write ``<out>/rows.csv``, and return the rows.
    Failed cells are reported on stderr; their rows are simply absent."""
    from rsstab.sim import run_cell
    from rsstab.sweep import run_sweep, sweep_kwargs

    result = run_sweep(run_cell, list(configs), **sweep_kwargs(args))
    path = result.write_csv(Path(args.out) / "rows.csv")
    for config, error in result.failed:
        print(f"failed cell rank={config.get('rank')} {config.get('tags')}: {error}", file=sys.stderr)
    print(f"{result.summary()}; rows in {path}", file=sys.stderr)
    return result.rows


# --------------------------------------------------------------------------- slopes vs theory


@lru_cache(maxsize=256)
def _verdict(schedule: str, optimizer: str, constants: tuple[tuple[str, float], ...]) -> Any:
    import rsstab

    return rsstab.check(schedule, optimizer=optimizer, constants=dict(constants) or None)


def theory_exponent(
    schedule: str, optimizer: str, quantity: str, constants: Mapping[str, float] | None = None
) -> float | None:
    """The r-exponent the theory predicts for a summary quantity (None when not a pure power).

    >>> theory_exponent("alpha/sqrt(r)", "adam", "forward")
    0.5
    """
    v = _verdict(schedule, optimizer, tuple(sorted((constants or {}).items())))
    q = v.quantities.get(quantity)
    return None if q is None else q.exponent


def theory_label(schedule: str, optimizer: str) -> str:
    """The symbolic verdict's label for a schedule in one optimizer regime.

    >>> theory_label("alpha/r", "adam")
    'rank-stabilized'
    """
    return str(_verdict(schedule, optimizer, ()).label)


def slope_records(
    rows: Sequence[Mapping[str, Any]],
    group_by: Sequence[str],
    *,
    quantities: Sequence[str] = SUMMARY_QUANTITIES,
    tolerance: float | None = None,
) -> list[dict[str, Any]]:
    """Fit every summary quantity within each group of rows (e.g. by schedule and depth) and put
    the theory's exponent beside it. Rows need ``schedule`` and ``optimizer`` columns."""
    from rsstab.fit import DEFAULT_TOLERANCE, agrees_with, fit_slope
    from rsstab.rows import summary_values

    tol = DEFAULT_TOLERANCE if tolerance is None else tolerance
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in group_by), []).append(row)
    out = []
    for key, grp in groups.items():
        meta = dict(zip(group_by, key))
        schedule, optimizer = grp[0]["schedule"], grp[0]["optimizer"]
        diverged = sorted({int(r["rank"]) for r in grp if r["quantity"] == "diverged_step"})
        for q in quantities:
            ranks, values = summary_values(grp, q)
            if len(ranks) < 2:
                continue
            fit = fit_slope(ranks, values, tolerance=tol)
            th = theory_exponent(schedule, optimizer, q)
            out.append({
                **meta,
                "quantity": q,
                "slope": fit.slope,
                "ci_low": fit.ci[0],
                "ci_high": fit.ci[1],
                "theory": th,
                "agrees": None if th is None else agrees_with(fit, th, tol),
                "label": fit.label,
                "local_slopes": " ".join(f"{s:+.2f}" for s in fit.local_slopes),
                "diverged_ranks": " ".join(map(str, diverged)),
            })
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def markdown_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-markdown table of ``records`` restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rec in records:
        lines.append("| " + " | ".join(_cell(rec.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (see :func:`rsstab.io.atomic_write`)."""
    from rsstab.io import atomic_write

    return atomic_write(path, text)


# --------------------------------------------------------------------------- figures


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a figure atomically (temporary file, then rename) and close it."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    _pyplot().close(fig)
    return path


def series(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    quantity: str,
    where: Mapping[str, Any] | None = None,
    *,
    reduce: Callable[[list[float]], float] | None = None,
) -> tuple[list[float], list[float]]:
    """(xs, ys) of ``quantity`` against column ``x`` over rows matching ``where``; ``reduce``
    combines the values sharing an x (default: geometric mean, ignoring non-finite values)."""
    where = dict(where or {})
    buckets: dict[float, list[float]] = {}
    for row in rows:
        if row["quantity"] != quantity or any(row.get(k) != v for k, v in where.items()):
            continue
        buckets.setdefault(float(row[x]), []).append(float(row["value"]))

    def geo(vals: list[float]) -> float:
        good = [v for v in vals if math.isfinite(v) and v > 0]
        return math.exp(sum(map(math.log, good)) / len(good)) if good else math.nan

    red = reduce or geo
    xs = sorted(buckets)
    return xs, [red(buckets[v]) for v in xs]


def loglog_vs_rank(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    ylabel: str,
    path: str | Path,
    title: str | None = None,
    xlabel: str = "adapter rank r",
) -> Path:
    """One log-log panel per key of ``panels``; each panel maps a curve label to (ranks, values).
    Non-finite or non-positive points are left out (a diverged run shows as a gap)."""
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, sharey=True)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for i, (label, (xs, ys)) in enumerate(curves.items()):
            pts = [(a, b) for a, b in zip(xs, ys) if math.isfinite(b) and b > 0]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=plt.cm.viridis(i / max(1, len(curves) - 1)), label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def curves_vs_step(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    ylabel: str,
    path: str | Path,
    title: str | None = None,
    logy: bool = True,
    xlabel: str = "training step",
) -> Path:
    """One panel per key; each curve (label → (xs, values)) drawn against the training step
    (or whatever ``xlabel`` names)."""
    plt = _pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False, sharey=True)
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for i, (label, (xs, ys)) in enumerate(curves.items()):
            ax.plot(xs, ys, color=plt.cm.viridis(i / max(1, len(curves) - 1)), label=label)
        if logy:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
