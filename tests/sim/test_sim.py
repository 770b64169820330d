"""Tests of rsstab.sim and the ``rsstab simulate`` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import rsstab.sim as sim
from rsstab.cli import main
from rsstab.errors import RsstabError
from rsstab.measure.empirical import empirical_verdict
from rsstab.measure.rows import summary_values
from rsstab.sim import SimConfig, simulate_cell
from rsstab.sim.draws import draw_cell
from rsstab.sim.stack import DirectStack
from rsstab.theory import law
from support.reference import ReferenceStack, batch_loss, stack_output

SMALL = dict(depth=2, width=8, steps=3, seeds=3, batch=8, probe_batch=16)


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("nonlinearity", ["relu", "linear"])
def test_manual_gradients_match_autograd(nonlinearity: str) -> None:
    """The training step's gradients (read off one SGD step with η = 1: P ← P − ∇P) and the
    probes' input gradient through the adapter path equal autograd's."""
    cfg = SimConfig(rank=5, gamma=0.7, depth=3, width=6, steps=1, seeds=2, batch=4, lr=1.0,
                    dtype="float64", nonlinearity=nonlinearity)
    init = draw_cell(cfg)
    model = DirectStack(cfg, init)
    model.up.copy_(torch.randn(model.up.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    A0, B0 = model.down.clone(), model.up.clone()
    x, y = init["x"][:, :4], init["y"][:, :4]
    out, cache = model.forward(x)
    through = model.backward((out - y) / 4, cache)
    # The adapter-path input gradient of the first layer plus the base path is the full input grad.
    full = through[0] + torch.bmm(
        _masked_grad(model, cache, (out - y) / 4, layer=0), model.Wt[0].transpose(1, 2)
    )
    model.train_step((out - y) / 4, cache, record=False, update=True)
    grad_A, grad_B = A0 - model.down, B0 - model.up

    A = A0.clone().requires_grad_()
    B = B0.clone().requires_grad_()
    h = x.clone().requires_grad_()
    out = stack_output(h, model.Wt, {lay: A[lay] for lay in range(3)}, {lay: B[lay] for lay in range(3)}, 0.7,
                       nonlinearity=nonlinearity)
    batch_loss(out, y).backward()
    torch.testing.assert_close(grad_A, A.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad_B, B.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(full, h.grad, rtol=1e-10, atol=1e-12)


def _masked_grad(model: DirectStack, cache, g: torch.Tensor, layer: int) -> torch.Tensor:
    """dL/dz_layer by a plain reference back-propagation through the cached stack."""
    for lay in reversed(range(layer, model.L)):
        act = cache[lay][2]  # the layer's ReLU output: the mask is where it is > 0
        if act is not None:
            g = g * (act > 0)
        if lay == layer:
            return g
        g = g @ (model.Wt[lay].transpose(1, 2) + model.gamma * model.up[lay] @ model.down[lay])
    raise AssertionError


def test_one_sgd_step_matches_the_closed_form_adapter() -> None:
    """Depth 1, linear: after one SGD step from B = 0, A is unchanged and
    γ·B₁·A·x = −η γ² (1/b) Σ_i v_i (x_iᵀ AᵀA x) exactly."""
    cfg = SimConfig(rank=7, gamma=0.3, depth=1, width=5, steps=1, seeds=2, batch=6, lr=0.05,
                    nonlinearity="linear", dtype="float64", probe_batch=4)
    res = simulate_cell(cfg)
    init = draw_cell(cfg)
    W, A = init["W"][:, 0], init["A"][:, 0]  # (S,d,d), (S,r,d)
    x, y = init["x"][:, :6], init["y"][:, :6]
    v = x @ W.transpose(1, 2) - y  # residual at B = 0
    xt = init["xt"]
    kernel = torch.einsum("sid,srd,sre,sje->sij", x, A, A, xt)  # x_iᵀ AᵀA x_j
    u = -cfg.lr * cfg.gamma**2 / 6 * torch.einsum("sid,sij->sjd", v, kernel)
    rms = u.pow(2).mean(dim=(1, 2)).sqrt().numpy()
    np.testing.assert_allclose(res.data["forward"][-1, :, 0], rms, rtol=1e-10)
    np.testing.assert_allclose(res.data["moment4"][-1, :, 0], u.pow(4).mean(dim=(1, 2)).numpy(), rtol=1e-9)
    # Step 0: B = 0 so the adapter output and grad_A vanish, grad_B does not.
    assert np.all(res.data["forward"][0] == 0) and np.all(res.data["grad_A"][0] == 0)
    grad_b = cfg.gamma / 6 * torch.einsum("sid,sir->sdr", v, x @ A.transpose(1, 2))
    np.testing.assert_allclose(res.data["grad_B"][0, :, 0], grad_b.flatten(1).norm(dim=1).numpy(), rtol=1e-10)


@pytest.mark.parametrize("optimizer, wd", [("sgd", 0.0), ("sgd", 0.1), ("adam", 0.0), ("adam", 0.1)])
def test_fused_training_matches_autograd_and_torch_optim(optimizer: str, wd: float) -> None:
    """Several steps of the fused in-place training loop equal autograd + torch.optim on the
    batched parameters (per-seed losses summed: seeds stay independent)."""
    cfg = SimConfig(rank=6, gamma=0.4, optimizer=optimizer, depth=3, width=5, steps=4, seeds=2, batch=7,
                    lr=0.05, weight_decay=wd, dtype="float64", probe_batch=9)
    res = simulate_cell(cfg)
    ref = ReferenceStack(cfg, draw_cell(cfg))  # torch.optim.SGD's weight_decay: regression, wd was ignored
    grad_b = ref.train()
    norms = torch.stack([grad_b[lay].flatten(1).norm(dim=1) for lay in range(3)], dim=1)
    np.testing.assert_allclose(res.data["grad_B"][0], norms.numpy(), rtol=1e-10)
    np.testing.assert_allclose(res.data["test_loss"][-1], ref.test_loss().numpy(), rtol=1e-9)


@pytest.mark.parametrize("nonlinearity, wd", [("relu", 0.0), ("linear", 0.0), ("relu", 0.5)])
def test_reduced_sgd_form_equals_the_direct_form(nonlinearity: str, wd: float) -> None:
    """SGD from B = 0 keeps A = A₀X, B = YA₀ᵀ: the d×d form reproduces every probe exactly
    (weight decay scales X and Y as it scales A and B)."""
    base = dict(rank=37, gamma=0.3, depth=3, width=8, steps=6, seeds=3, batch=5, lr=0.05,
                dtype="float64", nonlinearity=nonlinearity, probe_every=2, weight_decay=wd)
    direct = simulate_cell(SimConfig(method="direct", **base))
    reduced = simulate_cell(SimConfig(method="reduced", **base))
    assert direct.probe_steps == reduced.probe_steps == [0, 2, 4, 6]
    for q in direct.data:
        np.testing.assert_allclose(reduced.data[q], direct.data[q], rtol=1e-10, atol=1e-300, err_msg=q)
    assert SimConfig(rank=4096, gamma=1.0).resolved_method() == "reduced"
    assert SimConfig(rank=4, gamma=1.0, width=128).resolved_method() == "direct"
    assert SimConfig(rank=4096, gamma=1.0, optimizer="adam").resolved_method() == "direct"
    with pytest.raises(RsstabError, match="SGD only"):
        SimConfig(rank=4, gamma=1.0, optimizer="adam", method="reduced")


def test_base_keeps_activations_order_one_across_depth() -> None:
    cfg = SimConfig(rank=2, gamma=1.0, depth=16, width=128, steps=0, seeds=4, batch=64)
    init = draw_cell(cfg)
    model = DirectStack(cfg, init)
    _, cache = model.forward(init["x"][:, :64].float())
    ms = [float(h.pow(2).mean()) for h, *_ in cache]
    assert all(0.5 < m < 2.0 for m in ms), ms


# --------------------------------------------------------------------------- determinism, seeds


def test_same_seed_identical_numbers_and_seeds_are_independent() -> None:
    a = simulate_cell(SimConfig(rank=16, gamma=0.25, optimizer="adam", **SMALL)).rows()
    b = simulate_cell(SimConfig(rank=16, gamma=0.25, optimizer="adam", **SMALL)).rows()
    assert a == b
    c = simulate_cell(SimConfig(rank=16, gamma=0.25, optimizer="adam", seed=1, **SMALL)).rows()
    assert [r["value"] for r in c] != [r["value"] for r in a]
    # Seed s gives the same numbers whether it runs with 3 or 5 batched seeds.
    five = simulate_cell(SimConfig(rank=16, gamma=0.25, optimizer="adam", **{**SMALL, "seeds": 5}))
    three = simulate_cell(SimConfig(rank=16, gamma=0.25, optimizer="adam", **SMALL))
    for q in ("forward", "backward", "grad_A", "loss"):
        np.testing.assert_allclose(five.data[q][:, :3], three.data[q], rtol=1e-5)


def test_rows_are_tidy_and_complete() -> None:
    cfg = SimConfig(rank=4, gamma=0.5, probe_every=1, **SMALL)
    res = simulate_cell(cfg, tags={"schedule": "x"})
    rows = res.rows()
    keys = {"rank", "depth", "layer", "step", "seed", "quantity", "value", "schedule"}
    assert all(set(r) == keys for r in rows)
    n_layer = len(sim.LAYER_QUANTITIES) * cfg.depth
    assert len(rows) == 4 * cfg.seeds * (n_layer + len(sim.NETWORK_QUANTITIES))
    assert {r["step"] for r in rows} == {0, 1, 2, 3}
    forward = [r for r in rows if r["quantity"] == "forward" and r["step"] == 3]
    m2 = [r for r in rows if r["quantity"] == "moment2" and r["step"] == 3]
    assert [f["value"] ** 2 for f in forward] == pytest.approx([m["value"] for m in m2])


def test_float32_matches_float64_at_tiny_gamma() -> None:
    """γ = 1/r at r = 4096 gives tiny updates; float32 still agrees with float64."""
    out = {}
    for dt in ("float32", "float64"):
        out[dt] = simulate_cell(SimConfig(rank=4096, gamma=1 / 4096, dtype=dt, **{**SMALL, "seeds": 2}))
    for q in ("forward", "backward", "grad_B", "moment4"):
        np.testing.assert_allclose(out["float32"].data[q][-1], out["float64"].data[q][-1], rtol=1e-4)


# --------------------------------------------------------------------------- divergence


def test_divergence_is_recorded_not_raised() -> None:
    cfg = SimConfig(rank=64, gamma=1.0, lr=5.0, depth=2, width=8, steps=6, seeds=2, batch=8)
    res = simulate_cell(cfg)
    assert all(0 <= s <= 6 for s in res.diverged_step)
    rows = res.rows()
    assert sum(r["quantity"] == "diverged_step" for r in rows) == 2
    final = [r["value"] for r in rows if r["step"] == 6 and r["quantity"] == "forward"]
    assert not all(math.isfinite(v) for v in final)
    ok = simulate_cell(SimConfig(rank=64, gamma=1 / 64, lr=1e-3, depth=2, width=8, steps=6, seeds=2, batch=8))
    assert ok.diverged_step == [-1, -1]


@pytest.mark.parametrize("method", ["direct", "reduced"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_learning_rate_is_recorded_as_divergence(method: str, dtype: str) -> None:
    """Regression: lr·γ beyond float32 raised 'value cannot be converted to type float without
    overflow' (and lr·γ = inf in float64 too); non-finite values are data."""
    for lr, wd in [(1e308, 0.0), (1e300, 0.0), (1e-3, 1e308)]:
        cfg = SimConfig(rank=4, gamma=2.0, lr=lr, weight_decay=wd, method=method, dtype=dtype,
                        depth=2, width=8, steps=3, seeds=2, batch=8, probe_batch=8)
        res = simulate_cell(cfg)
        assert all(0 <= s <= 3 for s in res.diverged_step), (lr, wd, res.diverged_step)


