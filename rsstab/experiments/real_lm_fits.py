"""The real-LM experiment beside the theory: tuned learning rates, perplexity against rank, figures.

Report code: it reads the tidy rows of :mod:`rsstab.experiments.real_lm` (which never sees a
prediction) and puts them next to the predictions of :func:`rsstab.verdict.transfer.transfer` (the
optimal-η exponent under Adam: α/r → 0, α/√r → −½) and of the theory's onset-gradient and
update exponents (:func:`rsstab.experiments.compare.theory_exponent`).

* :func:`tuned_points` — per (method, rank): the best grid point, the optimal η interpolated by a
  parabola in log η through it and its two neighbours, whether the optimum is bracketed, the
  held-out perplexity there (every seed) and at the fixed η;
* :func:`eta_fit` — the slope of log η* against log r with a 95 % regression interval;
* :func:`seed_noise` — the pooled seed-to-seed standard deviation of the perplexity;
* :func:`cell_table` — one row per (method, rank, η, seed) with its held-out perplexity;
* :func:`report` — ``results.csv``, ``summary.md``, ``fits.json`` and the figures.

>>> round(parabola_vertex((-6, -5, -4), (3.0, 2.0, 2.5)), 4)
-4.8333
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rsstab.experiments.real_lm import RealLMConfig, best_k, final_losses

__all__ = ["TunedPoint", "cell_table", "eta_fit", "parabola_vertex", "predicted_eta_exponent", "read_config", "read_rows",
           "report", "seed_noise", "summarize", "tuned_points"]

SCHEDULES = {"lora": "alpha/r", "rslora": "alpha/sqrt(r)"}
LABELS = {"lora": "LoRA (α/r)", "rslora": "rsLoRA (α/√r)"}


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tidy rows of ``rows.csv`` with their numeric types restored."""
    types = {"rank": int, "lr_k": int, "seed": int, "step": int, "lr": float, "value": float}
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: types.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def read_config(path: str | os.PathLike[str]) -> RealLMConfig:
    """The configuration saved next to the rows (validated again)."""
    data = json.loads(Path(path).read_text())
    return RealLMConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})  # type: ignore[arg-type]  # fields checked by the class


def parabola_vertex(ks: Sequence[float], ys: Sequence[float]) -> float:
    """The vertex of the parabola through three points with equally spaced ``ks`` (clipped to them)."""
    (k0, k1, k2), (y0, y1, y2) = ks, ys
    h = k1 - k0
    curvature = y0 - 2 * y1 + y2
    if not all(map(math.isfinite, (y0, y1, y2))) or curvature <= 0:
        return float(k1)
    return min(max(k1 + h * (y0 - y2) / (2 * curvature), k0), k2)


@dataclass(frozen=True)
class TunedPoint:
    """One (method, rank) after the learning-rate search."""

    method: str
    rank: int
    best_k: int
    best_lr: float
    eta_star: float  # seed 0: interpolated where both neighbours learned, else the best grid point
    bracketed: bool  # the best grid point has a tried neighbour on each side
    ppl_tuned: tuple[float, ...]  # held-out perplexity at the best grid point, one per seed
    ppl_fixed: float  # at the fixed η (seed 0)
    tried: tuple[int, ...]

    @property
    def ppl_tuned_mean(self) -> float:
        return statistics.fmean(self.ppl_tuned)


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def tuned_points(rows: Iterable[Mapping[str, Any]], cfg: RealLMConfig) -> list[TunedPoint]:
    """Every (method, rank) of the run, in method then rank order."""
    losses = final_losses(rows)
    base = [r["value"] for r in rows if r["method"] == "pretrained" and r["quantity"] == "eval_loss"]
    learned = base[0] if base else math.inf  # a run that ends above the pretrained loss did not learn
    out = []
    for m in cfg.methods:
        for r in cfg.ranks:
            k, tried = best_k(losses, m, r)
            neighbours = [losses.get((m, r, k + d, 0)) for d in (-1, 1)]
            bracketed = all(v is not None for v in neighbours)  # a diverged neighbour brackets too
            smooth = bracketed and all(v is not None and v <= learned for v in neighbours)
            vertex = (parabola_vertex((k - 1, k, k + 1), (neighbours[0], losses[(m, r, k, 0)], neighbours[1]))  # type: ignore[arg-type]  # smooth: no None
                      if smooth else float(k))
            seeds = sorted(s for (mm, rr, kk, s) in losses if (mm, rr, kk) == (m, r, k))
            out.append(TunedPoint(m, r, k, cfg.lr_grid(k), 10 ** (vertex / 2), bracketed,
                                  tuple(_ppl(losses[(m, r, k, s)]) for s in seeds),
                                  _ppl(losses.get((m, r, cfg.lr_fixed_k, 0), math.inf)), tuple(tried)))
    return out


