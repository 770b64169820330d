"""The claims table of ``reports/REPORT.md``: every claim, its prediction, what was measured, a verdict.

Pure functions over the tables the experiment scripts write (``slopes.csv``, ``final_loss.csv``,
``rows.csv``, ``fits.json``); ``simulations/make_report.py`` runs the experiments and calls
:func:`build`. Predictions come from :func:`rsstab.check` and :mod:`rsstab.theory`, measurements
from the tables; nothing here is a typed-in number except the paper's own reported figures, which
are quoted as such.

>>> verdict_of([True, True]), verdict_of([True, False]), verdict_of([False])
('reproduced', 'partly reproduced', 'not reproduced')
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsstab.experiments.compare import theory_exponent
from rsstab.fit import DEFAULT_TOLERANCE, fit_slope
from rsstab.io import atomic_write
from rsstab.vocab import COLLAPSE, OPTIMIZERS, STABLE

__all__ = ["Claim", "build", "claims", "verdict_of", "read_table", "render"]

LORA, RSLORA = "alpha/r", "alpha/sqrt(r)"
NAMES = {"alpha": "naive γ = α", LORA: "LoRA γ = α/r", RSLORA: "rsLoRA γ = α/√r"}
TOL = DEFAULT_TOLERANCE  # slopes within this of the prediction agree (as in `rsstab simulate`)


@dataclass(frozen=True)
class Claim:
    """One row of the claims table."""

    claim: str
    predicted: str
    measured: str
    verdict: str
    figure: str
    command: str


def verdict_of(checks: Iterable[bool]) -> str:
    """All checks pass → reproduced; some → partly; none → not reproduced."""
    c = list(checks)
    if c and all(c):
        return "reproduced"
    return "partly reproduced" if any(c) else "not reproduced"


def _num(v: str) -> Any:
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def read_table(path: Path) -> list[dict[str, Any]]:
    """A CSV written by :func:`rsstab.sweep.write_csv`, numbers converted back."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def _pick(rows: Sequence[Mapping[str, Any]], **match: Any) -> Mapping[str, Any]:
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise LookupError(f"expected one row matching {match}, found {len(found)}")
    return found[0]


def _slope(rec: Mapping[str, Any]) -> str:
    return f"{rec['slope']:+.3f} [{rec['ci_low']:+.3f}, {rec['ci_high']:+.3f}]"


def _agrees(rec: Mapping[str, Any], expected: float) -> bool:
    """The measured slope agrees when it is within TOL of the prediction (as `rsstab simulate`)."""
    return math.isfinite(rec["slope"]) and abs(rec["slope"] - expected) <= TOL


def _exp(schedule: str, optimizer: str, quantity: str) -> float:
    e = theory_exponent(schedule, optimizer, quantity)
    if e is None:
        raise LookupError(f"no pure power law for {quantity} of {schedule} under {optimizer}")
    return e


def _fig(path: str) -> str:
    return f"[{Path(path).name}]({path})"


# --------------------------------------------------------------------------- claims


def _iff_symbolic(root: Path) -> Claim:
    from rsstab.derive import derivation

    d = derivation("iff")
    bad = d.failures()
    return Claim(
        "Theorem 3.2, symbolic: rank-stabilized ⇔ γ_r ∈ Θ(1/√r) (SGD)",
        "γ = c·r^p·(log r)^k is stable iff p = −½, k = 0",
        f"{len(d.checks) - len(bad)}/{len(d.checks)} identities of the `iff` derivation hold",
        verdict_of([not bad]), _fig("derivations.md"), "rsstab derive iff")