def test_cli_huge_learning_rate_is_not_a_crash(capsys) -> None:
    argv = ["simulate", "alpha/sqrt(r)", "--lr", "1e308", "--ranks", "4,16", "--steps", "2",
            "--seeds", "2", "--width", "8", "--batch", "8", "--json"]
    assert main(argv) == 1  # measured verdict: not rank-stabilized (it diverged); no traceback
    captured = capsys.readouterr()
    assert "error" not in captured.err
    assert json.loads(captured.out)["diverged"]


def test_tolerance_reaches_the_agrees_column() -> None:
    """Regression: ``--tolerance`` changed the labels but ``agrees`` always used 0.1."""
    from rsstab.measure.compare import report

    opts = {"ranks": [4, 16, 64], "steps": 2, "seeds": 2, "width": 8, "batch": 8}
    _, wide = report("1/r", "sgd", tolerance=100.0, **opts)
    _, narrow = report("1/r", "sgd", tolerance=1e-12, **opts)
    assert all(q["agrees"] is True for q in wide["quantities"].values() if q["theory"] is not None)
    for q in narrow["quantities"].values():  # the interval rule: agrees iff the interval holds the theory
        if q["theory"] is not None:
            assert q["agrees"] is (q["ci"][0] <= q["theory"] <= q["ci"][1])
    assert any(q["theory"] is not None for q in wide["quantities"].values())


