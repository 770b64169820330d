"""Issue 23 part 3: the exact finite-(r, d) laws at depth ≥ 2, r ≪ d, small η.

The laws give the mean square over the draw of A; they are compared with the seeds' root mean
square (``measured_rms``), paired seed by seed (``predicted_ratio`` ± ``predicted_ratio_se``).
The cause of the earlier bias (0.76 at width 192, depth 2, r = 8): the comparison used the
geometric mean over seeds, which lies below the root mean square by Jensen's inequality, and a
deep layer at r ≪ d spreads widely over A (its input's mean makes the learned change coherent, a
sum of r terms: a seed's mean square goes like (χ²_r)²). The tolerance is 10 % plus twice the
paired standard error, and the standard error is held small enough that 10 % is what is tested.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from rsstab.measure.compare import report  # noqa: E402


def _ratios(optimizer: str, *, width: int, depth: int, ranks: list[int], seeds: int, expr: str = "1/sqrt(r)",
            max_se: float = 0.05) -> dict:
    _, out = report(expr, optimizer, width=width, depth=depth, ranks=ranks, seeds=seeds)
    for q in ("forward", "backward"):
        e = out["quantities"][q]
        for r, ratio, se, ok in zip(ranks, e["predicted_ratio"], e["predicted_ratio_se"], e["predicted_in_range"]):
            assert ok, (optimizer, width, depth, q, r)  # default η: small
            assert se <= max_se, f"too few seeds to test 10 %: {optimizer} L={depth} d={width} {q} r={r} se {se:.3f}"
            assert abs(ratio - 1) <= 0.1 + 2 * se, (optimizer, width, depth, q, r, ratio, se)
    return out


def test_sgd_depth_2_small_rank_quick() -> None:
    out = _ratios("sgd", width=96, depth=2, ranks=[8, 384], seeds=256, max_se=0.06)
    e = out["quantities"]["forward"]
    # the statistic matters: at r = 8 the geometric mean of the seeds is well below their RMS,
    # so the law compared with it (as before) would be off by more than the 10 % tested here
    assert e["values"][0] / e["measured_rms"][0] < 0.85
    assert e["values"][-1] / e["measured_rms"][-1] > e["values"][0] / e["measured_rms"][0]


def test_adam_depth_3_small_rank_quick() -> None:
    _ratios("adam", width=64, depth=3, ranks=[8, 256], seeds=24)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("depth", [2, 4, 8])
@pytest.mark.parametrize("width", [64, 192, 384])
def test_depths_widths_ranks(optimizer: str, depth: int, width: int) -> None:
    # the grid: depths 2–8, widths 64–384, ranks 8 to 4·width, SGD and Adam, α/r and α/√r
    seeds = 192 if optimizer == "sgd" else 32
    for expr in ("1/r", "1/sqrt(r)"):
        _ratios(optimizer, width=width, depth=depth, ranks=[8, width, 4 * width], seeds=seeds, expr=expr,
                max_se=0.06)
