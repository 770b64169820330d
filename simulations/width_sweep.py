"""Width sweep: a rank × width grid — where the learned change turns from incoherent to coherent.

At finite width d the learned change is a coherent part (its mean over A, ∝ γ_r^k·r) plus an
incoherent random-projection part (∝ γ_r^k·√r); they are equal at the crossover rank r*
(theory: d + 1 under SGD, πd/2 − 1 under Adam). This grid measures, at depth 1, for SGD and Adam
and for LoRA (γ = α/r) and rsLoRA (γ = α/√r): the local slopes of the forward RMS across rank
(a heatmap, with the predicted r*(d) drawn on it), and the coherent and incoherent parts across
the seeds' draws of A at fixed data (``share_data``), whose equality gives the measured r*.
A fixed batch (``fixed_batch``) and two steps keep every cell in the first-order regime in which
Adam's sign law is exact.

    python simulations/width_sweep.py                 # → reports/width_sweep/
    python simulations/width_sweep.py --quick --out /tmp/ws

Writes ``rows.csv``, ``cells.csv`` (per cell), ``slopes.csv`` (local slopes), ``crossover.csv``,
``slope_heatmap.png``, ``cleaner_with_rank.png`` and ``summary.md``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from rsstab.experiments.compare import markdown_table
from rsstab.experiments.figures import loglog_vs_rank, slope_heatmap
from rsstab.experiments.scripts import run_configs, script_parser
from rsstab.experiments.width import cell_table, crossover_records, local_slope_grid
from rsstab.io import atomic_write, write_csv
from rsstab.sim.grid import make_configs
from rsstab.theory import crossover_rank, finite_width_law

METHODS = {"LoRA": "alpha/r", "rsLoRA": "alpha/sqrt(r)"}
OPTIMIZERS = ("sgd", "adam")
#: seeds: per width, draws of A at fixed data (narrow layers need more: their learned change lives in
#: the few directions of the data gradient, so each draw carries fewer independent entries).
FULL = dict(widths=(16, 64, 256, 1024, 2048), ranks=(4, 16, 64, 256, 1024, 4096),
            seeds={16: 16, 64: 16, 256: 8, 1024: 3, 2048: 3})
QUICK = dict(widths=(16, 64, 256), ranks=(4, 16, 64, 256, 1024), seeds={16: 8, 64: 8, 256: 4})
COMMON = dict(depth=1, steps=2, batch=32, probe_batch=64, share_data=True, fixed_batch=True, data_stats=True)
#: Cells left out for cost (2 CPU cores, a few minutes): at widths ≥ 1024 only the ranks that
#: bracket r* (256, 1024, 4096), and only rsLoRA (under SGD, LoRA's cells differ from rsLoRA's by
#: the factor γ² alone to first order in η, and the narrower widths show both).
WIDE, WIDE_RANKS = 1024, (256, 1024, 4096)


def skipped(optimizer: str, schedule: str, width: int, rank: int) -> bool:
    """Whether the cell is left out of the full grid for cost (see :data:`WIDE`)."""
    return width >= WIDE and (rank not in WIDE_RANKS or schedule != "alpha/sqrt(r)")


def configs(grid: dict) -> list[dict]:
    """The cells of the grid, with ``width`` in the rows' tags."""
    out = []
    for opt in OPTIMIZERS:
        for sched in METHODS.values():
            for d in grid["widths"]:
                ranks = [r for r in grid["ranks"] if not skipped(opt, sched, d, r)]
                if len(ranks) < 2:
                    continue
                out += make_configs(sched, ranks, optimizer=opt, width=d, seeds=grid["seeds"][d],
                                    tags={"experiment": "width_sweep", "width": d}, **COMMON)
    return out


