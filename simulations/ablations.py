"""Ablations behind the report's claims table (the paper's Section 4 ablations, in spirit).

Experiments (all through the resumable sweep store under ``--out``):

* ``pscan``     — the iff of Theorem 3.2: γ_r = r^(−p) for p ∈ {0, ¼, ½, ¾, 1}, SGD and Adam at the
                  small learning rate of ``rsstab simulate`` (the linearised regime); forward slopes.
* ``sgd``       — the paper's SGD ablation: LoRA vs rsLoRA trained with SGD (η = 0.1).
* ``lr_sweep``  — rank-4 LoRA with its learning rate boosted ×1…×500 vs rank-2048 rsLoRA at the
                  base rate (Adam, the settings of ``rank_sweep.py``), on a task whose planted change
                  has rank 4 (a rank-4 adapter can represent it) and on one of full rank 32.
* ``subset``    — adapters on half of the layers only (the analogue of attention-only adapters).
* ``init_only`` — "fixing only the initialisation": γ = α/r with A's std scaled by √r or by 1/√r
                  (the paper does not say which): exponents at small η, and trained (Adam).
* ``iid``       — Var(γ_r·B·A·x) with independent Θ(1) entries (numpy Monte Carlo, no training).

    python simulations/ablations.py                 # → reports/ablations/
    python simulations/ablations.py --quick --out /tmp/ab

Writes ``rows.csv``, ``slopes.csv`` (every fitted slope, by experiment), ``final_loss.csv``
(held-out loss after training per experiment, schedule and rank, over seeds), ``iid.csv``,
figures (``pscan.png``, ``lr_sweep.png``, ``ablation_losses.png``) and ``summary.md``.
"""

from __future__ import annotations

import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from rsstab.experiments.compare import markdown_table, slope_records, theory_exponent
from rsstab.experiments.figures import loglog_vs_rank, pyplot
from rsstab.experiments.scripts import run_configs, script_parser
from rsstab.measure.fit import agrees_with, fit_slope
from rsstab.io import atomic_write, save_figure, write_csv
from rsstab.sim.config import DEFAULTS
from rsstab.sim.grid import make_configs
from rsstab.vocab import OPTIMIZERS

LORA, RSLORA = "alpha/r", "alpha/sqrt(r)"
P_VALUES = ("0", "1/4", "1/2", "3/4", "1")
P_OF = {f"r**(-{p})": float(Fraction(p)) for p in P_VALUES}  # schedule text → p
ADAM = dict(optimizer="adam", depth=2, width=32, batch=64, lr=1e-3, probe_batch=64)  # rank_sweep.py's
TASK_RANKS = (4, ADAM["width"])
A_INITS = {"sqrt(r)": 0.5, "1/sqrt(r)": -0.5}  # A's std ∝ r^(±½): the two readings of the paper's init-only fix
SGD = dict(optimizer="sgd", depth=2, width=32, batch=64, lr=0.1, probe_batch=64)
SMALL = dict(depth=DEFAULTS["depth"], width=DEFAULTS["width"], batch=DEFAULTS["batch"])  # rsstab simulate's
FULL = dict(pscan_ranks=DEFAULTS["ranks"], pscan_seeds=DEFAULTS["seeds"], pscan_steps=DEFAULTS["steps"],
            ranks=(4, 8, 32, 128, 512, 2048), steps=100, seeds=4, boosts=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            iid_ranks=(16, 64, 256, 1024, 4096), iid_samples=2000, iid_seeds=8)
QUICK = dict(pscan_ranks=(64, 1024), pscan_seeds=2, pscan_steps=3, ranks=(4, 64, 1024), steps=10, seeds=2,
             boosts=(1, 10), iid_ranks=(16, 256, 4096), iid_samples=500, iid_seeds=3)


