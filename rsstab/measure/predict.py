"""Exact finite-(r, d) predictions of a simulation's measurements, from its data statistics.

:mod:`rsstab.sim` records, beside its measurements, the A-independent statistics of the data
(``data_grad_fro2``, ``data_grad_probe2``, ``probe_input2``, ``data_grad_u2``, ``sign_probe2``,
``sign_u2``, ``sign_uq`` and, for Adam with fresh batches, the reference-column moments
``adam_*``; see :mod:`rsstab.sim.finite`). They do not depend on the adapter's draw
of A nor on anything the adapter learned, so a prediction made from them, with the known σ_A =
a_init_scale/√d, η, γ_r, r, d and the number of steps n, is independent of the measured
A-dependent quantities. The law itself comes from :func:`rsstab.theory.width_coefficients` (the
single home of the laws): the mean square over A of a quantity Q is

    E‖Q‖²/entries = scale · (c_coh(d_eff)·r² + c_inc(d_eff)·r)

with, per adapted layer (``P`` = data_grad_probe2, ``F`` = data_grad_fro2, ``X`` = probe_input2,
``W`` = data_grad_u2, ``Sp`` = sign_probe2, ``Su`` = sign_u2, ``Q`` = sign_uq, c = 2/π):

===========  =========  ===============================  ================
quantity     optimizer  scale (per entry)                d_eff
===========  =========  ===============================  ================
forward      sgd        η²γ⁴σ_A⁴·P/d                     F·X/P
backward     sgd        η²γ⁴σ_A⁴·W/d                     d
forward      adam       η²n²γ²σ_A²·Sp                    X/Sp
backward     adam       η²n²γ²σ_A²·Su/d                  d·Q/Su
forward      adam,      η²γ²σ_A²·Cp/c                    c·Mp/Cp
             fresh
backward     adam,      η²γ²σ_A²·Cu/(c·d)                c·Mu/Cu
             fresh
===========  =========  ===============================  ================

(``Cp``, ``Mp``, ``Cu``, ``Mu`` = ``adam_probe_coh2``, ``adam_probe_m2``, ``adam_u_coh2``,
``adam_u_m2``.) SGD is exact to first order in η for any number of steps (G = Σ_t G_t, fresh
batches or not). Adam (ε → 0, first order in η) with a fixed batch (``fixed_batch``) is n sign
steps of G₀, a closed form. With fresh batches each step's signs differ and Adam's moments mix the
steps' gradients: the same law ``r²·‖E[y]‖² + r·(E‖y‖² − ‖E[y]‖²)`` holds with the per-column
moments of bias-corrected Adam run on the recorded data gradients, which are Gaussian integrals
over one column evaluated on the simulator's reference columns (the only numerical step: their
sampling error is about 1/√M of the moments, M ≥ 512). Written in
:func:`rsstab.theory.width_coefficients`' form (coherent ``c·r²``, incoherent ``(d_eff − c)·r``)
it is the sign law's with the table's scale and d_eff. ``forward`` is the RMS over layers of
the adapter output's RMS on the held-out probes, ``backward`` that of the fixed-gradient probe
``backward_fixed`` (Definition 3.1), as :func:`rsstab.measure.empirical.empirical_verdict` measures them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rsstab.errors import RsstabError
from rsstab.finite_eta import FiniteEta, sgd_finite_eta
from rsstab.theory import (ADAM_SIGN_RATIO, EXPANSION_LIMIT, Expansion, adam_expansion, sgd_expansion,
                           width_coefficients)

__all__ = ["LayerPrediction", "predict_layer", "predict_rows", "predict_expansion", "finite_eta_factors",
           "PREDICTED_SOURCES", "ADAM_FRESH_NOTE", "FINITE_ETA_NOTE", "RANGE_NOTE"]

#: The measured per-layer quantity each predicted summary quantity is compared with.
PREDICTED_SOURCES = {"forward": "forward", "backward": "backward_fixed"}
#: What the Adam prediction is with fresh batches.
ADAM_FRESH_NOTE = ("Adam with fresh batches: first order in η, ε → 0, exact in r and d; its rank-free "
                   "one-column Gaussian integrals evaluated on the simulator's reference columns")
_C = 2 / math.pi
#: What the prediction is where the finite-η solution applies (SGD, depth 1, no weight decay).
FINITE_ETA_NOTE = ("SGD at depth 1: the exact finite-(r, d) law made from the recorded data statistics, carried to "
                   "finite η by the population's closed recursion (result 14; its expectation over A on reference draws)")
#: What ``predicted_expansion`` is (result 13, :func:`rsstab.theory.sgd_expansion` / ``adam_expansion``).
RANGE_NOTE = (f"predicted_expansion: the next term in η relative to the first (B's saturation plus A's own "
              f"learning, result 13); a prediction is in range while it is ≤ {EXPANSION_LIMIT:g}")


@dataclass(frozen=True)
class LayerPrediction:
    """The predicted per-entry mean squares of one layer: coherent (r² term) and incoherent (r term)."""

    coherent2: float
    incoherent2: float
    d_eff: float

    @property
    def mean_square(self) -> float:
        return self.coherent2 + self.incoherent2


def _scale(quantity: str, optimizer: str, stats: Mapping[str, float], *, d: float, gamma: float, lr: float,
           steps: int, s2: float) -> tuple[float, float]:
    """The rank-free factor of the mean square and d_eff (see :func:`predict_layer`)."""
    if optimizer == "sgd":
        base = lr**2 * gamma**4 * s2**2
        if quantity == "forward":
            P, F, X = stats["data_grad_probe2"], stats["data_grad_fro2"], stats["probe_input2"]
            scale, d_eff = base * P / d, (F * X / P if P > 0 else math.inf)
        else:
            scale, d_eff = base * stats["data_grad_u2"] / d, d
    elif optimizer == "adam" and "adam_probe_coh2" in stats:  # fresh batches: reference columns
        base = lr**2 * gamma**2 * s2
        if quantity == "forward":
            C, M2 = stats["adam_probe_coh2"], stats["adam_probe_m2"]
            scale = base * C / _C
        else:
            C, M2 = stats["adam_u_coh2"], stats["adam_u_m2"]
            scale = base * C / (_C * d)
        d_eff = _C * M2 / C if C > 0 else math.inf
    elif optimizer == "adam":
        base = lr**2 * steps**2 * gamma**2 * s2
        if quantity == "forward":
            Sp, X = stats["sign_probe2"], stats["probe_input2"]
            scale, d_eff = base * Sp, (X / Sp if Sp > 0 else math.inf)
        else:
            Su, Q = stats["sign_u2"], stats["sign_uq"]
            scale, d_eff = base * Su / d, (d * Q / Su if Su > 0 else math.inf)
    else:
        raise RsstabError(f"unknown optimizer {optimizer!r}")
    return scale, d_eff


def predict_layer(
    quantity: str, optimizer: str, stats: Mapping[str, float], *, rank: int, width: int, gamma: float,
    lr: float, steps: int, a_init_scale: float = 1.0,
) -> LayerPrediction:
    """The exact finite-(r, d) prediction for one adapted layer from its data statistics ``stats``
    (the module table).

    >>> st = {"data_grad_probe2": 2.0, "data_grad_fro2": 4.0, "probe_input2": 8.0}
    >>> p = predict_layer("forward", "sgd", st, rank=4, width=8, gamma=1.0, lr=1.0, steps=1)
    >>> p.d_eff, p.coherent2 * 8 * 64, p.incoherent2 * 8 * 64   # σ_A² = 1/8; r² P, r (d_eff + 1) P
    (16.0, 32.0, 136.0)
    """
    d, r = float(width), float(rank)
    s2 = (a_init_scale**2) / d  # σ_A²
    if quantity not in PREDICTED_SOURCES:
        raise RsstabError(f"no prediction for quantity {quantity!r}: expected one of {', '.join(PREDICTED_SOURCES)}")
    try:
        scale, d_eff = _scale(quantity, optimizer, stats, d=d, gamma=gamma, lr=lr, steps=steps, s2=s2)
    except OverflowError:  # e.g. lr = 1e308: no finite prediction (the run diverges anyway)
        scale, d_eff = math.inf, math.inf
    if not (math.isfinite(scale) and math.isfinite(d_eff)):
        return LayerPrediction(math.nan, math.nan, d_eff)
    coh, inc = width_coefficients(quantity, optimizer, d_eff)
    return LayerPrediction(scale * float(coh) * r * r, scale * float(inc) * r, d_eff)


_STATS = ("data_grad", "sign_", "probe_input", "adam_")


def _stats_table(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[int, int, int], dict[str, float]]:
    """(rank, seed, layer) → data statistics at each cell's last probed step."""
    last: dict[int, int] = {}
    for row in rows:
        if str(row["quantity"]).startswith(_STATS):
            last[int(row["rank"])] = max(last.get(int(row["rank"]), -1), int(row["step"]))
    out: dict[tuple[int, int, int], dict[str, float]] = {}
    for row in rows:
        q = str(row["quantity"])
        if q.startswith(_STATS) and int(row["step"]) == last[int(row["rank"])]:
            out.setdefault((int(row["rank"]), int(row["seed"]), int(row["layer"])), {})[q] = float(row["value"])
    return out


