"""Adam with ε > 0, measured: one torch.optim.Adam step on a LoRA layer follows the sign law
(update ∝ η·γ_r·r) below the crossover rank r_ε and SGD's law with rate η/ε (∝ (η/ε)·γ_r²·r)
above it, where rsstab.verdict.adam_eps.adam_epsilon and rsstab.theory.adam_regime put them.

Seeds are batched as a leading dimension of A and B: Adam is elementwise, so one optimizer step
on the stacked tensors is exactly one step per seed.
"""

from __future__ import annotations

import math

import pytest

from rsstab import theory
from rsstab.verdict.adam_eps import adam_epsilon
from rsstab.vocab import ADAM_SGD_LIKE, ADAM_SIGN

torch = pytest.importorskip("torch")

D_IN, D_OUT = 4, 2
SIGMA_A, ETA = 1.0, 1e-3
R_EPS = 512  # ε chosen so that E|g_ij| = ε at r = 512 for γ_r = 1/√r
G = theory.adam_grad_scale(1.0, SIGMA_A, 1.0)  # |v_i| = 1, ‖x‖ = 1
EPS = G / math.sqrt(R_EPS)
RANKS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144)


def measured_update(r: int, seed: int = 0) -> float:
    """Mean |Δy_i| after one Adam step from B = 0, for γ_r = 1/√r (over seeds and outputs)."""
    gen = torch.Generator().manual_seed(seed + r)
    seeds = max(4, 2**18 // r)
    gamma = 1 / math.sqrt(r)
    x = torch.zeros(D_IN, dtype=torch.float64)
    x[0] = 1.0  # ‖x‖ = 1
    v = torch.tensor([1.0, -1.0], dtype=torch.float64)  # ∂L/∂y, |v_i| = 1
    a = torch.randn(seeds, r, D_IN, generator=gen, dtype=torch.float64) * SIGMA_A
    b = torch.zeros(seeds, D_OUT, r, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([b], lr=ETA, eps=EPS)
    ax = a @ x  # (seeds, r)
    y = gamma * torch.einsum("sor,sr->so", b, ax)
    (y * v).sum().backward()  # L = v·y per seed
    opt.step()
    with torch.no_grad():
        dy = gamma * torch.einsum("sor,sr->so", b, ax)  # y was 0 at B = 0
    return dy.abs().mean().item()


def sign_law(r: int) -> float:
    """η·γ_r·r·σ_A‖x‖·√(2/π) (proofs/adam_epsilon.py)."""
    return ETA * r**-0.5 * r * SIGMA_A * math.sqrt(2 / math.pi)


def sgd_law(r: int) -> float:
    """(η/ε)·γ_r²·r·|v_i|·σ_A²‖x‖² (proofs/adam_epsilon.py)."""
    return ETA / EPS * (1 / r) * r * SIGMA_A**2


@pytest.fixture(scope="module")
def sizes() -> dict[int, float]:
    torch.set_num_threads(1)
    return {r: measured_update(r) for r in RANKS}


def test_the_predicted_crossover_and_regimes() -> None:
    a = adam_epsilon("1/sqrt(r)", eps=EPS, grad_scale=G, ranks=(RANKS[0], RANKS[-1]))
    assert a.crossover_rank == pytest.approx(R_EPS, rel=1e-6)
    assert [m for *_, m in a.table] == [ADAM_SIGN, ADAM_SGD_LIKE]
    assert theory.adam_regime(1.0, G, EPS) == ADAM_SIGN
    assert theory.adam_regime(RANKS[-1] ** -0.5, G, EPS) == ADAM_SGD_LIKE


def rho(r: int) -> float:
    return theory.adam_gradient_ratio(r**-0.5, G, EPS)


def test_below_r_eps_adam_follows_the_sign_law(sizes: dict[int, float]) -> None:
    # proofs/adam_epsilon.py: 1 − 1/ρ ≤ update / sign law ≤ 1
    assert rho(1) >= theory.ADAM_SIGN_RATIO
    assert 1 - 1 / rho(1) - 0.01 <= sizes[1] / sign_law(1) <= 1.01
    slope = math.log(sizes[4] / sizes[1]) / math.log(4)
    assert 0.4 <= slope <= 0.51  # γ_r·r = √r at a fixed η


def test_above_r_eps_adam_is_sgd_with_rate_eta_over_eps(sizes: dict[int, float]) -> None:
    r = RANKS[-1]
    # proofs/adam_epsilon.py: 1 − 2ρ ≤ update / SGD law (rate η/ε) ≤ 1
    assert rho(r) <= theory.ADAM_SGD_RATIO
    assert 1 - 2 * rho(r) - 0.01 <= sizes[r] / sgd_law(r) <= 1.01
    slope = math.log(sizes[r] / sizes[RANKS[-2]]) / math.log(r / RANKS[-2])
    assert 0 <= slope <= 0.1  # → 0 (γ_r²·r = 1): rsLoRA is rank-stabilized in the SGD-like regime


def test_the_exact_crossover_curve_is_measured_at_every_rank(sizes: dict[int, float]) -> None:
    for r, size in sizes.items():
        predicted = sign_law(r) * theory.adam_update_factor(rho(r))
        assert size == pytest.approx(predicted, rel=0.02), r
        assert size <= 1.01 * min(sign_law(r), sgd_law(r)), r  # neither law is ever exceeded