def main(argv: list[str] | None = None) -> int:
    args = script_parser("width_sweep", __doc__.splitlines()[0]).parse_args(argv)
    grid = QUICK if args.quick else FULL
    t0 = time.perf_counter()
    rows = run_configs(configs(grid), args)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    table = cell_table(rows)
    write_csv(table, out / "cells.csv")
    widths, ranks = list(grid["widths"]), list(grid["ranks"])
    slopes, panels, lines = [], {}, {}
    for opt in OPTIMIZERS:
        for name, sched in METHODS.items():
            vals = local_slope_grid(table, opt, sched, widths, ranks)
            for d, row in zip(widths, vals):
                for (r0, r1), v in zip(zip(ranks, ranks[1:]), row):
                    law = finite_width_law("forward", opt, d)
                    g = -1.0 if sched == "alpha/r" else -0.5
                    slopes.append({"optimizer": opt, "schedule": sched, "width": d, "rank_from": r0, "rank_to": r1,
                                   "measured": v, "predicted": law.secant_slope(r0, r1, r0**g, r1**g)})
            xe = [ranks[0]] + [math.sqrt(a * b) for a, b in zip(ranks[1:], ranks[2:])] + [ranks[-1]]
            ye = [widths[0] / math.sqrt(2)] + [math.sqrt(a * b) for a, b in zip(widths, widths[1:])] + [widths[-1] * math.sqrt(2)]
            key = f"{name}, {opt}"
            panels[key] = (xe, ye, vals)
            ds = [ye[0]] + widths + [ye[-1]]
            lines[key] = {"predicted r*(d)": ([float(crossover_rank("forward", opt, d)) for d in ds], ds)}
    write_csv(slopes, out / "slopes.csv")
    slope_heatmap(panels, lines=lines, path=out / "slope_heatmap.png",
                  title="measured local slope of the forward RMS (depth 1); dashed: predicted crossover r*",
                  blank=f"not run (at widths ≥ {WIDE} only the ranks {', '.join(map(str, WIDE_RANKS))} around r*, and "
                        "only rsLoRA: LoRA's cells differ from rsLoRA's by γ² alone to first order)")
    cross = crossover_records(table)
    write_csv(cross, out / "crossover.csv")
    clean = {}
    for opt in OPTIMIZERS:
        curves = {}
        for d in widths:
            col = [t for t in table if (t["optimizer"], t["schedule"], t["width"]) == (opt, "alpha/sqrt(r)", d)]
            col.sort(key=lambda t: t["rank"])
            rs = [t["rank"] for t in col]
            curves[f"d={d}"] = (rs, [t["incoherent"] / t["coherent"] if t["coherent"] > 0 else math.nan for t in col])
            law = finite_width_law("forward", opt, d)
            curves[f"d={d} predicted"] = (rs, [math.sqrt(law.incoherent / (law.coherent * r)) for r in rs])
        clean[f"rsLoRA, {opt}"] = curves
    loglog_vs_rank(clean, ylabel="incoherent / coherent (forward)", path=out / "cleaner_with_rank.png",
                   title="rsLoRA's update becomes cleaner with rank: incoherent/coherent ∝ √(d_eff/r)")
    g = grid
    text = [
        "# Width sweep: the crossover rank r* between the incoherent and the coherent regime",
        "",
        f"Depth 1, widths {', '.join(map(str, widths))}, ranks {', '.join(map(str, ranks))}, "
        f"draws of A at fixed data (share_data) per width {g['seeds']}, fixed batch of {COMMON['batch']}, "
        f"{COMMON['steps']} steps, default learning rates; {len(table)} cells in {seconds:.0f} s. "
        f"Skipped for cost: at widths ≥ {WIDE} all but ranks {', '.join(map(str, WIDE_RANKS))} of rsLoRA. Generated by `simulations/width_sweep.py`.",
        "",
        "## Crossover rank: measured (coherent² = incoherent², interpolated) vs predicted",
        "",
        "`predicted_crossover` is `rsstab.theory.crossover_rank` at d_eff = d; `predicted_crossover_data` "
        "uses the effective width of the data the cells saw (from the A-independent data statistics). "
        "`inc_coh_slope`: slope of log(incoherent/coherent) in log r (predicted −0.5). "
        "An empty `measured_crossover` means no two ranks of the grid bracket it.",
        "",
        markdown_table(cross, ["optimizer", "schedule", "width", "measured_crossover", "predicted_crossover",
                               "predicted_crossover_data", "ratio", "inc_coh_slope"]),
        "",
        "## Local slopes of the forward RMS (measured vs exact finite-(r, d) law)",
        "",
        markdown_table(slopes, ["optimizer", "schedule", "width", "rank_from", "rank_to", "measured", "predicted"]),
        "",
        "Figures: `slope_heatmap.png` (local slopes, predicted r*(d) dashed), `cleaner_with_rank.png`.",
        "",
    ]
    atomic_write(out / "summary.md", "\n".join(text))
    print(f"wrote {out / 'summary.md'} ({seconds:.0f} s of simulation)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