def _iff_measured(root: Path) -> Claim:
    slopes = read_table(root / "ablations" / "slopes.csv")
    recs = [r for r in slopes if r["experiment"] == "pscan" and r["optimizer"] == "sgd"
            and r["quantity"] == "forward"]
    recs.sort(key=lambda r: -r["theory"])
    checks = [_agrees(r, r["theory"]) for r in recs]
    stable = [r["schedule"] for r in recs if r["label"] == STABLE]
    checks.append(stable == ["r**(-1/2)"])
    measured = "; ".join(f"{r['schedule']}: {_slope(r)} (theory {r['theory']:+g})" for r in recs)
    return Claim(
        "Theorem 3.2, measured: only γ ∝ r^(−½) keeps the trained adapter's output flat in r (SGD)",
        "forward slope 1 − 2p for γ = r^(−p)", measured + f"; flat only for {', '.join(stable) or 'none'}",
        verdict_of(checks), _fig("ablations/pscan.png"), "python simulations/ablations.py")


def _seed_rows(root: Path) -> list[Claim]:
    iid = read_table(root / "ablations" / "slopes.csv")
    opt = read_table(root / "optimizer_sweep" / "slopes.csv")
    out = []
    for schedule in ("alpha", LORA, RSLORA):
        v = _pick(iid, experiment="iid", schedule=schedule)
        g = _pick(opt, optimizer="sgd", schedule=schedule, quantity="grad_init")
        pv, pg = _exp(schedule, "sgd", "iid_variance"), _exp(schedule, "sgd", "grad_init")
        out.append(Claim(
            f"Seed's regime table, {NAMES[schedule]}: forward variance ∝ r^{pv:+g}, gradient norm ∝ r^{pg:+g}",
            f"Var(γBAx) slope {pv:+g}; ‖∇_B L‖ at onset slope {pg:+g}",
            f"variance {_slope(v)}; gradient norm {_slope(g)}",
            verdict_of([_agrees(v, pv), _agrees(g, pg)]),
            _fig("optimizer_sweep/grad_init_vs_rank.png"),
            "python simulations/ablations.py; python simulations/optimizer_sweep.py"))
    return out


def _final_by_rank(rows: Sequence[Mapping[str, Any]], schedule: str) -> tuple[list[int], Any]:
    """(ranks, final held-out loss [n_ranks, n_seeds]) from a sweep's tidy rows."""
    import numpy as np

    cells: dict[int, dict[int, tuple[int, float]]] = {}
    for r in rows:
        if r["schedule"] == schedule and r["quantity"] == "test_loss":
            seeds = cells.setdefault(int(r["rank"]), {})
            prev = seeds.get(int(r["seed"]))
            if prev is None or r["step"] > prev[0]:
                seeds[int(r["seed"])] = (int(r["step"]), float(r["value"]))
    ranks = sorted(cells)
    seeds = sorted(cells[ranks[0]]) if ranks else []
    if any(sorted(cells[k]) != seeds for k in ranks):
        raise LookupError(f"the seeds differ between ranks for {schedule}")
    return ranks, np.array([[cells[k][s][1] for s in seeds] for k in ranks])  # columns = seeds


def _fig2(root: Path) -> Claim:
    rows = read_table(root / "rank_sweep" / "rows.csv")
    r1, lora = _final_by_rank(rows, LORA)
    r2, rs = _final_by_rank(rows, RSLORA)
    flat = fit_slope(r1, lora, tolerance=0.05)
    means = rs.mean(axis=1)
    monotone = bool(all(b < a for a, b in zip(means, means[1:])))
    return Claim(
        "Fig. 2: LoRA's loss curves coincide across ranks; rsLoRA's improve monotonically with r (Adam)",
        "LoRA final loss flat in r (Adam update ∝ γ·r = α); rsLoRA final loss decreasing in r",
        f"LoRA final-loss slope {flat.slope:+.3f} [{flat.ci[0]:+.3f}, {flat.ci[1]:+.3f}] "
        f"({lora.mean(axis=1).min():.3g}–{lora.mean(axis=1).max():.3g}); rsLoRA final loss "
        + " → ".join(f"{m:.3g}" for m in means) + f" over r = {r2[0]}…{r2[-1]}",
        verdict_of([flat.label == STABLE, monotone]),
        _fig("rank_sweep/loss_vs_step.png"), "python simulations/rank_sweep.py")


