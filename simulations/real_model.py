"""LoRA vs rsLoRA with PEFT on pretrained MiniLM-L6: gradient norms (paper Fig. 3) and losses (Fig. 2).

    python simulations/real_model.py                 # full run → reports/real_model/
    python simulations/real_model.py --quick --out /tmp/rm
    python simulations/real_model.py --workers 2     # cells in 2 local processes
    python simulations/real_model.py --scheduler tcp://HOST:8786   # cells on a Dask cluster

Each (method, rank, seed) cell runs through :func:`rsstab.sweep.run_sweep` into the resumable store
``OUT/store``: re-running skips finished cells and a killed run resumes where it stopped. Cells that
fail are listed on stderr (exit 1); the rows of the others are still written, but the summary, fits
and figures only from a complete run.

Writes ``rows.csv`` (tidy: method, rank, scaling, seed, step, quantity, value), ``config.json``,
``fits.json``, ``summary.md`` (fitted log-log slopes vs r, the theory's exponents, losses per rank) and figures:
``onset_grad_norm.png``, ``final_adapter_out_rms.png`` and ``final_eval_loss.png`` (log-log vs r),
``grad_norm_steps.png`` (Fig. 3 analogue) and ``loss_steps.png`` (held-out loss, Fig. 2 analogue). Needs the ``peft`` and ``sim`` extras.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.experiments.figures import OKABE_ITO, colour, pyplot
from rsstab.experiments.scripts import script_parser
from rsstab.experiments.minilm import (
    FIELDS,
    METHODS,
    RealModelConfig,
    cell_configs,
    parse_ranks,
    read_config,
    read_rows,
    run_cell,
    write_config,
)
from rsstab.experiments.minilm_fits import onset_fits, run_series, summarize
from rsstab.io import atomic_write, save_figure, write_csv
from rsstab.sweep import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    SweepInterrupted,
    run_sweep,
    sweep_kwargs,
)

COLOURS = {"lora": OKABE_ITO[1], "rslora": OKABE_ITO[0]}  # colour-blind safe (vermillion, blue)
LABELS = {"lora": "LoRA (α/r)", "rslora": "rsLoRA (α/√r)"}
#: What :func:`_report` derives from the rows (removed after an incomplete run, so that no stale
#: summary sits next to partial rows).
DERIVED = (
    "summary.md",
    "fits.json",
    "onset_grad_norm.png",
    "grad_norm_steps.png",
    "loss_steps.png",
    "final_adapter_out_rms.png",
    "final_eval_loss.png",
)


def plot(rows: list[dict[str, Any]], cfg: RealModelConfig, out: Path) -> list[Path]:
    """Figures from the tidy rows; log-log axes for anything vs r."""
    import numpy as np
    from matplotlib.ticker import FormatStrFormatter

    plt = pyplot()
    ranks = sorted({r["rank"] for r in rows})
    paths = []

    fits = onset_fits(rows)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in cfg.methods:
        pts = [
            (r["rank"], r["value"])
            for r in rows
            if r["method"] == method and r["quantity"] == "grad_norm" and r["step"] == 0
        ]
        ax.scatter(*zip(*pts), color=COLOURS[method], s=14, alpha=0.6)
        f = fits[method]
        x = np.asarray(ranks, float)
        y = np.exp(np.mean(np.log(f.values)) + f.slope * (np.log(x) - np.mean(np.log(x))))
        ax.plot(x, y, color=COLOURS[method], label=f"{LABELS[method]}: slope {f.slope:+.2f}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="rank r",
        ylabel="mean adapter ‖∇‖_F at step 0",
        title="Onset gradient norm vs rank (MiniLM-L6)",
    )
    ax.legend()
    paths.append(out / "onset_grad_norm.png")
    fig.tight_layout()
    save_figure(fig, paths[-1], dpi=120)

    for quantity, name, ylabel, logy in [
        ("grad_norm", "grad_norm_steps.png", "mean adapter ‖∇‖_F (Fig. 3)", True),
        ("eval_loss", "loss_steps.png", "held-out contrastive loss (Fig. 2)", False),
    ]:
        fig, axes = plt.subplots(1, len(cfg.methods), figsize=(5 * len(cfg.methods), 4), sharey=True, squeeze=False)
        for ax, method in zip(axes[0], cfg.methods):
            for i, r in enumerate(ranks):
                s, v = run_series(rows, method, r, quantity)
                ax.plot(
                    s,
                    v,
                    marker="o" if quantity == "eval_loss" else None,
                    ms=3,
                    color=colour(i, len(ranks)),
                    label=f"r={r}",
                )
            ax.set(title=LABELS[method], xlabel="optimizer steps", ylabel=ylabel)
            if logy:
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        paths.append(out / name)
        fig.tight_layout()
        save_figure(fig, paths[-1], dpi=120)

    if cfg.steps >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for method in cfg.methods:
            ys = [run_series(rows, method, r, "adapter_out_rms")[1][-1] for r in ranks]
            ax.plot(ranks, ys, "o-", color=COLOURS[method], label=LABELS[method])
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="rank r",
            ylabel="RMS of γ·B·A·x (mean over modules)",
            title=f"Adapter output after {cfg.steps - 1} {cfg.optimizer} updates",
        )
        ax.legend()
        paths.append(out / "final_adapter_out_rms.png")
        fig.tight_layout()
        save_figure(fig, paths[-1], dpi=120)

        fig, ax = plt.subplots(figsize=(5.5, 4))
        for method in cfg.methods:
            ys = [run_series(rows, method, r, "eval_loss")[1][-1] for r in ranks]
            ax.plot(ranks, ys, "o-", color=COLOURS[method], label=LABELS[method])
        start = run_series(rows, cfg.methods[0], ranks[0], "eval_loss")[1][0]
        ax.axhline(start, color="grey", ls=":", label="pretrained (before fine-tuning)")
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="rank r",
            ylabel="held-out contrastive loss",
            title=f"Held-out loss after {cfg.steps} {cfg.optimizer} updates",
        )
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.2f"))
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2f"))
        ax.legend()
        paths.append(out / "final_eval_loss.png")
        fig.tight_layout()
        save_figure(fig, paths[-1], dpi=120)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("real_model", __doc__.splitlines()[0],
                           quick_help="small ranks/steps for tests (about half a minute)")
    parser.add_argument("--ranks", type=parse_ranks, help="comma-separated ranks (default 4,16,64,256,1024)")
    parser.add_argument("--steps", type=int, help="fine-tuning steps per run")
    parser.add_argument("--seeds", type=int, help="onset replicates per rank")
    parser.add_argument("--batch-size", type=int, help="sentence pairs per batch")
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), help="default adamw (the paper's)")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-4)")
    parser.add_argument("--eval-every", type=int, help="held-out loss every N updates (default 5; 0: first and last)")
    parser.add_argument("--lora-alpha", type=float, help="α for both methods (default 16)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", help="torch device (default cpu)")
    parser.add_argument("--methods", type=lambda s: tuple(s.split(",")), help=f"subset of {','.join(METHODS)}")
    parser.add_argument(
        "--replot", action="store_true", help="redraw figures and summary from OUT/rows.csv without running"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.replot:
        try:
            rows, cfg = read_rows(out / "rows.csv"), read_config(out / "config.json")
        except (OSError, ValueError, TypeError, RsstabError) as exc:
            print(f"real_model: error: cannot replot from {out}: {exc}", file=sys.stderr)
            return 2
        return _report(rows, cfg, out)
    overrides = {
        k: v
        for k, v in dict(
            ranks=args.ranks,
            steps=args.steps,
            seeds=args.seeds,
            batch_size=args.batch_size,
            optimizer=args.optimizer,
            lr=args.lr,
            eval_every=args.eval_every,
            lora_alpha=args.lora_alpha,
            threads=args.threads,
            device=args.device,
            methods=args.methods,
        ).items()
        if v is not None
    }
    try:
        cfg = RealModelConfig.quick(**overrides) if args.quick else RealModelConfig(**overrides)
    except RsstabError as exc:
        print(f"real_model: error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    try:
        result = run_sweep(run_cell, cell_configs(cfg), **sweep_kwargs(args))
    except SweepInterrupted as exc:
        print(f"real_model: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RsstabError as exc:
        print(f"real_model: error: {exc}", file=sys.stderr)
        return 2
    rows = result.rows
    write_csv([{k: row[k] for k in FIELDS} for row in rows], out / "rows.csv")
    write_config(cfg, out / "config.json")
    print(f"real_model: {result.summary()} (store: {out / 'store'})", file=sys.stderr)
    if not result.ok:
        for config, error in result.failed:
            print(
                f"real_model: failed: {config['method']} r={config['rank']} seed={config['seed']}: {error}",
                file=sys.stderr,
            )
        for name in DERIVED:
            (out / name).unlink(missing_ok=True)
        print(
            f"real_model: wrote the rows of the finished cells to {out / 'rows.csv'}; no summary, fits or "
            "figures until every cell has finished (re-run the same command to retry the failed ones)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return _report(rows, cfg, out)


def _report(rows: list[dict[str, Any]], cfg: RealModelConfig, out: Path) -> int:
    fits, text = summarize(rows, cfg)
    atomic_write(out / "summary.md", text)
    atomic_write(out / "fits.json", json.dumps([f.to_dict() for f in fits], indent=2) + "\n")
    figures = plot(rows, cfg, out)
    print(text)
    print("wrote", ", ".join(str(p) for p in [out / "rows.csv", out / "summary.md", out / "fits.json", *figures]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
