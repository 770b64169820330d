"""The simulator's per-layer AdamW (:class:`rsstab.sim.stack.LayerAdamW`): torch's fused kernel
called directly gives exactly the numbers of ``torch.optim.AdamW(fused=True)``, and its fallback
(a torch without the kernel) those of the plain optimizer."""

from __future__ import annotations

import pytest
import torch

from rsstab.sim import SimConfig
from rsstab.sim.stack import LayerAdamW


def _run(opt_factory, params: list[torch.Tensor], grads: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    step = opt_factory(params)
    for g in grads:
        step(g)
    return params


@pytest.mark.parametrize("lr_ratio, weight_decay", [(1.0, 0.0), (3.5, 0.01)])
def test_layer_adamw_equals_torch_adamw(lr_ratio: float, weight_decay: float) -> None:
    gen = torch.Generator().manual_seed(3)
    shapes = [(4, 6, 5), (4, 5, 6)]  # (seeds, r, d) views of A and (seeds, d, r) of B
    init = [torch.randn(s, generator=gen) for s in shapes]
    # Gradients spanning several orders of magnitude, some exactly zero (B's first step: ∇A = 0).
    grads = [[torch.randn(s, generator=gen) * 10.0 ** torch.randint(-3, 3, (), generator=gen) for s in shapes]
             for _ in range(6)]
    grads[0][0].zero_()
    cfg = SimConfig(rank=6, gamma=0.25, optimizer="adam", lr=1e-3, lr_ratio=lr_ratio, weight_decay=weight_decay)
    lr_a, lr_b = cfg.learning_rates
    assert lr_b == pytest.approx(lr_ratio * lr_a)

    def reference(params):
        opt = torch.optim.AdamW([{"params": params[:1], "lr": lr_a}, {"params": params[1:], "lr": lr_b}],
                                betas=tuple(cfg.betas), eps=cfg.eps / cfg.gamma, weight_decay=weight_decay,
                                fused=True)

        def step(g):
            for p, gi in zip(params, g):
                p.grad = gi
            opt.step()
        return step

    def ours(params):
        return LayerAdamW(params, cfg).step

    ref = _run(reference, [t.clone() for t in init], grads)
    got = _run(ours, [t.clone() for t in init], grads)
    for r, g, t0 in zip(ref, got, init):
        assert not torch.equal(r, t0)  # the parameters did move
        assert torch.equal(r, g)


def test_layer_adamw_falls_back_to_the_optimizer_without_a_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(5)
    shapes = [(2, 3, 4), (2, 4, 3)]
    init = [torch.randn(s, generator=gen) for s in shapes]
    grads = [[torch.randn(s, generator=gen) for s in shapes] for _ in range(4)]
    cfg = SimConfig(rank=3, gamma=0.5, optimizer="adam", lr=1e-2, lr_ratio=2.0)
    fused = [t.clone() for t in init]
    opt = LayerAdamW(fused, cfg)
    for g in grads:
        opt.step(g)
    monkeypatch.delattr(torch, "_fused_adamw_")
    plain = [t.clone() for t in init]
    fallback = LayerAdamW(plain, cfg)
    assert fallback.fused is None
    for g in grads:
        fallback.step(g)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert a.grad is None and b.grad is None