def seed_noise(points: Iterable[TunedPoint]) -> tuple[float, int]:
    """Pooled standard deviation of the perplexity between seeds at the same cell, and its degrees
    of freedom (``nan``, 0 with a single seed)."""
    ss, dof = 0.0, 0
    for p in points:
        if len(p.ppl_tuned) >= 2 and all(map(math.isfinite, p.ppl_tuned)):
            mean = statistics.fmean(p.ppl_tuned)
            ss += sum((v - mean) ** 2 for v in p.ppl_tuned)
            dof += len(p.ppl_tuned) - 1
    return (math.sqrt(ss / dof), dof) if dof else (math.nan, 0)


def eta_fit(points: Sequence[TunedPoint], confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Least-squares slope of log η* against log r and its interval (Student t, n − 2 degrees of
    freedom). The variance of a point is the residual variance plus the grid's quantization, a
    uniform error over one half-decade (ln(10)²/48): η* read off a grid is not known better than
    that, and a set of η* on one grid point would otherwise give an interval of width zero."""
    from scipy.special import stdtrit

    x = [math.log(p.rank) for p in points]
    y = [math.log(p.eta_star) for p in points]
    n = len(x)
    if n < 3:
        raise ValueError("an η* slope with an interval needs at least three ranks")
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    resid = sum((b - my - slope * (a - mx)) ** 2 for a, b in zip(x, y))
    se = math.sqrt((resid / (n - 2) + math.log(10) ** 2 / 48) / sxx)
    t = float(stdtrit(n - 2, 0.5 + confidence / 2))
    return slope, (slope - t * se, slope + t * se)


def predicted_eta_exponent(method: str) -> float:
    """η* ∝ r^p under Adam's sign phase, from :func:`rsstab.verdict.transfer.transfer` (keeps η·γ_r·r fixed)."""
    from rsstab.verdict.transfer import transfer

    p = transfer(SCHEDULES[method], 1.0, 4, 64, optimizer="adam").lr_exponent
    assert p is not None
    return p


def _quantity(rows: Iterable[Mapping[str, Any]], quantity: str, step: int | None = None) -> dict[tuple, float]:
    return {(r["method"], r["rank"], r["lr_k"], r["seed"]): r["value"] for r in rows
            if r["quantity"] == quantity and (step is None or r["step"] == step)}


def slope_fits(rows: Sequence[Mapping[str, Any]], cfg: RealLMConfig) -> list[dict[str, Any]]:
    """Log-log slopes against rank of the onset gradient norm (every seed measured at step 0) and of
    the learned update ‖γ·B·A‖_F at the fixed η, beside the theory's exponents (``fits.json``)."""
    import numpy as np

    from rsstab.experiments.compare import theory_exponent
    from rsstab.measure.fit import fit_slope

    onset = _quantity(rows, "grad_norm", 0)
    update = _quantity(rows, "update_norm")
    out = []
    for m in cfg.methods:
        per_seed: dict[int, dict[int, float]] = {}
        for (mm, r, _k, s), v in onset.items():
            if mm == m:
                per_seed.setdefault(s, {})[r] = v  # identical for every η of a seed: step 0
        seeds = sorted(s for s, d in per_seed.items() if set(d) == set(cfg.ranks))
        values = np.array([[per_seed[s][r] for s in seeds] for r in cfg.ranks])
        f = fit_slope(cfg.ranks, values)
        out.append(dict(method=m, quantity="grad_init", measured=f"mean adapter ‖∇‖_F at step 0 ({len(seeds)} seed{'s' * (len(seeds) > 1)})",
                        slope=f.slope, ci=list(f.ci), label=f.label,
                        predicted=theory_exponent(SCHEDULES[m], "adam", "grad_init"), local_slopes=list(f.local_slopes)))
        vals = [update.get((m, r, cfg.lr_fixed_k, 0), math.nan) for r in cfg.ranks]
        f = fit_slope(cfg.ranks, np.array(vals))
        out.append(dict(method=m, quantity="forward",
                        measured=f"‖γ·B·A‖_F after {cfg.steps} steps at η = {cfg.lr_grid(cfg.lr_fixed_k):g} (one seed)",
                        slope=f.slope, ci=list(f.ci), label=f.label,
                        predicted=theory_exponent(SCHEDULES[m], "adam", "forward"), local_slopes=list(f.local_slopes)))
    return out


def cell_table(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, rank, η, seed): the held-out perplexity after the last step and the
    recorded scalars (``results.csv``), in method, rank, η, seed order."""
    cells: dict[tuple, dict[str, Any]] = {}
    last_eval: dict[tuple, int] = {}
    for row in rows:
        key = (row["method"], row["rank"], row["lr_k"], row["seed"])
        cell = cells.setdefault(key, {"method": row["method"], "rank": row["rank"], "lr": row["lr"],
                                      "lr_k": row["lr_k"], "seed": row["seed"]})
        q, step, value = row["quantity"], row["step"], row["value"]
        if q == "eval_loss" and step >= last_eval.get(key, -1):
            last_eval[key] = step
            cell["eval_loss"], cell["ppl"] = value, _ppl(value)
        elif q == "grad_norm" and step == 0:
            cell["onset_grad_norm"] = value
        elif q == "loss":
            cell["train_loss_last"] = value
        elif q in ("update_norm", "update_rel"):
            cell[q] = value
    return [cells[k] for k in sorted(cells)]


def summarize(rows: Sequence[Mapping[str, Any]], cfg: RealLMConfig) -> tuple[dict[str, Any], str]:
    """The numbers behind the report's rows (``fits.json``) and a markdown summary."""
    points = tuned_points(rows, cfg)
    noise, dof = seed_noise(points)
    base = [r["value"] for r in rows if r["method"] == "pretrained" and r["quantity"] == "eval_loss"]
    fits: dict[str, Any] = {"pretrained_ppl": _ppl(base[0]) if base else None, "seed_sd": noise, "seed_dof": dof,
                            "fixed_lr": cfg.lr_grid(cfg.lr_fixed_k), "eta": {}, "slopes": slope_fits(rows, cfg),
                            "points": [{**asdict(p), "ppl_tuned_mean": p.ppl_tuned_mean} for p in points]}
    for m in cfg.methods:
        mine = [p for p in points if p.method == m]
        slope, ci = eta_fit(mine)
        fits["eta"][m] = {"slope": slope, "ci": list(ci), "predicted": predicted_eta_exponent(m),
                          "bracketed": all(p.bracketed for p in mine)}
    lines = [
        "# LoRA vs rsLoRA on SmolLM2-135M (Shakespeare, AdamW): perplexity against rank, η tuned",
        "",
        f"Model `{cfg.model}`, LoRA on q, k, v, o, gate, up, down of the last {cfg.adapted_blocks} blocks "
        f"(α = {cfg.lora_alpha:g}), {cfg.steps} AdamW steps of {cfg.batch_size} × {cfg.seq_len} tokens (constant η, "
        f"weight decay {cfg.weight_decay:g}), held-out perplexity on {cfg.eval_seqs} sequences of held-out works. "
        f"Pretrained held-out perplexity: {fits['pretrained_ppl']:.3f}. Learning rates on a half-decade grid; "
        f"η* interpolated by a parabola in log η through the best point and its neighbours where both "
        "neighbours learned (ended below the pretrained loss), else the best grid point.",
        "",
        f"Seed-to-seed spread of the perplexity at the same cell (pooled over the tuned cells): "
        f"σ = {noise:.3f} ({dof} degrees of freedom).",
        "",
        "| method | rank | grid points tried (η) | best η | η* (interpolated) | bracketed | ppl at best η (seeds) "
        f"| ppl at η = {cfg.lr_grid(cfg.lr_fixed_k):g} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        tried = ", ".join(f"{cfg.lr_grid(k):g}" for k in p.tried)
        seeds = ", ".join(f"{v:.3f}" for v in p.ppl_tuned)
        lines.append(f"| {LABELS[p.method]} | {p.rank} | {tried} | {p.best_lr:g} | {p.eta_star:.3g} | "
                     f"{'yes' if p.bracketed else '**no**'} | {seeds} | {p.ppl_fixed:.3f} |")
    lines += ["", "| method | η* ∝ r^p: measured p [95% regression interval] | predicted (Adam, `rsstab transfer`) |",
              "|---|---|---|"]
    for m in cfg.methods:
        e = fits["eta"][m]
        lines.append(f"| {LABELS[m]} | {e['slope']:+.3f} [{e['ci'][0]:+.3f}, {e['ci'][1]:+.3f}] | {e['predicted']:+g} |")
    lines += ["", "| method | quantity | slope vs r [95% CI] | theory |", "|---|---|---|---|"]
    for f in fits["slopes"]:
        lines.append(f"| {LABELS[f['method']]} | {f['measured']} | {f['slope']:+.3f} [{f['ci'][0]:+.3f}, "
                     f"{f['ci'][1]:+.3f}] | {f['predicted']:+g} |")
    lines.append("")
    return fits, "\n".join(lines)


def plot(rows: Sequence[Mapping[str, Any]], cfg: RealLMConfig, fits: Mapping[str, Any], out: Path) -> list[Path]:
    """``ppl_vs_rank.png`` (tuned and fixed η), ``eta_star.png``, ``lr_curves.png``, ``onset_grad_norm.png``."""
    from rsstab.experiments.figures import OKABE_ITO, colour, pyplot
    from rsstab.io import save_figure

    plt = pyplot()
    colours = {"lora": OKABE_ITO[1], "rslora": OKABE_ITO[0]}
    points = tuned_points(rows, cfg)
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, tuned in zip(axes, (True, False)):
        for m in cfg.methods:
            mine = [p for p in points if p.method == m]
            ys = [p.ppl_tuned_mean if tuned else p.ppl_fixed for p in mine]
            ax.plot([p.rank for p in mine], ys, "o-", color=colours[m], label=LABELS[m])
            if tuned:
                for p in mine:
                    ax.scatter([p.rank] * len(p.ppl_tuned), p.ppl_tuned, color=colours[m], s=10, alpha=0.5)
        if fits.get("pretrained_ppl"):
            ax.axhline(fits["pretrained_ppl"], color="grey", ls=":", label="pretrained")
        ax.set(xscale="log", xlabel="rank r", ylabel="held-out perplexity",
               title="η tuned per (method, rank)" if tuned else f"one fixed η = {fits['fixed_lr']:g} (the paper's protocol)")
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 2 on SmolLM2-135M: held-out perplexity after fine-tuning")
    fig.tight_layout()
    paths.append(save_figure(fig, out / "ppl_vs_rank.png", dpi=120))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for m in cfg.methods:
        mine = [p for p in points if p.method == m]
        e = fits["eta"][m]
        ax.plot([p.rank for p in mine], [p.eta_star for p in mine], "o", color=colours[m],
                label=f"{LABELS[m]}: p = {e['slope']:+.2f} [{e['ci'][0]:+.2f}, {e['ci'][1]:+.2f}]")
        anchor = mine[0]
        ax.plot([p.rank for p in mine], [anchor.eta_star * (p.rank / anchor.rank) ** e["predicted"] for p in mine],
                ls="--", color=colours[m], alpha=0.7, label=f"predicted p = {e['predicted']:+g} (from r = {anchor.rank})")
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel="optimal η (interpolated)",
           title="Optimal AdamW learning rate vs rank")
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "eta_star.png", dpi=120))

    losses = final_losses(rows)
    fig, axes = plt.subplots(1, len(cfg.methods), figsize=(5 * len(cfg.methods), 4), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], cfg.methods):
        for i, r in enumerate(cfg.ranks):
            pts = sorted((cfg.lr_grid(k), _ppl(v)) for (mm, rr, k, s), v in losses.items()
                         if (mm, rr, s) == (m, r, 0) and math.isfinite(v) and v < 20)
            ax.plot(*zip(*pts), "o-", ms=3, color=colour(i, len(cfg.ranks)), label=f"r={r}")
        ax.set(xscale="log", yscale="log", xlabel="learning rate η", ylabel="held-out perplexity (seed 0)",
               title=LABELS[m])
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "lr_curves.png", dpi=120))

    onset = _quantity(rows, "grad_norm", 0)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for f in fits["slopes"]:
        if f["quantity"] != "grad_init":
            continue
        m = f["method"]
        pts = sorted({(r, v) for (mm, r, _k, _s), v in onset.items() if mm == m})
        ax.scatter(*zip(*pts), color=colours[m], s=14, label=f"{LABELS[m]}: slope {f['slope']:+.2f} "
                   f"(theory {f['predicted']:+g})")
    ax.set(xscale="log", yscale="log", xlabel="rank r", ylabel="mean adapter ‖∇‖_F at step 0",
           title="Fig. 3 at onset on SmolLM2-135M")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(save_figure(fig, out / "onset_grad_norm.png", dpi=120))
    return paths


def report(rows: Sequence[Mapping[str, Any]], cfg: RealLMConfig, out: Path) -> int:
    """Write ``results.csv`` (one row per cell), ``summary.md``, ``fits.json`` and the figures from a
    finished run's rows."""
    from rsstab.io import atomic_write

    from rsstab.io import write_csv
    from rsstab.schema import json_safe

    fits, text = summarize(rows, cfg)
    write_csv(cell_table(rows), out / "results.csv")
    atomic_write(out / "summary.md", text)
    atomic_write(out / "fits.json", json.dumps(json_safe(fits), indent=2) + "\n")
    figures = plot(rows, cfg, fits, out)
    print(text)
    print("wrote", ", ".join(str(p) for p in [out / "summary.md", out / "fits.json", *figures]))
    return 0
