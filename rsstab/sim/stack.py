"""The batched adapter stacks: one walk through the layers, two ways to hold the adapters.

Every tensor has the layer (or adapter-slot) axis first, then the seed axis, so that each layer is
one contiguous ``(seeds, ·, ·)`` block for ``torch.bmm``. ``slot[layer]`` is the index of a layer's
adapter (absent: a plain frozen base layer).

:class:`Stack` holds what both forms share: the frozen base, the forward walk, the backward walk
(ReLU masks, plain base layers), the held-out probes, the recording of gradient norms and the
in-place SGD update. The adapter of slot ``j`` is held as two trained factors ``down`` and
``up`` — the adapter output is ``u = γ·h·downᵀ·upᵀ``:

* :class:`DirectStack`: ``down`` = A (r×d), ``up`` = B (d×r); SGD or AdamW.
* :class:`ReducedStack`: the direct form at rank d from ``down`` = R, the d×d factor of
  A₀ = Q·R (A = Q·down, B = up·Qᵀ): exact for SGD from B₀ = 0 when r > d (see :mod:`rsstab.sim`).

In both, with ``a = h·downᵀ`` (cached by the forward walk), ``g`` the gradient at the layer's output
and ``gy = g·up``, the raw (γ-less) gradients of the factors are ``gᵀ·a`` (up) and ``gyᵀ·h`` (down),
so one SGD update serves both forms.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping

import numpy as np
import torch

from rsstab.sim.config import SPLIT_QUANTITIES, SimConfig
from rsstab.sim.finite import seed_split

__all__ = ["Stack", "DirectStack", "ReducedStack", "LayerAdamW", "build_stack", "gram_order", "native_bf16"]

#: A layer's cache entry: (input h, a = h·downᵀ, ReLU output, adapter output u); a and u are None
#: for a plain base layer, the ReLU output (the next layer's input, which is > 0 exactly where the
#: pre-activation is) for the top layer or a linear stack, u unless asked for.
Cache = list[tuple]
Norms = tuple[np.ndarray, np.ndarray]


def _sgd_step(cfg: SimConfig, gamma: float, lr: float | None = None) -> tuple[float, float]:
    """``(−η·γ, 1 − η·λ)``: SGD's update is ``P ← (1 − η·λ)·P − η·γ·s`` (``s`` the raw γ-less
    gradient; λ the decoupled weight decay, as AdamW's); η is ``lr`` (default: A's, the config's
    learning rate). A factor beyond the largest finite value
    of ``cfg.dtype`` becomes ±inf, so a huge learning rate makes the parameters non-finite and the
    run is recorded as diverged (torch refuses to convert such a scalar to float32)."""
    big = float(torch.finfo(getattr(torch, cfg.dtype)).max)

    def fit(v: float) -> float:
        return v if abs(v) <= big or math.isnan(v) else math.copysign(math.inf, v)

    lr = cfg.learning_rate if lr is None else lr
    return fit(-lr * gamma), fit(1.0 - lr * cfg.weight_decay)


def gram_order(cfg: SimConfig) -> bool:
    """Whether a cell multiplies its adapters in the Gram order: with ``M = B·A`` (d×d, r·d²) the
    adapter output is ``h·Mᵀ``, the adapter-path input gradient ``g·M`` and, with ``G = gᵀ·h``,
    the raw gradients are ``Bᵀ·G`` and ``G·Aᵀ`` — 3·r·d² + 3·b·d² multiply-adds per layer, seed
    and step instead of the b×r products' 6·b·d·r (the same sums in another order, exact up to
    rounding). Cheaper when d < 2b (narrow layers: width 16 with batch 64 does 1/8 of the work),
    whatever r; r is the rank the stack holds (d in the reduced form). Not with ``bf16``."""
    r, d, b = cfg.effective_rank(), int(cfg.width), int(cfg.batch)
    if cfg.resolved_method() == "reduced":
        r = min(r, d)
    return not cfg.bf16 and 3 * r * d * d + 3 * b * d * d < 6 * b * d * r


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles), where ``bf16``
    products run faster than float32; elsewhere torch emulates them and they run slower (about
    2× slower than float32 on an AVX512 Ice Lake without BF16, measured). False when this torch
    cannot tell."""
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