def finite_eta_factors(optimizer: str, cell: Mapping[str, Any], stats: Sequence[Mapping[str, float]], *,
                       rank: int, lr_b: float) -> FiniteEta | None:
    """The finite-η correction of a rank's first-order law (:mod:`rsstab.finite_eta`, result 14) where it
    applies — SGD, one layer (the simulator's linear teacher–student task), no weight decay — else None.
    ``stats``: the rank's per-seed data statistics; ‖D‖_F² (the teacher's perturbation) is read from
    their data gradient, E‖Σ_t G_t‖² = (n² + n·(d + 1)/b)·‖D‖_F² with fresh Gaussian batches, averaged
    over seeds. ``lr_b`` = η_B; η_A = η_B/``lr_ratio``."""
    if optimizer != "sgd" or int(cell.get("depth", 0)) != 1 or float(cell.get("weight_decay", 0.0)) != 0.0:
        return None
    n, d, b = int(cell["steps"]), int(cell["width"]), int(cell.get("batch", 64))
    fro = [float(st["data_grad_fro2"]) for st in stats if "data_grad_fro2" in st]
    if n < 1 or not fro:
        return None
    noise_share = n * (d + 1) / b if not cell.get("fixed_batch") else 0.0
    residual2 = float(np.mean(fro)) / (n * n + noise_share)
    scale = float(cell.get("a_init_scale", 1.0))
    return sgd_finite_eta(rank=rank, width=d,
                          teacher_rank=int(cell.get("teacher_rank", 4)), gamma=float(cell["gamma"]),
                          lr_a=lr_b / float(cell.get("lr_ratio", 1.0)), lr_b=lr_b, steps=n, sigma_a2=scale**2 / d,
                          residual2=residual2, batch=b, seed=int(cell.get("seed", 0)))


