"""The tuple in the simulator and in ``rsstab simulate``: η_B/η_A (``lr_ratio``), a learning rate
and an init std that are functions of r."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import rsstab.sim as sim
from rsstab.cli import main
from rsstab.errors import RsstabError
from rsstab.sim import SimConfig, simulate_cell
from rsstab.sim.draws import draw_cell
from support.reference import ReferenceStack


@pytest.mark.parametrize("nonlinearity, wd", [("relu", 0.0), ("linear", 0.3)])
def test_reduced_form_stays_exact_with_separate_learning_rates(nonlinearity: str, wd: float) -> None:
    """A_t = A₀·X_t and B_t = Y_t·A₀ᵀ hold whatever the two learning rates: the d×d form
    reproduces every probe of the direct form with η_B ≠ η_A (and per-factor weight decay)."""
    base = dict(rank=37, gamma=0.3, depth=3, width=8, steps=6, seeds=3, batch=5, lr=0.05, lr_ratio=3.5,
                dtype="float64", nonlinearity=nonlinearity, probe_every=2, weight_decay=wd)
    direct = simulate_cell(SimConfig(method="direct", **base))
    reduced = simulate_cell(SimConfig(method="reduced", **base))
    same = simulate_cell(SimConfig(method="direct", **{**base, "lr_ratio": 1.0}))
    for q in direct.data:
        np.testing.assert_allclose(reduced.data[q], direct.data[q], rtol=1e-10, atol=1e-300, err_msg=q)
    assert not np.allclose(same.data["forward"][-1], direct.data["forward"][-1])  # the ratio acts


@pytest.mark.parametrize("optimizer, wd", [("sgd", 0.0), ("sgd", 0.2), ("adam", 0.0), ("adam", 0.2)])
def test_lr_ratio_matches_torch_optim_with_two_parameter_groups(optimizer: str, wd: float) -> None:
    """B learns at lr·lr_ratio and A at lr: the fused loop equals autograd + torch.optim with A and
    B in parameter groups of those learning rates (decoupled weight decay per group)."""
    cfg = SimConfig(rank=6, gamma=0.4, optimizer=optimizer, depth=2, width=5, steps=4, seeds=2, batch=7,
                    lr=0.03, lr_ratio=4.0, weight_decay=wd, dtype="float64", probe_batch=9, method="direct")
    res = simulate_cell(cfg)
    # A and B in torch.optim parameter groups of lr and lr·lr_ratio: SGD's weight decay per group is the
    # decoupled P ← (1 − η·λ)·P − η·∇P; Adam is torch's AdamW
    ref = ReferenceStack(cfg, draw_cell(cfg))
    assert [g["lr"] for g in ref.opt.param_groups] == [cfg.lr, cfg.lr * cfg.lr_ratio]
    ref.train()
    np.testing.assert_allclose(res.data["test_loss"][-1], ref.test_loss().numpy(), rtol=1e-9)


def test_after_one_step_only_b_learning_rate_matters() -> None:
    """From B₀ = 0, A's first gradient vanishes: after one SGD step (lr η, ratio k) is (lr η·k,
    ratio 1); after two steps A's own learning rate enters."""
    base = dict(rank=16, gamma=0.5, depth=2, width=6, seeds=2, batch=8, dtype="float64", method="direct")
    one = simulate_cell(SimConfig(steps=1, lr=0.01, lr_ratio=5.0, **base))
    folded = simulate_cell(SimConfig(steps=1, lr=0.05, **base))
    np.testing.assert_allclose(one.data["forward"][-1], folded.data["forward"][-1], rtol=1e-12)
    two = simulate_cell(SimConfig(steps=2, lr=0.01, lr_ratio=5.0, **base))
    folded2 = simulate_cell(SimConfig(steps=2, lr=0.05, **base))
    assert not np.allclose(two.data["forward"][-1], folded2.data["forward"][-1], rtol=1e-9)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_default_cell_is_unchanged_by_the_ratio_field(optimizer: str) -> None:
    """The default ratio is 1 and gives the same numbers as before the field: every factor learns at
    ``lr``, exactly as an explicit ratio of 1 — and the old configs (without the key) still load."""
    cfg = SimConfig(rank=12, gamma=0.3, optimizer=optimizer, width=6, steps=3, seeds=2, batch=8)
    assert cfg.lr_ratio == 1.0 and cfg.learning_rates == (cfg.learning_rate, cfg.learning_rate)
    old = {k: v for k, v in cfg.to_dict().items() if k != "lr_ratio"}
    assert SimConfig.from_dict(old) == cfg
    a, b = simulate_cell(cfg).rows(), simulate_cell(SimConfig(**{**cfg.to_dict(), "lr_ratio": 1.0,
                                                                 "betas": tuple(cfg.betas)})).rows()
    assert a == b
    other = simulate_cell(SimConfig(**{**cfg.to_dict(), "lr_ratio": 2.0, "betas": tuple(cfg.betas)})).rows()
    assert [r["value"] for r in other] != [r["value"] for r in a]