def configs(grid: dict) -> list[dict]:
    """Every simulation cell of the ablations (one experiment tag each)."""
    out: list[dict] = []

    def add(schedule: str, ranks: tuple, experiment: str, **options: object) -> None:
        out.extend(make_configs(schedule, ranks, tags={"experiment": experiment, **options.pop("tags", {})},
                                **options))

    for opt in OPTIMIZERS:
        for p in P_VALUES:
            add(f"r**(-{p})", grid["pscan_ranks"], "pscan", optimizer=opt, steps=grid["pscan_steps"],
                seeds=grid["pscan_seeds"], **SMALL)
    for s in (LORA, RSLORA):
        add(s, grid["ranks"], "sgd", steps=grid["steps"], seeds=grid["seeds"], **SGD)
        add(s, grid["ranks"], "subset", steps=grid["steps"], seeds=grid["seeds"],
            **{**ADAM, "depth": 4}, adapted_layers=(0, 2))
    for task_rank in TASK_RANKS:  # the planted change has rank 4 (fits in r = 4) or the full width
        for boost in grid["boosts"]:
            add(LORA, (4,), "lr_sweep", steps=grid["steps"], seeds=grid["seeds"], teacher_rank=task_rank,
                **{**ADAM, "lr": ADAM["lr"] * boost}, tags={"boost": boost, "task_rank": task_rank})
        add(RSLORA, (max(grid["ranks"]),), "lr_sweep", steps=grid["steps"], seeds=grid["seeds"],
            teacher_rank=task_rank, **ADAM, tags={"boost": 1, "task_rank": task_rank})
    for a_init in A_INITS:
        for opt in OPTIMIZERS:
            add(LORA, grid["pscan_ranks"], "init_only", optimizer=opt, steps=grid["pscan_steps"],
                seeds=grid["pscan_seeds"], a_init_scale=a_init, tags={"a_init": a_init}, **SMALL)
        add(LORA, grid["ranks"], "init_only_train", steps=grid["steps"], seeds=grid["seeds"],
            a_init_scale=a_init, tags={"a_init": a_init}, **ADAM)
    return out


def init_theory(row: dict, quantity: str) -> float | None:
    """The exponent of a quantity with A's std ∝ r^(±½) (the row's ``a_init``) and γ from the schedule."""
    import rsstab
    from rsstab.theory import law, quantities

    if quantity not in quantities(row["optimizer"]):
        return None
    g = float(rsstab.check(row["schedule"], optimizer=row["optimizer"]).gamma_exponent)
    return law(quantity, row["optimizer"]).exponent(g, sigma_a_exponent=A_INITS[row["a_init"]])


def final_losses(rows: list[dict], experiment: str) -> list[dict]:
    """Held-out loss at step 0 and after the last step, per schedule × rank (× boost), over seeds."""
    cells: dict[tuple, dict[int, dict[int, float]]] = {}
    for r in rows:
        if r.get("experiment") != experiment or r["quantity"] != "test_loss":
            continue
        key = (r["schedule"], r["optimizer"], int(r["rank"]), r.get("boost", 1), r.get("task_rank", 4),
               r.get("a_init") or "")
        cells.setdefault(key, {}).setdefault(int(r["seed"]), {})[int(r["step"])] = float(r["value"])
    out = []
    for (schedule, optimizer, rank, boost, task_rank, a_init), per_seed in sorted(cells.items()):
        last = [s[max(s)] for s in per_seed.values()]
        first = [s[min(s)] for s in per_seed.values()]
        finite = [v for v in last if math.isfinite(v)]
        out.append({
            "experiment": experiment, "schedule": schedule, "optimizer": optimizer, "rank": rank,
            "boost": boost, "task_rank": task_rank, "a_init": a_init, "seeds": len(last),
            "diverged": len(last) - len(finite),
            "loss_start": float(np.mean(first)),
            # a cell with a diverged seed has no final loss: averaging the survivors would flatter it
            "loss_end": float(np.mean(last)) if len(finite) == len(last) else math.nan,
            "loss_end_sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan,
        })
    return out