def test_empirical_verdict_reports_divergence(tmp_path) -> None:
    v = empirical_verdict("1", "sgd", ranks=[4, 512], lr=2.0, steps=4, seeds=2, width=8, batch=8,
                          out=str(tmp_path))
    assert v.diverged[512] and v.as_dict()["diverged"] is True
    assert v.fits["forward"].label == "indeterminate"


# --------------------------------------------------------------------------- slopes vs theory


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_default_slopes_within_a_tenth_of_theory(optimizer: str, p: float) -> None:
    """The acceptance criterion: defaults give slopes within 0.1 of theory for γ = r^(−p)."""
    v = empirical_verdict(lambda r: r**-p, optimizer)
    for q, fit in v.fits.items():  # backward_residual (reported, not voting) has backward's law at r ≫ d
        expected = law("backward" if q == "backward_residual" else q, optimizer).exponent(-p)
        assert abs(fit.slope - expected) <= 0.1, (q, fit.evidence)
        assert fit.ci[1] - fit.ci[0] < 0.1, fit.evidence
    stable = law("forward", optimizer).exponent(-p) == 0
    assert (v.label == "rank-stabilized") == stable
    if not stable:
        assert v.label == ("blow-up" if law("forward", optimizer).exponent(-p) > 0 else "collapse")
    assert not any(v.diverged.values())