def _fig3(root: Path) -> Claim:
    s = read_table(root / "rank_sweep" / "slopes.csv")
    lo, rs = _pick(s, schedule=LORA, quantity="grad_init"), _pick(s, schedule=RSLORA, quantity="grad_init")
    pl, pr = _exp(LORA, "adam", "grad_init"), _exp(RSLORA, "adam", "grad_init")
    return Claim(
        "Fig. 3: LoRA's gradient norm collapses with r; rsLoRA's coincide at onset",
        f"onset gradient slope {pl:+g} (LoRA), {pr:+g} (rsLoRA)",
        f"LoRA {_slope(lo)}; rsLoRA {_slope(rs)}",
        verdict_of([_agrees(lo, pl), _agrees(rs, pr)]),
        _fig("rank_sweep/grad_norm_vs_step.png"), "python simulations/rank_sweep.py")


def _improvement(finals: Sequence[Mapping[str, Any]], experiment: str, schedule: str) -> tuple[int, int, float]:
    """(smallest rank, largest rank, learned improvement at the largest / at the smallest rank)."""
    recs = sorted((f for f in finals if f["experiment"] == experiment and f["schedule"] == schedule),
                  key=lambda f: f["rank"])
    gain = [f["loss_start"] - f["loss_end"] for f in recs]
    return recs[0]["rank"], recs[-1]["rank"], gain[-1] / gain[0]


def _sgd(root: Path) -> Claim:
    s = read_table(root / "ablations" / "slopes.csv")
    finals = read_table(root / "ablations" / "final_loss.csv")
    lo = _pick(s, experiment="sgd", schedule=LORA, quantity="grad_init")
    rs = _pick(s, experiment="sgd", schedule=RSLORA, quantity="grad_init")
    a, b, keep_lora = _improvement(finals, "sgd", LORA)
    _, _, keep_rs = _improvement(finals, "sgd", RSLORA)
    return Claim(
        "SGD ablation: with SGD instead of AdamW, LoRA still stops learning as r grows, rsLoRA does not",
        "learned update ∝ η·γ²·r: LoRA's loss reduction → 0, rsLoRA's stays Θ(1)",
        f"loss reduction at r={b} vs r={a}: LoRA ×{keep_lora:.2f}, rsLoRA ×{keep_rs:.2f} (onset gradient "
        f"slopes, the same for every optimizer: LoRA {_slope(lo)}, rsLoRA {_slope(rs)})",
        verdict_of([keep_lora < 0.2, keep_rs > 0.5]),
        _fig("ablations/ablation_losses.png"), "python simulations/ablations.py")


def _lr_sweep(root: Path) -> Claim:
    finals = [f for f in read_table(root / "ablations" / "final_loss.csv") if f["experiment"] == "lr_sweep"]
    task_ranks = sorted({f["task_rank"] for f in finals})
    parts, decisive = [], None
    for k in task_ranks:
        lora = sorted((f for f in finals if f["schedule"] == LORA and f["task_rank"] == k), key=lambda f: f["boost"])
        best = min(lora, key=lambda f: f["loss_end"] if math.isfinite(f["loss_end"]) else math.inf)
        rs = _pick(finals, schedule=RSLORA, task_rank=k)
        tuned = best["boost"] != lora[-1]["boost"]  # an interior optimum: the boost really was tuned
        diverged = [f["boost"] for f in lora if f["diverged"]]
        parts.append(f"task of rank {k}: best rank-4 LoRA {best['loss_end']:.3g} at lr ×{best['boost']} "
                     f"({'interior optimum' if tuned else 'edge of the grid'} of ×"
                     + ", ×".join(str(f["boost"]) for f in lora)
                     + (f"; diverged at ×{', ×'.join(map(str, diverged))}" if diverged else "")
                     + f") vs rsLoRA r={rs['rank']} {rs['loss_end']:.3g}")
        # the highest-rank task is the one that needs rank, as real fine-tuning does
        decisive = tuned and rs["loss_end"] < best["loss_end"]
    return Claim(
        "Rank-4 LoRA with a tuned learning rate cannot match high-rank rsLoRA "
        "(paper: best 1.863 ppl at 10× lr vs 1.836 for rsLoRA r = 2048)",
        "when the task needs more than rank 4, no learning-rate boost of rank-4 LoRA reaches rsLoRA at "
        "high rank (a rank-4 task is the control: there a boost may suffice)",
        "; ".join(parts), verdict_of([bool(decisive)]),
        _fig("ablations/lr_sweep.png"), "python simulations/ablations.py")


