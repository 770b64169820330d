"""Phase diagrams of the tuple (γ_r, η(r), σ_A(r)): the measured label of each cell of a grid of
exponents beside the label the theory predicts for it.

A :class:`PhaseGrid` names a schedule, a learning rate and an init std as expressions in r with
two exponent parameters (its axes, e.g. ``beta`` in ``alpha/r**beta`` and ``c`` in ``eta*r**c``).
For each cell:

* **predicted** — :func:`rsstab.check` on the same expressions with the two exponents given exact
  values (the parametric verdict at that point; the r → ∞ limit, where r ≫ width);
* **measured** — :func:`rsstab.measure.empirical.empirical_verdict` on a rank grid well above the width
  (the simulator never sees the prediction). The multiplicative constants (``alpha``, ``eta``,
  ``s``) are chosen so that every cell has γ = 1, η = the base learning rate and σ_A = 1 at the
  reference rank (the geometric mean of the ranks): cells differ only in how they scale with r,
  and none leaves the range of the first-order laws by its constants alone.

The predicted boundary (the zero set of the stability law's exponent) is drawn from
:meth:`rsstab.theory.Law.exponent` with the exponents of γ_r, σ_A and η read off the
expressions. A cell is a **boundary cell** when a grid neighbour (one step along an axis) has a
different predicted label, or its own prediction is not one of the three labels: there the
measurement may be indeterminate (a slope within a grid step of 0 over a finite rank range), and
the tables say so. Away from the boundary, every disagreement is shown; none is filtered.

>>> g = GRIDS[0]; g.name, g.x, g.y
('sgd_beta_c', 'beta', 'c')
>>> boundary_cells({(0, 0): "blow-up", (1, 0): "blow-up", (0, 1): "blow-up", (1, 1): "rank-stabilized"})
{(0, 0): False, (1, 0): True, (0, 1): True, (1, 1): True}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from rsstab.vocab import BLOW_UP, COLLAPSE, INDETERMINATE, STABLE

__all__ = ["PhaseGrid", "GRIDS", "FULL", "QUICK", "SCALE_CONSTANTS", "boundary_cells", "cell_constants",
           "predicted_label", "exponent_of", "law_exponent", "boundary_line", "run_grid", "outcome",
           "label_matrix", "phase_figure", "AGREE", "DISAGREE"]

F = Fraction
#: The multiplicative constant of each expression (set per cell so that it is 1, or the base
#: learning rate, at the reference rank): the expressions must be linear in them.
SCALE_CONSTANTS = {"schedule": "alpha", "lr": "eta", "init_std": "s"}
AGREE, DISAGREE = "agree", "disagree"
_STEP = (F(0), F(1, 4), F(1, 2), F(3, 4), F(1))


@dataclass(frozen=True)
class PhaseGrid:
    """One phase diagram: ``schedule``/``lr``/``init_std`` (expressions in r; None: a fixed learning
    rate / the default init) over exponent values ``xs`` × ``ys`` of the parameters ``x``, ``y``."""

    name: str
    title: str
    optimizer: str
    x: str
    y: str
    xs: tuple[Fraction, ...]
    ys: tuple[Fraction, ...]
    schedule: str = "alpha/r**beta"
    lr: str | None = None
    init_std: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)  # axis labels for the figure

    def expressions(self) -> dict[str, str]:
        """The given expressions by role (``schedule``, ``lr``, ``init_std``)."""
        return {k: v for k, v in (("schedule", self.schedule), ("lr", self.lr), ("init_std", self.init_std))
                if v is not None}


#: The grids of ``simulations/phase_diagram.py``: SGD with η ∝ r^c (stable iff c = 2β − 1),
#: SGD with σ_A ∝ r^(−k) (iff β + k = ½), Adam with η ∝ r^c (iff c = β − 1) — as check derives them.
GRIDS: tuple[PhaseGrid, ...] = (
    PhaseGrid("sgd_beta_c", "SGD: γ ∝ r^−β, η ∝ r^c", "sgd", "beta", "c", _STEP,
              (F(-1), F(-1, 2), F(0), F(1, 2), F(1)), lr="eta*r**c",
              labels={"beta": r"$\beta$  ($\gamma_r \propto r^{-\beta}$)", "c": r"$c$  ($\eta \propto r^{c}$)"}),
    PhaseGrid("sgd_beta_k", "SGD: γ ∝ r^−β, σ_A ∝ r^−k", "sgd", "beta", "k", _STEP,
              (F(-1, 2), F(-1, 4), F(0), F(1, 4), F(1, 2)), init_std="s*r**(-k)",
              labels={"beta": r"$\beta$  ($\gamma_r \propto r^{-\beta}$)", "k": r"$k$  ($\sigma_A \propto r^{-k}$)"}),
    PhaseGrid("adam_beta_c", "Adam: γ ∝ r^−β, η ∝ r^c", "adam", "beta", "c", _STEP,
              (F(-2), F(-3, 2), F(-1), F(-1, 2), F(0)), lr="eta*r**c",
              labels={"beta": r"$\beta$  ($\gamma_r \propto r^{-\beta}$)", "c": r"$c$  ($\eta \propto r^{c}$)"}),
)
#: Simulation settings of the full run: ranks ≥ 8× the width (the r → ∞ verdicts apply there).
FULL: dict[str, Any] = dict(ranks=(64, 256, 1024, 4096), width=8, seeds=8, steps=10, depth=2, batch=64)
#: The quick run: every other exponent, three ranks, fewer seeds.
QUICK: dict[str, Any] = dict(ranks=(64, 256, 1024), width=8, seeds=4, steps=5, depth=2, batch=32, every=2)


def reference_rank(ranks: Sequence[int]) -> float:
    """The geometric mean of the ranks: where every cell has the same γ, η and σ_A."""
    return math.exp(sum(math.log(r) for r in ranks) / len(ranks))


def _value(expr: str, r: float, constants: Mapping[str, float]) -> float:
    from rsstab.schedule import as_schedule

    return float(as_schedule(expr).value(r, dict(constants)))


def cell_constants(grid: PhaseGrid, xv: Fraction, yv: Fraction, ranks: Sequence[int],
                   base_lr: float) -> dict[str, float]:
    """The cell's parameters and scale constants (floats, for the simulation): γ(r₀) = 1,
    η(r₀) = ``base_lr``, σ_A(r₀) = 1 at the reference rank r₀ (:func:`reference_rank`)."""
    r0 = reference_rank(ranks)
    consts = {grid.x: float(xv), grid.y: float(yv)}
    for role, expr in grid.expressions().items():
        name = SCALE_CONSTANTS[role]
        target = base_lr if role == "lr" else 1.0
        consts[name] = target / _value(expr, r0, {**consts, name: 1.0})
    return consts


def predicted_label(grid: PhaseGrid, xv: Fraction, yv: Fraction) -> str:
    """:func:`rsstab.check` on the cell's tuple, the exponents exact (the r → ∞ verdict)."""
    from rsstab.verdict.classify import check

    return check(grid.schedule, optimizer=grid.optimizer, constants={grid.x: xv, grid.y: yv},
                 lr=grid.lr, init_std=grid.init_std).label