def test_bad_input() -> None:
    with pytest.raises(RsstabError, match="optimizer"):
        SimConfig(rank=4, gamma=1.0, optimizer="rmsprop")
    with pytest.raises(RsstabError, match="positive finite"):
        SimConfig(rank=4, gamma=0.0)
    with pytest.raises(RsstabError, match="rank"):
        SimConfig(rank=0, gamma=1.0)
    with pytest.raises(RsstabError, match="two distinct"):
        empirical_verdict("1/r", ranks=[4, 4])
    with pytest.raises(RsstabError):
        sim.gamma_values(lambda r: -1.0, [4])
    with pytest.raises(RsstabError):
        sim.gamma_values("1/(", [4])


@pytest.mark.parametrize("name", ["rank", "depth", "width", "seeds", "batch", "probe_batch", "teacher_rank", "steps"])
def test_a_bool_is_not_a_size(name: str) -> None:
    """True is an Integral, not a size: refused with a one-line error (it used to be taken as 1)."""
    with pytest.raises(RsstabError, match=name):
        SimConfig(**{"rank": 4, "gamma": 1.0, name: True})


# --------------------------------------------------------------------------- ablations: adapted_layers, a_init_scale


@pytest.mark.parametrize("kw", [dict(method="direct"), dict(method="reduced"), dict(optimizer="adam")])
def test_adapted_layers_all_given_explicitly_equals_none(kw) -> None:
    base = dict(rank=9, gamma=0.3, depth=3, width=6, steps=3, seeds=2, batch=5, lr=0.05, probe_batch=7, **kw)
    ref = simulate_cell(SimConfig(**base))
    explicit = simulate_cell(SimConfig(adapted_layers=(2, 0, 1), **base))  # any order
    assert explicit.config.adapted_layers == (0, 1, 2)
    for q in ref.data:
        np.testing.assert_array_equal(explicit.data[q], ref.data[q], err_msg=q)
    assert explicit.rows() == ref.rows()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("layers", [(1,), (0, 2), (2,)])
