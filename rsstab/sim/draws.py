"""The random draws of a cell: base, teacher, data and initial adapters, per seed and stacked.

Every draw is float64 and depends only on ``(cfg.seed, seed index)``, the shapes and
``a_init_scale``; the cell casts to its dtype afterwards. With ``share_data`` every seed takes
seed 0's base, teacher and data but keeps its own A (the same A as without ``share_data``); the
fixed output gradient ``U`` comes from a stream of its own, so drawing it changes no other draw.
"""

from __future__ import annotations

import math

import torch

from rsstab.sim.config import SimConfig

__all__ = ["draw_seed", "draw_cell", "draw_output_grad", "teacher_forward", "batch_slice", "SHARED"]

#: The draws that ``share_data`` takes from seed 0 for every seed (A stays per seed).
SHARED = ("W", "T", "x", "xt")


def _generator(base_seed: int, seed: int, stream: int = 0) -> torch.Generator:
    """The generator of ``(base_seed, seed)``; ``stream`` 0 is the model's, others are apart."""
    g = torch.Generator()
    salt = 0 if stream == 0 else (int(stream) * 0x9E3779B97F4A7C15) % (2**63)
    g.manual_seed((int(base_seed) * 1_000_003 + int(seed) * 7919 + 12345 + salt) % (2**63))
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


def draw_output_grad(cfg: SimConfig, s: int) -> torch.Tensor:
    """Seed ``s``'s fixed output gradient ``U`` (probe_batch × width, iid N(0, 1), float64), from
    a generator stream of its own: the probe of Definition 3.1's backward condition."""
    gen = _generator(cfg.seed, s, stream=1)
    return torch.randn(cfg.probe_batch, cfg.width, generator=gen, dtype=torch.float64)


def batch_slice(cfg: SimConfig, t: int) -> slice:
    """The rows of the training inputs ``x`` used at step ``t``: batch ``t``, or batch 0 at every
    step with ``fixed_batch``."""
    k = 0 if cfg.fixed_batch else int(t)
    return slice(k * cfg.batch, (k + 1) * cfg.batch)


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
    teacher's targets ``y`` (of ``x``) and ``yt`` (of ``xt``). Same seed → identical numbers.

    With ``share_data`` the draws in :data:`SHARED` are seed 0's for every seed. With
    ``fixed_output_grad`` or ``data_stats``, ``U`` (seeds, probe_batch, width) holds the fixed
    output gradients (seed 0's for every seed with ``share_data``)."""
    per_seed = [draw_seed(cfg, s) for s in range(cfg.seeds)]
    out = {n: torch.stack([p[n] for p in per_seed]) for n in per_seed[0]}
    if cfg.share_data:
        for n in SHARED:
            out[n] = out[n][:1].expand_as(out[n]).contiguous()
    if cfg.fixed_output_grad or cfg.data_stats:
        us = [draw_output_grad(cfg, 0 if cfg.share_data else s) for s in range(cfg.seeds)]
        out["U"] = torch.stack(us)
    relu = cfg.nonlinearity == "relu"
    out["y"] = teacher_forward(out["T"], out["x"], relu)
    out["yt"] = teacher_forward(out["T"], out["xt"], relu)
    return out
