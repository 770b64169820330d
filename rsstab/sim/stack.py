"""The batched adapter stacks: one walk through the layers, two ways to hold the adapters.

Every tensor has the layer (or adapter-slot) axis first, then the seed axis, so that each layer is
one contiguous ``(seeds, ·, ·)`` block for ``torch.bmm``. ``slot[layer]`` is the index of a layer's
adapter (absent: a plain frozen base layer).

:class:`Stack` holds what both forms share: the frozen base, the forward walk, the backward walk
(ReLU masks, plain base layers), the held-out probes, the recording of gradient norms and the
in-place SGD update. Its subclasses only store the adapter of slot ``j`` differently, as two
trained factors ``down`` and ``up`` with a fixed ``M`` between them — the adapter output is
``u = γ·h·downᵀ·M·upᵀ``:

* :class:`DirectStack`: ``down`` = A (r×d), ``up`` = B (d×r), ``M`` = I; SGD or AdamW.
* :class:`ReducedStack`: ``down`` = X, ``up`` = Y (d×d) with A = A₀·X, B = Y·A₀ᵀ and
  ``M`` = K = A₀ᵀA₀: exact for SGD from B₀ = 0 (see :mod:`rsstab.sim`).

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

__all__ = ["Stack", "DirectStack", "ReducedStack", "build_stack"]

#: A layer's cache entry: (input h, a = h·downᵀ, ReLU mask, adapter output u); a and u are None
#: for a plain base layer, mask for the top layer or a linear stack, u unless asked for.
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


def _adamw(params: list[torch.Tensor], cfg: SimConfig) -> torch.optim.Optimizer:
    """AdamW over raw (γ-less) gradients ``[A, B]``: eps/γ, A at η_A and B at η_B
    (:attr:`SimConfig.learning_rates`); fused kernel where this torch has one."""
    lr_a, lr_b = cfg.learning_rates
    groups = [{"params": params[:1], "lr": lr_a}, {"params": params[1:], "lr": lr_b}]
    kw = dict(lr=lr_a, betas=tuple(cfg.betas), eps=cfg.eps / float(cfg.gamma), weight_decay=cfg.weight_decay)
    try:
        return torch.optim.AdamW(groups, fused=True, **kw)
    except (RuntimeError, TypeError, ValueError):  # older torch: no fused CPU kernel
        return torch.optim.AdamW(groups, foreach=False, **kw)


class Stack(ABC):
    """What the two forms share; a subclass sets ``down`` and ``up`` (one slot per adapted layer,
    ascending), implements :meth:`_learn` and may override :meth:`_mid`, :meth:`_layer_output` and
    :meth:`_input_grad`."""

    down: torch.Tensor
    up: torch.Tensor

    def __init__(self, cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> None:
        self.cfg = cfg
        self.dtype = getattr(torch, cfg.dtype)
        self.L = cfg.depth
        self.relu = cfg.nonlinearity == "relu"
        self.gamma = float(cfg.gamma)
        self.adapted = cfg.adapter_layers()
        self.slot = {layer: j for j, layer in enumerate(self.adapted)}
        self.lowest = self.adapted[0]  # back-propagation stops here: nothing below learns
        self.sgd = _sgd_step(cfg, self.gamma)  # (step, keep) of the SGD update of A (down)
        self.sgd_up = _sgd_step(cfg, self.gamma, cfg.learning_rates[1])  # of B (up): η_B = η·lr_ratio
        self.Wt = init["W"].transpose(0, 1).transpose(2, 3).contiguous().to(self.dtype)  # (L,S,d,d) = Wᵀ

    def _initial_A(self, init: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """A₀ of the adapted layers, (S, La, r, d) in float64."""
        return init["A"] if len(self.adapted) == self.L else init["A"][:, list(self.adapted)]

    # ----------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, keep_u: bool = False) -> tuple[torch.Tensor, Cache]:
        """The output for inputs ``x`` (S, n, d) and a per-layer cache (see :data:`Cache`)."""
        cache = []
        h = x
        for layer in range(self.L):
            j = self.slot.get(layer)
            if j is None:
                a = u = None
                z = torch.bmm(h, self.Wt[layer])
            else:
                a = torch.bmm(h, self.down[j].transpose(1, 2))
                z, u = self._layer_output(h, a, layer, j, keep_u)
            mask = None
            if self.relu and layer < self.L - 1:
                mask = z > 0
                z = z.mul_(mask)
            cache.append((h, a, mask, u))
            h = z
        return h, cache

    def _mid(self, t: torch.Tensor, j: int) -> torch.Tensor:
        """``t·M`` for slot ``j``'s fixed middle factor M (identity here)."""
        return t

    def _layer_output(
        self, h: torch.Tensor, a: torch.Tensor, layer: int, j: int, keep_u: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(z, u)`` of an adapted layer: ``z = h·Wᵀ + u`` with ``u = γ·a·M·upᵀ``; u only when
        ``keep_u``."""
        u = torch.bmm(self._mid(a, j), self.up[j].transpose(1, 2)).mul_(self.gamma)
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
        ``adapted_layer(layer, j, g, gy, h, a)`` (``gy = g·up``) returns the gradient into the
        layer's input, or None at the lowest adapted layer."""
        for layer in reversed(range(self.lowest, self.L)):
            h, a, mask, _ = cache[layer]
            if mask is not None:
                g = g * mask
            j = self.slot.get(layer)
            if j is None:  # a plain base layer (never the lowest one)
                g = torch.bmm(g, self.Wt[layer].transpose(1, 2))
                continue
            g_in = adapted_layer(layer, j, g, torch.bmm(g, self.up[j]), h, a)
            if g_in is None:
                break
            g = g_in

    def _through(self, gy: torch.Tensor, j: int) -> torch.Tensor:
        """``γ·v·B·A`` (rows per example): the gradient into the layer input through the adapter
        path only, from ``gy = v·up``."""
        return torch.bmm(self._mid(gy, j), self.down[j]).mul_(self.gamma)

    def _input_grad(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
        """The gradient into an adapted layer's input: base path plus adapter path."""
        return torch.baddbmm(self._through(gy, j), g, self.Wt[layer].transpose(1, 2))

    def backward(self, g: torch.Tensor, cache: Cache) -> list[torch.Tensor]:
        """Back-propagate dL/d(output) = ``g`` without learning; return, per layer, the gradient
        into the layer input through the adapter path (an empty tensor for a layer without one)."""
        through: list[torch.Tensor] = [torch.empty(0)] * self.L

        def adapted_layer(layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor,
                          a: torch.Tensor) -> torch.Tensor | None:
            through[layer] = ga = self._through(gy, j)
            return torch.baddbmm(ga, g, self.Wt[layer].transpose(1, 2)) if layer > self.lowest else None

        self._walk_back(g, cache, adapted_layer)
        return through

    # ----------------------------------------------------------------------- training

    @staticmethod
    def _raw_grads(
        g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor, a: torch.Tensor,
        out: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The raw (γ-less) gradients ``(gyᵀ·h, gᵀ·a)`` of ``down`` and ``up``, into ``out``
        when given."""
        down_out, up_out = out if out is not None else (None, None)
        return (torch.bmm(gy.transpose(1, 2), h, out=down_out),
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
            g_in = self._input_grad(layer, j, g, gy) if layer > self.lowest else None
            self._learn(layer, j, g, gy, h, a, norms, update)
            return g_in

        self._walk_back(g, cache, adapted_layer)
        return norms

    # ----------------------------------------------------------------------- probes

    def probe(
        self, xt: torch.Tensor, yt: torch.Tensor, data: dict[str, np.ndarray], i: int,
        fixed_grads: Mapping[int, torch.Tensor] | None = None,
    ) -> None:
        """Held-out probes at probe index ``i`` into ``data``: ``test_loss`` and, per adapted
        layer, the moments of the adapter output, ``forward`` and ``backward``; with
        ``fixed_grads`` (per adapted layer, the fixed output gradient u′ (S, n, d) arriving at its
        output through the frozen base), ``backward_fixed`` = RMS of ``γ·u′·B·A``; with
        ``share_data``, the split across seeds of ``forward`` (and ``backward_fixed``) into
        ``data[q][i, layer]``."""
        out, cache = self.forward(xt, keep_u=True)
        resid = out - yt
        data["test_loss"][i] = 0.5 * resid.double().pow(2).sum(dim=(1, 2)).numpy() / xt.shape[1]
        # Per-example loss ½‖f(x)−y‖²: its gradient w.r.t. the output is the residual itself.
        through = self.backward(resid, cache)
        split = self.cfg.share_data
        for layer in self.adapted:
            fixed = None
            if fixed_grads is not None:
                j = self.slot[layer]
                fixed = self._through(torch.bmm(fixed_grads[layer], self.up[j]), j)
                data["backward_fixed"][i, :, layer] = fixed.double().pow(2).mean(dim=(1, 2)).sqrt().numpy()
            for source, t in (("forward", cache[layer][3]), ("backward_fixed", fixed)):
                if split and t is not None:
                    for q, v in zip(SPLIT_QUANTITIES[source], seed_split(t)):
                        data[q][i, layer] = v
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
        if cfg.optimizer == "adam":
            # One AdamW per layer on views of A and B (updated right after that layer's backward).
            # The fused CPU kernel makes one pass over the state.
            self._views = [(self.down[j], self.up[j]) for j in range(La)]
            self._opts = [_adamw(list(v), cfg) for v in self._views]

    def _layer_output(
        self, h: torch.Tensor, a: torch.Tensor, layer: int, j: int, keep_u: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if keep_u:
            return super()._layer_output(h, a, layer, j, keep_u)
        # Training: γ folds into the accumulation onto the base output (no separate u).
        return torch.baddbmm(torch.bmm(h, self.Wt[layer]), a, self.up[j].transpose(1, 2), alpha=self.gamma), None

    def _input_grad(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
        # γ folds into the accumulation onto the base path.
        return torch.baddbmm(torch.bmm(g, self.Wt[layer].transpose(1, 2)), gy, self.down[j], alpha=self.gamma)

    def _learn(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor, a: torch.Tensor,
               norms: Norms | None, update: bool) -> None:
        if norms is None and update and self.cfg.optimizer == "sgd":
            self._sgd_update(j, g, gy, h, a)
            return
        self._raw_grads(g, gy, h, a, out=(self.sA, self.sB))
        if norms is not None:
            norms[0][:, layer] = self.gamma * torch.linalg.vector_norm(self.sA, dim=(1, 2)).double().numpy()
            norms[1][:, layer] = self.gamma * torch.linalg.vector_norm(self.sB, dim=(1, 2)).double().numpy()
        if update:
            self._update(j)

    def _update(self, j: int) -> None:
        """Apply the raw gradients in the scratch buffers to adapter slot ``j``."""
        if self.cfg.optimizer == "sgd":
            for p, s, (step, keep) in ((self.down[j], self.sA, self.sgd), (self.up[j], self.sB, self.sgd_up)):
                if keep != 1.0:
                    p.mul_(keep)
                p.add_(s, alpha=step)
            return
        a, b = self._views[j]
        a.grad, b.grad = self.sA, self.sB
        self._opts[j].step()
        a.grad = b.grad = None


class ReducedStack(Stack):
    """Exact SGD dynamics in d×d coordinates: with B₀ = 0, SGD keeps ``A_t = A₀·X_t`` and
    ``B_t = Y_t·A₀ᵀ`` (∇A = γ·Bᵀ·G and ∇B = γ·G·Aᵀ with G = vᵀh stay in those forms), so the
    adapter is ``γ·Y·K·X`` with ``K = A₀ᵀA₀`` and a step costs O(b·d² + d³) whatever r is;
    r enters once, through K (O(r·d²)). ``down`` = X, ``up`` = Y (La,S,d,d); weight decay scales
    them as it scales A and B. Norms use ‖A₀·M‖_F² = tr(Mᵀ·K·M). The tests check it against
    :class:`DirectStack`."""

    def __init__(self, cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> None:
        super().__init__(cfg, init)
        dt, S, d = self.dtype, cfg.seeds, cfg.width
        La = len(self.adapted)
        A0 = self._initial_A(init)
        self.K = (A0.transpose(2, 3) @ A0).transpose(0, 1).to(dt).contiguous()  # (La,S,d,d) = A₀ᵀA₀
        self.down = torch.eye(d, dtype=dt).expand(La, S, d, d).contiguous()
        self.up = torch.zeros(La, S, d, d, dtype=dt)

    def _mid(self, t: torch.Tensor, j: int) -> torch.Tensor:
        return torch.bmm(t, self.K[j])

    def _learn(self, layer: int, j: int, g: torch.Tensor, gy: torch.Tensor, h: torch.Tensor, a: torch.Tensor,
               norms: Norms | None, update: bool) -> None:
        if norms is not None:
            ga, gb = self._raw_grads(g, gy, h, a)  # ∇A = γ·A₀·ga, ∇B = γ·gb·A₀ᵀ
            k = self.K[j].double()
            ga64, gb64 = ga.double(), gb.double()
            norms[0][:, layer] = self.gamma * (torch.bmm(k, ga64) * ga64).sum(dim=(1, 2)).clamp_min(0).sqrt().numpy()
            norms[1][:, layer] = self.gamma * (torch.bmm(gb64, k) * gb64).sum(dim=(1, 2)).clamp_min(0).sqrt().numpy()
        if update:
            self._sgd_update(j, g, gy, h, a)


def build_stack(cfg: SimConfig, init: Mapping[str, torch.Tensor]) -> Stack:
    """The form ``cfg.resolved_method()`` names, initialised from the draws ``init``."""
    return (ReducedStack if cfg.resolved_method() == "reduced" else DirectStack)(cfg, init)