def test_adapted_subset_matches_autograd_and_torch_optim(optimizer: str, layers: tuple[int, ...]) -> None:
    """Adapters on a subset of a depth-3 stack: the fused loop equals autograd + torch.optim on a
    model whose other layers are plain frozen base layers (held-out loss, grad_B at step 0)."""
    cfg = SimConfig(rank=6, gamma=0.4, optimizer=optimizer, depth=3, width=5, steps=4, seeds=2, batch=7,
                    lr=0.05, dtype="float64", probe_batch=9, method="direct", adapted_layers=layers)
    res = simulate_cell(cfg)
    ref = ReferenceStack(cfg, draw_cell(cfg))  # the other layers: plain frozen base layers
    assert sorted(ref.A) == sorted(layers)
    grad_b = ref.train()
    for lay in layers:
        np.testing.assert_allclose(res.data["grad_B"][0, :, lay], grad_b[lay].flatten(1).norm(dim=1).numpy(), rtol=1e-10)
    np.testing.assert_allclose(res.data["test_loss"][-1], ref.test_loss().numpy(), rtol=1e-9)
    others = [lay for lay in range(3) if lay not in layers]
    for q in sim.LAYER_QUANTITIES:
        assert np.all(np.isnan(res.data[q][:, :, others])), q
        assert np.all(np.isfinite(res.data[q][:, :, list(layers)])), q


@pytest.mark.parametrize("nonlinearity", ["relu", "linear"])
@pytest.mark.parametrize("layers", [(1,), (0, 2), (1, 2)])
def test_adapted_subset_reduced_equals_direct(nonlinearity: str, layers: tuple[int, ...]) -> None:
    base = dict(rank=37, gamma=0.3, depth=3, width=8, steps=6, seeds=3, batch=5, lr=0.05, dtype="float64",
                nonlinearity=nonlinearity, probe_every=2, adapted_layers=layers)
    direct = simulate_cell(SimConfig(method="direct", **base))
    reduced = simulate_cell(SimConfig(method="reduced", **base))
    for q in direct.data:
        np.testing.assert_allclose(reduced.data[q], direct.data[q], rtol=1e-10, atol=1e-300, err_msg=q)
    keys = [{k: v for k, v in r.items() if k != "value"} for r in direct.rows()]
    assert [{k: v for k, v in r.items() if k != "value"} for r in reduced.rows()] == keys
    assert {r["layer"] for r in keys if r["quantity"] == "backward"} == set(layers)


def test_adapted_layer_one_of_three_rows_loss_and_onset() -> None:
    """adapted_layers=(1,) on depth 3: layer rows only for layer 1, the loss decreases, and at
    step 0 (B = 0 everywhere: the network is the base) the network quantities and layer 1's
    grad_B equal those of the fully adapted run — the draws of layer 1 do not depend on which
    other layers are adapted."""
    base = dict(rank=16, gamma=0.25, depth=3, width=8, steps=20, seeds=3, batch=16, lr=0.05, probe_batch=32)
    full = simulate_cell(SimConfig(**base))
    part = simulate_cell(SimConfig(adapted_layers=(1,), **base))
    rows = part.rows()
    layer_rows = [r for r in rows if r["quantity"] in sim.LAYER_QUANTITIES]
    assert layer_rows and {r["layer"] for r in layer_rows} == {1}
    assert len(layer_rows) == len(sim.LAYER_QUANTITIES) * len(part.probe_steps) * 3
    net_rows = [r for r in rows if r["quantity"] in sim.NETWORK_QUANTITIES]
    assert {r["layer"] for r in net_rows} == {-1}
    assert len(net_rows) == len(sim.NETWORK_QUANTITIES) * len(part.probe_steps) * 3
    assert np.all(part.data["test_loss"][-1] < part.data["test_loss"][0])
    assert np.all(part.data["loss"][-1] < part.data["loss"][0])
    for q in ("loss", "test_loss"):
        np.testing.assert_array_equal(part.data[q][0], full.data[q][0])
    np.testing.assert_allclose(part.data["grad_B"][0, :, 1], full.data["grad_B"][0, :, 1], rtol=1e-5)
    # Summaries and aggregates see layer 1 only: no zeros, no nans.
    ranks, vals = summary_values(rows, "grad_init")
    assert ranks == [16] and np.all(np.isfinite(vals)) and np.all(vals > 0)
    np.testing.assert_allclose(vals[0], part.data["grad_B"][0, :, 1], rtol=1e-12)
    _, fwd = summary_values(rows, "forward")
    np.testing.assert_allclose(fwd[0], part.data["forward"][-1, :, 1], rtol=1e-12)