class LayerAdamW:
    """AdamW on one adapter slot's ``[A, B]`` over their raw (γ-less) gradients: eps/γ, A at η_A
    and B at η_B (:attr:`SimConfig.learning_rates`), decoupled weight decay.

    It runs torch's fused CPU kernel (``torch._fused_adamw_``) itself, on state it holds —
    exactly what ``torch.optim.AdamW(fused=True)`` runs (the same numbers, tested), without the
    optimizer's per-step Python bookkeeping (≈ 0.25 ms per step and layer: a tenth of a rank-128
    cell) and in one kernel call when η_A = η_B. Where this torch has no fused kernel it falls
    back to ``torch.optim.AdamW``."""

    def __init__(self, params: list[torch.Tensor], cfg: SimConfig) -> None:
        lr_a, lr_b = cfg.learning_rates
        beta1, beta2 = (float(b) for b in cfg.betas)
        self.params = params
        self.kw = dict(beta1=beta1, beta2=beta2, weight_decay=float(cfg.weight_decay),
                       eps=cfg.eps / float(cfg.gamma), amsgrad=False, maximize=False)
        self.fused = getattr(torch, "_fused_adamw_", None)
        if self.fused is None:  # older torch: the optimizer itself
            groups = [{"params": params[:1], "lr": lr_a}, {"params": params[1:], "lr": lr_b}]
            self.opt = torch.optim.AdamW(groups, lr=lr_a, betas=(beta1, beta2), eps=self.kw["eps"],
                                         weight_decay=self.kw["weight_decay"], foreach=False)
            return
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in params]
        # One kernel call per learning rate: both factors at once when η_A = η_B.
        slots = [[0, 1]] if lr_a == lr_b else [[0], [1]]
        self.calls = [(idx, [[t[i] for i in idx] for t in (params, m, v, self.steps)], (lr_a, lr_b)[idx[0]])
                      for idx in slots]

    def step(self, grads: list[torch.Tensor]) -> None:
        """One AdamW step of the parameters with these gradients."""
        if self.fused is None:
            for p, g in zip(self.params, grads):
                p.grad = g
            self.opt.step()
            for p in self.params:
                p.grad = None
            return
        torch._foreach_add_(self.steps, 1)
        for idx, (ps, m, v, steps), lr in self.calls:
            self.fused(ps, [grads[i] for i in idx], m, v, [], steps, lr=lr, **self.kw)