def exponent_of(expr: str, constants: Mapping[str, float]) -> float:
    """The r-exponent of a power of r, read off its values at two ranks (exact for r^p·const)."""
    lo, hi = 2.0**4, 2.0**20
    return math.log(_value(expr, hi, constants) / _value(expr, lo, constants)) / math.log(hi / lo)


def law_exponent(grid: PhaseGrid, xv: float | Fraction, yv: float | Fraction) -> float:
    """The r-exponent of the stability law (:func:`rsstab.theory.stability_law`) at a point:
    η^l·γ_r^k·r^m·σ_A^s with each exponent read off the grid's expressions."""
    from rsstab.theory import stability_law

    consts = {grid.x: float(xv), grid.y: float(yv)}
    exps = {role: exponent_of(expr, consts) for role, expr in grid.expressions().items()}
    return stability_law(grid.optimizer).exponent(exps["schedule"], sigma_a_exponent=exps.get("init_std", 0.0),
                                                  lr_scaling=exps.get("lr", 0.0))


def boundary_line(grid: PhaseGrid, n: int = 101) -> tuple[list[float], list[float]]:
    """Points (x, y) of the predicted boundary (the stability law's exponent is 0), solved for y at
    ``n`` values of x across the grid (the exponent is linear in the parameters); empty when the
    exponent does not depend on y."""
    x0, x1 = float(min(grid.xs)), float(max(grid.xs))
    ya, yb = float(grid.ys[0]), float(grid.ys[-1])
    xs, ys = [], []
    for i in range(n):
        x = x0 + (x1 - x0) * i / (n - 1)
        ea, eb = law_exponent(grid, x, ya), law_exponent(grid, x, yb)
        if abs(eb - ea) < 1e-12:
            continue
        xs.append(x)
        ys.append(ya - ea * (yb - ya) / (eb - ea))
    return xs, ys


