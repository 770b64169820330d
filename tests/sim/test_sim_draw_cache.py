"""A rank grid shares its rank-independent draws (:func:`rsstab.sim.draws.draw_cell`): a cell
that reuses the previous cell's base, teacher, data and generator states draws exactly the
numbers a fresh draw gives."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from rsstab.sim import SimConfig, simulate_cell
from rsstab.sim.draws import clear_draw_cache, draw_cell

BASE = SimConfig(rank=4, gamma=1.0, depth=3, width=8, steps=3, seeds=3, batch=5, probe_batch=7)


@pytest.mark.parametrize("extra", [{}, dict(share_data=True, fixed_output_grad=True), dict(data_stats=True),
                                   dict(nonlinearity="linear")])
def test_shared_draws_equal_fresh_draws(extra) -> None:
    cells = [replace(BASE, rank=r, gram=g, a_init_scale=s, **extra)
             for r, g, s in [(2, "explicit", 1.0), (37, "explicit", 0.5), (37, "wishart", 1.0), (1, "explicit", 2.0)]]
    clear_draw_cache()
    shared = [draw_cell(c) for c in cells]
    for cfg, got in zip(cells, shared):
        clear_draw_cache()
        fresh = draw_cell(cfg)
        assert set(got) == set(fresh)
        for k in fresh:
            assert torch.equal(got[k], fresh[k]), (cfg.rank, cfg.gram, k)


def test_a_grid_run_equals_cells_run_alone() -> None:
    cfgs = [replace(BASE, rank=r, gamma=r**-0.5, optimizer=o) for o in ("sgd", "adam") for r in (2, 16)]
    clear_draw_cache()
    in_grid = [simulate_cell(c) for c in cfgs]
    for cfg, res in zip(cfgs, in_grid):
        clear_draw_cache()
        alone = simulate_cell(cfg)
        for q in alone.data:
            np.testing.assert_array_equal(res.data[q], alone.data[q], err_msg=q)


@pytest.mark.parametrize("share_data", [False, True])
def test_draws_do_not_depend_on_the_thread_count(share_data: bool) -> None:
    """The seeds are drawn on torch's thread count at once; each has its own generator, so one
    thread and several give the same numbers, fresh and from the cache."""
    cfg = SimConfig(rank=12, gamma=0.3, depth=3, width=10, steps=3, seeds=5, batch=4, probe_batch=6,
                    share_data=share_data)
    threads = torch.get_num_threads()
    out = {}
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            clear_draw_cache()
            fresh = draw_cell(cfg)
            cached = draw_cell(replace(cfg, rank=7))  # the shared draws from the cache, a new A
            out[n] = (fresh, cached)
    finally:
        torch.set_num_threads(threads)
        clear_draw_cache()
    (f1, c1), (f3, c3) = out[1], out[3]
    assert f1.keys() == f3.keys()
    for k in f1:
        assert torch.equal(f1[k], f3[k]), k
    assert torch.equal(c1["A"], c3["A"])


@pytest.mark.parametrize("extra", [dict(optimizer="adam"), dict(optimizer="sgd", share_data=True),
                                   dict(optimizer="adam", fixed_batch=True, probe_every=2, adapted_layers=(0, 2))])
def test_data_statistics_once_per_grid_give_the_same_rows(monkeypatch, extra) -> None:
    """The data statistics (rank-free) are computed once per grid and reused by the next ranks:
    every cell's rows are bit for bit those of the cell run alone, and the statistics run once."""
    import rsstab.sim.finite as finite

    calls = []
    compute = finite._data_statistics
    monkeypatch.setattr(finite, "_data_statistics", lambda *a: calls.append(1) or compute(*a))
    cfgs = [replace(BASE, rank=r, gamma=r**-0.5, lr=1e-3 * r, a_init_scale=s, fixed_output_grad=True,
                    data_stats=True, **extra) for r, s in ((2, 1.0), (16, 0.5), (64, 1.0))]
    clear_draw_cache()
    in_grid = [simulate_cell(c).rows() for c in cfgs]
    assert len(calls) == 1
    for cfg, rows in zip(cfgs, in_grid):
        clear_draw_cache()
        alone = simulate_cell(cfg).rows()
        assert len(rows) == len(alone)
        for a, b in zip(rows, alone):
            assert a == b or (a.keys() == b.keys() and np.isnan(a["value"]) and np.isnan(b["value"])), (a, b)
    assert len(calls) == 1 + len(cfgs)


def test_data_statistics_in_float32_agree_with_float64() -> None:
    """A float32 cell's statistics (its base walk and reference columns in float32) agree with
    the float64 cell's to float32 rounding (relative 1e-5)."""
    cfg = replace(BASE, optimizer="adam", width=16, steps=4, fixed_output_grad=True, data_stats=True)
    clear_draw_cache()
    lo, hi = simulate_cell(cfg).data, simulate_cell(replace(cfg, dtype="float64")).data
    for q in cfg.data_quantities():
        np.testing.assert_allclose(lo[q], hi[q], rtol=1e-5, atol=1e-12, err_msg=q)
