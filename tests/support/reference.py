"""The tests' one reference for the simulator (:mod:`rsstab.sim`): its deep LoRA stack written plainly
with torch's autograd and trained with ``torch.optim``, the ground truth the fused training loop, the
hand-written backward and the data statistics are compared with.

Layer ℓ maps its input h to z = h·Wtℓ + γ·(h·Aℓᵀ)·Bℓᵀ (the adapter term only on the adapted layers),
then ReLU on every layer but the last (no ReLU with ``nonlinearity="linear"``); the loss of a batch
of b pairs is ½·Σ(out − y)²/b, summed over the batched seeds (whose parameters are independent).

Imported by the tests as ``support.reference`` (``tests/`` is on ``sys.path`` under pytest, as for
``classical_limits`` and ``fuzz_inputs``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

__all__ = ["stack_output", "batch_loss", "base_transposed", "ReferenceStack"]


def stack_output(x: torch.Tensor, Wt: Sequence[torch.Tensor] | torch.Tensor, A: Mapping[int, torch.Tensor],
                 B: Mapping[int, torch.Tensor], gamma: float, *, nonlinearity: str = "relu",
                 inputs: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The stack's output for inputs ``x`` (seeds, batch, d).

    ``Wt[ℓ]``: layer ℓ's transposed base weight (seeds, d, d); ``A[ℓ]`` (seeds, r, d) and ``B[ℓ]``
    (seeds, d, r): the adapter of each adapted layer ℓ (the keys). ``inputs``, when given, receives
    every layer's input h.
    """
    h = x
    depth = len(Wt)
    for layer in range(depth):
        if inputs is not None:
            inputs.append(h)
        z = h @ Wt[layer]
        if layer in A:
            z = z + gamma * (h @ A[layer].transpose(1, 2)) @ B[layer].transpose(1, 2)
        h = torch.relu(z) if nonlinearity == "relu" and layer < depth - 1 else z
    return h


def batch_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """½·Σ(out − y)²/b over a batch of b pairs, summed over the seeds."""
    return 0.5 * ((out - y) ** 2).sum() / out.shape[1]


def base_transposed(init: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The cell's base weights ``init["W"]`` (seeds, layers, d, d) as ``Wt[ℓ]`` (seeds, d, d), transposed."""
    return init["W"].transpose(0, 1).transpose(2, 3)


class ReferenceStack:
    """A cell's stack (``cfg``, its draws ``init`` from :func:`rsstab.sim.draws.draw_cell`) as autograd
    leaves: A₀ from the draws and B = 0 on every adapted layer (``cfg.adapter_layers()``), trained by
    ``torch.optim`` with A and B in two parameter groups (learning rates lr and lr·lr_ratio):
    ``SGD(weight_decay=…)`` (for SGD the same as the simulator's decoupled decay) or ``AdamW`` (ε, betas
    and decay of ``cfg``).
    """

    def __init__(self, cfg: Any, init: Mapping[str, torch.Tensor]) -> None:
        self.cfg, self.init = cfg, init
        self.Wt = base_transposed(init)
        layers = cfg.adapter_layers()
        seeds, r, d = init["A"].shape[0], init["A"].shape[2], init["A"].shape[3]
        self.A = {lay: init["A"][:, lay].clone().requires_grad_() for lay in layers}
        self.B = {lay: torch.zeros(seeds, d, r, dtype=init["A"].dtype, requires_grad=True) for lay in layers}
        lr_a, lr_b = cfg.lr, cfg.lr * cfg.lr_ratio
        groups = [{"params": list(self.A.values()), "lr": lr_a}, {"params": list(self.B.values()), "lr": lr_b}]
        if cfg.optimizer == "sgd":
            self.opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr_a, weight_decay=cfg.weight_decay)
        else:
            self.opt = torch.optim.AdamW(groups, lr=lr_a, betas=tuple(cfg.betas), eps=cfg.eps,
                                         weight_decay=cfg.weight_decay)

    def output(self, x: torch.Tensor) -> torch.Tensor:
        return stack_output(x, self.Wt, self.A, self.B, self.cfg.gamma, nonlinearity=self.cfg.nonlinearity)

    def train(self) -> dict[int, torch.Tensor]:
        """``cfg.steps`` steps on the draws' consecutive batches; returns B's gradient at step 0 per layer."""
        b = self.cfg.batch
        first: dict[int, torch.Tensor] = {}
        for t in range(self.cfg.steps):
            self.opt.zero_grad()
            x, y = self.init["x"][:, t * b:(t + 1) * b], self.init["y"][:, t * b:(t + 1) * b]
            batch_loss(self.output(x), y).backward()
            if t == 0:
                first = {lay: B.grad.clone() for lay, B in self.B.items()}
            self.opt.step()
        return first

    def test_loss(self) -> torch.Tensor:
        """Per seed, the held-out loss ½·Σ(out − yt)²/probe_batch after training."""
        with torch.no_grad():
            out = self.output(self.init["xt"])
            return 0.5 * ((out - self.init["yt"]) ** 2).sum(dim=(1, 2)) / out.shape[1]
