"""The random draws of a cell: base, teacher, data and initial adapters, per seed and stacked.

Every draw is float64 and depends only on ``(cfg.seed, seed index)``, the shapes and
``a_init_scale``; the cell casts to its dtype afterwards.
"""

from __future__ import annotations

import math

import torch

from rsstab.sim.config import SimConfig

__all__ = ["draw_seed", "draw_cell", "teacher_forward"]


def _generator(base_seed: int, seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed((int(base_seed) * 1_000_003 + int(seed) * 7919 + 12345) % (2**63))
    return g


def _haar(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """n Haar-random d×d orthogonal matrices (QR of Gaussians with the sign fix), batched:
    one batched QR is also far less sensitive to thread oversubscription than n small ones."""
    z = torch.randn(n, d, d, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(z)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def draw_seed(cfg: SimConfig, s: int) -> dict[str, torch.Tensor]:
    """The random draws of seed ``s`` of a cell, in float64 (no seed axis): base ``W``
    (depth, d, d), teacher ``T``, training inputs ``x`` ((steps+1)·batch, d), held-out ``xt`` and
    adapters ``A`` (depth, r, d) — drawn for every layer, adapted or not, so that the draws of a
    layer do not depend on ``adapted_layers``. Depends only on (cfg.seed, s), the shapes and
    ``a_init_scale`` (which multiplies A)."""
    d, L, r, k = cfg.width, cfg.depth, cfg.rank, cfg.teacher_rank
    gain = math.sqrt(2.0) if cfg.nonlinearity == "relu" else 1.0
    gen = _generator(cfg.seed, s)
    W = gain * _haar(L, d, gen)
    U = torch.randn(L, d, k, generator=gen, dtype=torch.float64)
    V = torch.randn(L, d, k, generator=gen, dtype=torch.float64)
    T = W + cfg.teacher_scale * U @ V.transpose(1, 2) / math.sqrt(k * d)
    x = torch.randn((cfg.steps + 1) * cfg.batch, d, generator=gen, dtype=torch.float64)
    xt = torch.randn(cfg.probe_batch, d, generator=gen, dtype=torch.float64)
    # A last: the base, teacher and data of seed s are shared by every rank (common random
    # numbers make slopes across ranks less noisy).
    A = torch.randn(L, r, d, generator=gen, dtype=torch.float64).mul_(cfg.a_init_scale / math.sqrt(d))
    return {"W": W, "T": T, "x": x, "xt": xt, "A": A}


def teacher_forward(T: torch.Tensor, x: torch.Tensor, relu: bool) -> torch.Tensor:
    """Targets of the teacher stack ``T`` (…, depth, d, d) for inputs ``x`` (…, n, d)."""
    h = x
    L = T.shape[-3]
    for layer in range(L):
        h = h @ T[..., layer, :, :].transpose(-1, -2)
        if relu and layer < L - 1:
            h = torch.relu(h)
    return h


def draw_cell(cfg: SimConfig) -> dict[str, torch.Tensor]:
    """The draws of :func:`draw_seed` for every seed, stacked along a leading seed axis, plus the
    teacher's targets ``y`` (of ``x``) and ``yt`` (of ``xt``). Same seed → identical numbers."""
    per_seed = [draw_seed(cfg, s) for s in range(cfg.seeds)]
    out = {n: torch.stack([p[n] for p in per_seed]) for n in per_seed[0]}
    relu = cfg.nonlinearity == "relu"
    out["y"] = teacher_forward(out["T"], out["x"], relu)
    out["yt"] = teacher_forward(out["T"], out["xt"], relu)
    return out