def _second_moment(r: int, samples: int, seed: int, width: int, chunk: int = 200) -> float:
    """Monte Carlo E[((B A x)_0)²] with independent N(0, 1) entries of A, B, x (exact: r·width).
    Only the first output coordinate is needed: (B A x)_0 = Σ_j B_0j (A x)_j."""
    rng = np.random.default_rng([seed, r])
    total, done = 0.0, 0
    while done < samples:
        n = min(chunk, samples - done)
        ax = np.einsum("nrd,nd->nr", rng.standard_normal((n, r, width)), rng.standard_normal((n, width)))
        total += float(np.sum(np.einsum("nr,nr->n", rng.standard_normal((n, r)), ax) ** 2))
        done += n
    return total / samples


def iid_variance(ranks: tuple, samples: int, seeds: int, width: int = 16) -> tuple[list[dict], list[dict]]:
    """Var(γ_r·(B A x)_0) = γ_r²·E[((B A x)_0)²] for the three schedules of the seed's table, from one
    Monte Carlo estimate per (rank, seed); slopes against r with intervals over seeds."""
    base = np.array([[_second_moment(r, samples, s, width) for s in range(seeds)] for r in ranks])
    rows, slopes = [], []
    for schedule, gamma in (("alpha", lambda r: 1.0), (LORA, lambda r: 1.0 / r),
                            (RSLORA, lambda r: 1.0 / math.sqrt(r))):
        g2 = np.array([gamma(r) ** 2 for r in ranks])[:, None]
        values = g2 * base
        for i, r in enumerate(ranks):
            for s in range(seeds):
                rows.append({"schedule": schedule, "rank": r, "seed": s, "variance": float(values[i, s]),
                             "exact": float(g2[i, 0]) * r * width})
        fit = fit_slope(list(ranks), values)
        theory = theory_exponent(schedule, "sgd", "iid_variance")
        slopes.append({"experiment": "iid", "schedule": schedule, "optimizer": "sgd",
                       "quantity": "iid_variance", "slope": fit.slope, "ci_low": fit.ci[0],
                       "ci_high": fit.ci[1], "theory": theory, "agrees": agrees_with(fit, theory, interval=True),
                       "label": fit.label, "local_slopes": " ".join(f"{x:+.2f}" for x in fit.local_slopes)})
    return rows, slopes


def main(argv: list[str] | None = None) -> int:
    args = script_parser("ablations", __doc__.splitlines()[0]).parse_args(argv)
    grid = QUICK if args.quick else FULL
    rows = run_configs(configs(grid), args)
    out = Path(args.out)

    slopes = []
    for experiment, by in (("pscan", ("schedule", "optimizer")), ("sgd", ("schedule",)),
                           ("subset", ("schedule",)), ("init_only", ("schedule", "optimizer", "a_init"))):
        recs = slope_records([r for r in rows if r.get("experiment") == experiment], by,
                             theory=init_theory if experiment == "init_only" else None)
        slopes.extend({"experiment": experiment, "optimizer": rec.get("optimizer", ""), **rec} for rec in recs)
    iid_rows, iid_slopes = iid_variance(grid["iid_ranks"], grid["iid_samples"], grid["iid_seeds"])
    slopes.extend(iid_slopes)
    write_csv(slopes, out / "slopes.csv")
    write_csv(iid_rows, out / "iid.csv")
    finals = [f for e in ("sgd", "subset", "lr_sweep", "init_only_train") for f in final_losses(rows, e)]
    write_csv(finals, out / "final_loss.csv")
    _figures(out, slopes, finals)
    _summary(out, slopes, finals, grid)
    print(f"wrote {out / 'summary.md'}", file=sys.stderr)
    return 0


