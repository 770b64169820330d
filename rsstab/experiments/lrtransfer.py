"""Learning-rate transfer across rank, measured: the optimal η per rank and its exponent.

For LoRA (γ = α/r) and rsLoRA (γ = α/√r), α = 1, under SGD and Adam, :func:`measure` tunes η at
every rank with :func:`rsstab.experiments.tuning.search_ranks` on a task that needs the rank, then
runs two fixed-η protocols:

* **fixed η** — the paper's protocol: each method at the η tuned at the smallest rank, kept at
  every rank;
* **LoRA, η×√r** (Adam) — LoRA at rsLoRA's fixed η times √r: under Adam's sign-like updates its
  learned update η·γ·r equals rsLoRA's, so it isolates what rsLoRA changes (an effective learning
  rate) from what the rank changes.

The task: a depth-2 ReLU stack of width d whose teacher changes **both** layers by a full-rank
(rank-d) perturbation, with an adapter on the top layer only. The top layer's change needs rank d;
the bottom layer's change cannot be learned, so the held-out loss keeps an irreducible floor and
the training gradients stay noisy — the optimal η is then a real optimum (too small: not yet
converged; too large: noise and oscillation), as in fine-tuning, and never the float precision of a
perfectly realisable task.

:mod:`rsstab.sim` measures; :mod:`rsstab.theory` gives the predicted exponents (``lr_exponent``);
the tables here put them side by side (:func:`slope_table`, :func:`tuned_table`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsstab.experiments.tuning import (BESIDE_DIVERGENCE, EDGES, INTERPOLATED, Optimum, Search, as_dict,
                                       eta_slope, geometric_mean_eta, lattice_eta, lattice_index, search_ranks)

__all__ = ["SCHEDULES", "TASK", "FULL", "QUICK", "START", "Measurement", "measure", "predicted_exponent",
           "slope_table", "optima_table", "landscape_table", "tuned_table", "plateau"]

LORA, RSLORA = "alpha/r", "alpha/sqrt(r)"
SCHEDULES = (LORA, RSLORA)
NAMES = {LORA: "LoRA α/r", RSLORA: "rsLoRA α/√r"}
OPTIMIZERS = ("sgd", "adam")
#: The task (SimConfig fields): adapter on the top layer of a depth-2 ReLU stack, teacher of full rank.
TASK: dict[str, Any] = dict(depth=2, width=32, adapted_layers=(1,), teacher_rank=32, batch=64, probe_batch=256)
FULL = dict(ranks=(4, 8, 32, 128, 512, 2048), steps=200, seeds=4)
QUICK = dict(ranks=(4, 32, 128, 512), steps=60, seeds=2)
#: Where the search starts at the smallest rank, per optimizer (the lattice is η = √2^k).
START = {"sgd": 0.1, "adam": 1e-2}
REF = 1.0  # lattice reference: η_k = √2^k
BOOST = "LoRA, η×√r"
#: A loss has plateaued when it fell by less than this fraction over the last quarter of training.
PLATEAU = 0.05

Cell = tuple[str, str, str, int, float]  # (role, optimizer, schedule, rank, lr)


@dataclass
class Measurement:
    """Everything :func:`measure` ran: the searches, the per-cell probes and the fixed-η cells."""

    grid: Mapping[str, Any]
    searches: dict[tuple[tuple[str, str], int], Search]
    cells: dict[Cell, dict[str, Any]]  # per-seed probes of every cell
    fixed_eta: dict[tuple[str, str], float]  # (optimizer, schedule) → η of the fixed-η protocol
    rows: list[dict[str, Any]]
    failed: int = 0  # cells whose task raised (their losses count as diverged)


def predicted_exponent(schedule: str, optimizer: str) -> float:
    """The theory's learning-rate exponent p (η* ∝ r^p) for a schedule under an optimizer
    (:func:`rsstab.theory.lr_exponent` of the schedule's γ exponent).

    >>> predicted_exponent("alpha/sqrt(r)", "adam"), predicted_exponent("alpha/r", "sgd")
    (-0.5, 1.0)
    """
    import rsstab
    from rsstab.theory import lr_exponent

    gamma_exponent = rsstab.check(schedule, optimizer=optimizer).gamma_exponent
    return float(lr_exponent(gamma_exponent, optimizer)) + 0.0  # type: ignore[arg-type]  # a power of r: not None


def _configs(cells: Sequence[Cell], grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    from rsstab.sim import make_configs

    out = []
    for role, opt, schedule, rank, lr in cells:
        out.extend(make_configs(schedule, [rank], optimizer=opt, lr=lr, steps=grid["steps"], seeds=grid["seeds"],
                                probe_every=max(1, grid["steps"] // 4),
                                tags={"experiment": "lr_transfer", "role": role, "lr": lr,
                                      "width": TASK["width"], "steps": grid["steps"]}, **TASK))
    return out


def _collect(rows: Sequence[Mapping[str, Any]], steps: int) -> dict[Cell, dict[str, Any]]:
    """Per cell: final held-out loss per seed, the held-out curve, the learned update (RMS of the
    adapter output after the last step)."""
    raw: dict[Cell, dict[str, dict]] = {}
    for r in rows:
        key = (r["role"], r["optimizer"], r["schedule"], int(r["rank"]), float(r["lr"]))
        c = raw.setdefault(key, {"test_loss": {}, "forward": {}})
        if r["quantity"] == "test_loss":
            c["test_loss"].setdefault(int(r["step"]), {})[int(r["seed"])] = float(r["value"])
        elif r["quantity"] == "forward" and int(r["step"]) == steps:
            c["forward"][int(r["seed"])] = float(r["value"])
    out = {}
    for key, c in raw.items():
        curve = {step: np.array([v[s] for s in sorted(v)]) for step, v in sorted(c["test_loss"].items())}
        final = curve.get(steps)
        seeds = len(next(iter(curve.values()))) if curve else 0
        out[key] = {
            "loss": final if final is not None else np.full(seeds, np.nan),
            "curve": curve,
            "forward": np.array([c["forward"].get(s, np.nan) for s in range(seeds)]),
        }
    return out


def measure(grid: Mapping[str, Any], sweep: Mapping[str, Any]) -> Measurement:
    """Tune η per (optimizer, schedule, rank), then run the fixed-η protocols. ``sweep`` holds the
    keyword arguments of :func:`rsstab.sweep.run_sweep` (``out``, ``scheduler``, ``workers``,
    ``progress``); every round is one sweep over the same store, so a re-run replays from it."""
    from rsstab.sim import run_cell
    from rsstab.sweep import run_sweep

    rows: list[dict[str, Any]] = []
    cells: dict[Cell, dict[str, Any]] = {}
    seen: set[Cell] = set()
    failed: list[str] = []

    def run(batch: Sequence[Cell]) -> None:
        todo = [c for c in dict.fromkeys(batch) if c not in seen]
        if not todo:
            return
        result = run_sweep(run_cell, _configs(todo, grid), **sweep)
        for config, error in result.failed:
            failed.append(error)
            print(f"failed cell rank={config.get('rank')} {config.get('tags')}: {error}", file=sys.stderr)
        rows.extend(result.rows)
        cells.update(_collect(result.rows, grid["steps"]))
        seen.update(todo)

    def evaluate(batch: list[tuple[tuple[str, str], int, int]]) -> dict:
        wanted = {(key, r, k): ("search", key[0], key[1], r, lattice_eta(k, REF)) for key, r, k in batch}
        run(list(wanted.values()))
        nan = np.full(grid["seeds"], np.nan)
        return {b: cells.get(c, {"loss": nan})["loss"] for b, c in wanted.items()}

    keys = [(opt, s) for opt in OPTIMIZERS for s in SCHEDULES]
    start = {key: lattice_index(START[key[0]], REF) for key in keys}
    searches = search_ranks(keys, grid["ranks"], evaluate, ref=REF, start=start)

    r0 = min(grid["ranks"])
    fixed = {}
    for key in keys:
        best = searches[(key, r0)].best_index()
        fixed[key] = lattice_eta(best if best is not None else start[key], REF)
    extra: list[Cell] = []
    for opt, s in keys:
        extra += [("fixed", opt, s, r, fixed[(opt, s)]) for r in grid["ranks"]]
    extra += [("boost", "adam", LORA, r, fixed[("adam", RSLORA)] * math.sqrt(r)) for r in grid["ranks"]]
    run(extra)
    return Measurement(grid, searches, cells, fixed, rows, len(failed))


# --------------------------------------------------------------------------- tables


def _search_cell(m: Measurement, opt: str, schedule: str, rank: int, k: int) -> dict[str, Any]:
    return m.cells[("search", opt, schedule, rank, lattice_eta(k, REF))]


def plateau(curve: Mapping[int, np.ndarray]) -> float:
    """Relative fall of the held-out loss (geometric mean over seeds) over the last quarter of
    training: (L(¾T) − L(T)) / L(T); small means the loss has plateaued.

    >>> round(plateau({0: np.array([4.0]), 150: np.array([1.02]), 200: np.array([1.0])}), 3)
    0.02
    """
    steps = sorted(curve)
    if len(steps) < 2:
        return math.nan
    with np.errstate(all="ignore"):
        a, b = (float(np.exp(np.mean(np.log(curve[s])))) for s in steps[-2:])
    return (a - b) / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.nan


def optima_table(m: Measurement) -> list[dict[str, Any]]:
    """Per (optimizer, schedule, rank, seed): η*, its status, the best grid point and the grid."""
    out = []
    for (key, rank), s in sorted(m.searches.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        etas = s.etas()
        for seed, o in enumerate(s.optima()):
            out.append({"optimizer": key[0], "schedule": key[1], "rank": rank, "seed": seed, **as_dict(o),
                        "grid_points": len(etas), "grid_low": etas[0], "grid_high": etas[-1]})
    return out


def landscape_table(m: Measurement) -> list[dict[str, Any]]:
    """Per searched (optimizer, schedule, rank, η): the final held-out loss over seeds."""
    out = []
    for (key, rank), s in sorted(m.searches.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        for k in sorted(s.losses):
            v = s.losses[k]
            finite = v[np.isfinite(v)]
            out.append({"optimizer": key[0], "schedule": key[1], "rank": rank, "lr": lattice_eta(k, REF),
                        "loss_geomean": float(np.exp(np.mean(np.log(finite)))) if finite.size == v.size else math.nan,
                        "loss_min": float(finite.min()) if finite.size else math.nan,
                        "loss_max": float(finite.max()) if finite.size else math.nan,
                        "diverged_seeds": int(v.size - finite.size)})
    return out


#: The asymptotic fit range starts at this multiple of the width (the laws are the r ≫ d limit).
WIDE = 4


def _learned_update_slopes(m: Measurement, tol: float) -> list[dict[str, Any]]:
    """Slopes of the learned update (RMS of the adapter output after training) against r, per seed,
    at one fixed η (predicted: the forward law at a fixed η) and at the η tuned per rank
    (predicted: 0, the update the learning-rate rule keeps Θ(1))."""
    import rsstab
    from rsstab.measure.fit import fit_slope, interval_agrees
    from rsstab.theory import law

    out = []
    for opt in OPTIMIZERS:
        for schedule in SCHEDULES:
            g = float(rsstab.check(schedule, optimizer=opt).gamma_exponent)  # type: ignore[arg-type]  # powers of r
            ranks = sorted(r for (key, r) in m.searches if key == (opt, schedule))
            per_protocol = {
                "fixed η": (law("forward", opt).exponent(g) + 0.0,
                            [m.cells.get(("fixed", opt, schedule, r, m.fixed_eta[(opt, schedule)])) for r in ranks]),
                "tuned per rank": (0.0, [_best_cell(m, opt, schedule, r) for r in ranks]),
            }
            for protocol, (pred, cells) in per_protocol.items():
                if any(c is None for c in cells) or len(ranks) < 2:
                    continue
                values = [c["forward"] for c in cells]  # type: ignore[index]  # no None (skipped above)
                fit = fit_slope(ranks, values, tolerance=tol)
                out.append({
                    "experiment": "lr_transfer", "optimizer": opt, "schedule": schedule,
                    "quantity": "learned_update", "fit_range": f"all ranks, {protocol}", "slope": fit.slope,
                    "ci_low": fit.ci[0], "ci_high": fit.ci[1], "theory": pred,
                    "agrees": math.isfinite(fit.slope) and interval_agrees(fit.ci, pred, tol), "label": fit.label,
                    "local_slopes": " ".join(f"{x:+.2f}" for x in fit.local_slopes), "excluded_ranks": "",
                    "resolution": 0.0, "interval": fit.evidence.split(" [")[0], "width": TASK["width"],
                    "steps": m.grid["steps"],
                    "lr": m.fixed_eta[(opt, schedule)] if protocol == "fixed η" else "tuned",
                    "rank_min": min(ranks), "rank_max": max(ranks),
                })
    return out


def _best_cell(m: Measurement, opt: str, schedule: str, rank: int) -> dict[str, Any] | None:
    k = m.searches[((opt, schedule), rank)].best_index()
    return None if k is None else _search_cell(m, opt, schedule, rank, k)


def slope_table(m: Measurement, tolerance: float | None = None) -> list[dict[str, Any]]:
    """The fitted exponent of η* ∝ r^p beside the prediction, over all ranks and over r ≥ 4·width
    (the r ≫ d limit the laws describe); then the learned update's slopes (see
    :func:`_learned_update_slopes`)."""
    from rsstab.measure.fit import interval_agrees
    from rsstab.vocab import FLAT_BAND

    tol = FLAT_BAND if tolerance is None else tolerance
    out = []
    width = TASK["width"]
    for opt in OPTIMIZERS:
        for schedule in SCHEDULES:
            ranks, optima = eta_star_by_rank(m, opt, schedule)
            pred = predicted_exponent(schedule, opt)
            wide = [r for r in ranks if r >= WIDE * width]
            for fit_range, sel in (("all ranks", ranks), (f"r ≥ {WIDE}·width ({WIDE * width})", wide)):
                if len(sel) < 2:
                    continue
                fit = eta_slope(sel, [optima[ranks.index(r)] for r in sel])
                out.append({
                    "experiment": "lr_transfer", "optimizer": opt, "schedule": schedule, "quantity": "eta_star",
                    "fit_range": fit_range, "slope": fit.slope, "ci_low": fit.ci[0], "ci_high": fit.ci[1],
                    "theory": pred, "agrees": interval_agrees(fit.ci, pred, tol) if math.isfinite(fit.slope) else False,
                    "label": fit.label, "local_slopes": " ".join(f"{x:+.2f}" for x in fit.local_slopes),
                    "excluded_ranks": " ".join(map(str, fit.excluded)), "resolution": fit.resolution,
                    "interval": fit.how, "width": width, "steps": m.grid["steps"], "lr": "tuned",
                    "rank_min": min(sel), "rank_max": max(sel),
                })
    return out + _learned_update_slopes(m, tol)


def tuned_table(m: Measurement) -> list[dict[str, Any]]:
    """Per (optimizer, protocol, method, rank): the η used, the final held-out loss (mean and sd over
    seeds), the learned update (RMS of the adapter output), the plateau check and diverged seeds.
    Protocols: ``tuned per rank`` (the best grid point of the search), ``fixed η`` (tuned at the
    smallest rank) and, under Adam, ``LoRA, η×√r``."""
    out = []

    def row(opt: str, protocol: str, method: str, rank: int, lr: float, cell: Mapping[str, Any] | None) -> None:
        if cell is None:
            return
        loss = cell["loss"]
        finite = loss[np.isfinite(loss)]
        fwd = cell["forward"][np.isfinite(cell["forward"])]
        out.append({"optimizer": opt, "protocol": protocol, "method": method, "rank": rank, "lr": lr,
                    "loss_mean": float(finite.mean()) if finite.size == loss.size else math.nan,
                    "loss_sd": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
                    "learned_update": float(np.exp(np.mean(np.log(fwd)))) if fwd.size and np.all(fwd > 0) else math.nan,
                    "plateau": plateau(cell["curve"]), "diverged_seeds": int(loss.size - finite.size),
                    "seeds": int(loss.size), "loss_seeds": " ".join(repr(float(v)) for v in loss)})

    for opt in OPTIMIZERS:
        for schedule in SCHEDULES:
            for (key, rank), s in sorted(m.searches.items(), key=lambda kv: kv[0][1]):
                if key != (opt, schedule):
                    continue
                k = s.best_index()
                if k is not None:
                    row(opt, "tuned per rank", NAMES[schedule], rank, lattice_eta(k, REF), _best_cell(m, opt, schedule, rank))
        for schedule in SCHEDULES:
            lr = m.fixed_eta[(opt, schedule)]
            for rank in m.grid["ranks"]:
                row(opt, "fixed η", NAMES[schedule], rank, lr, m.cells.get(("fixed", opt, schedule, rank, lr)))
    lr_rs = m.fixed_eta[("adam", RSLORA)]
    for rank in m.grid["ranks"]:
        lr = lr_rs * math.sqrt(rank)
        row("adam", "fixed η", BOOST, rank, lr, m.cells.get(("boost", "adam", LORA, rank, lr)))
    return out


def status_counts(m: Measurement) -> dict[str, int]:
    """How many per-seed optima have each status."""
    counts = {s: 0 for s in (INTERPOLATED, BESIDE_DIVERGENCE, *EDGES)}
    for s in m.searches.values():
        for o in s.optima():
            counts[o.status] += 1
    return counts


def eta_star_by_rank(m: Measurement, opt: str, schedule: str) -> tuple[list[int], list[list[Optimum]]]:
    """(ranks, per-rank per-seed optima) of one (optimizer, schedule)."""
    ranks = sorted(r for (key, r) in m.searches if key == (opt, schedule))
    return ranks, [m.searches[((opt, schedule), r)].optima() for r in ranks]


__all__ += ["PLATEAU", "WIDE", "status_counts", "eta_star_by_rank", "geometric_mean_eta", "NAMES", "BOOST", "LORA", "RSLORA"]