def predict_rows(
    rows: Sequence[Mapping[str, Any]], cells: Mapping[int, Mapping[str, Any]], optimizer: str,
) -> dict[str, dict[str, list[Any]]]:
    """Predictions for the summary quantities of a simulation, per rank (ascending).

    ``cells`` maps rank → its config (``gamma``, ``lr`` — B's learning rate —, ``steps``, ``width``,
    ``a_init_scale``; for the finite-η correction also ``depth``, ``batch``, ``teacher_rank``,
    ``lr_ratio``). Where :func:`finite_eta_factors` applies, the first-order coherent and incoherent
    parts are multiplied by its factors, and ``first_order`` keeps the first-order values.
    Returns ``{quantity: {"values", "first_order", "coherent", "incoherent", "d_eff",
    "seed_mean_squares"}}``: ``values`` the root
    mean square over seeds of each seed's predicted RMS over layers — the law's mean square over A,
    so it is compared with the measurements' root mean square over seeds
    (:func:`rsstab.measure.rows.seed_rms`), not with their geometric mean, which lies below it by Jensen's
    inequality where the seeds spread widely —, ``coherent``/``incoherent`` the RMS over layers and
    seeds of the two parts, ``d_eff`` the mean effective width, ``seed_mean_squares`` each seed's
    predicted mean square over layers (seeds ascending). Raises when the rows lack the data statistics.
    """
    table = _stats_table(rows)
    if not table:
        raise RsstabError("the simulation recorded no data statistics (SimConfig.data_stats): nothing to predict from")
    ranks = sorted(cells)
    out: dict[str, dict[str, list[float]]] = {}
    for q in PREDICTED_SOURCES:
        res: dict[str, list[Any]] = {"values": [], "first_order": [], "coherent": [], "incoherent": [],
                                     "d_eff": [], "seed_mean_squares": []}
        for r in ranks:
            c = cells[r]
            per_seed: dict[int, list[LayerPrediction]] = {}
            for (rank, seed, _layer), st in sorted(table.items()):
                if rank != r:
                    continue
                per_seed.setdefault(seed, []).append(predict_layer(
                    q, optimizer, st, rank=r, width=int(c["width"]), gamma=float(c["gamma"]),
                    lr=float(c["lr"]), steps=int(c["steps"]), a_init_scale=float(c.get("a_init_scale", 1.0))))
            if not per_seed:
                raise RsstabError(f"no data statistics for rank {r}")
            with np.errstate(all="ignore"):
                first = [float(np.mean([p.mean_square for p in per_seed[s]])) for s in sorted(per_seed)]
            res["first_order"].append(float(math.sqrt(np.mean(first))))
            fe = finite_eta_factors(optimizer, c, [st for (rank, _s, _l), st in table.items() if rank == r], rank=r,
                                    lr_b=float(c["lr"]))
            ms = first
            if fe is not None:
                per_seed = {s: [LayerPrediction(fe.coherent * p.coherent2, fe.incoherent * p.incoherent2, p.d_eff)
                                for p in ps] for s, ps in per_seed.items()}
                with np.errstate(all="ignore"):
                    ms = [float(np.mean([p.mean_square for p in per_seed[s]])) for s in sorted(per_seed)]
            preds = [p for ps in per_seed.values() for p in ps]
            with np.errstate(all="ignore"):
                res["values"].append(float(math.sqrt(np.mean(ms))))
                res["seed_mean_squares"].append(ms)
                res["coherent"].append(float(math.sqrt(np.mean([p.coherent2 for p in preds]))))
                res["incoherent"].append(float(math.sqrt(np.mean([p.incoherent2 for p in preds]))))
                res["d_eff"].append(float(np.mean([p.d_eff for p in preds])))
        out[q] = res
    return out


