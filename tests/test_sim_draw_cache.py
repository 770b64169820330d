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
