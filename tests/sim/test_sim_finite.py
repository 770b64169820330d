"""Tests of the simulator's finite-width measurements (rsstab.sim.finite): the coherent/incoherent
split across A draws at fixed data, the fixed-output-gradient backward and the data statistics.

The Monte Carlo tests compare the measured parts with the exact first-order finite-(r, d) laws
(written here, not imported: the library's theory gets them elsewhere), evaluated on the recorded
data statistics. With G the summed data gradient, M = AᵀA, A iid N(0, σ²), σ² = s²/d, the
per-entry mean squares (over probes and output or input coordinates, d_out = d_in = d) are:

* SGD forward   Δu = −ηγ²·G·M·h′:  coherent η²γ⁴σ⁴·r²·E‖Gh′‖²/d,
  incoherent η²γ⁴σ⁴·r·(E‖Gh′‖² + ‖G‖_F²·E‖h′‖²)/d;
* SGD backward  −ηγ²·M·Gᵀu′:       coherent η²γ⁴σ⁴·r²·E‖Gᵀu′‖²/d, incoherent η²γ⁴σ⁴·r·(d+1)·E‖Gᵀu′‖²/d;
* Adam (n steps on a fixed batch: n sign steps of G₀; c = 2/π)
  forward:  coherent (nη)²γ²σ²·r²·c·E(ĝ_o·h′)², incoherent (nη)²γ²σ²·r·(E‖h′‖² − c·E(ĝ_o·h′)²);
  backward: coherent (nη)²γ²σ²·r²·c·E‖Ĝᵀu′‖²/d, incoherent (nη)²γ²σ²·r·(d·Q − c·E‖Ĝᵀu′‖²)/d,
  Q = E u′ᵀ c·arcsin(ĜĜᵀ) u′.

Tolerances: 5 jackknife standard errors over the seeds (the A draws), plus 0.5 % for the O(η)
terms the first-order laws leave out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsstab.errors import RsstabError
from rsstab.measure.rows import values_from_rows
from rsstab.sim import DATA_QUANTITIES, LAYER_QUANTITIES, NETWORK_QUANTITIES, SimConfig, simulate_cell
from rsstab.sim.draws import draw_cell
from rsstab.sim.finite import output_grads_at_layers, seed_split
from rsstab.sim.stack import DirectStack
from support.reference import batch_loss, stack_output

FINITE = dict(share_data=True, fixed_output_grad=True, data_stats=True)


# --------------------------------------------------------------------------- the estimator


def test_seed_split_is_the_unbiased_split_and_its_jackknife() -> None:
    t = torch.randn(7, 5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.4
    S = t.shape[0]
    m, v = t.mean(0), t.var(0, unbiased=True)
    coh2, inc2 = float((m**2 - v / S).mean()), float(v.mean())
    coh, inc, coh_se, inc_se = seed_split(t)
    assert coh * abs(coh) == pytest.approx(coh2, rel=1e-12) and inc**2 == pytest.approx(inc2, rel=1e-12)

    def loo(s: int) -> tuple[float, float]:  # brute-force leave-one-out
        rest = torch.cat([t[:s], t[s + 1 :]])
        mm, vv = rest.mean(0), rest.var(0, unbiased=True)
        c2 = float((mm**2 - vv / (S - 1)).mean())
        return math.copysign(math.sqrt(abs(c2)), c2), math.sqrt(float(vv.mean()))

    jk = np.array([loo(s) for s in range(S)])
    se = np.sqrt((S - 1) / S * ((jk - jk.mean(0)) ** 2).sum(0))
    np.testing.assert_allclose([coh_se, inc_se], se, rtol=1e-9)
    # Too few seeds: nan, never an error.
    assert all(math.isnan(v) for v in seed_split(t[:1]))
    two = seed_split(t[:2])
    assert math.isfinite(two[0]) and math.isnan(two[2]) and math.isnan(two[3])


# --------------------------------------------------------------------------- defaults, draws, rows

SMALL = dict(depth=2, width=8, steps=3, seeds=3, batch=8, probe_batch=16, probe_every=1)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_measurement_options_change_no_existing_number(optimizer: str) -> None:
    """fixed_output_grad and data_stats only measure: every other row is bit-identical."""
    ref = simulate_cell(SimConfig(rank=5, gamma=0.5, optimizer=optimizer, lr=1e-3, **SMALL))
    cfg_new = SimConfig(rank=5, gamma=0.5, optimizer=optimizer, lr=1e-3, fixed_output_grad=True, data_stats=True,
                        **SMALL)
    new = simulate_cell(cfg_new)
    old_names = set(LAYER_QUANTITIES) | set(NETWORK_QUANTITIES)
    assert set(ref.data) == old_names
    extra = set(DATA_QUANTITIES) | ({"adam_probe_coh2", "adam_probe_m2", "adam_u_coh2", "adam_u_m2"}
                                    if optimizer == "adam" else set())
    assert set(cfg_new.data_quantities()) == extra
    assert set(new.data) == old_names | {"backward_fixed"} | extra
    assert [r for r in new.rows() if r["quantity"] in old_names] == ref.rows()


def test_share_data_keeps_each_seeds_A_and_seed_zero_is_unchanged() -> None:
    base = dict(rank=6, gamma=0.5, optimizer="adam", lr=1e-3, **SMALL)
    plain, shared = SimConfig(**base), SimConfig(share_data=True, fixed_output_grad=True, **base)
    p, s = draw_cell(plain), draw_cell(shared)
    assert torch.equal(p["A"], s["A"])  # the same A draws
    for n in ("W", "T", "x", "xt", "y", "yt", "U"):
        assert all(torch.equal(s[n][k], s[n][0]) for k in range(shared.seeds)), n
    for n in ("W", "x", "xt"):
        assert torch.equal(s[n][0], p[n][0]) and not torch.equal(p[n][1], p[n][0])
    ref, res = simulate_cell(plain), simulate_cell(shared)
    for q in ref.data:  # seed 0 is the same run
        np.testing.assert_array_equal(res.data[q][:, :1], ref.data[q][:, :1], err_msg=q)
    # fixed_output_grad draws U per seed from a stream of its own.
    u = draw_cell(SimConfig(fixed_output_grad=True, **base))["U"]
    assert u.shape == (3, 16, 8) and not torch.equal(u[0], u[1]) and torch.equal(u[0], s["U"][0])


def test_cell_level_rows_have_seed_minus_one_and_rows_stay_tidy() -> None:
    cfg = SimConfig(rank=4, gamma=0.5, adapted_layers=(0, 2), **{**SMALL, "depth": 3}, **FINITE)
    rows = simulate_cell(cfg, tags={"schedule": "x"}).rows()
    keys = {"rank", "depth", "layer", "step", "seed", "quantity", "value", "schedule"}
    assert all(set(r) == keys for r in rows)
    cell = [r for r in rows if r["seed"] == -1]
    assert {r["quantity"] for r in cell} == set(cfg.cell_quantities())
    assert len(cell) == len(cfg.cell_quantities()) * 4 * 2  # steps 0…3, layers 0 and 2
    assert {r["layer"] for r in cell} == {0, 2}
    for q in ("forward", "backward", "backward_fixed", "data_grad_fro2", "loss"):
        ranks, v = values_from_rows(rows, q, where={"step": 3, "layer": -1 if q == "loss" else 2})
        assert ranks == [4] and v.shape == (1, 3)
    ranks, v = values_from_rows(rows, "forward_coherent", where={"step": 3, "layer": 2})
    assert v.shape == (1, 1) and np.isfinite(v).all()
    # The split is exact bookkeeping: coherent·|coherent| + incoherent² = the seeds' mean forward².
    res = simulate_cell(cfg)
    lhs = res.data["forward_coherent"] * np.abs(res.data["forward_coherent"]) + res.data["forward_incoherent"] ** 2
    np.testing.assert_allclose(lhs[1:, [0, 2]], (res.data["forward"] ** 2).mean(1)[1:, [0, 2]], rtol=1e-9)
    assert np.all(res.data["forward_coherent"][0, [0, 2]] == 0)  # step 0: B = 0
    with pytest.raises(RsstabError, match="share_data"):
        SimConfig(rank=4, gamma=0.5, share_data="yes")


def test_data_statistics_equal_full_fine_tune_gradients() -> None:
    """G_t is the gradient of step t's batch loss with respect to the base weight W_ℓ (autograd);
    the statistics follow from G, the probe inputs and U back-propagated through the base."""
    cfg = SimConfig(rank=3, gamma=0.5, depth=3, width=6, steps=2, seeds=2, batch=5, probe_batch=7,
                    adapted_layers=(0, 2), dtype="float64", fixed_output_grad=True, data_stats=True)
    init, res = draw_cell(cfg), simulate_cell(cfg)
    W = init["W"].clone().requires_grad_()
    Wt = [W[:, layer].transpose(1, 2) for layer in range(3)]  # the base alone: no adapter in the reference

    G = []
    for t in range(2):
        out = stack_output(init["x"][:, 5 * t : 5 * t + 5], Wt, {}, {}, cfg.gamma)
        (grad,) = torch.autograd.grad(batch_loss(out, init["y"][:, 5 * t : 5 * t + 5]), W)
        G.append(grad)
    hs: list[torch.Tensor] = []
    with torch.no_grad():
        stack_output(init["xt"], Wt, {}, {}, cfg.gamma, inputs=hs)
        Wd = W.detach()
        masks = [hs[k] @ Wd[:, k].transpose(1, 2) > 0 for k in range(2)]
        u_at = {2: init["U"]}  # U back-propagated through the base to each layer's output
        u_at[1] = (u_at[2] @ Wd[:, 2]) * masks[1]
        u_at[0] = (u_at[1] @ Wd[:, 1]) * masks[0]
    for layer in (0, 2):
        h, up = hs[layer], u_at[layer]
        g0 = G[0][:, layer]
        gsum = G[0][:, layer] + G[1][:, layer]
        gh = g0 / g0.norm(dim=2, keepdim=True)
        c = 2 / math.pi
        expect = {
            "data_grad_fro2": gsum.pow(2).sum((1, 2)),  # ‖G‖_F² after 2 steps
            "data_grad_probe2": (h @ gsum.transpose(1, 2)).pow(2).sum(2).mean(1),
            "probe_input2": h.pow(2).sum(2).mean(1),
            "data_grad_u2": (up @ gsum).pow(2).sum(2).mean(1),
            "sign_probe2": (h @ gh.transpose(1, 2)).pow(2).mean((1, 2)),
            "sign_u2": (up @ gh).pow(2).sum(2).mean(1),
            "sign_uq": ((up @ (c * torch.asin((gh @ gh.transpose(1, 2)).clamp(-1, 1)))) * up).sum(2).mean(1),
        }
        for q, v in expect.items():
            # arcsin near the diagonal's 1 turns rounding into √ε: sign_uq to 1e-7.
            rtol = 1e-7 if q == "sign_uq" else 1e-10
            np.testing.assert_allclose(res.data[q][-1, :, layer], v.numpy(), rtol=rtol, err_msg=q)
        assert np.all(res.data["data_grad_fro2"][0, :, layer] == 0)  # G = 0 before any step
        np.testing.assert_allclose(res.data["sign_uq"][0, :, layer], expect["sign_uq"].numpy(), rtol=1e-7)
    assert np.all(np.isnan(res.data["sign_u2"][:, :, 1]))  # layer 1 has no adapter
    # backward_fixed is the RMS of γ·u′·B·A with that same u′ (here with a random B).
    model = DirectStack(cfg, init)
    model.up.copy_(torch.randn(model.up.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    data = {q: np.full((1, 2, 3), np.nan) for q in cfg.layer_quantities()}
    data["test_loss"] = np.full((1, 2), np.nan)
    model.probe(init["xt"], init["yt"], data, 0, output_grads_at_layers(cfg, init))
    for j, layer in enumerate((0, 2)):
        expect = (0.5 * u_at[layer] @ model.up[j] @ model.down[j]).pow(2).mean((1, 2)).sqrt()
        np.testing.assert_allclose(data["backward_fixed"][0, :, layer], expect.numpy(), rtol=1e-12)


def test_fixed_batch_repeats_the_first_batch() -> None:
    base = dict(rank=4, gamma=0.5, lr=1e-9, dtype="float64", data_stats=True, **SMALL)
    fixed, moving = simulate_cell(SimConfig(fixed_batch=True, **base)), simulate_cell(SimConfig(**base))
    np.testing.assert_allclose(fixed.data["loss"], fixed.data["loss"][:1].repeat(4, 0), rtol=1e-6)
    assert not np.allclose(moving.data["loss"], moving.data["loss"][:1].repeat(4, 0), rtol=1e-2)
    fro2 = fixed.data["data_grad_fro2"][:, :, 0]
    np.testing.assert_allclose(fro2, np.arange(4)[:, None] ** 2 * fro2[1], rtol=1e-12)  # G = n·G₀


@pytest.mark.parametrize("layers", [None, (1,)])
def test_reduced_and_direct_sgd_agree_on_the_new_quantities(layers) -> None:
    base = dict(rank=37, gamma=0.3, depth=3, width=8, steps=4, seeds=4, batch=5, lr=0.05, probe_every=2,
                dtype="float64", adapted_layers=layers, **FINITE)
    direct = simulate_cell(SimConfig(method="direct", **base))
    reduced = simulate_cell(SimConfig(method="reduced", **base))
    assert set(direct.data) == set(reduced.data) and "backward_fixed_incoherent_se" in direct.data
    for q in direct.data:
        np.testing.assert_allclose(reduced.data[q], direct.data[q], rtol=1e-9, atol=1e-300, err_msg=q)


# --------------------------------------------------------------------------- the exact laws


def _predicted(cfg: SimConfig, st: dict[str, float], n: int) -> dict[str, tuple[float, float]]:
    """(coherent, incoherent) mean squares per entry of forward and backward_fixed, from the
    exact first-order finite-(r, d) laws (module docstring) and the recorded data statistics."""
    r, d, eta, g = cfg.rank, cfg.width, cfg.learning_rate, cfg.gamma
    sig2, c = cfg.a_init_scale**2 / d, 2 / math.pi
    if cfg.optimizer == "sgd":
        k = eta**2 * g**4 * sig2**2
        return {
            "forward": (k * r * r * st["data_grad_probe2"] / d,
                        k * r * (st["data_grad_probe2"] + st["data_grad_fro2"] * st["probe_input2"]) / d),
            "backward_fixed": (k * r * r * st["data_grad_u2"] / d, k * r * (d + 1) * st["data_grad_u2"] / d),
        }
    if "adam_probe_coh2" in st:  # fresh batches: the reference columns' one-column moments
        k = eta**2 * g**2 * sig2
        return {
            "forward": (k * r * r * st["adam_probe_coh2"], k * r * (st["adam_probe_m2"] - st["adam_probe_coh2"])),
            "backward_fixed": (k * r * r * st["adam_u_coh2"] / d, k * r * (st["adam_u_m2"] - st["adam_u_coh2"]) / d),
        }
    k = (n * eta) ** 2 * g**2 * sig2
    return {
        "forward": (k * r * r * c * st["sign_probe2"], k * r * (st["probe_input2"] - c * st["sign_probe2"])),
        "backward_fixed": (k * r * r * c * st["sign_u2"] / d, k * r * (d * st["sign_uq"] - c * st["sign_u2"]) / d),
    }


@pytest.mark.parametrize(
    "optimizer, method, rank, width, fixed_batch, steps",
    [
        ("sgd", "direct", 4, 16, True, 2),  # r < d
        ("sgd", "reduced", 64, 16, True, 2),  # r > d
        ("sgd", "direct", 8, 32, False, 3),  # a fresh batch each step: G = Σ_t G_t
        ("sgd", "reduced", 96, 32, False, 3),
        ("adam", "direct", 4, 16, True, 3),  # 3 sign steps of G₀
        ("adam", "direct", 64, 16, True, 3),
        ("adam", "direct", 8, 32, True, 1),
        ("adam", "direct", 4, 16, False, 3),  # fresh batches: Adam mixes the steps' gradients
        ("adam", "direct", 64, 16, False, 3),
    ],
)
def test_measured_parts_match_the_exact_finite_width_laws(
    optimizer: str, method: str, rank: int, width: int, fixed_batch: bool, steps: int
) -> None:
    cfg = SimConfig(rank=rank, gamma=0.7, optimizer=optimizer, method=method, depth=1, width=width, steps=steps,
                    seeds=240, batch=16, probe_batch=32, lr=1e-7, dtype="float64", a_init_scale=1.3,
                    fixed_batch=fixed_batch, **FINITE)
    res = simulate_cell(cfg)
    st = {q: res.data[q][-1, 0, 0] for q in cfg.data_quantities()}
    for q in cfg.data_quantities():  # shared data: every seed has the same statistics
        np.testing.assert_array_equal(res.data[q][-1, :, 0], st[q])
    # the reference columns' moments carry their own sampling error (M = 4096 here: ~1 %)
    ref = 0.03 if "adam_probe_coh2" in st else 0.005
    for source, (coh2, inc2) in _predicted(cfg, st, steps).items():
        for part, pred in (("coherent", coh2), ("incoherent", inc2)):
            value, se = res.data[f"{source}_{part}"][-1, 0], res.data[f"{source}_{part}_se"][-1, 0]
            tol = 5 * se + ref * math.sqrt(pred)
            assert abs(value - math.sqrt(pred)) <= tol, (source, part, value / math.sqrt(pred), se / value)
            assert se < 0.1 * value  # the test resolves the part: 240 draws give a few % per part


# --------------------------------------------------------------------------- Adam's reference columns


def test_adam_columns_run_torch_adam_at_zero_eps() -> None:
    """Ψ is bias-corrected Adam (ε = 0) summed over the steps: torch's Adam on each entry agrees."""
    from rsstab.sim.finite import AdamColumns

    gen = torch.Generator().manual_seed(3)
    a = torch.randn(5, 7, generator=gen, dtype=torch.float64)  # d_in = 5, M = 7
    Gs = [torch.randn(1, 3, 5, generator=gen, dtype=torch.float64) for _ in range(4)]
    cols = AdamColumns(a, (0.8, 0.95))
    p = torch.zeros(1, 3, 7, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=1.0, betas=(0.8, 0.95), eps=0.0)
    for G in Gs:
        cols.step(torch.matmul(G, a))
        opt.zero_grad()
        p.grad = torch.matmul(G, a)
        opt.step()
    np.testing.assert_allclose(cols.psi.numpy(), -p.detach().numpy(), rtol=1e-12)


