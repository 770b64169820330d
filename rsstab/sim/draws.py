"""The random draws of a cell: base, teacher, data and initial adapters, per seed and stacked.

Every draw is float64 and depends only on ``(cfg.seed, seed index)``, the shapes and
``a_init_scale``; the cell casts to its dtype afterwards. With ``share_data`` every seed takes
seed 0's base, teacher and data but keeps its own A (the same A as without ``share_data``); the
fixed output gradient ``U`` comes from a stream of its own, so drawing it changes no other draw.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from rsstab.sim.config import SimConfig

__all__ = ["draw_seed", "draw_cell", "bartlett_factor", "seed_shapes", "draw_output_grad", "teacher_forward", "batch_slice", "SHARED",
           "clear_draw_cache"]

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


def bartlett_factor(n: int, d: int, r: int, gen: torch.Generator) -> torch.Tensor:
    """n upper-triangular d×d factors ``R`` (float64) distributed as the R of the QR
    decomposition ``G = Q·R`` (positive diagonal) of an r×d matrix ``G`` of iid N(0, 1), r ≥ d:
    ``R_ii = √χ²(r − i)`` (0-based i), ``R_ij ~ N(0, 1)`` above the diagonal, all independent —
    the Bartlett decomposition, so ``RᵀR = GᵀG ~ Wishart_d(r, I)``. O(d²) draws whatever r is."""
    if r < d:
        raise ValueError(f"the Bartlett factor needs r ≥ d, got r={r}, d={d}")
    R = torch.randn(n, d, d, generator=gen, dtype=torch.float64).triu_(1)
    half_df = (float(r) - torch.arange(d, dtype=torch.float64)).div_(2).expand(n, d).contiguous()
    chi = torch._standard_gamma(half_df, generator=gen).mul_(2).sqrt_()  # χ²(ν) = 2·Gamma(ν/2)
    R.diagonal(dim1=-2, dim2=-1).copy_(chi)
    return R


def draw_seed(
    cfg: SimConfig, s: int, out: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """The random draws of seed ``s`` of a cell, in float64 (no seed axis): base ``W``
    (depth, d, d), teacher ``T``, training inputs ``x`` ((steps+1)·batch, d), held-out ``xt`` and
    adapters ``A`` (depth, r, d) — drawn for every layer, adapted or not, so that the draws of a
    layer do not depend on ``adapted_layers``. Depends only on (cfg.seed, s), the shapes and
    ``a_init_scale`` (which multiplies A). ``out`` (float64 tensors of these shapes, e.g. views of
    a cell's stacked draws) receives the draws in place: the same numbers, no copies.

    With ``cfg.resolved_gram() == "wishart"`` and r > d, ``A`` is (depth, d, d): ``a_init_scale/√d`` times
    the :func:`bartlett_factor` R — the R of ``A₀ = Q·R`` (Q: r×d, orthonormal columns). SGD from
    B₀ = 0 keeps every A_t = Q·Ã_t and B_t = B̃_t·Qᵀ, and every recorded quantity (adapter output,
    gradients into the layer inputs, Frobenius norms of ∇A and ∇B) is the same for (A₀, B) as for
    (R, B̃): a rank-d adapter starting from R has exactly the distribution of the rank-r one."""
    o = out or {}
    gen = _generator(cfg.seed, s)
    draws = _draw_shared(cfg, gen, o)
    draws["A"] = _draw_A(cfg, gen, o.get("A"))
    return draws


def _draw_shared(cfg: SimConfig, gen: torch.Generator, o: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The rank-independent draws of one seed (``W``, ``T``, ``x``, ``xt``), in this order from
    ``gen``; into ``o``'s tensors where given."""
    d, L, k = cfg.width, cfg.depth, cfg.teacher_rank
    f64 = torch.float64
    gain = math.sqrt(2.0) if cfg.nonlinearity == "relu" else 1.0
    W = torch.mul(_haar(L, d, gen), gain, out=o.get("W"))
    U = torch.randn(L, d, k, generator=gen, dtype=f64)
    V = torch.randn(L, d, k, generator=gen, dtype=f64)
    T = torch.add(W, cfg.teacher_scale * U @ V.transpose(1, 2) / math.sqrt(k * d), out=o.get("T"))
    x = _randn(((cfg.steps + 1) * cfg.batch, d), gen, o.get("x"))
    xt = _randn((cfg.probe_batch, d), gen, o.get("xt"))
    return {"W": W, "T": T, "x": x, "xt": xt}


def _draw_A(cfg: SimConfig, gen: torch.Generator, out: torch.Tensor | None) -> torch.Tensor:
    """A₀ (depth, r_eff, d), drawn last from ``gen``: the base, teacher and data of a seed are
    shared by every rank (common random numbers make slopes across ranks less noisy, and
    :func:`draw_cell` draws them once per rank grid)."""
    d, L, r = cfg.width, cfg.depth, cfg.rank
    if cfg.resolved_gram() == "wishart" and r > d:
        A = bartlett_factor(L, d, r, gen).mul_(cfg.a_init_scale / math.sqrt(d))
        return A if out is None else out.copy_(A)
    return _randn((L, r, d), gen, out).mul_(cfg.a_init_scale / math.sqrt(d))


def _randn(shape: tuple[int, ...], gen: torch.Generator, out: torch.Tensor | None) -> torch.Tensor:
    """``torch.randn(shape)`` in float64, into ``out`` when given (the same numbers)."""
    if out is None:
        return torch.randn(shape, generator=gen, dtype=torch.float64)
    return torch.randn(shape, generator=gen, dtype=torch.float64, out=out)


def seed_shapes(cfg: SimConfig) -> dict[str, tuple[int, ...]]:
    """The shapes of :func:`draw_seed`'s draws (``A``: (depth, r_eff, d), r_eff =
    :meth:`SimConfig.effective_rank`)."""
    d, L = cfg.width, cfg.depth
    return {"W": (L, d, d), "T": (L, d, d), "x": ((cfg.steps + 1) * cfg.batch, d),
            "xt": (cfg.probe_batch, d), "A": (L, cfg.effective_rank(), d)}


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
            h = h.relu_()  # in place on the fresh product: the same numbers, no new buffer
    return h


#: The rank-independent draws of the last cell (see :func:`draw_cell`): (key, draws, generator
#: states after them, one per seed). One entry; :func:`clear_draw_cache` empties it.
_SHARED_CACHE: list = []
_CACHE_LOCK = threading.Lock()
#: Largest rank-independent draws (bytes) kept for the next cell.
CACHE_BYTES = 1 << 30


def _per_seed(draw: Callable[[int], None], seeds: int) -> None:
    """``draw(s)`` for every seed, on torch's intra-op thread count at once: every seed has its
    own generator, so the numbers do not depend on the order (torch's ops release the GIL; a
    Gaussian fill runs on one thread whatever the setting, so this is where drawing scales)."""
    workers = min(torch.get_num_threads(), seeds)
    if workers <= 1:
        for s in range(seeds):
            draw(s)
        return
    with ThreadPoolExecutor(workers) as pool:
        for f in [pool.submit(draw, s) for s in range(seeds)]:
            f.result()


#: What else :func:`clear_draw_cache` clears: caches keyed on these draws register here when
#: their module is imported (:mod:`rsstab.sim.finite`'s statistics), so this module imports none.
_DEPENDENT_CACHES: list[Callable[[], None]] = []


def clear_draw_cache() -> None:
    """Forget the rank-independent draws kept by :func:`draw_cell` and what is computed from them
    and kept elsewhere (the data statistics of :func:`rsstab.sim.finite.data_statistics`): the
    next cell draws and computes afresh."""
    with _CACHE_LOCK:
        _SHARED_CACHE.clear()
    for clear in _DEPENDENT_CACHES:
        clear()


def _shared_key(cfg: SimConfig) -> tuple:
    """Everything the rank-independent draws of a cell depend on (not rank, gram, a_init_scale,
    optimizer, γ, lr, method, dtype or adapted_layers)."""
    return (int(cfg.seed), int(cfg.seeds), int(cfg.depth), int(cfg.width), int(cfg.steps), int(cfg.batch),
            int(cfg.probe_batch), int(cfg.teacher_rank), float(cfg.teacher_scale), cfg.nonlinearity,
            bool(cfg.share_data), bool(cfg.fixed_output_grad or cfg.data_stats))


def draw_cell(cfg: SimConfig) -> dict[str, torch.Tensor]:
    """The draws of :func:`draw_seed` for every seed, stacked along a leading seed axis, plus the
    teacher's targets ``y`` (of ``x``) and ``yt`` (of ``xt``). Same seed → identical numbers.

    With ``share_data`` the draws in :data:`SHARED` are seed 0's for every seed. With
    ``fixed_output_grad`` or ``data_stats``, ``U`` (seeds, probe_batch, width) holds the fixed
    output gradients (seed 0's for every seed with ``share_data``).

    Only ``A`` depends on the rank (it is drawn last from each seed's generator), so the other
    draws and the targets of the previous cell are kept (one cell's worth, up to
    :data:`CACHE_BYTES`) together with each seed's generator state after them: the next cell of
    the same rank grid (same seed, seeds, shapes and teacher) draws only its ``A`` — exactly the
    numbers a fresh draw gives. The returned tensors other than ``A`` may be those kept:
    read-only for callers."""
    S = cfg.seeds
    shapes = seed_shapes(cfg)
    key = _shared_key(cfg)
    with _CACHE_LOCK:
        hit = _SHARED_CACHE[0] if _SHARED_CACHE and _SHARED_CACHE[0][0] == key else None
        if hit is None:
            _SHARED_CACHE.clear()  # free the previous grid's draws before drawing these
    A = torch.empty((S, *shapes["A"]), dtype=torch.float64)
    if hit is not None:
        _, shared, states = hit

        def draw_a(s: int) -> None:
            gen = torch.Generator()
            gen.set_state(states[s])
            _draw_A(cfg, gen, A[s])

        _per_seed(draw_a, S)
        return {**shared, "A": A}
    shared = {n: torch.empty((S, *shapes[n]), dtype=torch.float64) for n in ("W", "T", "x", "xt")}
    states = [None] * S

    def draw(s: int) -> None:
        gen = _generator(cfg.seed, s)
        _draw_shared(cfg, gen, {n: t[s] for n, t in shared.items()})
        states[s] = gen.get_state()
        _draw_A(cfg, gen, A[s])

    _per_seed(draw, S)
    if cfg.share_data:
        for n in SHARED:
            shared[n][1:] = shared[n][:1]
    if cfg.fixed_output_grad or cfg.data_stats:
        us = [draw_output_grad(cfg, 0 if cfg.share_data else s) for s in range(cfg.seeds)]
        shared["U"] = torch.stack(us)
    relu = cfg.nonlinearity == "relu"
    shared["y"] = teacher_forward(shared["T"], shared["x"], relu)
    shared["yt"] = teacher_forward(shared["T"], shared["xt"], relu)
    size = sum(t.numel() * t.element_size() for t in shared.values())
    with _CACHE_LOCK:
        _SHARED_CACHE.clear()
        if size <= CACHE_BYTES:
            _SHARED_CACHE.append((key, shared, states))
    return {**shared, "A": A}
