"""Tests of rsstab.measure.fit: slope estimates, confidence intervals, labels, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsstab.errors import RsstabError
from rsstab.measure.fit import SlopeFit, agrees_with, fit_slope
from rsstab.measure.rows import values_from_rows
from rsstab.vocab import LABELS, combine_labels

RANKS = [4, 16, 64, 256, 1024]


def _power_law(slope: float, noise: float, seeds: int, rng: np.random.Generator, ranks=RANKS) -> np.ndarray:
    r = np.asarray(ranks, float)[:, None]
    return 3.0 * r**slope * np.exp(noise * rng.standard_normal((len(ranks), seeds)))


@given(slope=st.floats(-2, 2), scale=st.floats(1e-6, 1e6))
@settings(max_examples=50, deadline=None)
def test_exact_power_law_is_recovered(slope: float, scale: float) -> None:
    values = scale * np.outer(np.asarray(RANKS, float) ** slope, [1.0, 2.0, 0.5])
    fit = fit_slope(RANKS, values)
    assert fit.slope == pytest.approx(slope, abs=1e-9)
    assert all(s == pytest.approx(slope, abs=1e-9) for s in fit.local_slopes)
    assert fit.ci[0] == pytest.approx(slope, abs=1e-9) and fit.ci[1] == pytest.approx(slope, abs=1e-9)
    expected = "rank-stabilized" if abs(slope) <= 0.1 - 1e-9 else "blow-up" if slope > 0.1 + 1e-9 else "collapse" if slope < -0.1 - 1e-9 else None
    if expected is not None:
        assert fit.label == expected


def test_central_values_are_geometric_means_and_order_does_not_matter() -> None:
    rng = np.random.default_rng(1)
    values = _power_law(0.5, 0.2, 6, rng)
    fit = fit_slope(RANKS, values)
    assert fit.values == pytest.approx(tuple(np.exp(np.log(values).mean(axis=1))))
    perm = [3, 0, 4, 1, 2]
    shuffled = fit_slope([RANKS[i] for i in perm], values[perm])
    assert shuffled == fit
    assert fit.ranks == tuple(RANKS)


def test_confidence_interval_coverage_matches_nominal() -> None:
    """Over many noisy data sets the 90% interval covers the true slope about 90% of the time."""
    rng = np.random.default_rng(7)
    trials, covered = 400, 0
    for _ in range(trials):
        fit = fit_slope(RANKS, _power_law(-0.5, 0.3, 5, rng), confidence=0.9)
        covered += fit.ci[0] <= -0.5 <= fit.ci[1]
    assert 0.85 <= covered / trials <= 0.95


def test_wider_confidence_gives_wider_interval() -> None:
    values = _power_law(0.2, 0.3, 4, np.random.default_rng(3))
    a, b = fit_slope(RANKS, values, confidence=0.5), fit_slope(RANKS, values, confidence=0.99)
    assert a.slope == b.slope
    assert b.ci[0] < a.ci[0] < a.slope < a.ci[1] < b.ci[1]


def test_labels_follow_the_equivalence_rule() -> None:
    rng = np.random.default_rng(0)
    assert fit_slope(RANKS, _power_law(0.0, 0.01, 8, rng)).label == "rank-stabilized"
    assert fit_slope(RANKS, _power_law(1.0, 0.01, 8, rng)).label == "blow-up"
    assert fit_slope(RANKS, _power_law(-0.5, 0.01, 8, rng)).label == "collapse"
    # Exactly on the edge with noise: the interval straddles +tolerance.
    fit = fit_slope(RANKS, _power_law(0.1, 0.3, 4, rng))
    assert fit.ci[0] < 0.1 < fit.ci[1]
    assert fit.label == "indeterminate"
    assert "straddles" in fit.evidence
    # A wider band turns it into a flat quantity.
    assert fit_slope(RANKS, _power_law(0.0, 0.01, 8, rng), tolerance=0.5).label == "rank-stabilized"


@pytest.mark.parametrize("bad", [np.inf, np.nan, 0.0])
def test_non_finite_or_zero_values_are_indeterminate_not_errors(bad: float) -> None:
    values = _power_law(1.0, 0.01, 3, np.random.default_rng(0))
    values[-1, 1] = bad
    fit = fit_slope(RANKS, values)
    assert fit.label == "indeterminate"
    assert math.isnan(fit.slope)
    assert "r=1024 (1/3 seeds)" in fit.evidence
    assert fit.local_slopes[0] == pytest.approx(1.0, abs=0.05)  # finite part still reported


def test_one_seed_uses_regression_interval_and_two_points_have_no_noise_estimate() -> None:
    rng = np.random.default_rng(2)
    one = fit_slope(RANKS, _power_law(0.5, 0.05, 1, rng)[:, 0])
    assert "regression" in one.evidence
    assert one.ci[0] < one.slope < one.ci[1] and math.isfinite(one.ci[1])
    two = fit_slope([4, 16], [[1.0], [2.0]])
    assert two.slope == pytest.approx(0.5)
    assert two.ci == (-math.inf, math.inf)
    assert two.label == "indeterminate"


@pytest.mark.parametrize(
    "ranks, values, message",
    [
        ([4], [[1.0, 2.0]], "at least two ranks"),
        ([4, 4], [[1.0], [2.0]], "distinct"),
        ([4, 0], [[1.0], [2.0]], "positive integers"),
        ([4, 8.5], [[1.0], [2.0]], "positive integers"),
        ([4, 8], [[1.0], [-2.0]], "non-negative"),
        ([4, 8, 16], [[1.0], [2.0]], "3 ranks"),
        ([4, 8], np.ones((2, 2, 2)), "shape"),
    ],
)
def test_bad_input_raises_rsstab_error(ranks, values, message) -> None:
    with pytest.raises(RsstabError, match=message):
        fit_slope(ranks, values)


@pytest.mark.parametrize("kw", [{"tolerance": 0.0}, {"tolerance": -1}, {"confidence": 1.0}, {"confidence": 0}])
def test_bad_options_raise(kw) -> None:
    with pytest.raises(RsstabError):
        fit_slope([1, 2], [[1.0, 1.0], [2.0, 2.0]], **kw)


def test_fit_is_frozen_and_serialisable() -> None:
    fit = fit_slope([1, 10], [[1.0, 1.0], [np.inf, 1.0]])
    assert isinstance(fit, SlopeFit) and fit.label in LABELS
    with pytest.raises(AttributeError):
        fit.slope = 0.0  # type: ignore[misc]
    d = fit.as_dict()
    assert d["slope"] is None and d["values"][1] is None and d["label"] == "indeterminate"


def test_agrees_and_combine() -> None:
    fit = fit_slope([1, 10, 100], [[1.0, 1.0], [10**0.95, 10**0.96], [100**0.95, 100**0.96]])
    assert agrees_with(fit, 1.0) and not agrees_with(fit, 1.0, tolerance=0.01) and not agrees_with(fit, 0.5)
    assert combine_labels(["rank-stabilized", "rank-stabilized"]) == "rank-stabilized"
    assert combine_labels(["collapse", "blow-up"]) == "blow-up"
    assert combine_labels([]) == "indeterminate"


def test_values_from_rows_filters_and_checks_completeness() -> None:
    rows = [
        {"rank": r, "seed": s, "step": st_, "quantity": "q", "value": float(r * (s + 1) + st_)}
        for r in (4, 2) for s in (0, 1) for st_ in (0, 5)
    ]
    ranks, v = values_from_rows(rows, "q", where={"step": 5})
    assert ranks == [2, 4] and v.tolist() == [[7.0, 9.0], [9.0, 13.0]]
    with pytest.raises(RsstabError, match="several"):
        values_from_rows(rows, "q")
    with pytest.raises(RsstabError, match="no rows"):
        values_from_rows(rows, "other")
    with pytest.raises(RsstabError, match="seeds"):
        values_from_rows(rows[:-1], "q", where={"step": 5})
