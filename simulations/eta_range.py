"""η range: measured/predicted against the predictions' own expansion parameter, past first order.

Every prediction of ``rsstab simulate`` states its range (result 13: the size of the next term
relative to the first, or for SGD at depth 1 the batch noise that result 14's finite-η recursion
leaves out) and is flagged out of range where that exceeds ``theory.EXPANSION_LIMIT``. This grid
tries the flag where it could fail: rsLoRA (γ = 1/√r) under SGD and Adam, depths 1, 2 and 4,
the learning rate over three decades (from well inside the small-η regime to past divergence),
ranks from r ≪ d to r ≫ d. Each (optimizer, depth, η) is one ``rsstab simulate`` run; for
``forward`` and ``backward`` at every rank it records measured/predicted, the expansion
parameter and the flag. A prediction off by more than 20 % while flagged in range is a **silent
miss**; the report's claim is that there are none (and how close the in-range ones are).

    python simulations/eta_range.py                 # → reports/eta_range/
    python simulations/eta_range.py --quick --out /tmp/er

Writes ``predictions.csv``, ``ratio_vs_expansion.png`` and ``summary.md``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from rsstab.experiments.claims.eta_range import MISS, missed, silent
from rsstab.experiments.compare import markdown_table
from rsstab.experiments.figures import range_scatter
from rsstab.experiments.scripts import script_parser
from rsstab.io import atomic_write, write_csv
from rsstab.sweep.cli import sweep_kwargs
from rsstab.theory import EXPANSION_LIMIT

SCHEDULE = "1/sqrt(r)"
QUANTITIES = ("forward", "backward")
FULL = dict(width=64, depths=(1, 2, 4), ranks=(8, 32, 128, 512), seeds=16,
            lrs={"sgd": (1e-3, 1e-2, 0.1, 1.0), "adam": (1e-5, 1e-4, 1e-3, 1e-2)})
QUICK = dict(width=32, depths=(1, 2), ranks=(8, 64, 512), seeds=6,
             lrs={"sgd": (1e-3, 0.1, 1.0), "adam": (1e-5, 1e-3, 1e-2)})


def run(grid: dict, out: Path, sweep: dict) -> list[dict]:
    """One ``rsstab simulate`` run per (optimizer, depth, η), each in its own resumable store
    under ``out/store`` (``sweep``: where the cells run, the progress bar); a row per (run,
    quantity, rank)."""
    from rsstab.measure.compare import report

    rows = []
    for opt, lrs in grid["lrs"].items():
        for depth in grid["depths"]:
            for lr in lrs:
                store = out / "store" / f"{opt}-depth{depth}-lr{lr:g}"
                print(f"   {opt} depth {depth} η = {lr:g}", file=sys.stderr)
                _, res = report(SCHEDULE, opt, width=grid["width"], depth=depth, ranks=list(grid["ranks"]),
                                seeds=grid["seeds"], lr=lr, out=str(store), **sweep)
                for q in QUANTITIES:
                    e = res["quantities"][q]
                    for i, r in enumerate(e["ranks"]):
                        ratio = e["predicted_ratio"][i]
                        first = e["predicted_first_order"][i]
                        measured = e["measured_rms"][i]
                        rows.append({
                            "optimizer": opt, "depth": depth, "width": grid["width"], "lr": lr,
                            "steps": res["settings"]["steps"], "seeds": grid["seeds"], "quantity": q, "rank": r,
                            "measured": measured, "predicted": e["predicted"][i],
                            "ratio": ratio if ratio is not None else math.nan,
                            "first_order_ratio": measured / first if first else math.nan,
                            "expansion": e["predicted_expansion"][i], "in_range": bool(e["predicted_in_range"][i]),
                            "order": e["predicted_order"][i],
                            "diverged": str(r) in res["diverged_seeds"],
                        })
    return rows


def tally(rows: list[dict]) -> list[dict]:
    """Per optimizer and depth: rows, in range, misses, silent misses (in range and missed), the
    largest |ratio − 1| in range, and how many first-order predictions were off by > 20 %."""
    out = []
    for key in sorted({(r["optimizer"], r["depth"]) for r in rows}):
        part = [r for r in rows if (r["optimizer"], r["depth"]) == key]
        inside = [r for r in part if r["in_range"]]
        out.append({
            "optimizer": key[0], "depth": key[1], "predictions": len(part), "in range": len(inside),
            "missed (> 20 %)": sum(map(missed, part)),
            "silent misses": sum(map(silent, part)),
            "worst in range": max((abs(float(r["ratio"]) - 1) for r in inside), default=math.nan),
            "first order missed": sum(missed({"ratio": r["first_order_ratio"]}) for r in part),
        })
    return out


def main(argv: list[str] | None = None) -> int:
    p = script_parser("eta_range", __doc__.splitlines()[0])
    args = p.parse_args(argv)
    grid = QUICK if args.quick else FULL
    out = Path(args.out)
    t0 = time.perf_counter()
    sweep = {k: v for k, v in sweep_kwargs(args).items() if k != "out"}
    rows = run(grid, out, sweep)
    seconds = time.perf_counter() - t0
    write_csv(rows, out / "predictions.csv")
    range_scatter(rows, limit=EXPANSION_LIMIT, miss=MISS, path=out / "ratio_vs_expansion.png",
                  title=f"measured/predicted vs the prediction's expansion parameter (γ = 1/√r, width {grid['width']})")
    counts = tally(rows)
    n_silent = sum(c["silent misses"] for c in counts)
    text = [
        "# η range: measured/predicted against the predictions' expansion parameter",
        "",
        f"rsLoRA (γ = 1/√r), width {grid['width']}, ranks {', '.join(map(str, grid['ranks']))}, "
        f"depths {', '.join(map(str, grid['depths']))}, {grid['seeds']} seeds, "
        + "; ".join(f"{o.upper()} η ∈ {{{', '.join(f'{v:g}' for v in lrs)}}}" for o, lrs in grid["lrs"].items())
        + f" (rows: {len(rows)}, {seconds:.0f} s). Generated by `simulations/eta_range.py`: one "
        "`rsstab simulate` run per (optimizer, depth, η), its `predicted_ratio`, `predicted_expansion` and "
        "`predicted_in_range` per rank.",
        "",
        f"A prediction is **in range** while its expansion parameter is ≤ {EXPANSION_LIMIT:g} (the next term "
        "relative to the first, result 13; at SGD depth 1 the batch noise that result 14's finite-η recursion leaves "
        f"out). A **miss** is measured/predicted off by more than {MISS:.0%} (or not finite: a diverged rank); a "
        f"**silent miss** is a miss flagged in range. Silent misses: **{n_silent}**.",
        "",
        markdown_table(counts, list(counts[0])) if counts else "(no rows)",
        "",
        "![measured/predicted vs expansion parameter](ratio_vs_expansion.png)",
        "",
    ]
    atomic_write(out / "summary.md", "\n".join(text))
    print(f"wrote {out / 'summary.md'} ({len(rows)} rows, {n_silent} silent misses, {seconds:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
