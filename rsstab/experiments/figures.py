"""Figures of the experiments: matplotlib (Agg backend), log-log axes wherever the rank is on an axis.

Every figure is written through :func:`rsstab.io.save_figure` (atomic, then closed).

>>> geometric_mean([1.0, 4.0, float("nan"), 0.0])
2.0
>>> series([{"rank": 4, "quantity": "q", "value": 2.0}, {"rank": 4, "quantity": "q", "value": 8.0}],
...        "rank", "q")
([4.0], [4.0])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rsstab.io import save_figure
from rsstab.style import OKABE_ITO, colour, pyplot

__all__ = ["pyplot", "colour", "OKABE_ITO", "SCHEDULE_NAMES", "panel_title", "geometric_mean", "series",
           "loglog_vs_rank", "curves_vs_step", "slope_heatmap", "range_scatter"]

#: How a figure (and the report) names the three schedules of the story.
SCHEDULE_NAMES = {"alpha": "naive γ = α", "alpha/r": "LoRA γ = α/r", "alpha/sqrt(r)": "rsLoRA γ = α/√r"}


def panel_title(name: str) -> str:
    """A panel's title: a schedule's readable name (``"alpha/sqrt(r)"`` → ``"rsLoRA γ = α/√r"``),
    anything else as it is."""
    return SCHEDULE_NAMES.get(name, name)

#: Curves of one panel: label → (xs, ys).
Curves = Mapping[str, tuple[Sequence[float], Sequence[float]]]


def geometric_mean(values: Sequence[float]) -> float:
    """The geometric mean of the finite positive values (NaN when there are none)."""
    good = [v for v in values if math.isfinite(v) and v > 0]
    return math.exp(sum(map(math.log, good)) / len(good)) if good else math.nan


def series(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    quantity: str,
    where: Mapping[str, Any] | None = None,
    *,
    reduce: Callable[[list[float]], float] | None = None,
) -> tuple[list[float], list[float]]:
    """(xs, ys) of ``quantity`` against column ``x`` over rows matching ``where``; ``reduce``
    combines the values sharing an x (default: :func:`geometric_mean`)."""
    where = dict(where or {})
    buckets: dict[float, list[float]] = {}
    for row in rows:
        if row["quantity"] != quantity or any(row.get(k) != v for k, v in where.items()):
            continue
        buckets.setdefault(float(row[x]), []).append(float(row["value"]))
    red = reduce or geometric_mean
    xs = sorted(buckets)
    return xs, [red(buckets[v]) for v in xs]


def loglog_vs_rank(
    panels: Mapping[str, Curves],
    *,
    ylabel: str,
    path: str | Path,
    title: str | None = None,
    xlabel: str = "adapter rank r",
    partly_diverged: Mapping[str, Mapping[str, Sequence[float]]] | None = None,
) -> Path:
    """One log-log panel per key of ``panels``; each panel maps a curve label to (ranks, values).
    Non-finite or non-positive points are left out (a run where every seed diverged shows as a
    gap); ``partly_diverged`` (panel → curve → ranks) circles the points that stand for the
    surviving seeds only, so a half-diverged cell never looks tame."""
    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6), squeeze=False, sharey=True, layout="constrained")
    marked_any = False
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for i, (label, (xs, ys)) in enumerate(curves.items()):
            pts = [(a, b) for a, b in zip(xs, ys) if math.isfinite(b) and b > 0]
            if pts:
                ax.plot(*zip(*pts), marker="o", color=colour(i, len(curves)), label=label)
            marks = set((partly_diverged or {}).get(name, {}).get(label, ()))
            hit = [(a, b) for a, b in pts if a in marks]
            if hit:
                ax.plot(*zip(*hit), ls="none", marker="o", ms=13, mfc="none", mec="#D55E00", mew=1.6,
                        label=None if marked_any else "some seeds diverged: survivors only")
                marked_any = True
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(panel_title(name))
        ax.set_xlabel(xlabel)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def curves_vs_step(
    panels: Mapping[str, Curves],
    *,
    ylabel: str,
    path: str | Path,
    title: str | None = None,
    logy: bool = True,
    xlabel: str = "training step",
) -> Path:
    """One panel per key; each curve (label → (xs, values)) drawn against the training step
    (or whatever ``xlabel`` names)."""
    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False, sharey=True, layout="constrained")
    for ax, (name, curves) in zip(axes[0], panels.items()):
        for i, (label, (xs, ys)) in enumerate(curves.items()):
            ax.plot(xs, ys, color=colour(i, len(curves)), label=label)
        if logy:
            ax.set_yscale("log")
        ax.set_title(panel_title(name))
        ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(ylabel)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def slope_heatmap(
    panels: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[Sequence[float]]]],
    *,
    path: str | Path,
    lines: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]] | None = None,
    title: str | None = None,
    label: str = "local slope d log RMS / d log r",
    blank: str | None = None,
) -> Path:
    """One heatmap per key of ``panels`` = (rank edges, width edges, values[n_width][n_rank_cells])
    on log axes (nan cells blank, ``blank`` says why under the panels); ``lines[panel]`` draws
    labelled curves (xs, ys) on a panel, e.g. the predicted crossover rank r*(d). The diverging
    colour map is centred on 0 (a flat, rank-stabilized slope is neutral grey)."""
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 3.8), squeeze=False, sharey=True, layout="constrained")
    mesh = None
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-1.6, vmax=0.6)
    for ax, (name, (xe, ye, vals)) in zip(axes[0], panels.items()):
        v = np.ma.masked_invalid(np.asarray(vals, dtype=float))
        mesh = ax.pcolormesh(xe, ye, v, cmap="coolwarm", norm=norm, shading="flat")
        for lab, (xs, ys) in (lines or {}).get(name, {}).items():
            ax.plot(xs, ys, "k--", lw=1.5, label=lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("adapter rank r")
        ax.set_title(name, fontsize=9)
        if (lines or {}).get(name):
            ax.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("width d")
    if mesh is not None:
        fig.colorbar(mesh, ax=axes[0].tolist(), label=label, shrink=0.9)
    if title:
        fig.suptitle(title)
    if blank:
        fig.text(0.5, -0.02, f"blank cells: {blank}", ha="center", va="top", fontsize=9)
    return save_figure(fig, path)


def range_scatter(rows: Sequence[Mapping[str, Any]], *, limit: float, miss: float, path: str | Path,
                  title: str = "", clip: float = 10.0) -> Path:
    """measured/predicted against the prediction's expansion parameter, one panel per optimizer
    (rows with ``optimizer``, ``depth``, ``quantity``, ``ratio``, ``expansion``, ``in_range``):
    filled markers in range, hollow ones out of range, a colour per depth, a marker per quantity
    (○ forward, □ backward); the derived boundary (``limit``) drawn as a vertical line, the
    ±``miss`` band shaded. Ratios beyond ``clip``× either way sit on the edge as ▲/▼, a ratio that
    is not finite (a diverged rank) as ×."""
    plt = pyplot()
    optimizers = sorted({str(r["optimizer"]) for r in rows})
    depths = sorted({int(r["depth"]) for r in rows})
    fig, axes = plt.subplots(1, len(optimizers), figsize=(6.0 * len(optimizers), 4.6), squeeze=False)
    top, bottom = clip, 1 / clip
    markers = {"forward": "o", "backward": "s"}

    def placed(r: Mapping[str, Any]) -> tuple[float, str | None]:
        v = float(r["ratio"])
        if not math.isfinite(v):
            return top, "x"
        if v > top or v < bottom:
            return (top, "^") if v > top else (bottom, "v")
        return v, None

    for ax, opt in zip(axes[0], optimizers):
        part = [r for r in rows if r["optimizer"] == opt and float(r["expansion"]) > 0]
        xs = [float(r["expansion"]) for r in part]
        ax.axhspan(1 - miss, 1 + miss, color="0.9", zorder=0, label=f"within {miss:.0%}")
        ax.axvline(limit, color="0.3", linestyle="--", label=f"derived boundary ({limit:g})")
        for i, depth in enumerate(depths):
            c = colour(i, len(depths))
            for q, m in markers.items():
                labelled = False
                for r in (r for r in part if int(r["depth"]) == depth and r["quantity"] == q):
                    y, edge = placed(r)
                    inside = bool(r["in_range"])
                    face = "none" if not inside and edge != "x" else c
                    ax.scatter([float(r["expansion"])], [y], marker=edge or m, s=36 if edge else 28,
                               facecolors=face, edgecolors=c, linewidths=1.0,
                               label=None if labelled else f"depth {depth}, {q}")
                    labelled = True
        ax.set_xscale("log")
        ax.set_yscale("log")
        if xs:
            ax.set_xlim(min(xs + [limit]) / 2, max(xs + [limit]) * 2)
        ax.set_ylim(bottom / 1.3, top * 1.3)
        ax.set_xlabel("expansion parameter (next term / first; at finite η: batch noise)")
        ax.set_ylabel("measured / predicted RMS")
        ax.set_title(f"{opt.upper()}: filled = in range, hollow = flagged out of range; "
                     f"▲▼ beyond {clip:g}×, × diverged", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
