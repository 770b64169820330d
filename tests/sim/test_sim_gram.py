"""Tests of the opt-in ``gram="wishart"`` draws (rank for free under SGD) and of the in-place draws."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

import rsstab.sim.cells as cells
from rsstab.cli import main
from rsstab.errors import RsstabError
from rsstab.sim import SimConfig, simulate_cell
from rsstab.sim.draws import bartlett_factor, draw_cell, draw_seed


def test_draw_cell_in_place_equals_per_seed_draws() -> None:
    """The cell's stacked draws are exactly :func:`draw_seed`'s, seed by seed (also with
    share_data, where W, T, x, xt are seed 0's and A stays each seed's own)."""
    for share in (False, True):
        cfg = SimConfig(rank=5, gamma=0.5, depth=2, width=6, steps=2, seeds=3, batch=4, share_data=share)
        cell = draw_cell(cfg)
        for s in range(cfg.seeds):
            own = draw_seed(cfg, s)
            first = draw_seed(cfg, 0)
            for n, t in own.items():
                want = first[n] if share and n != "A" else t
                assert torch.equal(cell[n][s], want), (share, s, n)


def test_bartlett_factor_gram_is_wishart() -> None:
    """K = RᵀR ~ Wishart_d(r, I): E K = r·I, Var K_ij = r·(1 + δ_ij), each K_ii ~ χ²(r)
    (Kolmogorov–Smirnov), R upper triangular with positive diagonal; r < d is refused."""
    n, d, r = 20000, 3, 5
    R = bartlett_factor(n, d, r, torch.Generator().manual_seed(3))
    assert torch.equal(R, R.triu()) and bool((R.diagonal(dim1=-2, dim2=-1) > 0).all())
    K = (R.transpose(1, 2) @ R).numpy()
    eye = np.eye(d)
    mean, var = K.mean(axis=0), K.var(axis=0, ddof=1)
    want_var = r * (1 + eye)
    # SE of the mean: √(Var/n); of the variance: √((μ₄ − σ⁴)/n) ≤ √(μ₄/n), μ₄ bounded by 15·r²·(1+δ)² + …
    assert np.all(np.abs(mean - r * eye) < 5 * np.sqrt(want_var / n))
    se_var = np.sqrt((3 * r**2 * (1 + eye) ** 2 + 12 * r * (1 + eye) ** 2) * 4 / n)
    assert np.all(np.abs(var - want_var) < 5 * se_var), (var, want_var)
    for i in range(d):
        assert stats.kstest(K[:, i, i], stats.chi2(r).cdf).pvalue > 1e-3
    with pytest.raises(ValueError):
        bartlett_factor(1, 4, 3, torch.Generator())


def test_square_factor_has_the_same_dynamics_as_the_rank_r_adapter(monkeypatch) -> None:
    """The premise of gram='wishart': SGD from A₀ = Q·R (r×d) and from R (d×d) records the same
    numbers (float64, up to rounding), for every probe — so a factor with R's distribution gives
    the rank-r cell's distribution."""
    cfg = SimConfig(rank=11, gamma=0.6, depth=3, width=4, steps=4, seeds=3, batch=5, probe_batch=7, lr=0.05,
                    dtype="float64", weight_decay=0.3, adapted_layers=(0, 2), fixed_output_grad=True,
                    share_data=True, method="direct")
    explicit = simulate_cell(cfg)
    real = cells.draw_cell

    def square(c: SimConfig) -> dict[str, torch.Tensor]:
        init = real(c)
        q, r = torch.linalg.qr(init["A"])
        init["A"] = r * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-1)
        return init

    monkeypatch.setattr(cells, "draw_cell", square)
    squared = simulate_cell(cfg)
    for q, arr in explicit.data.items():
        np.testing.assert_allclose(squared.data[q], arr, rtol=1e-9, atol=1e-12, err_msg=q)


def test_wishart_rows_identical_at_rank_up_to_width() -> None:
    """For r ≤ d gram='wishart' draws A₀ itself: the rows are those of gram='explicit'."""
    cfg = SimConfig(rank=6, gamma=0.5, depth=2, width=6, steps=2, seeds=2, batch=4, lr=1e-2)
    a, b = simulate_cell(cfg).rows(), simulate_cell(replace(cfg, gram="wishart")).rows()
    assert a == b