def _subset(root: Path) -> Claim:
    s = read_table(root / "ablations" / "slopes.csv")
    finals = read_table(root / "ablations" / "final_loss.csv")
    lo = _pick(s, experiment="subset", schedule=LORA, quantity="grad_init")
    rs = _pick(s, experiment="subset", schedule=RSLORA, quantity="grad_init")
    rs_f = sorted((f for f in finals if f["experiment"] == "subset" and f["schedule"] == RSLORA),
                  key=lambda f: f["rank"])
    monotone = all(b["loss_end"] < a["loss_end"] for a, b in zip(rs_f, rs_f[1:]))
    return Claim(
        "Adapters on a subset of modules (paper: attention only; here: layers 1 and 3 of 4) behave the same",
        f"onset gradient slopes {_exp(LORA, 'adam', 'grad_init'):+g} / {_exp(RSLORA, 'adam', 'grad_init'):+g}; "
        "rsLoRA loss decreasing in r",
        f"LoRA {_slope(lo)}, rsLoRA {_slope(rs)}; rsLoRA final loss "
        + " → ".join(f"{f['loss_end']:.3g}" for f in rs_f),
        verdict_of([_agrees(lo, -0.5), _agrees(rs, 0.0), monotone]),
        _fig("ablations/ablation_losses.png"), "python simulations/ablations.py")


def _init_only(root: Path) -> Claim:
    from rsstab import theory

    s = read_table(root / "ablations" / "slopes.csv")
    checks, parts = [], []
    for opt in OPTIMIZERS:
        rec = _pick(s, experiment="init_only", schedule=LORA, optimizer=opt, quantity="forward")
        pred = theory.law("forward", opt).exponent(-1.0, sigma_a_exponent=-0.5)
        checks += [_agrees(rec, pred), rec["label"] != STABLE]
        parts.append(f"{opt}: forward {_slope(rec)} (theory {pred:+g}, {rec['label']})")
    return Claim(
        "Fixing only the initialisation (A scaled by 1/√r, γ = α/r) is not rank-stabilized "
        "(paper: unstable at r = 2048)",
        "forward ∝ γ^k·r·σ_A^k with σ_A ∝ r^(−½): SGD r^−2, Adam r^−½ — not Θ(1)",
        "; ".join(parts), verdict_of(checks), _fig("ablations/ablation_losses.png"),
        "python simulations/ablations.py")


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