def _figures(out: Path, slopes: list[dict], finals: list[dict]) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for i, opt in enumerate(OPTIMIZERS):
        recs = [s for s in slopes if s["experiment"] == "pscan" and s["optimizer"] == opt
                and s["quantity"] == "forward"]
        ps = [P_OF[s["schedule"]] for s in recs]
        ax.errorbar(ps, [s["slope"] for s in recs],
                    yerr=[[s["slope"] - s["ci_low"] for s in recs], [s["ci_high"] - s["slope"] for s in recs]],
                    fmt="o", color=f"C{i}", label=f"{opt}: measured forward slope")
        grid = np.linspace(0, 1, 50)
        ax.plot(grid, 1 - 2 * grid if opt == "sgd" else 1 - grid, "--", color=f"C{i}", label=f"{opt}: theory")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("p in γ_r = r^(−p)")
    ax.set_ylabel("d log(RMS adapter output) / d log r")
    ax.set_title("The iff: only p = ½ (SGD) / p = 1 (Adam) is flat")
    ax.legend(fontsize=7)
    save_figure(fig, out / "pscan.png")

    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, task_rank in enumerate(TASK_RANKS):
        lr = [f for f in finals if f["experiment"] == "lr_sweep" and f["task_rank"] == task_rank]
        lora = sorted((f for f in lr if f["schedule"] == LORA), key=lambda f: f["boost"])
        ax.plot([f["boost"] for f in lora], [f["loss_end"] for f in lora], "o-", color=f"C{i}",
                label=f"task rank {task_rank}: LoRA r=4, lr × boost")
        for f in lr:
            if f["schedule"] == RSLORA:
                ax.axhline(f["loss_end"], color=f"C{i}", ls="--",
                           label=f"task rank {task_rank}: rsLoRA r={f['rank']}, base lr")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning-rate boost of rank-4 LoRA (base Adam η = 1e-3)")
    ax.set_ylabel("held-out loss after training")
    ax.legend(fontsize=7)
    save_figure(fig, out / "lr_sweep.png")

    panels = {}
    for experiment, title in (("sgd", "SGD ablation"), ("subset", "adapters on half the layers (Adam)"),
                              ("init_only_train", "init-only fix vs rank (Adam)")):
        curves = {}
        for schedule, a_init in sorted({(f["schedule"], f.get("a_init") or "") for f in finals
                                        if f["experiment"] == experiment}):
            pts = sorted((f["rank"], f["loss_end"]) for f in finals if f["experiment"] == experiment
                         and f["schedule"] == schedule and (f.get("a_init") or "") == a_init)
            name = {LORA: "LoRA α/r", RSLORA: "rsLoRA α/√r"}.get(schedule, schedule)
            if a_init:
                name = f"α/r, A std × {a_init.replace('sqrt(r)', '√r')}"
            curves[name] = ([p[0] for p in pts], [p[1] for p in pts])
        panels[title] = curves
    loglog_vs_rank(panels, ylabel="held-out loss after training", path=out / "ablation_losses.png")


def _summary(out: Path, slopes: list[dict], finals: list[dict], grid: dict) -> None:
    cols = ["experiment", "schedule", "optimizer", "a_init", "quantity", "slope", "ci_low", "ci_high", "theory",
            "agrees", "label", "local_slopes"]
    text = [
        "# Ablations",
        "",
        f"Ranks {', '.join(map(str, grid['ranks']))} ({grid['steps']} steps, {grid['seeds']} seeds) for the "
        f"training ablations; ranks {', '.join(map(str, grid['pscan_ranks']))} at the small learning rate of "
        "`rsstab simulate` for the exponent scans. Generated by `simulations/ablations.py`.",
        "",
        "## Fitted slopes",
        "",
        markdown_table(slopes, cols),
        "",
        "## Held-out loss after training",
        "",
        markdown_table(finals, ["experiment", "schedule", "optimizer", "a_init", "rank", "boost", "task_rank", "loss_start",
                                "loss_end", "loss_end_sd", "diverged"]),
        "",
        "Figures: `pscan.png`, `lr_sweep.png`, `ablation_losses.png`.",
        "",
    ]
    atomic_write(out / "summary.md", "\n".join(text))


if __name__ == "__main__":
    sys.exit(main())