def test_wishart_cells_agree_in_distribution_with_explicit() -> None:
    """r > d: every probe of gram='wishart' has the distribution of gram='explicit' — paired
    over seeds (same base, teacher and data per seed, independent A), the mean difference is
    within 4.5 standard errors and two-sample KS does not reject (p > 1e-3)."""
    cfg = SimConfig(rank=24, gamma=24**-0.5, depth=2, width=4, steps=3, seeds=600, batch=6, probe_batch=8,
                    lr=0.3, dtype="float64")
    ex, wi = simulate_cell(cfg), simulate_cell(replace(cfg, gram="wishart"))
    assert wi.flops < ex.flops
    for q in ("forward", "backward", "moment4", "grad_A", "grad_B", "test_loss"):
        for i in (0, -1):
            a, b = ex.data[q][i], wi.data[q][i]
            a, b = (a[:, -1], b[:, -1]) if a.ndim == 2 else (a, b)
            if i == 0 and q in ("forward", "backward", "moment4", "test_loss", "grad_A"):
                continue  # B₀ = 0: zero or A-independent at step 0
            diff = b - a
            z = diff.mean() / (diff.std(ddof=1) / math.sqrt(diff.size))
            assert abs(z) < 4.5, (q, i, z)
            assert stats.ks_2samp(a, b).pvalue > 1e-3, (q, i)


def test_wishart_options_and_cli(capsys) -> None:
    """Adam refuses gram='wishart'; ``rsstab simulate --gram wishart`` reaches r = 2^30."""
    with pytest.raises(RsstabError, match="SGD only"):
        SimConfig(rank=64, gamma=1.0, optimizer="adam", gram="wishart")
    with pytest.raises(RsstabError, match="gram"):
        SimConfig(rank=64, gamma=1.0, gram="gaussian")
    assert SimConfig(rank=2**30, gamma=1.0, width=16, gram="wishart").resolved_method() == "direct"
    code = main(["simulate", "1/sqrt(r)", "--ranks", "1024,1073741824", "--gram", "wishart", "--seeds", "2",
                 "--steps", "2", "--json"])
    assert code in (0, 1)
    assert "1073741824" in capsys.readouterr().out


def test_auto_gram_draws_the_wishart_factor_where_explicit_would_not_fit() -> None:
    """gram='auto' (the default): the Wishart draw under SGD where A₀'s float64 draws exceed the
    fixed budget, explicit elsewhere and always under Adam; the command says so in its notes."""
    from rsstab.sim.config import AUTO_GRAM_BYTES

    huge = SimConfig(rank=2**30, gamma=2**-15, width=16)
    assert huge.gram == "auto" and huge.resolved_gram() == "wishart" and huge.effective_rank() == 16
    assert huge.memory_bytes() < 2**30
    assert SimConfig(rank=4096, gamma=1.0, width=16).resolved_gram() == "explicit"
    assert SimConfig(rank=2**30, gamma=1.0, width=16, optimizer="adam").resolved_gram() == "explicit"
    assert SimConfig(rank=2**30, gamma=1.0, width=16, gram="explicit").resolved_gram() == "explicit"
    # just above the budget: auto draws the Gram; the rows are those of gram='wishart'
    r = AUTO_GRAM_BYTES // (8 * 2 * 1 * 4) + 1
    cfg = SimConfig(rank=r, gamma=r**-0.5, width=4, depth=2, seeds=1, steps=1, batch=2, probe_batch=2)
    assert cfg.resolved_gram() == "wishart"
    assert simulate_cell(cfg).rows() == simulate_cell(replace(cfg, gram="wishart")).rows()
    res = simulate_cell(huge)
    assert np.isfinite(res.data["forward"]).all()


def test_a_cell_that_cannot_fit_is_refused_in_one_line() -> None:
    """Adam has no Gram draw: a rank whose state cannot fit is refused before anything is drawn,
    in one line naming the memory."""
    from rsstab.sim.cells import available_memory

    cfg = SimConfig(rank=2**28, gamma=1.0, width=64, optimizer="adam")
    assert cfg.memory_bytes() > available_memory()
    with pytest.raises(RsstabError, match=r"needs about .* GiB of memory .* available") as info:
        simulate_cell(cfg)
    assert "\n" not in str(info.value)