def _real_model(root: Path) -> Claim:
    folder, cmd = root / "real_model", "python simulations/real_model.py"
    claim = ("Real pretrained model (MiniLM-L6 via PEFT, AdamW): LoRA's gradient collapses with r, rsLoRA's does "
             "not; LoRA's loss curves coincide, rsLoRA's improve with r")
    if not (folder / "fits.json").exists():
        return Claim(claim, "onset gradient slope −½ (LoRA), 0 (rsLoRA)",
                     "not run (needs `pip install rsstab[peft]`)", "not run", "", cmd)
    lo, rs, losses = _real_model_tables(folder)
    ends = {m: [e for _, e in v] for m, v in losses.items()}
    ranks = sorted({r["rank"] for r in read_table(folder / "rows.csv")})
    flat = fit_slope(ranks, [[e] for e in ends["lora"]], tolerance=0.05)
    return Claim(
        claim, "onset gradient slope −½ (LoRA), 0 (rsLoRA); Adam: LoRA's update ∝ γ·r = α is rank-free",
        f"LoRA {_ci(lo)}, rsLoRA {_ci(rs)}; held-out loss after fine-tuning: LoRA "
        f"{min(ends['lora']):.4g}–{max(ends['lora']):.4g} (slope vs r {flat.slope:+.4f} "
        f"[{flat.ci[0]:+.4f}, {flat.ci[1]:+.4f}]), rsLoRA " + " → ".join(f"{v:.4g}" for v in ends["rslora"]),
        verdict_of([abs(lo["slope"] + 0.5) <= TOL, abs(rs["slope"]) <= TOL, flat.label == STABLE,
                    all(b < a for a, b in zip(ends["rslora"], ends["rslora"][1:]))]),
        _fig("real_model/onset_grad_norm.png"), cmd)


def _real_model_sgd(root: Path) -> Claim:
    folder = root / "real_model_sgd"
    cmd = "python simulations/real_model.py --optimizer sgd --lr 0.02 --out reports/real_model_sgd"
    claim = "SGD ablation on the real model: LoRA stops learning as r grows, rsLoRA learns the same at every r"
    if not (folder / "fits.json").exists():
        return Claim(claim, "—", "not run (needs `pip install rsstab[peft]`)", "not run", "", cmd)
    lo, rs, losses = _real_model_tables(folder)
    keep = {m: (v[-1][0] - v[-1][1]) / (v[0][0] - v[0][1]) for m, v in losses.items()}
    return Claim(
        claim, "learned update ∝ η·γ²·r: LoRA's loss reduction → 0, rsLoRA's Θ(1)",
        f"loss reduction at the largest vs the smallest rank: LoRA ×{keep['lora']:.2f}, rsLoRA "
        f"×{keep['rslora']:.2f} (onset gradient slopes, the same for every optimizer: LoRA {_ci(lo)}, "
        f"rsLoRA {_ci(rs)})",
        verdict_of([keep["lora"] < 0.2, keep["rslora"] > 0.5]),
        _fig("real_model_sgd/loss_steps.png"), cmd)


def _adam(root: Path) -> Claim:
    s = read_table(root / "optimizer_sweep" / "slopes.csv")
    checks, parts = [], []
    for schedule in (LORA, RSLORA, "alpha"):
        rec = _pick(s, optimizer="adam", schedule=schedule, quantity="forward")
        pred = _exp(schedule, "adam", "forward")
        checks.append(_agrees(rec, pred))
        parts.append(f"{NAMES[schedule]}: {_slope(rec)} (theory {pred:+g})")
    return Claim(
        "Optimizer caveat (beyond the theorem): under Adam the trained adapter is Θ(η·γ·r), so α/r is the "
        "stable scaling",
        "Adam forward slopes 0 (α/r), +½ (α/√r), +1 (α)", "; ".join(parts), verdict_of(checks),
        _fig("optimizer_sweep/forward_vs_rank.png"), "python simulations/optimizer_sweep.py")


