"""Claims measured where they could fail: rank gains at a tuned learning rate (Fig. 2, the
learning-rate ablation), the SGD ablation judged by the learned update, learning-rate transfer,
and the real pretrained model.

The tuned claims read ``lr_transfer/tuned.csv`` and ``lr_transfer/slopes.csv``
(``simulations/lr_transfer.py``): every method at its own tuned η per rank, on a task that needs
rank up to the width. Differences between two methods are **paired over seeds** (the same seed
draws the same base, teacher, data and A for both), with a 95% t-interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsstab.experiments.claims.table import (LORA, REFUTES, REPRODUCTION, RSLORA, TOL, Claim, agrees,
                                             fig, pick, read_table, slope_text, verdict_of)
from rsstab.experiments.lrtransfer import PLATEAU
from rsstab.measure.fit import fit_slope
from rsstab.vocab import STABLE

__all__ = ["paired", "fig2", "sgd", "lr_boost", "lr_transfer", "real_model", "real_model_sgd"]

LT = "lr_transfer"
CMD = "python simulations/lr_transfer.py"
LORA_NAME, RS_NAME, BOOST = "LoRA α/r", "rsLoRA α/√r", "LoRA, η×√r"
#: LoRA "matches" rsLoRA at the same rank when its deficit is below this fraction of rsLoRA's rank gain.
MATCH = 0.1


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean of ``a − b`` over seeds and the half-width of its 95% t-interval (inf with one seed).

    >>> d, h = paired([2.0, 2.1, 1.9], [1.0, 1.1, 0.9])
    >>> round(d, 6), round(h, 6)
    (1.0, 0.0)
    """
    from scipy.special import stdtrit

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size < 2:
        return float(diff.mean()) if diff.size else math.nan, math.inf
    half = float(stdtrit(diff.size - 1, 0.975)) * float(diff.std(ddof=1)) / math.sqrt(diff.size)
    return float(diff.mean()), half


def _seeds(rec: Mapping[str, Any]) -> list[float]:
    return [float(v) for v in str(rec["loss_seeds"]).split()]


def _tuned(root: Path) -> list[dict[str, Any]]:
    return read_table(root / LT / "tuned.csv")


def _curve(rows: Sequence[Mapping[str, Any]], opt: str, protocol: str, method: str) -> list[Mapping[str, Any]]:
    return sorted((r for r in rows if r["optimizer"] == opt and r["protocol"] == protocol and r["method"] == method),
                  key=lambda r: r["rank"])


def _seq(recs: Sequence[Mapping[str, Any]]) -> str:
    return " → ".join(f"{r['loss_mean']:.3g}" for r in recs)


def _diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[float, float, str]:
    d, h = paired(_seeds(a), _seeds(b))
    return d, h, f"{d:+.3g} ± {h:.2g}"


def _gain_check(first: Mapping[str, Any], last: Mapping[str, Any]) -> tuple[bool, float, float, str]:
    """Whether the loss falls from the smallest to the largest rank beyond the seed noise."""
    d, h, text = _diff(first, last)
    return d - h > 0, d, h, text