@pytest.mark.parametrize("method", ["direct", "reduced"])
@pytest.mark.parametrize("s", [0.125, 3.0])
def test_a_init_scale_scales_grad_init_by_s_and_first_step_forward_by_s2(method: str, s: float) -> None:
    """At B = 0, ∇_B L = γ·vᵀ(A h) is linear in A: grad_init scales by exactly s. After one SGD
    step A is unchanged (∇_A = 0 at B = 0) and B₁ ∝ A, so the first layer's adapter output (its
    input is x itself) scales by s²."""
    base = dict(rank=12, gamma=0.3, depth=2, width=6, steps=1, seeds=3, batch=8, lr=0.01, probe_batch=16,
                dtype="float64", method=method)
    ref = simulate_cell(SimConfig(**base))
    scaled = simulate_cell(SimConfig(a_init_scale=s, **base))
    np.testing.assert_allclose(scaled.data["grad_B"][0] / ref.data["grad_B"][0], s, rtol=1e-12)
    first = ref.data["forward"][-1, :, 0]
    np.testing.assert_allclose(scaled.data["forward"][-1, :, 0] / first, s**2, rtol=1e-10)
    _, v_ref = summary_values(ref.rows(), "grad_init")
    _, v_scaled = summary_values(scaled.rows(), "grad_init")
    np.testing.assert_allclose(v_scaled, s * v_ref, rtol=1e-12)
    # The default is bit-identical to not giving it.
    again = simulate_cell(SimConfig(a_init_scale=1.0, **base))
    assert again.rows() == ref.rows()


def test_new_fields_round_trip_and_sweep_store(tmp_path) -> None:
    from rsstab.sweep import run_sweep

    cfg = SimConfig(rank=8, gamma=0.5, depth=3, adapted_layers=[2, 0], a_init_scale=0.25)
    assert cfg.adapted_layers == (0, 2) and cfg.adapter_layers() == (0, 2)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert d["adapted_layers"] == [0, 2] and d["a_init_scale"] == 0.25
    back = SimConfig.from_dict(d)
    assert back == cfg and isinstance(back.adapted_layers, tuple)
    assert SimConfig.from_dict(SimConfig(rank=8, gamma=0.5).to_dict()).adapted_layers is None
    old = {k: v for k, v in SimConfig(rank=8, gamma=0.5).to_dict().items() if k not in ("adapted_layers", "a_init_scale")}
    assert SimConfig.from_dict(old) == SimConfig(rank=8, gamma=0.5)  # a config stored before the fields

    configs = sim.make_configs("alpha/r", [4, 16], constants={"alpha": 2}, a_init_scale="1/sqrt(r)",
                               adapted_layers=(1,), **SMALL)
    assert [c["a_init_scale"] for c in configs] == [0.5, 0.25]
    assert [c["adapted_layers"] for c in configs] == [[1], [1]]
    assert [c["gamma"] for c in configs] == [0.5, 0.125]
    json.dumps(configs)
    assert [c["a_init_scale"] for c in sim.make_configs("1/r", [4, 16], a_init_scale=lambda r: r**-0.5)] == [0.5, 0.25]
    assert [c["a_init_scale"] for c in sim.make_configs("1/r", [4, 16], a_init_scale="s", constants={"s": 3})] == [3.0, 3.0]
    first = run_sweep(sim.run_cell, configs, tmp_path, progress=False)
    again = run_sweep(sim.run_cell, configs, tmp_path, progress=False)
    assert first.ok and again.n_computed == 0 and again.rows == first.rows
    assert {r["layer"] for r in first.rows if r["quantity"] == "forward"} == {1}
    direct = simulate_cell(SimConfig.from_dict(configs[1]), tags=configs[1]["tags"]).rows()
    assert [r for r in first.rows if r["rank"] == 16] == direct


