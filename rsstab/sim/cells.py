"""Cells: train one (rank, γ_r) cell with all seeds batched, its tidy rows, and the sweep task
:func:`run_cell` (``rsstab.sim.cells:run_cell`` in the sweep store's keys)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rsstab.errors import RsstabError
from rsstab.sim.config import NETWORK_QUANTITIES, SimConfig
from rsstab.sim.draws import batch_slice, draw_cell
from rsstab.sim.finite import data_statistics, output_grads_at_layers
from rsstab.sim.stack import build_stack, gram_order

__all__ = ["CellResult", "simulate_cell", "run_cell", "check_memory", "available_memory"]


@dataclass
class CellResult:
    """Probes of one cell. ``data[q]`` has shape (n_probe_steps, seeds, depth) for a layer
    quantity (nan in the columns of layers without an adapter), (n_probe_steps, seeds) for a
    network quantity and (n_probe_steps, depth) for a cell-level one
    (:meth:`SimConfig.cell_quantities`)."""

    config: SimConfig
    probe_steps: list[int]
    data: dict[str, np.ndarray]
    diverged_step: list[int]
    seconds: float
    flops: float
    tags: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows ``{rank, depth, layer, step, seed, quantity, value, …tags}``; ``layer`` is -1
        for network quantities; layer rows exist only for layers with an adapter; cell-level
        quantities (statistics across the seeds) have one row per layer and step with ``seed``
        -1; ``diverged_step`` rows appear only for seeds that diverged."""
        c = self.config
        layers = c.adapter_layers()
        cell_level = set(c.cell_quantities())
        base = {"rank": int(c.rank), "depth": int(c.depth), **self.tags}
        out: list[dict[str, Any]] = []
        for q, arr in self.data.items():
            for i, step in enumerate(self.probe_steps):
                if q in cell_level:
                    for layer in layers:
                        out.append({**base, "layer": layer, "step": step, "seed": -1,
                                    "quantity": q, "value": float(arr[i, layer])})
                    continue
                for s in range(c.seeds):
                    if arr.ndim == 3:
                        for layer in layers:
                            out.append({**base, "layer": layer, "step": step, "seed": s,
                                        "quantity": q, "value": float(arr[i, s, layer])})
                    else:
                        out.append({**base, "layer": -1, "step": step, "seed": s,
                                    "quantity": q, "value": float(arr[i, s])})
        for s, step in enumerate(self.diverged_step):
            if step >= 0:
                out.append({**base, "layer": -1, "step": int(step), "seed": s,
                            "quantity": "diverged_step", "value": float(step)})
        return out


def _flops(cfg: SimConfig, n_steps: int, n_probes: int) -> float:
    """Multiply-add FLOPs of the adapter and base matmuls (2 per multiply-add). A layer without
    an adapter costs its base matmuls only (2 b·d²: forward and backward; upper bound). The rank
    is :meth:`SimConfig.effective_rank` (the work done, not the rank simulated)."""
    S, L, r, d, b, pb = cfg.seeds, cfg.depth, cfg.effective_rank(), cfg.width, cfg.batch, cfg.probe_batch
    La = len(cfg.adapter_layers())
    qr = 0.0
    if cfg.resolved_method() == "reduced" and r > d:  # the direct form at rank d after A₀ = Q·R
        qr = 2 * S * La * 2 * r * d * d  # Householder QR of A₀ (r×d): about 2·r·d² multiply-adds
        r = d
    train = 2 * S * b * (La * 6 * r * d + L * 2 * d * d)  # fwd 2 adapter + 1 base; bwd 4 adapter + 1 base
    probe = 2 * S * pb * (La * 5 * r * d + L * 2 * d * d)
    if gram_order(cfg):  # M = B·A, then d×d products: 3·r·d² + 3·b·d² per layer (probe: r·d² + 2·n·d²)
        train = 2 * S * (La * (3 * r * d * d + 3 * b * d * d) + L * b * 2 * d * d)
        probe = 2 * S * (La * (r * d * d + 2 * pb * d * d) + L * pb * 2 * d * d)
    return float(train * n_steps + probe * n_probes + qr + _extra_flops(cfg, n_steps, n_probes))


def _extra_flops(cfg: SimConfig, n_steps: int, n_probes: int) -> float:
    """The finite-width measurements: the fixed-gradient backward per probe (u′ through the
    adapter path; u′ itself once, a base backward) and the data statistics (a base forward and
    backward per step, G_t, and the probe products), upper bounds."""
    S, L, r, d, b, pb = cfg.seeds, cfg.depth, cfg.effective_rank(), cfg.width, cfg.batch, cfg.probe_batch
    La = len(cfg.adapter_layers())
    extra = 0.0
    if cfg.fixed_output_grad:
        per_layer = 2 * min(r, d) * d if cfg.resolved_method() == "reduced" else 2 * r * d
        extra += 2 * S * pb * (La * per_layer * n_probes + 2 * L * d * d)
    if cfg.data_stats:
        n = 1 if cfg.share_data else S
        extra += 2 * n * (b * (2 * L + La) * d * d * max(n_steps - 1, 1) + La * (3 * pb + d) * d * d * (n_probes + 1))
    return extra


