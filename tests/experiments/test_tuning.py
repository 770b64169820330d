"""Learning-rate tuning (rsstab.experiments.tuning): the interpolated optimum, the lattice search and
the η* exponent recover known answers on synthetic loss curves — and say when they cannot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsstab.experiments.tuning import (BESIDE_DIVERGENCE, HIGH_EDGE, INTERPOLATED, LOW_EDGE, NO_FINITE, Optimum,
                                       Search, eta_slope, lattice_eta, optimum, search_ranks)
from rsstab.measure.fit import agrees_with, fit_slope, interval_agrees


def bowl(eta: float, centre: float, depth: float = 1.0) -> float:
    """A loss whose log is a parabola in log η with its vertex at ``centre``."""
    return depth * math.exp(0.3 * math.log(eta / centre) ** 2)


@pytest.mark.parametrize("centre", [0.013, 0.02, 0.029])
def test_optimum_recovers_the_vertex_of_a_log_parabola(centre: float) -> None:
    etas = [lattice_eta(k, 0.01) for k in range(-2, 6)]
    opt = optimum(etas, [bowl(e, centre) for e in etas])
    assert opt.status == INTERPOLATED and opt.eta == pytest.approx(centre, rel=1e-9)


def test_optimum_says_edge_divergence_and_nothing() -> None:
    etas = [0.1, 0.2, 0.4, 0.8]
    assert optimum(etas, [4, 3, 2, 1]).status == HIGH_EDGE
    assert optimum(etas, [1, 2, 3, 4]).status == LOW_EDGE
    beside = optimum(etas, [3, 2, 1, math.inf])
    assert beside.status == BESIDE_DIVERGENCE and beside.eta == 0.4 and beside.interior
    assert optimum(etas, [math.nan] * 4).status == NO_FINITE
    assert not optimum(etas, [4, 3, 2, 1]).interior


def test_search_brackets_and_refines_to_one_lattice_step() -> None:
    centre = 3.7  # far above the start: the search must extend upwards
    s = Search(ref=1.0, start=[-4, 0, 4])
    while todo := s.pending():
        for k in todo:
            s.record(k, [bowl(lattice_eta(k, 1.0), centre)])
    best = s.best_index()
    ks = sorted(s.losses)
    i = ks.index(best)
    assert ks[i] - ks[i - 1] == 1 and ks[i + 1] - ks[i] == 1  # refined to √2 on both sides
    assert s.optima()[0].eta == pytest.approx(centre, rel=1e-9)


def test_search_reports_an_edge_it_cannot_leave() -> None:
    s = Search(ref=1.0, start=[-4, 0, 4], bounds=(-8, 8))
    while todo := s.pending():
        for k in todo:
            s.record(k, [1.0 / lattice_eta(k, 1.0)])  # keeps falling: no optimum inside the bounds
    assert s.optima()[0].status == HIGH_EDGE


@pytest.mark.parametrize("p", [1.0, 0.0, -0.5])
def test_search_ranks_and_eta_slope_recover_a_known_exponent(p: float) -> None:
    """η*(r) = 0.01·r^p per seed (with a seed-specific factor): the fitted exponent's interval holds p."""
    ranks = [4, 16, 64, 256, 1024]
    factors = [0.9, 1.0, 1.15]

    def evaluate(batch):
        return {(key, r, k): [bowl(lattice_eta(k, 1.0), f * 0.01 * r**p) for f in factors] for key, r, k in batch}

    searches = search_ranks(["x"], ranks, evaluate, ref=1.0, start={"x": -13})
    fit = eta_slope(ranks, [searches[("x", r)].optima() for r in ranks])
    assert fit.excluded == () and fit.resolution == 0.0
    assert fit.ci[0] - 1e-9 <= p <= fit.ci[1] + 1e-9 and abs(fit.slope - p) < 1e-6


def test_eta_slope_widens_for_optima_known_to_a_lattice_step_and_excludes_edges() -> None:
    def o(eta: float, status: str = INTERPOLATED) -> Optimum:
        return Optimum(eta, status, eta, 1.0)

    ranks = [4, 16, 64]
    exact = eta_slope(ranks, [[o(1.0), o(1.0)], [o(4.0), o(4.0)], [o(16.0), o(16.0)]])
    assert exact.ci == (pytest.approx(1.0), pytest.approx(1.0))  # identical seeds: no spread …
    coarse = eta_slope(ranks, [[o(1.0, BESIDE_DIVERGENCE)] * 2, [o(4.0)] * 2, [o(16.0, BESIDE_DIVERGENCE)] * 2])
    assert coarse.resolution > 0 and coarse.ci[0] < 1.0 - 0.1 < 1.0 + 0.1 < coarse.ci[1]  # … but not exact
    edged = eta_slope(ranks, [[o(1.0, LOW_EDGE), o(1.0)], [o(4.0)] * 2, [o(16.0)] * 2])
    assert edged.excluded == (4,) and edged.ranks == (16, 64)


def test_interval_rule_is_the_one_the_report_uses() -> None:
    assert interval_agrees((0.35, 0.45), 0.5) and not interval_agrees((0.2, 0.3), 0.5)
    assert not interval_agrees((math.nan, 0.5), 0.5) and not interval_agrees((-math.inf, math.inf), 0.0)
    values = np.array([[r**0.82, 1.02 * r**0.8] for r in (1, 10, 100)])
    fit = fit_slope([1, 10, 100], values)
    assert not agrees_with(fit, 1.0)  # the point estimate is 0.19 away …
    assert agrees_with(fit, 1.0, interval=True) == interval_agrees(fit.ci, 1.0)


def test_search_extends_for_a_seed_whose_own_optimum_is_at_the_edge() -> None:
    """The mean's optimum is interior, but one seed's lies beyond the grid: the search extends."""
    s = Search(ref=1.0, start=[-4, 0, 4])
    while todo := s.pending():
        for k in todo:
            e = lattice_eta(k, 1.0)
            s.record(k, [bowl(e, 1.0, 10.0), bowl(e, 1.0, 10.0), bowl(e, 20.0, 0.5)])
    assert all(o.interior for o in s.optima())
    assert s.optima()[2].eta == pytest.approx(20.0, rel=1e-9)
