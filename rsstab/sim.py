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
* **Reduced SGD form** (``method="auto"`` picks it when cheaper, ``"direct"`` never): from
  ``B₀ = 0``, SGD keeps ``A_t = A₀·X_t`` and ``B_t = Y_t·A₀ᵀ`` exactly, with d×d matrices X, Y,
  because ∇A = γ·Bᵀ·vᵀh and ∇B = γ·vᵀh·Aᵀ preserve those forms. The adapter is then
  ``γ·Y·(A₀ᵀA₀)·X``: r enters once, through ``K = A₀ᵀA₀``, and a step costs O(b·d² + d³) however
  large r is. This is the coherent sum of the theory made explicit (K ≈ (r/d)·I), and it makes
  ranks far above d cheap. Adam's element-wise normalisation breaks the form: Adam is direct.
* **Probes** at chosen steps, per layer and seed: ``moment1``, ``moment2``, ``moment4`` — the
  absolute m-th moments ``E|u|^m`` of the adapter output ``u = γ_r B A h`` on held-out inputs —
  ``forward`` (RMS of u), ``backward`` (RMS of ``γ_r Aᵀ Bᵀ v``, the gradient of the per-example
  held-out loss into the layer input through the adapter path only), ``grad_A`` and ``grad_B``
  (Frobenius norms of the training-batch gradients at that step) — for adapted layers only;
  per network: ``loss``
  (training batch), ``test_loss`` (held-out), and ``diverged_step`` for a seed whose loss became
  non-finite or grew a millionfold. Non-finite values are recorded, never raised.

Precision: ``float32`` by default. No quantity is a small difference of large numbers — the
adapter output and its gradients are computed on their own, apart from the base path — so
float32 measures slopes at γ = 1/r, r = 4096 as well as float64 does (the tests compare them).

Defaults (:data:`DEFAULTS`, used by ``rsstab simulate``): ranks 64…4096, width 16, depth 2,
10 steps, 8 seeds, batch 64, η = 1e-5 (SGD) / 3e-6 (Adam). The theory's laws are leading order in
η, so η is small enough that η·γ_r²·r (SGD) and η·γ_r·r (Adam) stay small at r = 4096 for γ = 1;
ranks well above the width let the coherent sum over rank (∝ r) dominate the incoherent one
(∝ √r), which matters most for Adam's sign-like updates. Larger η is the regime the depth sweep
explores on purpose (``simulations/depth_sweep.py``).

This module does not read the theory's exponents: it measures, and :mod:`rsstab.fit` fits.

>>> res = simulate_cell(SimConfig(rank=4, gamma=0.5, depth=2, width=8, steps=2, seeds=2, batch=4,
...                              lr=0.01, probe_batch=8))
>>> sorted({row["quantity"] for row in res.rows()})[:4]
['backward', 'forward', 'grad_A', 'grad_B']
>>> res.diverged_step
[-1, -1]
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from rsstab.errors import RsstabError
from rsstab.vocab import OPTIMIZER_NAMES, OPTIMIZERS, canonical_optimizer

__all__ = [
    "SimConfig",
    "CellResult",
    "DEFAULTS",
    "LAYER_QUANTITIES",
    "NETWORK_QUANTITIES",
    "simulate_cell",
    "draw_seed",
    "teacher_forward",
    "run_cell",
    "gamma_values",
    "make_configs",
]

LAYER_QUANTITIES = ("moment1", "moment2", "moment4", "forward", "backward", "grad_A", "grad_B")
NETWORK_QUANTITIES = ("loss", "test_loss")

#: Defaults of the command line and :func:`empirical_verdict`, per optimizer where they differ.
DEFAULTS: dict[str, Any] = {
    "ranks": (64, 256, 1024, 4096),
    "depth": 2,
    "width": 16,
    "steps": 10,
    "seeds": 8,
    "batch": 64,
    "lr": {"sgd": 1e-5, "adam": 3e-6},
}