def fig2(root: Path) -> Claim:
    """Claim 6 at a tuned η: does rsLoRA improve with rank while LoRA's curves coincide?"""
    rows = _tuned(root)
    rs, lo = _curve(rows, "adam", "tuned per rank", RS_NAME), _curve(rows, "adam", "tuned per rank", LORA_NAME)
    rs_fixed, lo_fixed = _curve(rows, "adam", "fixed η", RS_NAME), _curve(rows, "adam", "fixed η", LORA_NAME)
    rs_gain, g_rs, _, rs_txt = _gain_check(rs[0], rs[-1])
    lo_gain, g_lo, _, lo_txt = _gain_check(lo[0], lo[-1])
    # LoRA's curves coinciding is refuted when LoRA gains from rank at its tuned η as well
    lora_flat: bool | str = True if not lo_gain else (REFUTES if g_lo >= 0.5 * g_rs else False)
    d, h, top = _diff(lo[-1], rs[-1])
    r0, r1 = rs[0]["rank"], rs[-1]["rank"]
    flat = [r for r in rs + lo if not (r.get("plateau") is not None and r["plateau"] < PLATEAU)]
    return Claim(
        "Fig. 2: rsLoRA's loss improves with rank while LoRA's curves coincide (Adam) — each method at its own "
        "η tuned per rank, on a task that needs rank up to the width",
        "at a fixed η LoRA's Adam update γ·r·η is rank-free and rsLoRA's grows like √r (an effective learning rate); "
        "tuned per rank, both reach what the rank allows",
        f"tuned per rank, r = {r0}…{r1}: rsLoRA {_seq(rs)} (gain {rs_txt}); LoRA {_seq(lo)} (gain {lo_txt}); "
        f"LoRA − rsLoRA at r = {r1}: {top} (paired over seeds). At one η tuned at r = {r0} (the paper's protocol): "
        f"rsLoRA {_seq(rs_fixed)}, LoRA {_seq(lo_fixed)}"
        + ("; LoRA's flat curves are refuted at a tuned η: it gains from rank too" if lora_flat == REFUTES else "")
        + (f"; plateau: every tuned cell's loss fell < {100 * PLATEAU:g}% over the last quarter of training" if not flat
           else f"; NOT plateaued (≥ {100 * PLATEAU:g}% fall over the last quarter): "
           + ", ".join(f"{r['method']} r={r['rank']}" for r in flat)),
        verdict_of([rs_gain, lora_flat]), fig(f"{LT}/tuned_loss_vs_rank.png"), CMD,
        REPRODUCTION, "losses at each method's own tuned η, after the loss plateaus, on a task that needs rank")


def lr_boost(root: Path) -> Claim:
    """Claim 9 at a tuned η: can a learning-rate boost of LoRA match high-rank rsLoRA?"""
    rows = _tuned(root)
    rs, lo = _curve(rows, "adam", "tuned per rank", RS_NAME), _curve(rows, "adam", "tuned per rank", LORA_NAME)
    boost, rs_fixed = _curve(rows, "adam", "fixed η", BOOST), _curve(rows, "adam", "fixed η", RS_NAME)
    r0, r1 = lo[0]["rank"], rs[-1]["rank"]
    d_small, h_small, small = _diff(lo[0], rs[-1])  # rank-r0 LoRA (tuned) − rank-r1 rsLoRA (tuned)
    d_same, h_same, same = _diff(lo[-1], rs[-1])  # same rank, both tuned
    _, _, boosted = _diff(boost[-1], rs_fixed[-1])
    paper_measurement = d_small - h_small > 0
    # "no learning-rate boost matches rsLoRA", at the same rank: refuted when LoRA at its tuned η is not
    # worse; not supported when it recovers ≥ 90% of rsLoRA's rank gain (the deficit is < 10% of it)
    gain = rs[0]["loss_mean"] - rs[-1]["loss_mean"]
    recovered = 1 - d_same / gain if gain > 0 else math.nan
    conclusion: bool | str = (REFUTES if d_same - h_same <= 0 else
                              False if math.isfinite(recovered) and recovered >= 1 - MATCH else True)
    return Claim(
        "No learning-rate boost of LoRA reaches high-rank rsLoRA (paper: rank-4 LoRA at its best lr, 1.863 ppl at "
        "10×, vs 1.836 for rsLoRA r = 2048)",
        "on a task that needs rank, rank-4 LoRA cannot fit it at any η; at the same rank, LoRA at its own tuned η "
        "(η* ∝ r^0 under Adam) has the update of rsLoRA at its tuned η (η* ∝ r^−½)",
        f"rank-{r0} LoRA at its tuned η − rsLoRA r = {r1} at its tuned η: {small}; at r = {r1}, LoRA tuned − rsLoRA "
        f"tuned: {same} ({lo[-1]['loss_mean']:.4g} vs {rs[-1]['loss_mean']:.4g}: tuning LoRA's η recovers "
        f"{100 * recovered:.0f}% of rsLoRA's gain from r = {r0}); at the paper's fixed η, "
        f"LoRA with η×√r − rsLoRA at r = {r1}: {boosted} (losses paired over seeds)",
        verdict_of([paper_measurement, conclusion]), fig(f"{LT}/tuned_loss_vs_rank.png"), CMD,
        REPRODUCTION, "each method at its own tuned η, at the same rank and at rank 4, on a task that needs rank")


