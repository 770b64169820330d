"""Monte Carlo simulator: batched LoRA adapter stacks trained on a synthetic task, with probes.

The model (one *cell* = one rank, one γ_r, all seeds at once):

* **Base.** A stack of ``depth`` frozen ``width × width`` layers. Each base matrix is
  ``gain · Q`` with ``Q`` a Haar-random orthogonal matrix. With ``nonlinearity="relu"`` (default)
  the gain is √2 and ReLU follows every layer but the last: for a symmetric pre-activation
  ``E|relu(z)|² = |z|²/2``, so the √2 gain makes the expected squared norm of the activations
  (and of the back-propagated gradients, which ReLU also halves) exactly preserved from layer to
  layer — activations stay Θ(1) per entry at any depth. ``nonlinearity="linear"`` uses gain 1:
  an exact isometry.
* **Adapters.** Layer ℓ computes ``z = W_ℓ h + γ_r B_ℓ A_ℓ h`` with ``A_ℓ ∈ R^{r×d}`` iid
  ``N(0, s²/d)`` (variance independent of r; ``s = a_init_scale``, default 1) and ``B_ℓ = 0``, as
  in LoRA. ``adapted_layers`` (default: all) chooses which layers carry an adapter; the others
  are plain frozen base layers (the analogue of adapting a subset of modules, e.g. attention only).
* **Task.** A teacher with the same base plus a planted rank-``teacher_rank`` perturbation
  ``Δ_ℓ = teacher_scale · U Vᵀ / √(k·d)`` in every layer; inputs ``x ~ N(0, I_d)``; loss
  ``½‖f(x) − y‖²`` averaged over the batch. A fresh batch every step, and a fixed held-out set.
* **Training.** SGD or Adam(W) on A and B, implemented in place on batched tensors. Gradients
  are computed analytically (manual back-propagation through the stack, checked against autograd
  and ``torch.optim`` in the tests, and against a PEFT model in ``benchmarks/``), so every seed is
  one slice of a batched ``torch.bmm``: no Python loop over seeds. Each layer is updated as soon
  as its gradients are known (``baddbmm_`` in place for SGD), while its data is still in cache.
* **Reduced SGD form** (``method="auto"`` picks it when cheaper — r > d —, ``"direct"`` never):
  from ``B₀ = 0``, SGD keeps ``A_t = A₀·X_t`` and ``B_t = Y_t·A₀ᵀ`` exactly, with d×d matrices
  X, Y, because ∇A = γ·Bᵀ·vᵀh and ∇B = γ·vᵀh·Aᵀ preserve those forms. With ``A₀ = Q·R`` (R d×d,
  from a Cholesky of ``K = A₀ᵀA₀`` or a QR) the rank-d adapter started from R records exactly the
  same numbers (up to rounding), so the cell runs the direct form at rank d: r enters once,
  through K, and a step costs O(b·d²) however large r is. This is the coherent sum of the theory
  made explicit (K ≈ (r/d)·I), and it makes ranks far above d cheap. Adam's element-wise
  normalisation breaks the form: Adam is direct.
* **Cost.** A rank grid shares its draws: only A depends on the rank (it is drawn last), so the
  base, teacher, data and targets of one cell are kept for the next cell with the same seed and
  shapes, which draws only its A — the same numbers (:func:`~rsstab.sim.draws.draw_cell`). Narrow
  layers (d < 2b) multiply in the Gram order, through ``M = B·A`` and ``G = gᵀ·h`` (d×d):
  3·r·d² instead of 6·b·d·r per layer, seed and step (:func:`~rsstab.sim.stack.gram_order`).
  Opt-in ``bf16=True``: the adapter products take bfloat16 operands (float32 accumulation;
  parameters, optimizer state, base path and reductions stay float32), several times faster
  where the CPU multiplies bfloat16 natively (:func:`~rsstab.sim.stack.native_bf16`) and slower
  where torch emulates it; slopes agree with float32 to ≲ 0.02 (tested). The seeds' draws run on
  torch's thread count (each seed has its own generator: the same numbers in any order); Adam
  calls torch's fused AdamW kernel directly, once per layer and step
  (:class:`~rsstab.sim.stack.LayerAdamW`).
* **Rank for free** (``gram="wishart"``, SGD only; ``rsstab simulate --gram wishart``; the default
  ``gram="auto"`` takes it where the explicit A₀'s float64 draws would exceed 2 GiB —
  :meth:`SimConfig.resolved_gram`, a fixed budget so a config means the same numbers on every
  machine —, and ``rsstab simulate`` says so in its notes. A cell that would not fit in the
  memory available is refused before it starts, in one line: :func:`~rsstab.sim.cells.check_memory`):
  the SGD dynamics and every probe depend on A₀ only through ``K = A₀ᵀA₀`` (equivalently through
  the R of ``A₀ = Q·R``: a rank-d adapter started from R records the same numbers as the rank-r
  one started from A₀). For Gaussian A₀ and r > d, K ~ Wishart_d(r, σ²I), so the d×d Bartlett
  factor R (χ diagonal, N(0, 1) above it) is drawn instead of A₀ and the cell runs the direct form
  at rank d: O(d²) draws and O(b·d²) per step whatever r (r = 2^30 at width 16 in a second). Exact
  in distribution — not number by number: A₀'s draw is replaced, the base, teacher and data are
  the same. It holds for any A₀ whose rows are iid N(0, σ²I) (the simulator's init at any
  ``a_init_scale``); for other entry laws (e.g. PEFT's Kaiming-uniform) K's mean r·σ²·I and
  off-diagonal variance r·σ⁴ agree but its diagonal variance is r·(E a⁴ − σ⁴) instead of 2r·σ⁴
  (uniform: 0.8·r·σ⁴), so this is an approximation there. For r ≤ d A₀ itself is drawn (identical
  rows to ``gram="explicit"``).
* **Probes** at chosen steps, per layer and seed: ``moment1``, ``moment2``, ``moment4`` — the
  absolute m-th moments ``E|u|^m`` of the adapter output ``u = γ_r B A h`` on held-out inputs —
  ``forward`` (RMS of u), ``backward`` (RMS of ``γ_r Aᵀ Bᵀ v``, the gradient of the per-example
  held-out loss into the layer input through the adapter path only), ``grad_A`` and ``grad_B``
  (Frobenius norms of the training-batch gradients at that step) — for adapted layers only;
  per network: ``loss``
  (training batch), ``test_loss`` (held-out), and ``diverged_step`` for a seed whose loss became
  non-finite or grew a millionfold. Non-finite values are recorded, never raised.
* **Finite width** (:mod:`~rsstab.sim.finite`; all off by default, and then every number is as
  before). ``share_data``: every seed takes seed 0's base, teacher and data and keeps its own A,
  so the seeds are independent draws of A at fixed data, and per cell and adapted layer (rows with
  ``seed = -1``) ``forward_coherent`` / ``forward_incoherent`` (with ``_se``) split the learned
  change across the draws into the RMS of its mean over A and of its fluctuation.
  ``fixed_output_grad``: ``backward_fixed``, the RMS of ``γ·u′·B·A`` for a fixed N(0, 1) output
  gradient U (probe_batch × width, per seed, per cell with ``share_data``) back-propagated through
  the frozen base to the layer's output (Definition 3.1's probe; ``backward`` stays the held-out
  residual's, through the current network), split like ``forward`` with
  ``share_data``. ``data_stats``: the A-independent statistics of the data that the exact
  finite-(r, d) laws use (``data_grad_fro2``, ``data_grad_probe2``, ``probe_input2``,
  ``data_grad_u2``, ``sign_probe2``, ``sign_u2``, ``sign_uq``; with Adam and fresh batches also
  the reference-column moments ``adam_probe_coh2``, ``adam_probe_m2``, ``adam_u_coh2``,
  ``adam_u_m2``), computed on the frozen base.
  ``fixed_batch``: the first training batch at every step (a constant data gradient to first
  order in η: n Adam steps are n sign steps, SGD's summed data gradient is n·G₀).

Precision: ``float32`` by default. No quantity is a small difference of large numbers — the
adapter output and its gradients are computed on their own, apart from the base path — so
float32 measures slopes at γ = 1/r, r = 4096 as well as float64 does (the tests compare them).

Defaults (:data:`DEFAULTS`, used by ``rsstab simulate``): ranks 64…4096, width 16, depth 2,
10 steps, 8 seeds, batch 64, η = 1e-5 (SGD) / 3e-6 (Adam). The theory's laws are leading order in
η, so η is small enough that η·γ_r²·r (SGD) and η·γ_r·r (Adam) stay small at r = 4096 for γ = 1;
ranks well above the width let the coherent sum over rank (∝ r) dominate the incoherent one
(∝ √r), which matters most for Adam's sign-like updates. Larger η, beyond the small-η range, is
what the depth sweep explores on purpose (``simulations/depth_sweep.py``).

This package does not read the theory's exponents (it imports neither :mod:`rsstab.theory` nor
:mod:`rsstab.measure.fit`): it measures, and :mod:`rsstab.measure.fit` fits.

Modules: :mod:`~rsstab.sim.config` (:class:`SimConfig`, :data:`DEFAULTS`, the probe names; standard
library only), :mod:`~rsstab.sim.draws` (seeds, base, teacher, data), :mod:`~rsstab.sim.stack` (the
direct and reduced forms on one shared layer walk), :mod:`~rsstab.sim.finite` (the split across A
draws, the data statistics) and :mod:`~rsstab.sim.cells` (one cell, its rows, the sweep task
:func:`run_cell`). The names below load lazily: ``import rsstab.sim.config`` imports
neither torch nor numpy.

>>> from rsstab.sim import SimConfig, simulate_cell
>>> res = simulate_cell(SimConfig(rank=4, gamma=0.5, depth=2, width=8, steps=2, seeds=2, batch=4,
...                              lr=0.01, probe_batch=8))
>>> sorted({row["quantity"] for row in res.rows()})[:4]
['backward', 'forward', 'grad_A', 'grad_B']
>>> res.diverged_step
[-1, -1]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsstab._lazy import lazy_attributes

if TYPE_CHECKING:  # pragma: no cover
    from rsstab.sim.cells import CellResult, run_cell, simulate_cell
    from rsstab.sim.grid import gamma_values, make_configs
    from rsstab.sim.config import (
        ADAM_DATA_QUANTITIES,
        DATA_QUANTITIES,
        DEFAULTS,
        FIXED_GRAD_QUANTITIES,
        LAYER_QUANTITIES,
        NETWORK_QUANTITIES,
        SPLIT_QUANTITIES,
        SimConfig,
    )
    from rsstab.sim.draws import draw_seed, teacher_forward

__all__ = [
    "SimConfig",
    "CellResult",
    "DEFAULTS",
    "LAYER_QUANTITIES",
    "NETWORK_QUANTITIES",
    "FIXED_GRAD_QUANTITIES",
    "DATA_QUANTITIES",
    "ADAM_DATA_QUANTITIES",
    "SPLIT_QUANTITIES",
    "simulate_cell",
    "draw_seed",
    "teacher_forward",
    "run_cell",
    "gamma_values",
    "make_configs",
]

_LAZY = {
    **dict.fromkeys(("SimConfig", "DEFAULTS", "LAYER_QUANTITIES", "NETWORK_QUANTITIES", "FIXED_GRAD_QUANTITIES",
                     "DATA_QUANTITIES", "ADAM_DATA_QUANTITIES", "SPLIT_QUANTITIES"), "rsstab.sim.config"),
    **dict.fromkeys(("draw_seed", "teacher_forward"), "rsstab.sim.draws"),
    **dict.fromkeys(("CellResult", "simulate_cell", "run_cell"), "rsstab.sim.cells"),
    **dict.fromkeys(("gamma_values", "make_configs"), "rsstab.sim.grid"),
}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