def boundary_cells(predicted: Mapping[tuple[int, int], str]) -> dict[tuple[int, int], bool]:
    """Per cell (i, j) — indices along x and y — whether it lies within one grid step of a predicted
    boundary: a neighbour along an axis has another predicted label, or its own is none of the
    three (conditional, indeterminate)."""
    out = {}
    for (i, j), lab in predicted.items():
        near = any(predicted.get(n, lab) != lab for n in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)))
        out[(i, j)] = near or lab not in (STABLE, COLLAPSE, BLOW_UP)
    return out


def outcome(predicted: str, measured: str) -> str:
    """``agree``, ``indeterminate`` (the measurement could not decide) or ``disagree``."""
    if measured == predicted:
        return AGREE
    return INDETERMINATE if measured == INDETERMINATE else DISAGREE


def run_grid(grid: PhaseGrid, settings: Mapping[str, Any], *, out: str | Path | None = None,
             every: int = 1, workers: int | None = None, scheduler: str | None = None,
             progress: bool | None = None) -> list[dict[str, Any]]:
    """One record per cell of ``grid`` (every ``every``-th exponent along each axis): the exponents,
    the predicted label and law exponent, the measured label with its forward/backward slopes and
    intervals, whether it is a boundary cell and the outcome. ``settings``: ranks, width, seeds,
    steps, depth, batch (and optionally lr, the base learning rate at the reference rank); the
    cells run through the sweep store under ``out`` (resumable) when given."""
    from rsstab.measure.empirical import empirical_verdict
    from rsstab.sim.config import DEFAULTS

    xs, ys = grid.xs[::every], grid.ys[::every]
    ranks = tuple(int(r) for r in settings["ranks"])
    base_lr = float(settings.get("lr") or DEFAULTS["lr"][grid.optimizer])
    predicted = {(i, j): predicted_label(grid, xv, yv) for i, xv in enumerate(xs) for j, yv in enumerate(ys)}
    near = boundary_cells(predicted)
    records = []
    for (i, j), pred in predicted.items():
        xv, yv = xs[i], ys[j]
        consts = cell_constants(grid, xv, yv, ranks, base_lr)
        v = empirical_verdict(
            grid.schedule, grid.optimizer, constants=consts, ranks=ranks, width=settings["width"],
            depth=settings["depth"], steps=settings["steps"], seeds=settings["seeds"], batch=settings["batch"],
            lr=grid.lr if grid.lr is not None else base_lr,
            a_init_scale=grid.init_std if grid.init_std is not None else 1.0,
            gram="wishart" if grid.optimizer == "sgd" else "explicit",
            out=None if out is None else str(out), workers=workers, scheduler=scheduler, progress=progress)
        fwd, bwd = v.fits["forward"], v.fits["backward"]
        records.append({
            "grid": grid.name, "optimizer": grid.optimizer, "x_name": grid.x, "x": str(xv), "y_name": grid.y,
            "y": str(yv), "predicted": pred, "law_exponent": law_exponent(grid, xv, yv), "measured": v.label,
            "boundary": near[(i, j)], "outcome": outcome(pred, v.label),
            "forward_slope": fwd.slope, "forward_ci_low": fwd.ci[0], "forward_ci_high": fwd.ci[1],
            "backward_slope": bwd.slope, "backward_ci_low": bwd.ci[0], "backward_ci_high": bwd.ci[1],
            "diverged": bool(any(v.diverged.values())), "reason": v.reason,
        })
    return records


_SHORT = {STABLE: "S", BLOW_UP: "B", COLLAPSE: "C", INDETERMINATE: "?"}