def test_adam_columns_with_a_constant_gradient_are_the_sign_law() -> None:
    """n steps of one G: Ψ = n·sign(g·a), and the moments are the closed forms (2/π)·n²·(ĝ·h)²,
    n²‖h‖², … within the reference columns' sampling error (tolerance: 6 standard errors)."""
    from rsstab.sim.finite import AdamColumns

    gen = torch.Generator().manual_seed(5)
    d, d_out, m, M, n = 6, 3, 4, 20000, 3
    a = torch.randn(d, M, generator=gen, dtype=torch.float64)
    G = torch.randn(1, d_out, d, generator=gen, dtype=torch.float64)
    h = torch.randn(1, m, d, generator=gen, dtype=torch.float64)
    u = torch.randn(1, m, d_out, generator=gen, dtype=torch.float64)
    blocks = []  # 20 independent blocks of reference columns: their spread gives the standard errors
    for a_block in a.chunk(20, dim=1):
        cols = AdamColumns(a_block, (0.9, 0.999))
        for _ in range(n):
            cols.step(torch.matmul(G, a_block))
        np.testing.assert_allclose(cols.psi.numpy(), n * torch.sign(torch.matmul(G, a_block)).numpy(), rtol=1e-12)
        blocks.append([float(v[0]) for v in cols.moments(h, u)])
    est = np.array(blocks)
    mean, se = est.mean(0), est.std(0, ddof=1) / math.sqrt(len(est))
    gh = G[0] / G[0].norm(dim=1, keepdim=True)
    c = 2 / math.pi
    C = c * torch.asin((gh @ gh.T).clamp(-1, 1))
    C.fill_diagonal_(1.0)
    want = [n * n * c * float((h[0] @ gh.T).pow(2).mean()),  # adam_probe_coh2
            n * n * float(h[0].pow(2).sum(1).mean()),  # adam_probe_m2: Ψ² = n², E(a·h)² = ‖h‖²
            n * n * c * float((u[0] @ gh).pow(2).sum(1).mean()),  # adam_u_coh2
            n * n * d * float(((u[0] @ C) * u[0]).sum(1).mean())]  # adam_u_m2: the arcsine law
    for name, got, s_e, w in zip(("probe_coh2", "probe_m2", "u_coh2", "u_m2"), mean, se, want):
        assert abs(got - w) <= 5 * s_e and s_e < 0.05 * w, (name, got, w, s_e)