def available_memory() -> float:
    """Bytes this process may still allocate: the smaller of the machine's available memory
    (Linux's MemAvailable) and what the address-space limit (``ulimit -v``) leaves above the
    process's current size; inf where neither can be read."""
    import resource

    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        size = 0
        try:
            with open("/proc/self/status") as f:
                size = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:")), 0)
        except (OSError, ValueError, IndexError):
            pass
        limits.append(soft - size)
    return float(min(limits)) if limits else float("inf")


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_memory(cfg: SimConfig) -> None:
    """Refuse a cell whose :meth:`SimConfig.memory_bytes` exceeds :func:`available_memory`, in one
    line that names the memory and what to change, before anything is drawn."""
    need, have = cfg.memory_bytes(), available_memory()
    if need > have:
        hint = ("lower the rank, seeds, depth or width" if cfg.optimizer != "sgd" or cfg.resolved_gram() == "wishart"
                else "lower the rank, seeds or depth, or draw the Gram (gram='wishart', exact in distribution under SGD)")
        raise RsstabError(f"the cell at rank {cfg.rank} needs about {_gib(need)} of memory ({cfg.optimizer}, width "
                          f"{cfg.width}, depth {cfg.depth}, {cfg.seeds} seeds), more than the {_gib(have)} available: "
                          f"{hint}")


def simulate_cell(cfg: SimConfig, *, tags: Mapping[str, Any] | None = None) -> CellResult:
    """Train one cell (all seeds batched) and return its probes. Never raises on divergence.

    Raises:
        RsstabError: the cell would not fit in memory (:func:`check_memory`, before it starts), or
            an allocation failed anyway (one line that names the memory).
    """
    check_memory(cfg)
    try:
        return _simulate_cell(cfg, tags=tags)
    except MemoryError:
        raise RsstabError(f"the cell at rank {cfg.rank} ran out of memory (estimated {_gib(cfg.memory_bytes())}, "
                          f"{_gib(available_memory())} available now): lower the rank, seeds or depth") from None
    except RuntimeError as exc:
        if "alloc" not in str(exc).lower():
            raise
        raise RsstabError(f"the cell at rank {cfg.rank} could not allocate its memory (estimated "
                          f"{_gib(cfg.memory_bytes())}, {_gib(available_memory())} available now): lower the rank, "
                          "seeds or depth") from None


def _simulate_cell(cfg: SimConfig, *, tags: Mapping[str, Any] | None = None) -> CellResult:
    t0 = time.perf_counter()
    dt = getattr(torch, cfg.dtype)
    init = draw_cell(cfg)
    model = build_stack(cfg, init)
    probe_steps = cfg.probe_steps()
    stats = data_statistics(cfg, init, probe_steps) if cfg.data_stats else {}
    fixed_grads = None
    if cfg.fixed_output_grad:
        fixed_grads = output_grads_at_layers(cfg, init)  # in the cell's dtype
    S, L, b = cfg.seeds, cfg.depth, cfg.batch
    x_all = init["x"].to(dt)
    y_all = init["y"].to(dt)
    xt, yt = init["xt"].to(dt), init["yt"].to(dt)
    probe_index = {s: i for i, s in enumerate(probe_steps)}
    P = len(probe_steps)
    data = {q: np.full((P, S, L), np.nan) for q in cfg.layer_quantities()}
    data.update({q: np.full((P, S), np.nan) for q in NETWORK_QUANTITIES})
    data.update({q: np.full((P, L), np.nan) for q in cfg.cell_quantities()})
    data.update(stats)
    diverged = np.full(S, -1, dtype=np.int64)
    first_loss: np.ndarray | None = None
    n_updates = 0

    with torch.no_grad(), np.errstate(all="ignore"):
        for t in range(cfg.steps + 1):
            probing = t in probe_index
            if t == cfg.steps and not probing:
                break
            if t > 0 and np.all(diverged >= 0):
                break  # every seed has diverged: the remaining probes stay nan
            rows = batch_slice(cfg, t)
            x = x_all[:, rows]
            out, cache = model.forward(x)
            resid = out - y_all[:, rows]
            loss = 0.5 * resid.pow(2).sum(dim=(1, 2)).double().numpy() / b
            if first_loss is None:
                first_loss = loss.copy()
            bad = (~np.isfinite(loss)) | (loss > cfg.divergence_factor * np.maximum(first_loss, 1e-30))
            diverged[(diverged < 0) & bad] = t
            if probing:  # held-out probes first: the training step below updates in place
                i = probe_index[t]
                data["loss"][i] = loss
                model.probe(xt, yt, data, i, fixed_grads)
            norms = model.train_step(resid.div_(b), cache, record=probing, update=t < cfg.steps)
            if norms is not None:
                data["grad_A"][i], data["grad_B"][i] = norms
            if t < cfg.steps:
                n_updates += 1
    return CellResult(
        config=cfg,
        probe_steps=probe_steps,
        data=data,
        diverged_step=[int(v) for v in diverged],
        seconds=time.perf_counter() - t0,
        flops=_flops(cfg, n_updates + 1, P),
        tags=dict(tags or {}),
    )


def run_cell(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sweep task: one config dict (from :func:`rsstab.sim.grid.make_configs`) → tidy rows. Picklable."""
    cfg = SimConfig.from_dict(config)
    res = simulate_cell(cfg, tags=config.get("tags"))
    return res.rows()