def test_adam_with_a_ratio_runs_and_b_moves_faster() -> None:
    """Adam smoke test: a larger η_B makes the learned update larger (sign-like ΔB = Θ(η_B))."""
    base = dict(rank=64, gamma=0.125, optimizer="adam", width=8, steps=2, seeds=3, batch=16, lr=1e-4)
    small = simulate_cell(SimConfig(**base)).data["forward"][-1]
    big = simulate_cell(SimConfig(lr_ratio=8.0, **base)).data["forward"][-1]
    assert np.all(np.isfinite(big)) and np.all(big > 4 * small)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, True, "2"])
def test_bad_lr_ratio(bad) -> None:
    with pytest.raises(RsstabError, match="lr_ratio"):
        SimConfig(rank=4, gamma=1.0, lr_ratio=bad)


def test_make_configs_takes_learning_rate_and_ratio_as_functions_of_r() -> None:
    configs = sim.make_configs("alpha/r**beta", [4, 16], lr="eta*r**c", lr_ratio="sqrt(r)",
                               constants={"alpha": 2, "beta": 0.5, "eta": 0.01, "c": -0.5})
    assert [c["gamma"] for c in configs] == [1.0, 0.5]
    assert [c["lr"] for c in configs] == [0.005, 0.0025]
    assert [c["lr_ratio"] for c in configs] == [2.0, 4.0]
    with pytest.raises(RsstabError, match="lr_ratio must be positive"):
        sim.make_configs("1/r", [4], lr_ratio="r - 4")


# --------------------------------------------------------------------------- rsstab simulate

SMALL = ["--ranks", "64,256", "--width", "8", "--seeds", "2", "--steps", "2", "--gram", "wishart"]


def test_cli_records_the_tuple_and_evaluates_it_per_rank(capsys) -> None:
    argv = ["simulate", "alpha/r**beta", "--lr", "eta*r**c", "--init-std", "gaussian", "--lr-ratio", "2",
            "--set", "beta=1/4", "--set", "c=-1/2", "--set", "eta=1e-4", *SMALL, "--json"]
    main(argv)
    out = json.loads(capsys.readouterr().out)
    body = out.get("body", out)
    t, s = body["tuple"], body["settings"]
    assert (t["lr"], t["lr_ratio"], t["init_std"], t["init_std_expr"]) == ("eta*r**c", 2.0, "gaussian", "1/r")
    assert s["lr_values"] == pytest.approx([1e-4 / 8, 1e-4 / 16])
    assert s["a_init_scale_values"] == pytest.approx([1 / 64, 1 / 256]) and s["lr_ratio"] == 2.0
    assert (t["symbolic_lr"], t["symbolic_lr_ratio"]) == ("eta*r**c", "2.0")
    assert any(term["quantity"] == "a_and_b" for term in body["symbolic"]["terms"])
    # SGD: η·γ²·r·σ_A² ∝ r^(−1/2 − 1/2 + 1 − 2): the tuple collapses, and check says so too
    assert body["symbolic"]["label"] == "collapse"


def test_cli_number_learning_rate_is_a_constant_schedule(capsys) -> None:
    main(["simulate", "1/sqrt(r)", "--lr", "0.001", *SMALL, "--json"])
    body = json.loads(capsys.readouterr().out)
    body = body.get("body", body)
    assert body["settings"]["lr"] == 0.001 and "lr_values" not in body["settings"]
    assert body["tuple"]["symbolic_lr"] is None and body["tuple"]["lr_ratio"] == 1.0


@pytest.mark.parametrize("argv", [
    ["--lr", "-1"], ["--lr", "0"], ["--lr", "__import__('os')"], ["--lr", "r +"], ["--lr-ratio", "0"],
    ["--lr-ratio", "nan"], ["--init-std", "1/("], ["--init-std", "-inf"], ["--lr", "r - 100"],
    ["--lr", "eta*r", "--set", "foo=2"],  # a value for a name no expression of the tuple has, as check refuses
])
def test_cli_bad_tuple_is_one_line_exit_2(argv, capsys) -> None:
    try:
        code = main(["simulate", "1/sqrt(r)", *SMALL, *argv])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "error" in err and len(err.splitlines()) == 1, err


def test_cli_text_names_the_learning_rate_in_r_and_the_tuple_of_the_symbolic_verdict(capsys) -> None:
    main(["simulate", "alpha/r", "--lr", "eta*r", "--lr-ratio", "4", "--init-std", "true", *SMALL])
    text = capsys.readouterr().out
    assert "(with η = eta*r at each rank)" in text and "lr eta*r, η_B/η_A 4" in text
    assert "symbolic verdict (sgd, η = eta*r, η_B/η_A = 4.0, σ_A = 1): rank-stabilized" in text
    assert "driven by B (η_B)" in text
