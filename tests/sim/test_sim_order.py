"""The Gram order of the adapter products (:func:`rsstab.sim.stack.gram_order`): the same sums
in another order, so every probe equals the b×r order's up to rounding (float64 here)."""

from __future__ import annotations

import numpy as np
import pytest

import rsstab.sim.stack as stack
from rsstab.sim import SimConfig, simulate_cell

BASE = dict(depth=3, width=8, steps=4, seeds=3, batch=16, probe_batch=12, dtype="float64", probe_every=2)


@pytest.mark.parametrize("kw", [
    dict(rank=24, optimizer="sgd", lr=0.05, method="direct"),
    dict(rank=24, optimizer="sgd", lr=0.05, weight_decay=0.5, method="direct", nonlinearity="linear"),
    dict(rank=24, optimizer="adam", lr=1e-3),
    dict(rank=24, optimizer="adam", lr=1e-3, adapted_layers=(0, 2), fixed_output_grad=True),
    dict(rank=40, optimizer="sgd", lr=0.05, share_data=True, fixed_output_grad=True, batch=24),  # reduced, r > d
])
def test_gram_order_equals_the_direct_order(kw, monkeypatch) -> None:
    cfg = SimConfig(gamma=0.4, **{**BASE, **kw})
    assert stack.gram_order(cfg)
    gram = simulate_cell(cfg)
    monkeypatch.setattr(stack, "gram_order", lambda cfg: False)
    plain = simulate_cell(cfg)
    assert set(gram.data) == set(plain.data)
    for q in plain.data:
        np.testing.assert_allclose(gram.data[q], plain.data[q], rtol=1e-9, atol=1e-300, err_msg=q)


def test_gram_order_only_when_cheaper() -> None:
    assert not stack.gram_order(SimConfig(rank=2048, gamma=1.0, width=128, batch=32))  # d > 2b
    assert stack.gram_order(SimConfig(rank=2**18, gamma=1.0, optimizer="adam", width=16, batch=64))
    assert not stack.gram_order(SimConfig(rank=2, gamma=1.0, width=16, batch=64))  # r·d² vs b·d·r: tiny r
    assert not stack.gram_order(SimConfig(rank=4096, gamma=1.0, optimizer="adam", width=16, bf16=True))


@pytest.mark.parametrize("kw", [
    dict(rank=6, optimizer="sgd", lr=0.05, fixed_output_grad=True),
    dict(rank=40, optimizer="sgd", lr=0.05, share_data=True, fixed_output_grad=True),  # reduced, split
    dict(rank=6, optimizer="adam", lr=1e-3, adapted_layers=(1, 2), dtype="float32", fixed_output_grad=True),
    dict(rank=6, optimizer="adam", lr=1e-3, share_data=True, fixed_output_grad=True, nonlinearity="linear"),
    dict(rank=24, optimizer="sgd", lr=0.05, batch=64),  # the Gram order
])
def test_probe_before_any_update_skips_the_adapter_walk(kw, monkeypatch) -> None:
    """Before the first update B = 0: the step-0 probe walks the base alone (no b×r product, no
    backward), and records exactly what the full walk records (up to the sign of zero)."""
    cfg = SimConfig(gamma=0.4, **{**BASE, **kw})
    fast = simulate_cell(cfg)
    calls = []
    real = stack.Stack._adapters_vanish
    monkeypatch.setattr(stack.Stack, "_adapters_vanish", lambda self: calls.append(real(self)) or False)
    full = simulate_cell(cfg)
    assert calls[0] is True and not any(calls[1:])  # vanishes at step 0 only
    for q in full.data:
        assert np.array_equal(fast.data[q], full.data[q], equal_nan=True), q
    assert np.all(full.data["forward"][0][:, list(cfg.adapter_layers())] == 0)


def test_an_infinite_a_takes_the_full_walk() -> None:
    """A₀ beyond float32's range is ±∞ and 0·∞ = nan in the adapter output: the step-0 probe
    must not claim 0."""
    cfg = SimConfig(gamma=0.4, rank=4, a_init_scale=1e300, **{**BASE, "steps": 0, "dtype": "float32"})
    assert np.isnan(simulate_cell(cfg).data["forward"][0]).all()


@pytest.mark.parametrize("kw", [
    dict(rank=64, optimizer="adam", lr=1e-3, fixed_output_grad=True),
    dict(rank=64, optimizer="sgd", lr=0.05, method="direct", share_data=True, fixed_output_grad=True),
    dict(rank=64, optimizer="sgd", lr=0.05),  # reduced: the stack holds rank d
])
def test_probe_in_the_gram_order_equals_the_direct_order(kw, monkeypatch) -> None:
    """The held-out probes multiply in the Gram order where that is cheaper for the probe batch
    (here: 64·8² + 3·12·8² < 6·12·8·64); the b×r order records the same up to rounding."""
    cfg = SimConfig(gamma=0.4, **{**BASE, **kw, "batch": 4})
    assert not stack.gram_order(cfg)  # training in the b×r order
    calls = []
    real = stack.Stack._probe_gram
    monkeypatch.setattr(stack.Stack, "_probe_gram", lambda self, m, f: calls.append(real(self, m, f)) or calls[-1])
    gram = simulate_cell(cfg)
    assert calls and all(calls)
    monkeypatch.setattr(stack.Stack, "_probe_gram", lambda self, m, f: False)
    plain = simulate_cell(cfg)
    for q in plain.data:
        np.testing.assert_allclose(gram.data[q], plain.data[q], rtol=1e-9, atol=1e-300, err_msg=q)