@dataclass(frozen=True)
class SimConfig:
    """One simulation cell: one rank and one γ_r, all seeds batched together."""

    rank: int
    gamma: float
    optimizer: str = "sgd"
    depth: int = DEFAULTS["depth"]
    width: int = DEFAULTS["width"]
    steps: int = DEFAULTS["steps"]
    seeds: int = DEFAULTS["seeds"]
    batch: int = DEFAULTS["batch"]
    lr: float | None = None  # None: DEFAULTS["lr"][optimizer]
    seed: int = 0
    nonlinearity: str = "relu"
    teacher_rank: int = 4
    teacher_scale: float = 0.5
    probe_batch: int = 256
    probe_every: int = 0  # 0: probe at step 0 and after the last step only
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled, as AdamW: P ← (1 − lr·weight_decay)·P − lr·∇P (SGD too)
    dtype: str = "float32"
    method: str = "auto"  # "direct", "reduced" (SGD only, exact) or "auto" (the cheaper)
    divergence_factor: float = 1e6
    adapted_layers: tuple[int, ...] | None = None  # 0-based layers with an adapter; None: all
    a_init_scale: float = 1.0  # A₀ ~ N(0, a_init_scale²/d)

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise RsstabError(message)

        if self.adapted_layers is not None:
            layers = self.adapted_layers
            need(isinstance(layers, (list, tuple)), f"adapted_layers must be a list of layer indices or None, got {layers!r}")
            need(len(layers) > 0, "adapted_layers must name at least one layer (None: all layers)")
            need(all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in layers),
                 f"adapted_layers must hold integer layer indices, got {list(layers)!r}")
            need(len(set(int(i) for i in layers)) == len(layers), f"adapted_layers has repeated indices: {list(layers)!r}")
            depth_ok = isinstance(self.depth, (int, np.integer)) and self.depth >= 1
            need(not depth_ok or all(0 <= int(i) < self.depth for i in layers),
                 f"adapted_layers {list(layers)!r} out of range for depth {self.depth!r}: indices run 0…{int(self.depth) - 1 if depth_ok else '?'}")
            object.__setattr__(self, "adapted_layers", tuple(sorted(int(i) for i in layers)))
        s = self.a_init_scale
        need(isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool)
             and math.isfinite(float(s)) and float(s) > 0,
             f"a_init_scale must be a positive finite number, got {s!r}")
        object.__setattr__(self, "a_init_scale", float(s))

        for name in ("rank", "depth", "width", "seeds", "batch", "probe_batch", "teacher_rank"):
            v = getattr(self, name)
            need(isinstance(v, (int, np.integer)) and v >= 1, f"{name} must be a positive integer, got {v!r}")
        need(isinstance(self.steps, (int, np.integer)) and self.steps >= 0, f"steps must be ≥ 0, got {self.steps!r}")
        need(self.probe_every >= 0, f"probe_every must be ≥ 0, got {self.probe_every!r}")
        need(isinstance(self.optimizer, str) and canonical_optimizer(self.optimizer) in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZER_NAMES)}")
        object.__setattr__(self, "optimizer", canonical_optimizer(self.optimizer))  # "adamw" → "adam"
        need(self.nonlinearity in ("relu", "linear"), f"nonlinearity must be relu or linear, got {self.nonlinearity!r}")
        need(self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype!r}")
        need(self.method in ("auto", "direct", "reduced"), f"method must be auto, direct or reduced, got {self.method!r}")
        need(not (self.method == "reduced" and self.optimizer != "sgd"),
             "the reduced method is exact for SGD only: use method='direct' or 'auto' with adam")
        g = float(self.gamma)
        need(math.isfinite(g) and g > 0, f"γ_r must be a positive finite number at r={self.rank}, got {self.gamma!r}")
        if self.lr is not None:
            need(math.isfinite(self.lr) and self.lr > 0, f"learning rate must be positive, got {self.lr!r}")
        need(0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1, "Adam betas must lie in [0, 1)")
        need(self.eps >= 0 and self.weight_decay >= 0, "eps and weight_decay must be ≥ 0")

    @property
    def learning_rate(self) -> float:
        return float(self.lr) if self.lr is not None else float(DEFAULTS["lr"][self.optimizer])

    def resolved_method(self) -> str:
        """``direct`` or ``reduced``: ``auto`` takes the reduced form for SGD when its
        per-step cost (14·b·d² + 4·d³ per layer and seed) is below the direct one (12·b·d·r)."""
        if self.method != "auto":
            return self.method
        b, d, r = self.batch, self.width, self.rank
        cheaper = 14 * b * d * d + 4 * d**3 < 12 * b * d * r
        return "reduced" if self.optimizer == "sgd" and cheaper else "direct"

    def adapter_layers(self) -> tuple[int, ...]:
        """The 0-based indices of the layers that carry an adapter, ascending."""
        return tuple(range(int(self.depth))) if self.adapted_layers is None else tuple(self.adapted_layers)

    def probe_steps(self) -> list[int]:
        steps = {0, int(self.steps)}
        if self.probe_every:
            steps.update(range(0, int(self.steps) + 1, int(self.probe_every)))
        return sorted(steps)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        if self.adapted_layers is not None:
            d["adapted_layers"] = list(self.adapted_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SimConfig:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        if kw.get("adapted_layers") is not None:
            kw["adapted_layers"] = tuple(kw["adapted_layers"])
        return cls(**kw)


@dataclass
class CellResult:
    """Probes of one cell. ``data[q]`` has shape (n_probe_steps, seeds, depth) for a layer
    quantity (nan in the columns of layers without an adapter) and (n_probe_steps, seeds) for a
    network quantity."""

    config: SimConfig
    probe_steps: list[int]
    data: dict[str, np.ndarray]
    diverged_step: list[int]
    seconds: float
    flops: float
    tags: dict[str, Any] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows ``{rank, depth, layer, step, seed, quantity, value, …tags}``; ``layer`` is -1
        for network quantities; layer rows exist only for layers with an adapter;
        ``diverged_step`` rows appear only for seeds that diverged."""
        c = self.config
        layers = c.adapter_layers()
        base = {"rank": int(c.rank), "depth": int(c.depth), **self.tags}
        out: list[dict[str, Any]] = []
        for q, arr in self.data.items():
            for i, step in enumerate(self.probe_steps):
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


# --------------------------------------------------------------------------- initialisation


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


def _init(cfg: SimConfig) -> dict[str, torch.Tensor]:
    """Per-seed draws stacked along a leading seed axis, plus teacher targets ``y``/``yt``.
    Same seed → identical numbers."""
    per_seed = [draw_seed(cfg, s) for s in range(cfg.seeds)]
    out = {n: torch.stack([p[n] for p in per_seed]) for n in per_seed[0]}
    relu = cfg.nonlinearity == "relu"
    out["y"] = teacher_forward(out["T"], out["x"], relu)
    out["yt"] = teacher_forward(out["T"], out["xt"], relu)
    return out


# --------------------------------------------------------------------------- the batched model


class _Stack:
    """Batched adapter stack: every tensor has the seed axis first (after the layer axis).

    ``A``, ``B`` (and ``gA``, ``gB``) hold the adapted layers only, in ascending layer order:
    ``slot[layer]`` is the index of a layer's adapter there (absent: a plain base layer)."""

    def __init__(self, cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> None:
        dt = getattr(torch, cfg.dtype)
        self.cfg = cfg
        self.L = cfg.depth
        self.relu = cfg.nonlinearity == "relu"
        self.gamma = float(cfg.gamma)
        self.adapted = cfg.adapter_layers()
        self.slot = {layer: j for j, layer in enumerate(self.adapted)}
        self.lowest = self.adapted[0]  # back-propagation stops here: nothing below learns
        S, r, d = cfg.seeds, cfg.rank, cfg.width
        La = len(self.adapted)
        # Layer axis first so each layer is a contiguous (S, ·, ·) block for bmm.
        self.Wt = init["W"].transpose(0, 1).transpose(2, 3).contiguous().to(dt)  # (L,S,d,d) = Wᵀ
        A = init["A"] if La == self.L else init["A"][:, list(self.adapted)]
        # Cast and transpose in one pass (no float64 (La,S,r,d) intermediate: r·d-sized at large r).
        self.A = torch.empty(A.shape[1], A.shape[0], r, d, dtype=dt).copy_(A.transpose(0, 1))  # (La,S,r,d)
        self.B = torch.zeros(La, S, d, r, dtype=dt)
        # Per-layer scratch for raw gradients (without the factor γ): the fused training step
        # updates layer by layer while that layer's data is still in cache.
        self.sA = torch.empty(S, r, d, dtype=dt)
        self.sB = torch.empty(S, d, r, dtype=dt)
        self.gA = torch.empty(0)  # full γ-scaled gradients, filled by backward(grads=True) only
        self.gB = torch.empty(0)
        if cfg.optimizer == "adam":
            # One AdamW per layer on views of A and B (updated right after that layer's backward);
            # the gradients handed to it lack the factor γ, so eps becomes eps/γ (exact: Adam is
            # scale-invariant up to eps). The fused CPU kernel makes one pass over the state.
            self._views = [(self.A[j], self.B[j]) for j in range(La)]
            self._opts = [_adamw(list(v), cfg) for v in self._views]

    def forward(self, x: torch.Tensor, keep_u: bool = False) -> tuple[torch.Tensor, list[tuple]]:
        """Return the output and a per-layer cache (h_in, a, mask-or-None, u-or-None); ``a`` and
        ``u`` are None for a layer without an adapter."""
        cache = []
        h = x
        for layer in range(self.L):
            j = self.slot.get(layer)
            if j is None:
                a = u = None
                z = torch.bmm(h, self.Wt[layer])
            elif keep_u:
                a = torch.bmm(h, self.A[j].transpose(1, 2))  # (S,b,r)
                u = torch.bmm(a, self.B[j].transpose(1, 2)).mul_(self.gamma)
                z = torch.baddbmm(u, h, self.Wt[layer])
            else:
                a = torch.bmm(h, self.A[j].transpose(1, 2))  # (S,b,r)
                u = None
                z = torch.baddbmm(torch.bmm(h, self.Wt[layer]), a, self.B[j].transpose(1, 2), alpha=self.gamma)
            mask = None
            if self.relu and layer < self.L - 1:
                mask = z > 0
                z = z.mul_(mask)
            cache.append((h, a, mask, u))
            h = z
        return h, cache

    def backward(
        self, g: torch.Tensor, cache: list[tuple], *, grads: bool, adapter_input_grad: bool
    ) -> list[torch.Tensor]:
        """Back-propagate dL/d(output) = g. Fills self.gA/self.gB (adapted layers only, as A and
        B) when ``grads``; returns the per-layer gradient into the layer input through the
        adapter path when asked (an empty tensor for a layer without an adapter)."""
        through_adapter: list[torch.Tensor] = [torch.empty(0)] * self.L
        gam = self.gamma
        if grads and self.gA.shape != self.A.shape:
            self.gA, self.gB = torch.zeros_like(self.A), torch.zeros_like(self.B)
        for layer in reversed(range(self.lowest, self.L)):
            h, a, mask, _ = cache[layer]
            if mask is not None:
                g = g * mask
            j = self.slot.get(layer)
            if j is None:  # a plain base layer (never the lowest one)
                g = torch.bmm(g, self.Wt[layer].transpose(1, 2))
                continue
            gb = torch.bmm(g, self.B[j])  # (S,b,r) = (Bᵀ v)ᵀ
            if grads:
                torch.bmm(g.transpose(1, 2), a, out=self.gB[j])
                self.gB[j].mul_(gam)
                torch.bmm(gb.transpose(1, 2), h, out=self.gA[j])
                self.gA[j].mul_(gam)
            if layer > self.lowest or adapter_input_grad:
                ga = torch.bmm(gb, self.A[j]).mul_(gam)  # γ Aᵀ Bᵀ v, rows per example
                if adapter_input_grad:
                    through_adapter[layer] = ga
                if layer > self.lowest:
                    g = torch.baddbmm(ga, g, self.Wt[layer].transpose(1, 2))
        return through_adapter

    def train_step(
        self, g: torch.Tensor, cache: list[tuple], *, record: bool, update: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Back-propagate dL/d(output) = g and update each layer's A and B as soon as its
        gradients are known (they no longer feed the layers below). Returns per-(seed, layer)
        Frobenius norms of ∇A and ∇B when ``record``.

        Gradients are formed without the factor γ (``∇A = γ·sA``) and γ is folded into the update:
        SGD adds ``−η·γ·sA`` with one in-place ``baddbmm`` per matrix; Adam runs on the raw
        gradients with ``eps/γ`` (exactly the same update: Adam is scale-invariant up to eps).
        Adam's moments are element-wise, so the seeds stay independent."""
        cfg, gam = self.cfg, self.gamma
        step, keep = _sgd_step(cfg, gam)
        sgd_fused = cfg.optimizer == "sgd" and not record and update
        norms_a = np.full((cfg.seeds, self.L), np.nan) if record else None  # nan: no adapter
        norms_b = np.full((cfg.seeds, self.L), np.nan) if record else None
        for layer in reversed(range(self.lowest, self.L)):
            h, a, mask, _ = cache[layer]
            if mask is not None:
                g = g * mask
            j = self.slot.get(layer)
            if j is None:  # a plain base layer (never the lowest one)
                g = torch.bmm(g, self.Wt[layer].transpose(1, 2))
                continue
            gb = torch.bmm(g, self.B[j])  # (S,b,r) = (Bᵀ v)ᵀ
            g_below = None
            if layer > self.lowest:  # uses A and B before this layer's update
                g_below = torch.baddbmm(torch.bmm(g, self.Wt[layer].transpose(1, 2)), gb, self.A[j], alpha=gam)
            if sgd_fused:
                self.B[j].baddbmm_(g.transpose(1, 2), a, beta=keep, alpha=step)
                self.A[j].baddbmm_(gb.transpose(1, 2), h, beta=keep, alpha=step)
            else:
                torch.bmm(g.transpose(1, 2), a, out=self.sB)
                torch.bmm(gb.transpose(1, 2), h, out=self.sA)
                if record:
                    norms_a[:, layer] = gam * torch.linalg.vector_norm(self.sA, dim=(1, 2)).double().numpy()
                    norms_b[:, layer] = gam * torch.linalg.vector_norm(self.sB, dim=(1, 2)).double().numpy()
                if update:
                    self._update(j)
            if g_below is not None:
                g = g_below
        return (norms_a, norms_b) if record else None

    def _update(self, j: int) -> None:
        """Apply the raw gradients in the scratch buffers to adapter slot ``j``."""
        cfg = self.cfg
        if cfg.optimizer == "sgd":
            step, keep = _sgd_step(cfg, self.gamma)
            if keep != 1.0:
                self.A[j].mul_(keep)
                self.B[j].mul_(keep)
            self.A[j].add_(self.sA, alpha=step)
            self.B[j].add_(self.sB, alpha=step)
            return
        a, b = self._views[j]
        a.grad, b.grad = self.sA, self.sB
        self._opts[j].step()
        a.grad = b.grad = None


def _sgd_step(cfg: SimConfig, gamma: float) -> tuple[float, float]:
    """``(−η·γ, 1 − η·λ)``: SGD's update is ``P ← (1 − η·λ)·P − η·γ·s`` (``s`` the raw γ-less
    gradient; λ the decoupled weight decay, as AdamW's). A factor beyond the largest finite value
    of ``cfg.dtype`` becomes ±inf, so a huge learning rate makes the parameters non-finite and the
    run is recorded as diverged (torch refuses to convert such a scalar to float32)."""
    big = float(torch.finfo(getattr(torch, cfg.dtype)).max)

    def fit(v: float) -> float:
        return v if abs(v) <= big or math.isnan(v) else math.copysign(math.inf, v)

    lr = cfg.learning_rate
    return fit(-lr * gamma), fit(1.0 - lr * cfg.weight_decay)


def _adamw(params: list[torch.Tensor], cfg: SimConfig) -> torch.optim.Optimizer:
    """AdamW over raw (γ-less) gradients: eps/γ; fused kernel where this torch has one."""
    kw = dict(lr=cfg.learning_rate, betas=tuple(cfg.betas), eps=cfg.eps / float(cfg.gamma),
              weight_decay=cfg.weight_decay)
    try:
        return torch.optim.AdamW(params, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # older torch: no fused CPU kernel
        return torch.optim.AdamW(params, foreach=False, **kw)


class _ReducedStack:
    """Exact SGD dynamics in d×d coordinates: with B₀ = 0, SGD keeps ``A_t = A₀·X_t`` and
    ``B_t = Y_t·A₀ᵀ`` (∇A = γ·Bᵀ·G and ∇B = γ·G·Aᵀ with G = vᵀh stay in those forms), so the
    adapter is ``γ·Y·K·X`` with ``K = A₀ᵀA₀`` and a step costs O(b·d² + d³) whatever r is;
    r enters once, through K (O(r·d²)). Norms use ‖A₀·M‖_F² = tr(Mᵀ·K·M). Same interface as
    :class:`_Stack` (a layer without an adapter has no K, X, Y: ``slot`` maps layers to them);
    the tests check it against the direct form."""

    def __init__(self, cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> None:
        dt = getattr(torch, cfg.dtype)
        self.cfg = cfg
        self.L = cfg.depth
        self.relu = cfg.nonlinearity == "relu"
        self.gamma = float(cfg.gamma)
        self.adapted = cfg.adapter_layers()
        self.slot = {layer: j for j, layer in enumerate(self.adapted)}
        self.lowest = self.adapted[0]
        S, d = cfg.seeds, cfg.width
        La = len(self.adapted)
        self.Wt = init["W"].transpose(0, 1).transpose(2, 3).contiguous().to(dt)  # (L,S,d,d) = Wᵀ
        A0 = init["A"] if La == self.L else init["A"][:, list(self.adapted)]  # (S,La,r,d), float64
        self.K = (A0.transpose(2, 3) @ A0).transpose(0, 1).to(dt).contiguous()  # (La,S,d,d) = A₀ᵀA₀
        self.X = torch.eye(d, dtype=dt).expand(La, S, d, d).contiguous()
        self.Y = torch.zeros(La, S, d, d, dtype=dt)

    def forward(self, x: torch.Tensor, keep_u: bool = False) -> tuple[torch.Tensor, list[tuple]]:
        cache = []
        h = x
        for layer in range(self.L):
            j = self.slot.get(layer)
            if j is None:
                z = torch.bmm(h, self.Wt[layer])
                hx = u = None
            else:
                hx = torch.bmm(h, self.X[j].transpose(1, 2))  # h·Xᵀ
                hxk = torch.bmm(hx, self.K[j])  # (a·A₀) in d coordinates
                u = torch.bmm(hxk, self.Y[j].transpose(1, 2)).mul_(self.gamma)
                z = torch.baddbmm(u, h, self.Wt[layer]) if keep_u else u.baddbmm_(h, self.Wt[layer])
            mask = None
            if self.relu and layer < self.L - 1:
                mask = z > 0
                z = z.mul_(mask)
            cache.append((h, hx, mask, u if keep_u else None))
            h = z
        return h, cache

    def _through(self, gy: torch.Tensor, j: int) -> torch.Tensor:
        return torch.bmm(torch.bmm(gy, self.K[j]), self.X[j]).mul_(self.gamma)  # γ·Aᵀ·Bᵀ·v

    def backward(
        self, g: torch.Tensor, cache: list[tuple], *, grads: bool, adapter_input_grad: bool
    ) -> list[torch.Tensor]:
        if grads:
            raise RsstabError("the reduced form keeps no full gradients: use train_step")
        through: list[torch.Tensor] = [torch.empty(0)] * self.L
        for layer in reversed(range(self.lowest, self.L)):
            mask = cache[layer][2]
            if mask is not None:
                g = g * mask
            j = self.slot.get(layer)
            if j is None:  # a plain base layer (never the lowest one)
                g = torch.bmm(g, self.Wt[layer].transpose(1, 2))
                continue
            gy = torch.bmm(g, self.Y[j])
            ga = self._through(gy, j)
            if adapter_input_grad:
                through[layer] = ga
            if layer > self.lowest:
                g = torch.baddbmm(ga, g, self.Wt[layer].transpose(1, 2))
        return through

    def train_step(
        self, g: torch.Tensor, cache: list[tuple], *, record: bool, update: bool
    ) -> tuple[np.ndarray, np.ndarray] | None:
        cfg, gam = self.cfg, self.gamma
        step, keep = _sgd_step(cfg, gam)
        norms_a = np.full((cfg.seeds, self.L), np.nan) if record else None  # nan: no adapter
        norms_b = np.full((cfg.seeds, self.L), np.nan) if record else None
        for layer in reversed(range(self.lowest, self.L)):
            h, hx, mask, _ = cache[layer]
            if mask is not None:
                g = g * mask
            j = self.slot.get(layer)
            if j is None:  # a plain base layer (never the lowest one)
                g = torch.bmm(g, self.Wt[layer].transpose(1, 2))
                continue
            gy = torch.bmm(g, self.Y[j])
            g_below = None
            if layer > self.lowest:
                g_below = torch.baddbmm(self._through(gy, j), g, self.Wt[layer].transpose(1, 2))
            if record:
                ga = torch.bmm(gy.transpose(1, 2), h)  # ∇A = γ·A₀·ga
                gb = torch.bmm(g.transpose(1, 2), hx)  # ∇B = γ·gb·A₀ᵀ
                k = self.K[j].double()
                ga64, gb64 = ga.double(), gb.double()
                norms_a[:, layer] = gam * (torch.bmm(k, ga64) * ga64).sum(dim=(1, 2)).clamp_min(0).sqrt().numpy()
                norms_b[:, layer] = gam * (torch.bmm(gb64, k) * gb64).sum(dim=(1, 2)).clamp_min(0).sqrt().numpy()
            if update:
                # B = Y·A₀ᵀ and A = A₀·X: weight decay scales Y and X like B and A
                self.Y[j].baddbmm_(g.transpose(1, 2), hx, beta=keep, alpha=step)
                self.X[j].baddbmm_(gy.transpose(1, 2), h, beta=keep, alpha=step)
            if g_below is not None:
                g = g_below
        return (norms_a, norms_b) if record else None



def _flops(cfg: SimConfig, n_steps: int, n_probes: int) -> float:
    """Multiply-add FLOPs of the adapter and base matmuls (2 per multiply-add). A layer without
    an adapter costs its base matmuls only (2 b·d²: forward and backward; upper bound)."""
    S, L, r, d, b, pb = cfg.seeds, cfg.depth, cfg.rank, cfg.width, cfg.batch, cfg.probe_batch
    La = len(cfg.adapter_layers())
    plain = 2 * S * (L - La) * 2 * d * d  # per example, layers without an adapter
    if cfg.resolved_method() == "reduced":
        train = 2 * S * La * (b * 9 * d * d + 2 * d**3) + plain * b  # fwd 4 b·d²; bwd 5 b·d² + 2 d³
        probe = 2 * S * La * pb * 8 * d * d + plain * pb
        return float(train * n_steps + probe * n_probes + 2 * S * La * r * d * d)
    train = 2 * S * b * (La * 6 * r * d + L * 2 * d * d)  # fwd 2 adapter + 1 base; bwd 4 adapter + 1 base
    probe = 2 * S * pb * (La * 5 * r * d + L * 2 * d * d)
    return float(train * n_steps + probe * n_probes)


def simulate_cell(cfg: SimConfig, *, tags: Mapping[str, Any] | None = None) -> CellResult:
    """Train one cell (all seeds batched) and return its probes. Never raises on divergence."""
    t0 = time.perf_counter()
    dt = getattr(torch, cfg.dtype)
    init = _init(cfg)
    model = (_ReducedStack if cfg.resolved_method() == "reduced" else _Stack)(cfg, init)
    S, L, b = cfg.seeds, cfg.depth, cfg.batch
    x_all = init["x"].to(dt)
    y_all = init["y"].to(dt)
    xt, yt = init["xt"].to(dt), init["yt"].to(dt)
    probe_steps = cfg.probe_steps()
    probe_index = {s: i for i, s in enumerate(probe_steps)}
    P = len(probe_steps)
    data = {q: np.full((P, S, L), np.nan) for q in LAYER_QUANTITIES}
    data.update({q: np.full((P, S), np.nan) for q in NETWORK_QUANTITIES})
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
            x = x_all[:, t * b : (t + 1) * b]
            out, cache = model.forward(x)
            resid = out - y_all[:, t * b : (t + 1) * b]
            loss = 0.5 * resid.pow(2).sum(dim=(1, 2)).double().numpy() / b
            if first_loss is None:
                first_loss = loss.copy()
            bad = (~np.isfinite(loss)) | (loss > cfg.divergence_factor * np.maximum(first_loss, 1e-30))
            diverged[(diverged < 0) & bad] = t
            if probing:  # held-out probes first: the training step below updates in place
                i = probe_index[t]
                data["loss"][i] = loss
                _probe_heldout(model, xt, yt, data, i)
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


def _probe_heldout(model: _Stack | _ReducedStack, xt: torch.Tensor, yt: torch.Tensor, data: dict, i: int) -> None:
    out, cache = model.forward(xt, keep_u=True)
    resid = out - yt
    data["test_loss"][i] = 0.5 * resid.double().pow(2).sum(dim=(1, 2)).numpy() / xt.shape[1]
    # Per-example loss ½‖f(x)−y‖²: its gradient w.r.t. the output is the residual itself.
    through = model.backward(resid, cache, grads=False, adapter_input_grad=True)
    for layer in model.adapted:
        au = cache[layer][3].double().abs()
        data["moment1"][i, :, layer] = au.mean(dim=(1, 2)).numpy()
        m2 = au.pow(2).mean(dim=(1, 2))
        data["moment2"][i, :, layer] = m2.numpy()
        data["moment4"][i, :, layer] = au.pow(4).mean(dim=(1, 2)).numpy()
        data["forward"][i, :, layer] = m2.sqrt().numpy()
        data["backward"][i, :, layer] = through[layer].double().pow(2).mean(dim=(1, 2)).sqrt().numpy()


# --------------------------------------------------------------------------- sweeps of cells


def gamma_values(
    schedule: Any, ranks: Iterable[int], constants: Mapping[str, float] | None = None
) -> list[float]:
    """γ_r at each rank for a Schedule, a callable ``f(r)``, a text expression or a number.

    ``constants`` gives values to a schedule's named constants (default 1).

    >>> gamma_values("alpha/sqrt(r)", [4, 16], {"alpha": 8})
    [4.0, 2.0]
    """
    return _rank_values(schedule, ranks, constants, "γ_r")


def _rank_values(
    schedule: Any, ranks: Iterable[int], constants: Mapping[str, float] | None, name: str
) -> list[float]:
    """Positive finite values of a per-rank function (see :func:`gamma_values`); ``name`` names it
    in errors."""
    if isinstance(schedule, str):
        from rsstab.schedule import as_schedule

        schedule = as_schedule(schedule)
    out = []
    for r in ranks:
        if isinstance(schedule, (int, float)):
            g = float(schedule)
        elif constants and hasattr(schedule, "value"):
            g = float(schedule.value(r, dict(constants)))
        elif callable(schedule):
            try:
                g = float(schedule(r))
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise RsstabError(f"the schedule failed at r={r}: {exc}") from None
        else:
            raise RsstabError(f"a schedule is text, a callable or a number, got {type(schedule).__name__}")
        if not (math.isfinite(g) and g > 0):
            raise RsstabError(f"{name} must be positive and finite, got {g!r} at r={r}")
        out.append(g)
    return out


def make_configs(
    schedule: Any,
    ranks: Sequence[int],
    *,
    label: str | None = None,
    constants: Mapping[str, float] | None = None,
    a_init_scale: Any = 1.0,
    **options: Any,
) -> list[dict[str, Any]]:
    """JSON-serialisable configs (one per rank) for :func:`run_cell` / :func:`rsstab.sweep.run_sweep`.

    ``label`` names the schedule in the rows (default: its text); other keyword arguments are
    :class:`SimConfig` fields (e.g. ``adapted_layers=(0, 2)``). A config key ``tags`` (a dict) is
    copied into every row. ``a_init_scale`` is a number, or a function of the rank like the
    schedule (text such as ``"1/sqrt(r)"``, a callable or a Schedule; ``constants`` apply to it
    too), evaluated per rank: each config stores its float.

    >>> [c["a_init_scale"] for c in make_configs("alpha/r", [4, 16], a_init_scale="1/sqrt(r)")]
    [0.5, 0.25]
    """
    gammas = gamma_values(schedule, ranks, constants)
    if isinstance(a_init_scale, (int, float, np.integer, np.floating)) and not isinstance(a_init_scale, bool):
        scales = [float(a_init_scale)] * len(gammas)  # SimConfig validates it
    else:
        scales = _rank_values(a_init_scale, ranks, constants, "a_init_scale")
    if label is None:
        label = getattr(schedule, "text", None) or (schedule if isinstance(schedule, str) else repr(schedule))
    tags = dict(options.pop("tags", {}) or {})
    configs = []
    for r, g, a_scale in zip(ranks, gammas, scales):
        cfg = SimConfig(rank=int(r), gamma=g, a_init_scale=a_scale, **options)  # validates early
        d = cfg.to_dict()
        d["tags"] = {"schedule": label, "optimizer": cfg.optimizer, "gamma": g, **tags}
        configs.append(d)
    return configs


def run_cell(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sweep task: one config dict (from :func:`make_configs`) → tidy rows. Picklable."""
    cfg = SimConfig.from_dict(config)
    res = simulate_cell(cfg, tags=config.get("tags"))
    return res.rows()