def _layer_expansion(optimizer: str, st: Mapping[str, float], c: Mapping[str, Any], pred: LayerPrediction,
                     ) -> tuple[float, float, float, float]:
    """One layer's pieces of the expansion: (SGD curvature c_ℓ, SGD q₁ = ‖G₁‖², Adam learned fraction
    ρ_ℓ, Adam coherent fraction). ``pred``: the layer's forward prediction."""
    n = max(int(c["steps"]), 1)
    d = float(c["width"])
    F, P = st.get("data_grad_fro2", math.nan), st.get("data_grad_probe2", math.nan)
    W = st.get("data_grad_u2", math.nan)
    # SGD: the curvature of the layer's quadratic in B, input side (Rayleigh quotient of E[hhᵀ] along
    # the data gradient's rows, P/F) times output side (of the back-propagated Gram along its columns,
    # W/F); 1 and 1 for one layer with isotropic inputs. Each is at least its isotropic value's share.
    curv = (P / F) * (W / F) if F > 0 else 0.0
    q1 = F / n**2  # ‖Σ_t G_t‖²/n²: a step's data gradient (the steps' noise averages out)
    resid2 = P / (n**2 * d)  # the residual the layer sees, per entry (G ≈ n·R·E[hhᵀ])
    ms = pred.mean_square
    rho = math.sqrt(ms / resid2) if resid2 > 0 and math.isfinite(ms) else math.inf
    coh = pred.coherent2 / ms if ms > 0 and math.isfinite(ms) else 1.0
    return curv, q1, rho, coh