@pytest.mark.parametrize(
    "kw, match",
    [(dict(adapted_layers=()), "at least one"), (dict(adapted_layers=(3,)), "out of range"),
     (dict(adapted_layers=(-1,)), "out of range"), (dict(adapted_layers=(1, 1)), "repeated"),
     (dict(adapted_layers=("a",)), "integer"), (dict(adapted_layers=(True,)), "integer"),
     (dict(adapted_layers=(1.0,)), "integer"), (dict(adapted_layers=1), "list"),
     (dict(a_init_scale=0.0), "a_init_scale"), (dict(a_init_scale=-1.0), "a_init_scale"),
     (dict(a_init_scale=float("nan")), "a_init_scale"), (dict(a_init_scale=float("inf")), "a_init_scale"),
     (dict(a_init_scale="1"), "a_init_scale"), (dict(a_init_scale=None), "a_init_scale")],
)
def test_bad_ablation_options(kw, match) -> None:
    with pytest.raises(RsstabError, match=match) as info:
        SimConfig(rank=4, gamma=1.0, depth=3, **kw)
    assert "\n" not in str(info.value)


def test_bad_a_init_scale_schedules() -> None:
    with pytest.raises(RsstabError, match="a_init_scale"):
        sim.make_configs("1/r", [4, 8], a_init_scale="-1/r")
    with pytest.raises(RsstabError):
        sim.make_configs("1/r", [4, 8], a_init_scale="1/(")
    with pytest.raises(RsstabError, match="a_init_scale"):
        sim.make_configs("1/r", [4, 8], a_init_scale=0)


# --------------------------------------------------------------------------- command line


def test_cli_json_and_exit_codes(capsys) -> None:
    argv = ["simulate", "alpha/r", "--optimizer", "adam", "--ranks", "64,1024", "--steps", "3",
            "--seeds", "3", "--set", "alpha=4", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["label"] == "rank-stabilized" and out["optimizer"] == "adam" and out["diverged"] is False
    for q in ("grad_init", "forward", "backward"):
        d = out["quantities"][q]
        assert set(d) >= {"slope", "ci", "theory", "values", "ranks", "label"}
        assert len(d["values"]) == 2 and d["ranks"] == [64, 1024]
    assert out["quantities"]["forward"]["theory"] == 0.0
    assert out["quantities"]["grad_init"]["theory"] == -0.5
    assert main(["simulate", "1", "--ranks", "16,256", "--steps", "2", "--seeds", "2"]) == 1
    text = capsys.readouterr().out
    assert "empirical verdict: blow-up" in text and "symbolic verdict (sgd): blow-up" in text


@pytest.mark.parametrize(
    "argv",
    [["simulate", "1/("], ["simulate", "1/r", "--ranks", "4"], ["simulate", "1/r", "--seeds", "1"],
     ["simulate", "1/r", "--set", "alpha"], ["simulate", "-1/r", "--ranks", "4,8"]],
)
def test_cli_bad_input_exits_2(argv, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects malformed option values itself
        code = exc.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_simulate_says_why_it_is_indeterminate_and_calls_total_divergence_blow_up() -> None:
    """An indeterminate verdict names what would decide it; every seed diverging at the largest
    ranks is a blow-up, not an unfittable run."""
    import math

    from rsstab.measure.empirical import _label_and_reason
    from rsstab.measure.fit import fit_slope

    ranks = [4, 16, 64]
    straddling = fit_slope(ranks, [[1.0, 1.3], [1.05, 1.45], [1.1, 1.6]])  # slope ≈ +0.05 ± a wide interval
    fits = {"forward": straddling, "backward": straddling}
    label, reason = _label_and_reason(fits, {r: [] for r in ranks}, ranks, seeds=2, width=16, tol=0.1)
    assert label == "indeterminate" and "more seeds" in reason and "at or below the width" in reason
    nan = fit_slope(ranks, [[1.0, 1.0], [2.0, 2.0], [math.nan, math.nan]])
    label, reason = _label_and_reason({"forward": nan, "backward": nan}, {4: [], 16: [], 64: [0, 1]}, ranks,
                                      seeds=2, width=8, tol=0.1)
    assert label == "blow-up" and "diverged for every seed at r ≥ 64" in reason