@pytest.mark.parametrize("b, fixed", [(2, False), (9, False), (2, True)])
def test_column_steps_equal_stepping_on_each_batch_gradient(b, fixed, monkeypatch) -> None:
    """Both product orders (rows first for small batches, G first for large ones), blocks of
    steps and a fixed batch feed the columns exactly z_t = (g_tᵀ·h_t)·a, step by step."""
    import rsstab.sim.finite as finite

    monkeypatch.setattr(finite, "_HA_BLOCK", 3 * b * 7 * 2)  # blocks of 3 steps (n = 2, M = 7)
    gen = torch.Generator().manual_seed(11)
    a = torch.randn(5, 7, generator=gen, dtype=torch.float64)  # d_in = 5, M = 7
    steps = 7
    g = torch.randn(2, steps * b, 4, generator=gen, dtype=torch.float64)  # n = 2, d_out = 4
    h = torch.randn(2, steps * b, 5, generator=gen, dtype=torch.float64)
    ref = finite.AdamColumns(a, (0.9, 0.99))
    cols = finite.AdamColumns(a, (0.9, 0.99))
    assert cols.rows_first(b, 4) == (b == 2)
    for t in range(steps):
        rows = slice(0, b) if fixed else slice(t * b, (t + 1) * b)
        ref.step(torch.matmul(g[:, rows].transpose(1, 2) @ h[:, rows], a))
    finite._column_steps(cols, g, h, 0, 4, b, fixed)  # two calls, as between two probe steps
    finite._column_steps(cols, g, h, 4, steps, b, fixed)
    np.testing.assert_allclose(cols.psi.numpy(), ref.psi.numpy(), rtol=1e-12)
    assert cols.t == steps