class Stack(ABC):
    """What the two forms share; a subclass sets ``down`` and ``up`` (one slot per adapted layer,
    ascending), implements :meth:`_learn` and may override :meth:`_layer_output` and
    :meth:`_input_grad`."""

    down: torch.Tensor
    up: torch.Tensor
    #: The factors as the adapter products take them: ``down`` and ``up`` themselves, or their
    #: bfloat16 copies with ``cfg.bf16`` (refreshed after each update).
    down_mm: torch.Tensor
    up_mm: torch.Tensor

    def __init__(self, cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> None:
        self.cfg = cfg
        self.dtype = getattr(torch, cfg.dtype)
        self.bf16 = cfg.bf16
        self.mm_dtype = torch.bfloat16 if cfg.bf16 else self.dtype  # operands of the adapter products
        self.gram = False  # the Gram order (see gram_order); a subclass decides
        self.L = cfg.depth
        self.relu = cfg.nonlinearity == "relu"
        self.gamma = float(cfg.gamma)
        self.adapted = cfg.adapter_layers()
        self.slot = {layer: j for j, layer in enumerate(self.adapted)}
        self.lowest = self.adapted[0]  # back-propagation stops here: nothing below learns
        self.sgd = _sgd_step(cfg, self.gamma)  # (step, keep) of the SGD update of A (down)
        self.sgd_up = _sgd_step(cfg, self.gamma, cfg.learning_rates[1])  # of B (up): η_B = η·lr_ratio
        self.Wt = init["W"].transpose(0, 1).transpose(2, 3).contiguous().to(self.dtype)  # (L,S,d,d) = Wᵀ

    def _lo(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` as an operand of an adapter product: itself, or its bfloat16 copy with ``bf16``."""
        return t if t.dtype == self.mm_dtype else t.to(self.mm_dtype)

    def _initial_A(self, init: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """A₀ of the adapted layers, (S, La, r, d) in float64."""
        return init["A"] if len(self.adapted) == self.L else init["A"][:, list(self.adapted)]

    # ----------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, keep_u: bool = False, *, vanish: bool = False) -> tuple[torch.Tensor, Cache]:
        """The output for inputs ``x`` (S, n, d) and a per-layer cache (see :data:`Cache`). With
        ``vanish`` (B = 0, :meth:`_adapters_vanish`) an adapted layer adds its base product onto
        u = 0, as the full walk adds it onto its u, and forms no b×r product: the cache holds u = 0
        and no ``a``."""
        cache = []
        h = x
        for layer in range(self.L):
            j = self.slot.get(layer)
            hx = h  # the cached input: the operand of ∇down's product (bfloat16 with bf16)
            if j is None:
                a = u = None
                z = torch.bmm(h, self.Wt[layer])
            elif vanish:
                a, u = None, torch.zeros_like(h)
                z = torch.baddbmm(u, h, self.Wt[layer])
            else:
                hx = self._lo(h)
                a = self._adapter_a(hx, j)
                z, u = self._layer_output(h, a, layer, j, keep_u)
            act = None
            if self.relu and layer < self.L - 1:
                act = z = z.relu_()  # in place; the backward masks with act > 0 (no bool mask, no cast)
            cache.append((hx, a, act, u))
            h = z
        return h, cache

    def _adapter_a(self, hx: torch.Tensor, j: int) -> torch.Tensor:
        """The cached ``a`` of slot ``j`` for inputs ``hx``: ``h·downᵀ``, or, in the Gram order
        (``self.gram``), the d×d adapter ``M = up·down`` itself (no b×r product at all)."""
        if self.gram:
            return torch.bmm(self.up[j], self.down[j])
        return torch.bmm(hx, self.down_mm[j].transpose(1, 2))

    def _adapter_product(self, a: torch.Tensor, j: int) -> torch.Tensor:
        """``a·upᵀ`` (S, n, d), γ-less, as the transposed view of ``up·aᵀ``: the same sums, but
        multiplying the stored ``up`` (d×r) as it lies instead of through a transposed view, whose
        product with ``a`` ran 15–20 % slower at r ≫ b (measured in place on x86 with MKL)."""
        return torch.bmm(self.up_mm[j], a.transpose(1, 2)).transpose(1, 2)

    def _gy(self, g: torch.Tensor, j: int) -> torch.Tensor | None:
        """``gy = g·up`` of slot ``j`` (None in the Gram order, which never forms it)."""
        return None if self.gram else torch.bmm(self._lo(g), self.up_mm[j])

    def _layer_output(
        self, h: torch.Tensor, a: torch.Tensor, layer: int, j: int, keep_u: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(z, u)`` of an adapted layer: ``z = h·Wᵀ + u`` with ``u = γ·a·upᵀ`` (``γ·h·Mᵀ`` in
        the Gram order); u only when ``keep_u``."""
        if self.gram:
            u = torch.bmm(h, a.transpose(1, 2)).mul_(self.gamma)
            return (torch.baddbmm(u, h, self.Wt[layer]), u) if keep_u else (u.baddbmm_(h, self.Wt[layer]), None)
        u = self._adapter_product(a, j).to(self.dtype).mul_(self.gamma)
        if keep_u:
            return torch.baddbmm(u, h, self.Wt[layer]), u
        return u.baddbmm_(h, self.Wt[layer]), None

    # ----------------------------------------------------------------------- backward

    def _walk_back(
        self,
        g: torch.Tensor,
        cache: Cache,
        adapted_layer: Callable[..., torch.Tensor | None],
    ) -> None:
        """Back-propagate ``g`` = dL/d(output) from the top down to the lowest adapted layer:
        masks and plain base layers here; at an adapted layer,
        ``adapted_layer(layer, j, g, gy, h, a)`` (``gy = g·up``, None in the Gram order) returns
        the gradient into the layer's input, or None at the lowest adapted layer."""
        for layer in reversed(range(self.lowest, self.L)):
            h, a, act, _ = cache[layer]
            if act is not None:  # ReLU's backward: g where the output is > 0, else 0 (one kernel)
                g = torch.ops.aten.threshold_backward(g, act, 0)
            j = self.slot.get(layer)
            if j is None:  # a plain base layer (never the lowest one)
                g = torch.bmm(g, self.Wt[layer].transpose(1, 2))
                continue
            g_in = adapted_layer(layer, j, g, self._gy(g, j), h, a)
            if g_in is None:
                break
            g = g_in

    def _through(self, v: torch.Tensor, gy: torch.Tensor | None, a: torch.Tensor, j: int) -> torch.Tensor:
        """``γ·v·B·A`` (rows per example): the gradient into the layer input through the adapter
        path only, from ``gy = v·up`` (in the Gram order from v and the cached ``a`` = M)."""
        if self.gram:
            return torch.bmm(v, a).mul_(self.gamma)
        return torch.bmm(gy, self.down_mm[j]).to(self.dtype).mul_(self.gamma)  # type: ignore[arg-type]  # gy: not Gram

    def _input_grad(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor | None, a: torch.Tensor) -> torch.Tensor:
        """The gradient into an adapted layer's input: base path plus adapter path."""
        return torch.baddbmm(self._through(g, gy, a, j), g, self.Wt[layer].transpose(1, 2))

    def backward(self, g: torch.Tensor, cache: Cache) -> list[torch.Tensor]:
        """Back-propagate dL/d(output) = ``g`` without learning; return, per layer, the gradient
        into the layer input through the adapter path (an empty tensor for a layer without one)."""
        through: list[torch.Tensor] = [torch.empty(0)] * self.L

        def adapted_layer(layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor,
                          a: torch.Tensor) -> torch.Tensor | None:
            through[layer] = ga = self._through(g, gy, a, j)
            return torch.baddbmm(ga, g, self.Wt[layer].transpose(1, 2)) if layer > self.lowest else None

        self._walk_back(g, cache, adapted_layer)
        return through

    # ----------------------------------------------------------------------- training

    def _raw_grads(
        self, j: int, g: torch.Tensor, gy: torch.Tensor | None, h: torch.Tensor, a: torch.Tensor,
        out: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw (γ-less) gradients ``(gyᵀ·h, gᵀ·a)`` of ``down`` and ``up`` of slot ``j``, into
        ``out`` when given (with ``bf16``: bfloat16 products, copied into ``out``'s float32). In
        the Gram order, with ``G = gᵀ·h`` (d×d): ``upᵀ·G`` and ``G·downᵀ``."""
        if self.bf16 and not self.gram:
            gx = self._lo(g)
            grads = (torch.bmm(gy.transpose(1, 2), h), torch.bmm(gx.transpose(1, 2), a))  # type: ignore[union-attr]  # not Gram
            return grads if out is None else (out[0].copy_(grads[0]), out[1].copy_(grads[1]))
        down_out, up_out = out if out is not None else (None, None)
        if self.gram:
            G = torch.bmm(g.transpose(1, 2), h)
            return (torch.bmm(self.up[j].transpose(1, 2), G, out=down_out),
                    torch.bmm(G, self.down[j].transpose(1, 2), out=up_out))
        return (torch.bmm(gy.transpose(1, 2), h, out=down_out),  # type: ignore[union-attr]  # gy: not Gram
                torch.bmm(g.transpose(1, 2), a, out=up_out))

    def _sgd_update(self, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor, a: torch.Tensor) -> None:
        """SGD on slot ``j`` in place, one ``baddbmm_`` per factor: ``P ← keep·P + step·raw``
        (``up`` at B's learning rate, ``down`` at A's)."""
        step_up, keep_up = self.sgd_up
        self.up[j].baddbmm_(g.transpose(1, 2), a, beta=keep_up, alpha=step_up)
        step, keep = self.sgd
        self.down[j].baddbmm_(gy.transpose(1, 2), h, beta=keep, alpha=step)

    @abstractmethod
    def _learn(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor, a: torch.Tensor,
               norms: Norms | None, update: bool) -> None:
        """Record the Frobenius norms of ∇A, ∇B of ``layer`` into ``norms`` (when given) and update
        slot ``j`` (when ``update``)."""

    def train_step(self, g: torch.Tensor, cache: Cache, *, record: bool, update: bool) -> Norms | None:
        """Back-propagate dL/d(output) = ``g`` and update each layer's adapter as soon as its
        gradients are known (they no longer feed the layers below, whose gradient is formed first,
        from the adapter before its update). Returns per-(seed, layer) Frobenius norms of ∇A and
        ∇B when ``record`` (nan in the columns of layers without an adapter).

        The gradients are formed without the factor γ and γ is folded into the update."""
        S = self.cfg.seeds
        norms = (np.full((S, self.L), np.nan), np.full((S, self.L), np.nan)) if record else None

        def adapted_layer(layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor,
                          a: torch.Tensor) -> torch.Tensor | None:
            g_in = self._input_grad(layer, j, g, gy, a) if layer > self.lowest else None
            self._learn(layer, j, g, gy, h, a, norms, update)
            return g_in

        self._walk_back(g, cache, adapted_layer)
        return norms

    # ----------------------------------------------------------------------- probes

    def _adapters_vanish(self) -> bool:
        """Whether every adapter output and adapter-path gradient is exactly 0 (up to the sign of
        zero): B = 0 (as before the first update), and γ (a config checks it) and A are finite — an
        A beyond the dtype's range would make 0·∞ = nan, which the full walk then records. One pass
        over each factor, at a probe only."""
        return not bool(self.up.any()) and bool(torch.isfinite(self.down).all())

    def probe(
        self, xt: torch.Tensor, yt: torch.Tensor, data: dict[str, np.ndarray], i: int,
        fixed_grads: Mapping[int, torch.Tensor] | None = None,
    ) -> None:
        """Held-out probes at probe index ``i`` into ``data``: ``test_loss`` and, per adapted
        layer, the moments of the adapter output, ``forward`` and ``backward``; with
        ``fixed_grads`` (per adapted layer, the fixed output gradient u′ (S, n, d) arriving at its
        output through the frozen base), ``backward_fixed`` = RMS of ``γ·u′·B·A``; with
        ``share_data``, the split across seeds of ``forward`` (and ``backward_fixed``) into
        ``data[q][i, layer]``. The probe multiplies in the Gram order where that is cheaper for
        its batch (:meth:`_probe_gram`), whatever order training uses."""
        gram = self.gram
        self.gram = self._probe_gram(xt.shape[1], fixed_grads is not None)
        try:
            self._probe(xt, yt, data, i, fixed_grads)
        finally:
            self.gram = gram

    def _probe_gram(self, m: int, fixed: bool) -> bool:
        """Whether the probe of ``m`` held-out inputs is cheaper in the Gram order: forming
        ``M = B·A`` (r·d² multiply-adds per layer and seed) and then ``h·Mᵀ``, ``g·M`` (and
        ``u′·M``), m·d² each, against 2·m·d·r for each of those through the b×r products — at
        the paper's width 128 and probe batch 256, for r ≥ 74 (its grid's 128, 512 and 2048). Not
        with ``bf16``."""
        r, d = self.down.shape[-2], self.down.shape[-1]
        k = 3 if fixed else 2
        return not self.bf16 and r * d * d + k * m * d * d < 2 * k * m * d * r

    def _probe(
        self, xt: torch.Tensor, yt: torch.Tensor, data: dict[str, np.ndarray], i: int,
        fixed_grads: Mapping[int, torch.Tensor] | None,
    ) -> None:
        zero = self._adapters_vanish()
        out, cache = self.forward(xt, keep_u=True, vanish=zero)
        resid = out - yt
        data["test_loss"][i] = 0.5 * resid.double().pow(2).sum(dim=(1, 2)).numpy() / xt.shape[1]
        # Per-example loss ½‖f(x)−y‖²: its gradient w.r.t. the output is the residual itself.
        # With B = 0 every adapter-path gradient γ·g·B·A is 0: no backward at all.
        through = [cache[layer][3] for layer in range(self.L)] if zero else self.backward(resid, cache)
        split = self.cfg.share_data
        for layer in self.adapted:
            fixed = None
            if fixed_grads is not None:
                j = self.slot[layer]
                v = fixed_grads[layer]
                fixed = through[layer] if zero else self._through(v, self._gy(v, j), cache[layer][1], j)
                data["backward_fixed"][i, :, layer] = fixed.double().pow(2).mean(dim=(1, 2)).sqrt().numpy()
            for source, t in (("forward", cache[layer][3]), ("backward_fixed", fixed)):
                if split and t is not None:
                    for q, x in zip(SPLIT_QUANTITIES[source], seed_split(t)):
                        data[q][i, layer] = x
            au = cache[layer][3].double().abs()
            data["moment1"][i, :, layer] = au.mean(dim=(1, 2)).numpy()
            m2 = au.pow(2).mean(dim=(1, 2))
            data["moment2"][i, :, layer] = m2.numpy()
            data["moment4"][i, :, layer] = au.pow(4).mean(dim=(1, 2)).numpy()
            data["forward"][i, :, layer] = m2.sqrt().numpy()
            data["backward"][i, :, layer] = through[layer].double().pow(2).mean(dim=(1, 2)).sqrt().numpy()


class DirectStack(Stack):
    """The adapters themselves: ``down`` = A (La,S,r,d), ``up`` = B (La,S,d,r); SGD or AdamW.

    SGD adds ``−η·γ·raw`` with one in-place ``baddbmm`` per matrix; Adam runs on the raw
    gradients with ``eps/γ`` (exactly the same update: Adam is scale-invariant up to eps). Adam's
    moments are element-wise, so the seeds stay independent."""

    def __init__(self, cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> None:
        super().__init__(cfg, init)
        dt, S, d = self.dtype, cfg.seeds, cfg.width
        La = len(self.adapted)
        A = self._initial_A(init)
        r = A.shape[-2]  # cfg.rank, or d for a Bartlett factor (gram="wishart")
        # Cast and transpose in one pass (no float64 (La,S,r,d) intermediate: r·d-sized at large r).
        self.down = torch.empty(A.shape[1], A.shape[0], r, d, dtype=dt).copy_(A.transpose(0, 1))  # (La,S,r,d)
        self.up = torch.zeros(La, S, d, r, dtype=dt)
        # Per-layer scratch for raw gradients: the training step updates layer by layer while
        # that layer's data is still in cache.
        self.sA = torch.empty(S, r, d, dtype=dt)
        self.sB = torch.empty(S, d, r, dtype=dt)
        self.down_mm, self.up_mm = (self.down, self.up) if not cfg.bf16 else (
            self.down.to(torch.bfloat16), self.up.to(torch.bfloat16))
        self.gram = gram_order(cfg)
        if cfg.optimizer == "adam":
            # One AdamW per layer on views of A and B (updated right after that layer's backward).
            # The fused CPU kernel makes one pass over the state.
            self._opts = [LayerAdamW([self.down[j], self.up[j]], cfg) for j in range(La)]

    def _layer_output(
        self, h: torch.Tensor, a: torch.Tensor, layer: int, j: int, keep_u: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if keep_u:
            return super()._layer_output(h, a, layer, j, keep_u)
        # Training: γ folds into the accumulation onto the base output (no separate u), in place
        # (an out-of-place baddbmm would first copy the base product).
        z = torch.bmm(h, self.Wt[layer])
        if self.gram:  # a = M = B·A
            return z.baddbmm_(h, a.transpose(1, 2), alpha=self.gamma), None
        return z.add_(self._adapter_product(a, j), alpha=self.gamma), None

    def _input_grad(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor | None, a: torch.Tensor) -> torch.Tensor:
        # γ folds into the accumulation onto the base path, in place.
        base = torch.bmm(g, self.Wt[layer].transpose(1, 2))
        if self.gram:
            return base.baddbmm_(g, a, alpha=self.gamma)
        if self.bf16:
            return base.add_(torch.bmm(gy, self.down_mm[j]), alpha=self.gamma)  # type: ignore[arg-type]  # not Gram
        return base.baddbmm_(gy, self.down[j], alpha=self.gamma)  # type: ignore[arg-type]  # gy: not Gram

    def _learn(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor, a: torch.Tensor,
               norms: Norms | None, update: bool) -> None:
        if norms is None and update and self.cfg.optimizer == "sgd" and not (self.bf16 or self.gram):
            self._sgd_update(j, g, gy, h, a)
            return
        self._raw_grads(j, g, gy, h, a, out=(self.sA, self.sB))
        if norms is not None:
            norms[0][:, layer] = self.gamma * torch.linalg.vector_norm(self.sA, dim=(1, 2)).double().numpy()
            norms[1][:, layer] = self.gamma * torch.linalg.vector_norm(self.sB, dim=(1, 2)).double().numpy()
        if update:
            self._update(j)
            if self.bf16:  # the products' bfloat16 copies of the updated factors
                self.down_mm[j].copy_(self.down[j])
                self.up_mm[j].copy_(self.up[j])

    def _update(self, j: int) -> None:
        """Apply the raw gradients in the scratch buffers to adapter slot ``j``."""
        if self.cfg.optimizer == "sgd":
            for p, s, (step, keep) in ((self.down[j], self.sA, self.sgd), (self.up[j], self.sB, self.sgd_up)):
                if keep != 1.0:
                    p.mul_(keep)
                p.add_(s, alpha=step)
            return
        self._opts[j].step([self.sA, self.sB])


class ReducedStack(DirectStack):
    """Exact SGD dynamics at rank min(r, d): with B₀ = 0, SGD keeps ``A_t = Q·Ã_t`` and
    ``B_t = B̃_t·Qᵀ`` for ``A₀ = Q·R`` (Q: r×d with orthonormal columns, R: d×d upper triangular;
    ∇A = γ·Bᵀ·G and ∇B = γ·G·Aᵀ with G = vᵀh stay in those forms), and ``B·A = B̃·Ã``,
    ``‖∇A‖_F = ‖∇Ã‖_F``, ``‖∇B‖_F = ‖∇B̃‖_F``: the rank-d adapter (Ã, B̃) started from Ã₀ = R
    records exactly the numbers of the rank-r one (up to rounding). A step then costs
    O(b·d²) whatever r is; r enters once, through the QR of A₀ (O(r·d²), float64). ``down`` = Ã,
    ``up`` = B̃ (La,S,d,d); weight decay scales them as it scales A and B. For r ≤ d it is the
    direct form itself. (The rank-for-free draws, ``gram="wishart"``, draw R instead of A₀.) The
    tests check it against :class:`DirectStack`."""

    def _initial_A(self, init: Mapping[str, torch.Tensor]) -> torch.Tensor:
        A0 = super()._initial_A(init)
        r, d = A0.shape[-2:]
        if r <= d:
            return A0
        if r >= 2 * d:
            # R = Lᵀ for K = A₀ᵀA₀ = L·Lᵀ: one GEMM and a d×d Cholesky, far cheaper than a batched
            # QR of the tall A₀ (which first copies it column-major). cond(K) = cond(A₀)² stays
            # below ≈ 34 for Gaussian A₀ with r ≥ 2d, so R is as accurate as QR's in float64.
            L, info = torch.linalg.cholesky_ex(A0.transpose(-2, -1) @ A0)
            if not bool((info != 0).any()):
                return L.transpose(-2, -1)
        return torch.linalg.qr(A0, mode="r")[1]  # (S, La, d, d): RᵀR = A₀ᵀA₀


def build_stack(cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> Stack:
    """The form ``cfg.resolved_method()`` names, initialised from the draws ``init``."""
    return (ReducedStack if cfg.resolved_method() == "reduced" else DirectStack)(cfg, init)