def _depth(root: Path) -> Claim:
    s = read_table(root / "depth_sweep" / "slopes.csv")
    fwd = [r for r in s if r["quantity"] == "forward"]
    depths = sorted({r["depth"] for r in fwd})
    rs_ok = all(_pick(fwd, schedule=RSLORA, depth=d)["label"] == STABLE for d in depths)
    lo_ok = all(_pick(fwd, schedule=LORA, depth=d)["label"] == COLLAPSE for d in depths)
    first_div = []
    for d in depths:
        ranks = str(_pick(fwd, schedule="alpha", depth=d).get("diverged_ranks") or "").split()
        first_div.append(min(map(int, ranks)) if ranks else None)
    known = [x for x in first_div if x is not None]
    # the first diverging rank never rises with depth, and the deepest stack diverges earliest
    compounding = (len(known) >= 2 and first_div[-1] is not None
                   and all(b <= a for a, b in zip(known, known[1:])) and known[-1] < known[0])
    div = ", ".join(f"L={d}: {'none' if x is None else f'r≥{x}'}" for d, x in zip(depths, first_div))

    def span(schedule: str) -> str:
        v = [_pick(fwd, schedule=schedule, depth=d)["slope"] for d in depths]
        return f"{min(v):+.3f}…{max(v):+.3f}"

    return Claim(
        "Depth: stability and instability propagate through a stack of adapted layers",
        "α/√r flat at every depth; α/r collapses at every depth; α (blow-up) diverges at lower ranks as depth grows",
        f"forward slopes over L = {', '.join(map(str, depths))}: α/√r {span(RSLORA)} "
        f"(rank-stabilized at every depth: {'yes' if rs_ok else 'no'}), α/r {span(LORA)} "
        f"(collapse at every depth: {'yes' if lo_ok else 'no'}); first diverging rank for α: {div}",
        verdict_of([rs_ok, lo_ok, compounding]), _fig("depth_sweep/forward_vs_rank.png"),
        "python simulations/depth_sweep.py")


BUILDERS: tuple[Callable[[Path], Claim | list[Claim]], ...] = (
    _iff_symbolic, _iff_measured, _seed_rows, _fig2, _fig3, _sgd, _lr_sweep, _subset, _init_only,
    _real_model, _real_model_sgd, _adam, _depth,
)


def _width_builders() -> tuple[Callable[[Path], Claim | list[Claim]], ...]:
    from rsstab.experiments.claims_width import BUILDERS as WIDTH  # issue 11: the width sweep's claims

    return WIDTH


def claims(root: str | Path) -> list[Claim]:
    """Evaluate every claim from the tables under ``root``; a missing table makes that claim
    'not run' instead of failing the report."""
    root = Path(root)
    out: list[Claim] = []
    for build_claim in (*BUILDERS, *_width_builders()):
        try:
            got = build_claim(root)
        except (FileNotFoundError, LookupError, TypeError, ValueError) as exc:  # missing or empty cells
            name = build_claim.__name__.strip("_").replace("_", " ")
            out.append(Claim(name, "—", f"not measured: {exc}", "not run", "", ""))
            continue
        out.extend(got if isinstance(got, list) else [got])
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(cs: Sequence[Claim], *, header: str = "", appendix: Sequence[tuple[str, str]] = ()) -> str:
    """REPORT.md: the claims table, then the linked summaries."""
    counts = {v: sum(c.verdict == v for c in cs) for v in
              ("reproduced", "partly reproduced", "not reproduced", "not run")}
    lines = [
        "# rsstab reproduction report",
        "",
        "Generated by `python simulations/make_report.py` (`make report`); do not edit by hand.",
        "",
        header,
        "",
        "**Verdicts:** " + ", ".join(f"{n} {v}" for v, n in counts.items() if n),
        "",
        "| # | claim | predicted | measured (95% interval over seeds) | verdict | figure | regenerate |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(cs, 1):
        cmd = f"`{c.command}`" if c.command else ""
        lines.append(f"| {i} | {_md(c.claim)} | {_md(c.predicted)} | {_md(c.measured)} | **{c.verdict}** | "
                     f"{c.figure} | {cmd} |")
    lines.append("")
    for title, link in appendix:
        lines.append(f"- {title}: {link}")
    lines.append("")
    return "\n".join(lines)


def build(root: str | Path, header: str = "", appendix: Sequence[tuple[str, str]] = ()) -> Path:
    """Write ``<root>/REPORT.md`` from the tables under ``root``."""
    root = Path(root)
    return atomic_write(root / "REPORT.md", render(claims(root), header=header, appendix=appendix))