def sgd(root: Path) -> Claim:
    """Claim 8 judged by the learned update at a tuned η (SGD)."""
    s = [r for r in read_table(root / LT / "slopes.csv") if r["quantity"] == "learned_update"
         and r["optimizer"] == "sgd"]
    rows = _tuned(root)
    lo = pick(s, schedule=LORA, fit_range="all ranks, fixed η")
    rs = pick(s, schedule=RSLORA, fit_range="all ranks, fixed η")
    lo_t = pick(s, schedule=LORA, fit_range="all ranks, tuned per rank")
    collapse = lo["ci_high"] < -TOL
    flat = agrees(rs, 0.0)
    rs_fixed = _curve(rows, "sgd", "fixed η", RS_NAME)
    lo_fixed = _curve(rows, "sgd", "fixed η", LORA_NAME)
    return Claim(
        "SGD ablation: with SGD instead of AdamW, LoRA still stops learning as r grows, rsLoRA does not",
        "at one η (tuned at the smallest rank), the learned update ∝ η·γ²·r: LoRA's slope −1, rsLoRA's 0",
        f"learned update (RMS of the adapter output) vs r at one η tuned at r = {lo_fixed[0]['rank']}: LoRA "
        f"{slope_text(lo)} (theory {lo['theory']:+g}), rsLoRA {slope_text(rs)} (theory {rs['theory']:+g}); "
        f"held-out loss LoRA {_seq(lo_fixed)}, rsLoRA {_seq(rs_fixed)}. With η tuned per rank LoRA's update is "
        f"{slope_text(lo_t)}: LoRA learns at every rank once η ∝ r",
        verdict_of([collapse, flat]), fig(f"{LT}/tuned_loss_vs_rank.png"), CMD,
        REPRODUCTION, "the learned update at a tuned η, trained until the loss plateaus")


def lr_transfer(root: Path) -> Claim:
    """The learning-rate rule η* ∝ r^p, measured by tuning."""
    s = [r for r in read_table(root / LT / "slopes.csv") if r["quantity"] == "eta_star"]
    checks, parts = [], []
    for opt in ("sgd", "adam"):
        for schedule, name in ((LORA, "α/r"), (RSLORA, "α/√r")):
            recs = [r for r in s if r["optimizer"] == opt and r["schedule"] == schedule]
            every = next(r for r in recs if r["fit_range"] == "all ranks")
            wide = next((r for r in recs if r["fit_range"] != "all ranks"), every)
            checks.append(agrees(wide, wide["theory"]))
            parts.append(f"{opt} {name}: {slope_text(wide)} at r ≥ {wide['rank_min']} (all ranks "
                         f"{slope_text(every)}; theory {wide['theory']:+g})")
    return Claim(
        "Learning-rate transfer across rank: the optimal η scales as r^p with p = −(k·g + m) (SGD k = 2, "
        "Adam k = 1; γ ∝ r^g)",
        "η* exponent: SGD α/r +1, α/√r 0; Adam α/r 0, α/√r −½ (published: a fixed α with α/r keeps η under "
        "Adam, p = 0; μA names a rank-invariant and an inverse-rank regime — α/r under Adam is the first)",
        "; ".join(parts), verdict_of(checks), fig(f"{LT}/eta_star_vs_rank.png"), CMD,
        REPRODUCTION, "η* found by tuning (interior optimum per seed); it could land anywhere")


def _real_model_tables(folder: Path) -> tuple[dict, dict, dict[str, list[tuple[float, float]]]]:
    """Onset gradient fits (LoRA, rsLoRA) and (held-out loss before, after) per rank, seed 0."""
    fits = json.loads((folder / "fits.json").read_text())
    onset = {f["method"]: f for f in fits if f["quantity"] == "grad_norm" and f["measured"].startswith("at onset")}
    rows = [r for r in read_table(folder / "rows.csv") if r["quantity"] == "eval_loss" and r["seed"] == 0]
    first, last = min(r["step"] for r in rows), max(r["step"] for r in rows)
    losses: dict[str, list[tuple[float, float]]] = {}
    for method in ("lora", "rslora"):
        by_rank = {r["rank"]: r for r in rows if r["method"] == method and r["step"] == first}
        end = {r["rank"]: r["value"] for r in rows if r["method"] == method and r["step"] == last}
        losses[method] = [(by_rank[k]["value"], end[k]) for k in sorted(end)]
    return onset["lora"], onset["rslora"], losses