def label_matrix(records: Sequence[Mapping[str, Any]]) -> str:
    """A markdown matrix of one grid: y descending down the rows, x across; each cell the
    measured label (S stable, B blow-up, C collapse, ? indeterminate), ``/predicted`` when it
    differs, ``*`` on a boundary cell."""
    xs = sorted({Fraction(r["x"]) for r in records})
    ys = sorted({Fraction(r["y"]) for r in records}, reverse=True)
    by = {(Fraction(r["x"]), Fraction(r["y"])): r for r in records}
    xn, yn = records[0]["x_name"], records[0]["y_name"]
    lines = [f"| {yn} \\ {xn} | " + " | ".join(str(x) for x in xs) + " |", "|---|" + "---|" * len(xs)]
    for y in ys:
        cells = []
        for x in xs:
            r = by.get((x, y))
            if r is None:
                cells.append("")
                continue
            m, p = _SHORT.get(r["measured"], "?"), _SHORT.get(r["predicted"], r["predicted"])
            cells.append((m if m == p else f"**{m}/{p}**") + ("*" if r["boundary"] else ""))
        lines.append(f"| {y} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Colours of the measured labels (Okabe–Ito): blow-up vermillion, stable green, collapse blue.
def _mathtext(text: str) -> str:
    """A grid's title with its powers of r as matplotlib math (``r^−β`` → ``$r^{-\\beta}$``).

    >>> print(_mathtext("SGD: γ ∝ r^−β, η ∝ r^c"))
    SGD: γ ∝ $r^{-\\beta}$, η ∝ $r^{c}$
    """
    import re

    greek = {"β": r"\beta", "α": r"\alpha"}
    return re.sub(r"r\^(−?)(\w)", lambda m: "$r^{" + ("-" if m.group(1) else "") + greek.get(m.group(2), m.group(2))
                  + "}$", text)


def _label_colours() -> dict[str, str]:
    from rsstab.style import OKABE_ITO

    return {BLOW_UP: OKABE_ITO[1], STABLE: OKABE_ITO[2], COLLAPSE: OKABE_ITO[0], INDETERMINATE: "#BBBBBB"}


def phase_figure(grids: Sequence[PhaseGrid], records: Sequence[Mapping[str, Any]], path: str | Path,
                 title: str | None = None) -> Path:
    """One panel per grid: cells coloured by the measured label, the predicted boundary (the
    stability law's exponent = 0) as a dashed line, boundary cells hatched, disagreements crossed."""
    from matplotlib.patches import Patch, Rectangle

    from rsstab.io import save_figure
    from rsstab.style import pyplot

    plt = pyplot()
    colours = _label_colours()
    panels = [g for g in grids if any(r["grid"] == g.name for r in records)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 4.1), squeeze=False)
    for ax, g in zip(axes[0], panels):
        rows = [r for r in records if r["grid"] == g.name]
        xs = sorted({Fraction(r["x"]) for r in rows})
        ys = sorted({Fraction(r["y"]) for r in rows})
        dx = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
        dy = float(ys[1] - ys[0]) if len(ys) > 1 else 1.0
        for r in rows:
            x, y = float(Fraction(r["x"])), float(Fraction(r["y"]))
            ax.add_patch(Rectangle((x - dx / 2, y - dy / 2), dx, dy, facecolor=colours.get(r["measured"], "#BBBBBB"),
                                   edgecolor="white", lw=1.5, hatch="///" if r["boundary"] else None))
            if r["outcome"] == DISAGREE:
                ax.plot([x], [y], marker="x", color="black", ms=12, mew=2.5)
        bx, by = boundary_line(g)
        ax.plot(bx, by, "k--", lw=1.8, label="predicted: stable")
        ax.set_xlim(float(xs[0]) - dx / 2, float(xs[-1]) + dx / 2)
        ax.set_ylim(float(ys[0]) - dy / 2, float(ys[-1]) + dy / 2)
        ax.set_xticks([float(x) for x in xs], [str(x) for x in xs])
        ax.set_yticks([float(y) for y in ys], [str(y) for y in ys])
        ax.set_xlabel(g.labels.get(g.x, g.x))
        ax.set_ylabel(g.labels.get(g.y, g.y))
        ax.set_title(_mathtext(g.title))
    handles = [Patch(facecolor=c, label=f"measured {lab}") for lab, c in colours.items()]
    handles += [Patch(facecolor="white", edgecolor="black", hatch="///", label="within one step of the boundary"),
                plt.Line2D([], [], color="black", ls="--", label="predicted stable line (law exponent 0)"),
                plt.Line2D([], [], color="black", marker="x", ls="", mew=2.5, label="disagrees with prediction")]
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.13, 1, 1), w_pad=2.0)
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, 0.0))
    return save_figure(fig, path)
