"""Finite-width measurements: the coherent/incoherent split across A draws and the data statistics.

At finite rank r and width d the learned change on a probe input is a **coherent** part (its
mean over the draw of A, the object of Theorem 3.2) plus an **incoherent** part (a random-
projection error of mean zero). The simulator measures both, and the A-independent statistics of
the data that the exact finite-(r, d) laws are written in; it predicts nothing (the laws live in
the theory, which this package never imports).

**The split** (``share_data``: every seed has seed 0's base, teacher and data and its own A, so
the seeds are S independent draws of A at fixed data). For a per-seed tensor ``t_s`` — the
adapter output ``Δu = γ·B·A·h′`` on the held-out probes (its value at step 0 is 0, as B₀ = 0),
or the fixed-gradient backward ``γ·u′·B·A`` (``backward_fixed``: ``u′`` is the fixed N(0, 1)
output gradient U back-propagated through the frozen base to the layer's output, so it does not
depend on A) — with ``E`` the entries (probes × coordinates):

* ``*_coherent`` = signed √ of ``mean_E [ (Σ_s t_s)² − Σ_s t_s² ] / (S(S−1))``, the U-statistic of
  the pairwise products: an unbiased estimate of the mean square of the seed mean ``E_A[t]``
  (``‖mean‖² − var/S``). Negative — the value is then −√|·| — when the coherent part is below what
  S draws resolve; ``value·|value|`` is always the unbiased mean square.
* ``*_incoherent`` = √ of ``mean_E var_s(t)`` (sample variance, divisor S − 1): unbiased for
  the mean square of the fluctuation ``t − E_A[t]``.
* ``*_se``: their jackknife standard errors over seeds (leave one seed out; needs S ≥ 3), in the
  same units. Both estimates are nan for S < 2.

``coherent·|coherent| + incoherent²`` equals the seeds' mean of ``forward²`` (for ``forward``).
These are cell-level statistics: :class:`~rsstab.sim.cells.CellResult` stores them once per cell
and adapted layer, in rows with ``seed = -1``.

**The data statistics** (``data_stats``; per adapted layer and seed, at every probe step p).
``G_t = (1/b)·g_tᵀ·h_t`` is step t's data gradient (``g_t``: the gradient of the batch loss with
respect to the layer's pre-activation output, per example; ``h_t``: the layer's input), so that
``∇_B = γ·G_t·Aᵀ`` at B = 0; ``G = Σ_{t<p} G_t``. They are computed on the **frozen base alone**
(every adapter's effect ignored): to first order in η, at B ≈ 0, g and h do not depend on A, so
these are exactly the statistics that the first-order laws need, and identical for all seeds under
``share_data``. ``h′`` is the layer's input on a held-out probe, ``u′`` the fixed output gradient
``U`` back-propagated through the base to the layer's output (:func:`output_grads_at_layers`, as
for ``backward_fixed``); means are over the probes.

* ``data_grad_fro2`` = ‖G‖_F²; ``data_grad_probe2`` = mean ‖G·h′‖²; ``probe_input2`` = mean ‖h′‖²;
  ``data_grad_u2`` = mean ‖Gᵀ·u′‖².
* Adam's sign law, from the **first** step's ``G_0`` with rows normalised (``Ĝ``, rows
  ``ĝ_o = g_o/‖g_o‖``; a zero row stays zero): ``sign_probe2`` = mean over probes and rows o of
  ``(ĝ_o·h′)²``; ``sign_u2`` = mean ‖Ĝᵀ·u′‖²; ``sign_uq`` = mean ``u′ᵀ·(2/π)·arcsin(Ĝ·Ĝᵀ)·u′``.
  (With ``fixed_batch`` and a small η, n Adam steps are n sign steps of ``G_0``.)

* Adam with **fresh batches** (``fixed_batch`` off): after p steps, to first order in η, B's entry
  (o, i) has moved by ``−η·Ψ_o(a_i)``, where ``Ψ_o(a) = Σ_{t<p} m̂_t/√v̂_t`` is bias-corrected Adam
  (ε → 0, the config's betas) run on the scalar gradients ``z_t = g_{t,o}·a`` (``g_{t,o}``: row o
  of ``G_t``; γ > 0 and σ_A drop out, Ψ is homogeneous of degree 0). Each of the r columns
  ``a_i`` of Aᵀ contributes an i.i.d. term, so the mean square over A of the learned change is
  ``r²·‖E[y]‖² + r·(E‖y‖² − ‖E[y]‖²)`` with ``y = Ψ_o(a)·(a·h′)`` (forward) or
  ``y = a·Σ_o u′_o·Ψ_o(a)`` (backward): a rank-free Gaussian integral over one column, which
  the simulator evaluates over ``M`` **reference columns** ``a ~ N(0, I_d)`` drawn from their own
  generator (``seed``-derived, independent of every adapter draw; ``M`` from
  :func:`reference_columns`, at least 256): ``adam_probe_coh2`` / ``adam_u_coh2`` = the
  U-statistic ``(‖Σ_k y_k‖² − Σ_k ‖y_k‖²)/(M(M−1))`` (unbiased for ‖E[y]‖², per entry o and probe
  for the forward, per probe for the backward; then the mean over probes and rows o),
  ``adam_probe_m2`` / ``adam_u_m2`` = ``Σ_k ‖y_k‖²/M`` likewise. With a constant gradient Ψ is
  ``p·sign(g·a)`` and these reduce to the closed forms above (``p²·(2/π)·sign_probe2``, …).

At step 0, G = 0 and the ``data_grad_*`` are 0 (the ``adam_*`` 0 too); ``probe_input2`` and the
``sign_*`` are the same at every probe step (nan without a training step).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from rsstab.sim.config import ADAM_DATA_QUANTITIES, SimConfig
from rsstab.sim.draws import _DEPENDENT_CACHES, batch_slice

__all__ = ["seed_split", "data_statistics", "output_grads_at_layers", "reference_columns", "AdamColumns",
           "clear_stats_cache"]

#: Work budget (multiply-adds) that sets the number of reference columns:
#: M = budget / (data copies · steps · d_out · d_in), clipped to [256, 4096].
REFERENCE_BUDGET = 2**31


def _signed_sqrt(v: torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * v.abs().sqrt()


def seed_split(t: torch.Tensor) -> tuple[float, float, float, float]:
    """``(coherent, incoherent, coherent_se, incoherent_se)`` of a per-seed tensor ``t``
    (seeds, …): see the module docstring. Computed in float64; nan where S is too small.

    >>> t = torch.tensor([[1.0, 3.0], [3.0, 5.0], [2.0, 4.0]])   # 3 seeds, 2 entries
    >>> [round(v, 6) for v in seed_split(t)[:2]]   # mean² − var/S = (4 + 16)/2 − 1/3; var = 1
    [3.109126, 1.0]
    """
    S = t.shape[0]
    nan = math.nan
    if S < 2:
        return nan, nan, nan, nan
    t = t.reshape(S, -1).double()
    t1 = t.sum(0)
    t2 = t.pow(2).sum(0)
    m11, m2 = t1.pow(2).mean(), t2.mean()  # mean over entries of (Σt)², Σt²
    coh2 = (m11 - m2) / (S * (S - 1))
    inc2 = (m2 - m11 / S) / (S - 1)
    coh, inc = float(_signed_sqrt(coh2)), float(inc2.clamp_min(0).sqrt())
    if S < 3:
        return coh, inc, nan, nan
    # Leave seed s out: Σt → t1 − t_s, Σt² → t2 − t_s², S → S − 1.
    cross = (t * t1).mean(1)  # mean over entries of t_s·Σt, per s
    own = t.pow(2).mean(1)  # mean over entries of t_s², per s
    m11_s = m11 - 2 * cross + own
    m2_s = m2 - own
    coh_s = _signed_sqrt((m11_s - m2_s) / ((S - 1) * (S - 2)))
    inc_s = ((m2_s - m11_s / (S - 1)) / (S - 2)).clamp_min(0).sqrt()

    def jackknife(v: torch.Tensor) -> float:
        return float(((S - 1) / S * (v - v.mean()).pow(2).sum()).sqrt())

    return coh, inc, jackknife(coh_s), jackknife(inc_s)


def _base_walk(
    Wt: torch.Tensor, x: torch.Tensor, relu: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor | None], torch.Tensor]:
    """Forward through the frozen base ``Wt`` (S, L, d, d) = Wᵀ: per layer its input and ReLU
    mask — the ReLU's output itself, > 0 exactly where the pre-activation is (None for the top
    layer or a linear stack) — and the output."""
    L = Wt.shape[1]
    inputs: list[torch.Tensor] = []
    masks: list[torch.Tensor | None] = []
    h = x
    for layer in range(L):
        inputs.append(h)
        z = torch.bmm(h, Wt[:, layer])
        if relu and layer < L - 1:
            z = z.relu_()
            masks.append(z)
        else:
            masks.append(None)
        h = z
    return inputs, masks, h


def _base_back(Wt: torch.Tensor, g: torch.Tensor, masks: Sequence[torch.Tensor | None], lowest: int) -> list:
    """Back-propagate ``g`` = dL/d(output) through the base: per layer ≥ ``lowest``, the gradient
    with respect to its pre-activation output (None below)."""
    L = Wt.shape[1]
    out: list[torch.Tensor | None] = [None] * L
    for layer in reversed(range(lowest, L)):
        if masks[layer] is not None:  # g where the ReLU's output is > 0, else 0 (one kernel)
            g = torch.ops.aten.threshold_backward(g, masks[layer], 0)
        out[layer] = g
        g = torch.bmm(g, Wt[:, layer].transpose(1, 2))
    return out


#: The u′ of the last grid (see :func:`output_grads_at_layers`): (key, tensors). One entry.
_GRADS_CACHE: list = []


def output_grads_at_layers(
    cfg: SimConfig, init: Mapping[str, torch.Tensor], n: int | None = None
) -> dict[int, torch.Tensor]:
    """``u′`` per adapted layer: the fixed output gradients ``init["U"]`` back-propagated through
    the **frozen base** (ReLU masks of the base's forward on the held-out inputs) to the layer's
    pre-activation output, (n, probe_batch, width) in the cell's dtype for the first ``n`` seeds
    (default all; a float32 cell walks the base in float32, as its probes do). Independent of A and
    of training: the same u′ at every probe step, and at every rank of a grid, so the last result
    is kept (keyed like :func:`stats_key`, on the rank-independent draws) and returned again —
    read-only tensors, the same numbers, computed once per grid."""
    from rsstab.sim.draws import _shared_key

    n = cfg.seeds if n is None else n
    key = (_shared_key(cfg), cfg.adapter_layers(), int(n), cfg.nonlinearity, cfg.dtype)
    with _STATS_LOCK:
        if _GRADS_CACHE and _GRADS_CACHE[0][0] == key:
            return dict(_GRADS_CACHE[0][1])
    out = _output_grads_at_layers(cfg, init, n)
    with _STATS_LOCK:
        _GRADS_CACHE.clear()
        _GRADS_CACHE.append((key, out))
    return dict(out)


def _output_grads_at_layers(cfg: SimConfig, init: Mapping[str, torch.Tensor], n: int) -> dict[int, torch.Tensor]:
    wd = getattr(torch, cfg.dtype)
    Wt = init["W"][:n].transpose(2, 3).to(wd)  # (n, L, d, d) = Wᵀ
    layers = cfg.adapter_layers()
    _, masks, _ = _base_walk(Wt, init["xt"][:n].to(wd), cfg.nonlinearity == "relu")
    grads = _base_back(Wt, init["U"][:n].to(wd), masks, layers[0])
    return {k: grads[k] for k in layers}


def reference_columns(cfg: SimConfig) -> int:
    """``M``, the number of Gaussian reference columns of Adam's fresh-batch moments: as many as
    the work budget allows (cost ∝ M·copies·steps·width², copies = 1 with ``share_data``, else
    seeds), between 256 and 4096. They are computed once per grid (:func:`data_statistics`).
    Their sampling error, measured on the paper's grid (width 128, depth 8, 50 steps, 16 seeds,
    batch 32; M = 256): the relative standard deviation of the predicted values over independent
    sets of columns is ≤ 2.2 % (forward) and ≤ 3.3 % (backward) at every rank 4…2048 — 1.6 % and
    1.8 % at M = 512 — and, the columns being common to all ranks, less for the predicted slopes.

    >>> reference_columns(SimConfig(rank=8, gamma=1.0, width=256, steps=10, seeds=8))
    409
    >>> reference_columns(SimConfig(rank=8, gamma=1.0, width=256, steps=10, share_data=True))
    3276
    """
    copies = 1 if cfg.share_data else int(cfg.seeds)
    per_column = copies * max(int(cfg.steps), 1) * int(cfg.width) ** 2
    return int(min(4096, max(256, REFERENCE_BUDGET // per_column)))


class AdamColumns:
    """Bias-corrected Adam at ε → 0 run on the data gradients of one layer over ``M`` reference
    columns ``a ~ N(0, I)`` (module docstring): :meth:`step` feeds ``z_t = G_t·a``
    (:func:`_column_steps`), :meth:`moments` gives the four ``adam_*`` statistics after the steps fed so
    far."""

    def __init__(self, a: torch.Tensor, betas: tuple[float, float]):
        self.a = a  # (d_in, M); the steps run in its dtype (float32 for a float32 cell)
        self.a64 = a.double()  # the moments are taken in float64
        self.b1, self.b2 = float(betas[0]), float(betas[1])
        self.t = 0
        # the running moments and the sum of steps: None until the first step
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self.psi: torch.Tensor | None = None

    def rows_first(self, b: int, d_out: int) -> bool:
        """Whether ``z = G·a`` for a batch of ``b`` rows, ``G = gᵀ·h``, is cheaper as ``gᵀ·(h·a)``
        (b·M·(d_in + d_out) multiply-adds) than as ``(gᵀ·h)·a`` (d_out·d_in·(b + M)): when b is
        small against the width (the paper's grid: 2.2× fewer)."""
        d_in, M = self.a.shape
        return b * M * (d_in + d_out) < d_out * d_in * (b + M)

    def step(self, z: torch.Tensor) -> None:
        """One Adam step on ``z = G·a`` (n, d_out, M; formed by :func:`_column_steps`)."""
        if self.m is None:
            self.m, self.v, self.psi = torch.zeros_like(z), torch.zeros_like(z), torch.zeros_like(z)
        self.t += 1
        self.m.mul_(self.b1).add_(z, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(z, z, value=1 - self.b2)  # type: ignore[union-attr]  # set with m
        # m̂/√v̂; v = 0 only where every z so far was 0 (then m = 0 too): 0/0 → 0.
        step = (self.m / (1 - self.b1**self.t)).div_(self.v.div(1 - self.b2**self.t).sqrt_())  # type: ignore[union-attr]  # set with m
        self.psi.add_(step.nan_to_num_(0.0))  # type: ignore[union-attr]  # set with m

    def moments(self, h: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The :data:`ADAM_DATA_QUANTITIES` (``adam_probe_coh2``, ``adam_probe_m2``, ``adam_u_coh2``,
        ``adam_u_m2``) per data copy, for probe inputs ``h`` (n, m, d_in) and fixed output
        gradients ``u`` (n, m, d_out)."""
        n, M = h.shape[0], self.a.shape[1]
        if self.psi is None:  # no step yet: nothing has moved
            zero = torch.zeros(n, dtype=torch.float64)
            return zero, zero, zero, zero
        psi = self.psi.double()  # (n, d_out, M)
        a = self.a64
        ax = torch.matmul(h, a)  # (n, m, M): a_k·h′_j
        # forward: y_k = Ψ_o(a_k)(a_k·h′_j) per (o, j)
        s1 = torch.bmm(psi, ax.transpose(1, 2))  # (n, d_out, m): Σ_k y_k
        s2 = torch.bmm(psi.pow(2), ax.pow(2).transpose(1, 2))  # Σ_k y_k²
        probe_coh2 = ((s1.pow(2) - s2) / (M * (M - 1))).mean(dim=(1, 2))
        probe_m2 = (s2 / M).mean(dim=(1, 2))
        # backward: y_k = a_k·s_k, s_k = Σ_o u′_o Ψ_o(a_k), per probe j
        sk = torch.bmm(u, psi)  # (n, m, M)
        sum_y = torch.matmul(sk, a.T)  # (n, m, d_in): Σ_k a_k s_k
        norm_a2 = a.pow(2).sum(0)  # (M,)
        sum_y2 = (sk.pow(2) * norm_a2).sum(2)  # (n, m): Σ_k ‖a_k‖² s_k²
        u_coh2 = ((sum_y.pow(2).sum(2) - sum_y2) / (M * (M - 1))).mean(1)
        u_m2 = (sum_y2 / M).mean(1)
        return probe_coh2, probe_m2, u_coh2, u_m2


#: Float32 elements of one block of ``h·a`` in :func:`_column_steps` (64 MiB).
_HA_BLOCK = 2**24


def _column_steps(col: AdamColumns, g: torch.Tensor, h: torch.Tensor, start: int, stop: int, b: int,
                  fixed_batch: bool) -> None:
    """Steps ``start … stop − 1`` of ``col`` on ``z_t = G_t·a``, ``G_t = g_tᵀ·h_t`` from the rows
    ``g``, ``h`` (n, rows, ·) of every training batch (with ``fixed_batch`` batch 0's ``z``,
    once). In the rows-first order (:meth:`AdamColumns.rows_first`) ``h·a`` is one product per
    block of steps (at most :data:`_HA_BLOCK` elements) and each ``z_t`` a small one, formed
    right before its step (it stays in cache)."""
    n, _, d_out = g.shape
    a = col.a

    def z_of(t: int) -> torch.Tensor:  # (g_tᵀ·h_t)·a
        return torch.matmul(torch.bmm(g[:, t * b:(t + 1) * b].transpose(1, 2), h[:, t * b:(t + 1) * b]), a)

    if fixed_batch:
        z0 = z_of(0)
        for _ in range(start, stop):
            col.step(z0)
        return
    if not col.rows_first(b, d_out):
        for t in range(start, stop):
            col.step(z_of(t))
        return
    block = max(1, _HA_BLOCK // (n * b * a.shape[1]))
    for t0 in range(start, stop, block):
        t1 = min(stop, t0 + block)
        ha = torch.matmul(h[:, t0 * b:t1 * b], a)  # (n, (t1 − t0)·b, M)
        for t in range(t0, t1):
            i = (t - t0) * b
            col.step(torch.bmm(g[:, t * b:t * b + b].transpose(1, 2), ha[:, i:i + b]))


#: The data statistics of the last cell (see :func:`data_statistics`): (key, arrays). One entry.
_STATS_CACHE: list = []
_STATS_LOCK = threading.Lock()


def clear_stats_cache() -> None:
    """Forget the data statistics kept by :func:`data_statistics` and the u′ kept by
    :func:`output_grads_at_layers` (the next cell computes afresh)."""
    with _STATS_LOCK:
        _STATS_CACHE.clear()
        _GRADS_CACHE.clear()


_DEPENDENT_CACHES.append(clear_stats_cache)  # clear_draw_cache clears these too


def stats_key(cfg: SimConfig, probe_steps: Sequence[int]) -> tuple:
    """Everything the data statistics depend on: the rank-independent draws (their key,
    :func:`rsstab.sim.draws._shared_key`), the adapted layers, the probe steps, which statistics,
    Adam's betas, ``fixed_batch`` and the number of reference columns — not the rank, γ, A's
    scale, the learning rate, the method, the Gram draw or ``bf16``: the statistics are computed on
    the frozen base alone, in the cell's dtype, from draws no rank changes."""
    from rsstab.sim.draws import _shared_key

    return (_shared_key(cfg), cfg.adapter_layers(), tuple(int(p) for p in probe_steps), cfg.data_quantities(),
            tuple(float(b) for b in cfg.betas), bool(cfg.fixed_batch), reference_columns(cfg), cfg.dtype)


def data_statistics(
    cfg: SimConfig, init: Mapping[str, torch.Tensor], probe_steps: Sequence[int]
) -> dict[str, np.ndarray]:
    """The data statistics of the module docstring from the float64 draws ``init`` (with ``U``):
    ``{name: array (n_probe_steps, seeds, depth)}``, nan in the columns of layers without an
    adapter. Costs a base forward and backward per training step (O(b·d²) per layer and seed),
    and with Adam's fresh batches the reference columns (O(M·d²) per layer, copy and step).

    They depend on no rank (:func:`stats_key`), so the statistics of the last cell are kept and a
    cell with the same key — the next rank of a grid, whose draws :func:`~rsstab.sim.draws.draw_cell`
    also keeps — gets copies of them: the same numbers, computed once per grid. ``init`` must be
    the draws of ``cfg`` (as :func:`~rsstab.sim.draws.draw_cell` gives them)."""
    key = stats_key(cfg, probe_steps)
    with _STATS_LOCK:
        hit = _STATS_CACHE[0][1] if _STATS_CACHE and _STATS_CACHE[0][0] == key else None
    if hit is not None:
        return {q: v.copy() for q, v in hit.items()}
    out = _data_statistics(cfg, init, probe_steps)
    with _STATS_LOCK:
        _STATS_CACHE.clear()
        _STATS_CACHE.append((key, {q: v.copy() for q, v in out.items()}))
    return out


def _data_statistics(
    cfg: SimConfig, init: Mapping[str, torch.Tensor], probe_steps: Sequence[int]
) -> dict[str, np.ndarray]:
    """:func:`data_statistics` without the cache. The training batches' base walk runs once over
    every batch at once, in the cell's dtype (a float32 cell measures in float32: its statistics
    carry float32's relative rounding, ~1e-6, far below any sampling error), and so do the probe
    walk, every product with the probe inputs and u′ and its sums over a row, and Adam's reference
    columns; G is summed, the sign law's cosines taken and every statistic averaged in float64,
    Adam's moments (a difference of two sums) formed in float64."""
    S, L, b = cfg.seeds, cfg.depth, cfg.batch
    layers = cfg.adapter_layers()
    relu = cfg.nonlinearity == "relu"
    n = 1 if cfg.share_data else S  # shared data: every seed's statistics are seed 0's
    wd = getattr(torch, cfg.dtype)
    steps = int(cfg.steps)
    W64 = init["W"][:n].transpose(2, 3).double()  # (n, L, d, d) = Wᵀ
    xt = init["xt"][:n].double()

    # g_t (per example: the batch loss's gradient at the layer's output) and h_t for every training
    # batch, from one walk through the base: step t's rows are batch_slice(cfg, t) of these.
    n_rows = (1 if cfg.fixed_batch else steps) * b if steps > 0 else 0
    walk_g: list = [None] * L
    walk_h: list = [None] * L
    Wt = W64.to(wd)
    if n_rows:
        inputs, masks, top = _base_walk(Wt, init["x"][:n, :n_rows].to(wd), relu)
        g_all = _base_back(Wt, (top - init["y"][:n, :n_rows].to(wd)) / b, masks, layers[0])
        walk_g, walk_h = g_all, inputs

    def data_grad(rows: slice, k: int) -> torch.Tensor:
        """Σ over the steps whose batches are ``rows`` of G_t for layer k, float64."""
        return torch.bmm(walk_g[k][:, rows].transpose(1, 2), walk_h[k][:, rows]).double()

    def sq(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """Per row of ``x·y`` (the cell's dtype) the sum of its squares — of its products with ``z``
        when given — in the cell's dtype, as float64 (n, rows): the statistics' means of these are
        taken in float64."""
        p = torch.bmm(x.to(wd), y.to(wd))
        return (p.pow(2) if z is None else p.mul_(z)).sum(2).double()

    probe_in, _, _ = _base_walk(Wt, xt.to(wd), relu)
    probe_u = output_grads_at_layers(cfg, init, n)  # in the cell's dtype, as the probe walk
    G0 = {k: data_grad(batch_slice(cfg, 0), k) for k in layers} if steps > 0 else None
    sign: dict[int, tuple[torch.Tensor, ...]] = {}
    for k in layers:
        h, u = probe_in[k], probe_u[k]
        if G0 is None:
            sign[k] = (torch.full((n,), math.nan, dtype=torch.float64),) * 3
            continue
        norms = torch.linalg.vector_norm(G0[k], dim=2, keepdim=True)
        Gh = G0[k] / torch.where(norms > 0, norms, torch.ones_like(norms))  # (n, d_out, d_in)
        cos = torch.bmm(Gh, Gh.transpose(1, 2)).clamp(-1.0, 1.0)
        # The diagonal is exactly 1 (0 for a zero row): arcsin near 1 would turn rounding into √ε.
        cos.diagonal(dim1=1, dim2=2).copy_((norms[..., 0] > 0).to(cos.dtype))
        C = (2 / math.pi) * torch.asin(cos)
        sign[k] = (sq(h, Gh.transpose(1, 2)).mean(1) / Gh.shape[1],
                   sq(u, Gh).mean(1),
                   sq(u, C, u).mean(1))

    columns: dict[int, AdamColumns] = {}
    if set(ADAM_DATA_QUANTITIES) <= set(cfg.data_quantities()):
        gen = torch.Generator().manual_seed(int(cfg.seed) * 1_000_003 + 0x5EED)  # apart from every adapter draw
        a = torch.randn(W64.shape[-1], reference_columns(cfg), generator=gen, dtype=torch.float64).to(wd)
        columns = {k: AdamColumns(a, cfg.betas) for k in layers}

    P = len(probe_steps)
    out = {q: np.full((P, S, L), np.nan) for q in cfg.data_quantities()}
    G = {k: torch.zeros_like(W64[:, k]) for k in layers}
    t = 0  # G holds Σ_{t' < t} G_t'
    zero = torch.zeros(n, dtype=torch.float64)
    for i, p in enumerate(probe_steps):
        upto = min(int(p), steps)
        if t < upto:
            for k in layers:
                if cfg.fixed_batch:
                    G[k] += (upto - t) * G0[k]  # type: ignore[index]  # G0 is None only without steps
                else:  # the steps t … upto − 1 in one product
                    G[k] += data_grad(slice(t * b, upto * b), k)
                if columns:
                    _column_steps(columns[k], walk_g[k], walk_h[k], t, upto, b, cfg.fixed_batch)
            t = upto
        for k in layers:
            h, u = probe_in[k], probe_u[k]
            values = {
                "data_grad_fro2": G[k].pow(2).sum(dim=(1, 2)),
                # before the first step G = 0: its products are 0 (no product formed)
                "data_grad_probe2": sq(h, G[k].transpose(1, 2)).mean(1) if t else zero,
                "probe_input2": h.pow(2).sum(2).double().mean(1),
                "data_grad_u2": sq(u, G[k]).mean(1) if t else zero,
                "sign_probe2": sign[k][0],
                "sign_u2": sign[k][1],
                "sign_uq": sign[k][2],
            }
            if columns:
                values.update(zip(ADAM_DATA_QUANTITIES, columns[k].moments(h.double(), u.double())))
            for q, v in values.items():
                out[q][i, :, k] = v.numpy()  # broadcast from 1 seed under share_data
    return out