def _ci(f: Mapping[str, Any]) -> str:
    return f"{f['slope']:+.3f} [{f['ci'][0]:+.3f}, {f['ci'][1]:+.3f}]"


def real_model(root: Path) -> Claim:
    folder, cmd = root / "real_model", "python simulations/real_model.py"
    claim = ("Real pretrained model (MiniLM-L6 via PEFT, AdamW): LoRA's gradient collapses with r, rsLoRA's does "
             "not; LoRA's loss curves coincide, rsLoRA's improve with r")
    if not (folder / "fits.json").exists():
        return Claim(claim, "onset gradient slope −½ (LoRA), 0 (rsLoRA)",
                     "not run (needs `pip install rsstab[peft]`)", "not run", "", cmd)
    lo, rs, losses = _real_model_tables(folder)
    config = json.loads((folder / "config.json").read_text())
    ends = {m: [e for _, e in v] for m, v in losses.items()}
    starts = {m: [b for b, _ in v] for m, v in losses.items()}
    ranks = sorted({r["rank"] for r in read_table(folder / "rows.csv")})
    flat = fit_slope(ranks, [[e] for e in ends["lora"]], tolerance=0.05)
    lora_moves = max(b - e for b, e in zip(starts["lora"], ends["lora"]))
    return Claim(
        claim, "onset gradient slope −½ (LoRA), 0 (rsLoRA); Adam at one fixed η: LoRA's update ∝ γ·r·η = α·η is "
        "rank-free, rsLoRA's grows like √r (an effective learning rate)",
        f"onset gradient LoRA {_ci(lo)}, rsLoRA {_ci(rs)} (3 seeds); held-out loss after {config['steps']} steps at "
        f"η = {config['lr']:g}, one fine-tuned seed per rank: LoRA {min(ends['lora']):.4g}–{max(ends['lora']):.4g} "
        f"(slope vs r {flat.slope:+.4f} [{flat.ci[0]:+.4f}, {flat.ci[1]:+.4f}]: a regression interval over the "
        f"{len(ranks)} ranks, not over seeds), rsLoRA " + " → ".join(f"{v:.4g}" for v in ends["rslora"])
        + f"; LoRA's loss falls by at most {lora_moves:.3g} from {starts['lora'][0]:.4g}: the fixed η is too small "
        "for it. Not tuned per rank here (the simulator's tuned re-do is the Fig. 2 row)",
        verdict_of([abs(lo["slope"] + 0.5) <= TOL, abs(rs["slope"]) <= TOL, flat.label == STABLE,
                    all(b < a for a, b in zip(ends["rslora"], ends["rslora"][1:])), False]),
        fig("real_model/onset_grad_norm.png"), cmd,
        REPRODUCTION, "a real model where the losses could differ, but at the paper's one fixed η, not tuned per rank")


def real_model_sgd(root: Path) -> Claim:
    folder = root / "real_model_sgd"
    cmd = "python simulations/real_model.py --optimizer sgd --lr 0.02 --out reports/real_model_sgd"
    claim = "SGD ablation on the real model: LoRA stops learning as r grows, rsLoRA learns the same at every r"
    if not (folder / "fits.json").exists():
        return Claim(claim, "—", "not run (needs `pip install rsstab[peft]`)", "not run", "", cmd)
    lo, rs, losses = _real_model_tables(folder)
    keep = {m: (v[-1][0] - v[-1][1]) / (v[0][0] - v[0][1]) for m, v in losses.items()}
    return Claim(
        claim, "learned update ∝ η·γ²·r at one η: LoRA's loss reduction → 0, rsLoRA's Θ(1)",
        f"loss reduction at the largest vs the smallest rank (one seed): LoRA ×{keep['lora']:.2f}, rsLoRA "
        f"×{keep['rslora']:.2f} (onset gradient slopes, the same for every optimizer: LoRA {_ci(lo)}, "
        f"rsLoRA {_ci(rs)})",
        verdict_of([keep["lora"] < 0.2, keep["rslora"] > 0.5]),
        fig("real_model_sgd/loss_steps.png"), cmd,
        REPRODUCTION, "a real model, at one fixed η (0.02), not tuned per rank")