def predict_expansion(
    rows: Sequence[Mapping[str, Any]], cells: Mapping[int, Mapping[str, Any]], optimizer: str,
) -> dict[str, list[Any]]:
    """The range of the predictions per rank (ascending): ``{"values", "b_driven", "a_driven",
    "in_range", "eps_ratio", "order", "batch_noise"}``, the same for ``forward`` and ``backward`` (one
    learned change). ``order`` is ``"first"`` where the prediction is the first-order law — ``values``
    its expansion parameter (result 13), the next term relative to the first — and ``"finite-eta"``
    where :func:`finite_eta_factors` carries it to finite η — ``values`` the batch noise the population
    recursion leaves out (``batch_noise``, result 14). ``first_order_expansion`` and ``small_eta``
    (≤ the limit, and Adam's gradients above ε) are the first-order law's, always: the small-η range
    of the theorem, whichever order the prediction is. Per seed, from its data statistics (A-independent, as the
    predictions): SGD sums the layers' curvatures (the residual moves under every layer's update:
    the Gauss–Newton kernel of the stack is the sum of the layers') and takes the largest A-driven
    term; Adam sums the layers' learned fractions and takes the largest coherent fraction. The
    values are the means over seeds. ``cells[r]`` also gives ``lr_ratio`` (η_B/η_A; ``lr`` is η_A),
    ``a_init_scale``, ``betas`` and Adam's ``eps``: a rank whose step-0 gradient per entry is not
    ≥ :data:`~rsstab.theory.ADAM_SIGN_RATIO`·ε (``eps_ratio``) is out of the ε → 0 law's range too.
    """
    table = _stats_table(rows)
    if not table:
        raise RsstabError("the simulation recorded no data statistics (SimConfig.data_stats): nothing to predict from")
    out: dict[str, list[Any]] = {"values": [], "b_driven": [], "a_driven": [], "in_range": [], "eps_ratio": [],
                                 "order": [], "batch_noise": [], "first_order_expansion": [], "small_eta": []}
    for r in sorted(cells):
        c = cells[r]
        lr_a = float(c["lr"])
        lr_b = lr_a * float(c.get("lr_ratio", 1.0))
        scale = float(c.get("a_init_scale", 1.0))
        d, gamma, n = float(c["width"]), float(c["gamma"]), int(c["steps"])
        s2 = scale**2 / d
        per_seed: dict[int, list[tuple[float, float, float, float]]] = {}
        grad_entry: list[float] = []
        for (rank, seed, _layer), st in sorted(table.items()):
            if rank != r:
                continue
            pred = predict_layer("forward", optimizer, st, rank=r, width=int(d), gamma=gamma, lr=lr_b, steps=n,
                                 a_init_scale=scale)
            per_seed.setdefault(seed, []).append(_layer_expansion(optimizer, st, c, pred))
            F = st.get("data_grad_fro2", math.nan)
            grad_entry.append(gamma * math.sqrt(s2) * math.sqrt(2 / math.pi) * math.sqrt(max(F, 0.0) / d) / max(n, 1))
        if not per_seed:
            raise RsstabError(f"no data statistics for rank {r}")
        exps: list[Expansion] = []
        for layers in per_seed.values():
            if optimizer == "sgd":
                e = sgd_expansion(rank=r, width=d, gamma=gamma, lr_a=lr_a, lr_b=lr_b, steps=n, sigma_a2=s2,
                                  curvature=sum(x[0] for x in layers), step_grad2=max(x[1] for x in layers))
            else:
                betas = tuple(c.get("betas", (0.9, 0.999)))
                e = adam_expansion(width=d, lr_a=lr_a, steps=n, sigma_a=math.sqrt(s2),
                                   learned_fraction=sum(x[2] for x in layers),
                                   coherent_fraction=max(x[3] for x in layers), betas=betas)
            exps.append(e)
        with np.errstate(all="ignore"):
            b = float(np.mean([e.b_driven for e in exps]))
            a = float(np.mean([e.a_driven for e in exps]))
        total = Expansion(b, a)
        eps = float(c.get("eps", 0.0)) if optimizer == "adam" else 0.0
        ratio = float(np.mean(grad_entry)) / eps if eps > 0 else math.inf
        out["b_driven"].append(b)
        out["a_driven"].append(a)
        out["eps_ratio"].append(ratio)
        small = bool(total.in_range and ratio >= ADAM_SIGN_RATIO)
        out["first_order_expansion"].append(total.value)
        out["small_eta"].append(small)
        fe = finite_eta_factors(optimizer, c, [st for (rank, _s, _l), st in table.items() if rank == r], rank=r,
                                lr_b=lr_b)
        if fe is None:  # the first-order law: in range while its next term is small
            out["order"].append("first")
            out["batch_noise"].append(None)
            out["values"].append(total.value)
            out["in_range"].append(small)
        else:  # the finite-η solution: in range while the batch noise it leaves out is small
            noise = fe.noise if math.isfinite(fe.noise) else math.inf  # nan (an overflow) is out of range too
            out["order"].append("finite-eta")
            out["batch_noise"].append(noise)
            out["values"].append(noise)
            out["in_range"].append(fe.in_range)
    return out
