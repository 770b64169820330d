"""rsstab.testing knows the range of its laws: the measured distance of the learned change from its
first order in η (``first_order_gap``), per rank, with out-of-range ranks named in the result."""

from __future__ import annotations

import json
import math

import pytest

torch = pytest.importorskip("torch")

from rsstab import theory  # noqa: E402
from rsstab.testing import check_rank_stability  # noqa: E402
from rsstab.testing.probe import first_order_step, measure  # noqa: E402


class _Lora(torch.nn.Module):
    """A frozen linear layer with LoRA (B = 0), γ = r^-p."""

    def __init__(self, r: int, d: int = 32, p: float = 0.5) -> None:
        super().__init__()
        self.base = torch.nn.Linear(d, d, bias=False).requires_grad_(False)
        self.A = torch.nn.Parameter(torch.randn(r, d) / math.sqrt(d))
        self.B = torch.nn.Parameter(torch.zeros(d, r))
        self.gamma = r**-p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.gamma * (x @ self.A.T) @ self.B.T


def _gap(optimizer: str, lr: float, rank: int = 16) -> float:
    return measure(lambda r: _Lora(r), rank=rank, seed=0, optimizer=optimizer, steps=6, batch=16,
                   probe_batch=64, lr=lr, dtype="float64", first_order=True).first_order_gap


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_first_order_step_is_the_optimizer_fed_gradients_at_theta0(optimizer: str) -> None:
    """δ¹ against a plain autograd loop: each step's gradient taken at θ_0 (not at the moving point)."""
    torch.manual_seed(0)
    m = _Lora(8).double()
    initial = {n: p.detach().clone() for n, p in m.named_parameters() if p.requires_grad}
    x = torch.randn(4 * 5, 32, dtype=torch.float64)
    teacher = torch.randn(32, 32, dtype=torch.float64) / math.sqrt(32)

    def at(params: dict[str, torch.Tensor], inp: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(m, params, (inp,), strict=False)

    got = first_order_step(at, initial, x, teacher, optimizer=optimizer, steps=4, batch=5, lr=0.05)
    step = {n: torch.zeros_like(t, requires_grad=True) for n, t in initial.items()}
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(list(step.values()), lr=0.05)
    for t in range(4):
        xb = x[5 * t : 5 * t + 5]
        theta0 = {n: p.clone().requires_grad_(True) for n, p in initial.items()}
        loss = 0.5 * (at(theta0, xb) - (at(initial, xb) + xb @ teacher.T)).pow(2).sum() / 5
        grads = torch.autograd.grad(loss, list(theta0.values()), allow_unused=True)
        for p, g in zip(step.values(), grads):
            p.grad = torch.zeros_like(p) if g is None else g
        opt.step()
    for n in initial:
        assert torch.allclose(got[n], step[n].detach(), rtol=1e-10, atol=1e-14), n
    assert float(got["B"].abs().max()) > 0  # B learns at first order ...
    assert float(got["A"].abs().max()) == 0  # ... A does not (B₀ = 0: its gradient vanishes at θ_0)


@pytest.mark.parametrize("optimizer, lr", [("sgd", 2e-3), ("adam", 2e-5)])
def test_the_gap_is_the_next_order_linear_in_the_learning_rate(optimizer: str, lr: float) -> None:
    """The leading correction to a first-order law is O(η): doubling η doubles the gap (a constant,
    rounding or a wrong δ¹ would not), and at tiny η the gap vanishes."""
    g1, g2 = _gap(optimizer, lr), _gap(optimizer, 2 * lr)
    assert 0 < g1 < 0.05
    assert g2 / g1 == pytest.approx(2.0, rel=0.1)
    assert _gap(optimizer, lr * 1e-4) < 1e-4


def test_a_learning_rate_past_the_range_is_named_not_blamed_on_the_scaling() -> None:
    """rsLoRA (γ = 1/√r) under SGD at a learning rate far past first order: whatever the slopes say,
    the result names the out-of-range ranks, the report says the statement is about lr, the table
    marks them, and the JSON carries per-rank gaps and in_range flags."""
    res = check_rank_stability(lambda r: _Lora(r, d=32), optimizer="sgd", lr=0.5, ranks=(4, 16, 64),
                               seeds=2, draws=2, steps=8, batch=16, probe_batch=32)
    gaps = res.first_order_gap()
    assert len(gaps) == 3 and math.isfinite(gaps[0]) and gaps[0] > theory.EXPANSION_LIMIT
    assert res.beyond_small_eta_ranks and res.beyond_small_eta_ranks[0] == 4
    assert list(res.in_range()) == [g <= theory.EXPANSION_LIMIT for g in gaps]
    text = res.report()
    assert "beyond the small-η regime" in text.splitlines()[0] and "lr=0.5" in text.splitlines()[0]
    assert "out of range" in res.table()
    body = json.loads(json.dumps(res.to_dict()))
    assert body["beyond_small_eta_ranks"] == list(res.beyond_small_eta_ranks)
    assert body["in_range"] == list(res.in_range()) and len(body["first_order_gap"]) == 3
    assert "small-η" in body["reason"]


def test_the_default_learning_rate_is_in_range() -> None:
    res = check_rank_stability(lambda r: _Lora(r, d=32), optimizer="adam", ranks=(8, 32), seeds=2, draws=2,
                               steps=4, batch=8, probe_batch=16)
    assert res.beyond_small_eta_ranks == () and all(res.in_range())
    assert all(0 <= g < 1e-3 for g in res.first_order_gap())
    assert "small-η" not in res.report().splitlines()[0]


def test_a_diverged_rank_is_out_of_range() -> None:
    res = check_rank_stability(lambda r: _Lora(r, d=32), optimizer="sgd", lr=50.0, ranks=(4, 16),
                               seeds=2, draws=2, steps=8, batch=16, probe_batch=32)
    assert res.diverged and set(res.diverged) <= set(res.beyond_small_eta_ranks)
    assert "or diverged" in res.report().splitlines()[0]
