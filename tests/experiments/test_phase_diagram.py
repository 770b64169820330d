"""The phase diagram (simulations/phase_diagram.py, rsstab.experiments.phase): predicted regions
from check, measured labels from the simulator, the boundary allowance, the claim."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from rsstab.experiments import phase
from rsstab.experiments.claims.phase import phase_claim
from rsstab.vocab import BLOW_UP, COLLAPSE, STABLE

ROOT = Path(__file__).resolve().parents[2]
F = Fraction


@pytest.mark.parametrize("grid", phase.GRIDS, ids=lambda g: g.name)
def test_check_and_the_law_line_agree_on_every_cell(grid: phase.PhaseGrid) -> None:
    """The drawn line (the law's exponent, from theory) and the per-cell labels (check) tell the
    same story: exponent > 0 blow-up, = 0 stable, < 0 collapse."""
    expected = {1: BLOW_UP, 0: STABLE, -1: COLLAPSE}
    for x in grid.xs:
        for y in grid.ys:
            e = phase.law_exponent(grid, x, y)
            sign = 0 if abs(e) < 1e-9 else int(math.copysign(1, e))
            assert phase.predicted_label(grid, x, y) == expected[sign], (x, y, e)
    xs, ys = phase.boundary_line(grid)
    assert xs and all(abs(phase.law_exponent(grid, x, y)) < 1e-9 for x, y in zip(xs[::10], ys[::10]))


def test_the_sgd_learning_rate_grid_is_stable_on_c_equals_two_beta_minus_one() -> None:
    g = phase.GRIDS[0]
    assert phase.predicted_label(g, F(1, 4), F(-1, 2)) == STABLE
    assert phase.predicted_label(g, F(1, 4), F(0)) == BLOW_UP
    assert phase.predicted_label(g, F(1, 4), F(-1)) == COLLAPSE


def test_cells_are_normalised_at_the_reference_rank() -> None:
    """Every cell has γ = 1, σ_A = 1 and the base learning rate at the geometric mean of the ranks."""
    from rsstab.schedule import as_schedule

    ranks = (64, 256, 1024, 4096)
    r0 = phase.reference_rank(ranks)
    assert r0 == pytest.approx(512)
    for g in phase.GRIDS[:2]:
        c = phase.cell_constants(g, F(3, 4), F(-1, 2), ranks, 1e-5)
        assert as_schedule(g.schedule).value(r0, c) == pytest.approx(1.0)
        if g.lr:
            assert as_schedule(g.lr).value(r0, c) == pytest.approx(1e-5)
        if g.init_std:
            assert as_schedule(g.init_std).value(r0, c) == pytest.approx(1.0)
            assert as_schedule(g.init_std).value(4 * r0, c) == pytest.approx(2.0)  # k = −1/2: σ_A ∝ √r


def test_measured_labels_far_from_the_boundary_match(tmp_path: Path) -> None:
    """A small run of the SGD β × c grid (every other exponent): the corner cells two steps from the
    stable line are measured as predicted; the cells next to it are flagged as boundary cells."""
    g = phase.GRIDS[0]
    settings = dict(ranks=(64, 256, 1024), width=8, seeds=3, steps=2, depth=2, batch=16)
    recs = phase.run_grid(g, settings, out=tmp_path, every=2)
    by = {(F(r["x"]), F(r["y"])): r for r in recs}
    assert len(recs) == 9
    far = [(F(0), F(1)), (F(1), F(-1))]
    assert [by[c]["boundary"] for c in far] == [False, False]
    assert by[(F(0), F(1))]["measured"] == by[(F(0), F(1))]["predicted"] == BLOW_UP
    assert by[(F(1), F(-1))]["measured"] == by[(F(1), F(-1))]["predicted"] == COLLAPSE
    assert all(r["boundary"] for c, r in by.items() if c not in far)
    assert by[(F(1, 2), F(0))]["predicted"] == STABLE and by[(F(1, 2), F(0))]["law_exponent"] == pytest.approx(0)
    assert by[(F(0), F(1))]["forward_slope"] > 1.5 and by[(F(1), F(-1))]["forward_slope"] < -1.5


def _write_cells(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_claim_counts_cells_and_turns_on_a_disagreement_away_from_the_boundary(tmp_path: Path) -> None:
    rows = [{"grid": "g", "boundary": False, "outcome": "agree"},
            {"grid": "g", "boundary": True, "outcome": "indeterminate"},
            {"grid": "g", "boundary": True, "outcome": "agree"}]
    _write_cells(tmp_path / "phase_diagram" / "cells.csv", rows)
    c = phase_claim(tmp_path)
    assert c.verdict == "reproduced" and "1/1 agree away" in c.measured and "1 indeterminate" in c.measured
    rows[0]["outcome"] = "disagree"
    (tmp_path / "phase_diagram" / "cells.csv").unlink()
    (tmp_path / "phase_diagram").rmdir()
    _write_cells(tmp_path / "phase_diagram" / "cells.csv", rows)
    assert phase_claim(tmp_path).verdict == "partly reproduced"


@pytest.mark.slow
def test_quick_script_writes_cells_summary_and_figure(tmp_path: Path) -> None:
    """The whole quick run (about 30 s on 2 cores): files, and no disagreement away from the boundary."""
    p = subprocess.run([sys.executable, str(ROOT / "simulations" / "phase_diagram.py"), "--quick", "--out",
                        str(tmp_path), "--no-progress"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "phase_diagram.png").stat().st_size > 1000
    with open(tmp_path / "cells.csv", newline="") as fh:
        cells = list(csv.DictReader(fh))
    assert len(cells) == 27
    assert all(c["outcome"] == "agree" for c in cells if c["boundary"] == "False")
    assert "Away from the boundary" in (tmp_path / "summary.md").read_text()
