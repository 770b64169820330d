"""The figures as a reader sees them (issue 27): colour-blind palette, a diverging map centred on
zero, readable panel titles clear of the suptitle, powers of r as math. Each figure is built by the
code the experiment scripts call, caught before it is saved, and inspected."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from rsstab.experiments import figures, phase  # noqa: E402
from rsstab.style import OKABE_ITO  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def caught(monkeypatch):
    """The figures passed to save_figure, kept open instead of written."""
    got = []

    def keep(fig, path, **_):
        got.append(fig)
        return Path(path)

    monkeypatch.setattr(figures, "save_figure", keep)
    monkeypatch.setattr("rsstab.io.save_figure", keep)
    return got


def _boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    sup = fig._suptitle.get_window_extent(renderer) if fig._suptitle else None
    return titles, sup


def test_panels_named_after_schedules_are_titled_readably_below_the_suptitle(caught, tmp_path) -> None:
    panels = {s: {"L=1": ([4, 16, 64], [1.0, 1.1, 1.2])} for s in ("alpha", "alpha/sqrt(r)", "alpha/r")}
    figures.loglog_vs_rank(panels, ylabel="y", path=tmp_path / "f.png", title="a long suptitle over three panels")
    (fig,) = caught
    assert [ax.get_title() for ax in fig.axes] == ["naive γ = α", "rsLoRA γ = α/√r", "LoRA γ = α/r"]
    titles, sup = _boxes(fig)
    assert sup is not None and all(sup.y0 >= t.y1 - 0.5 for t in titles), "the suptitle overlaps a panel title"


def test_the_slope_heatmap_is_centred_on_zero_and_says_what_blank_cells_are(caught, tmp_path) -> None:
    panels = {"LoRA, sgd": ([4, 8, 16], [8, 16, 32], [[-1.0, float("nan")], [-0.5, 0.3]])}
    figures.slope_heatmap(panels, path=tmp_path / "h.png", blank="not run (cost)")
    (fig,) = caught
    mesh = fig.axes[0].collections[0]
    assert mesh.norm.vcenter == 0.0 and mesh.norm(0.0) == pytest.approx(0.5)  # neutral at a flat slope
    assert any("blank cells: not run (cost)" in t.get_text() for t in fig.texts)


def test_the_phase_diagram_writes_powers_of_r_as_math(caught, tmp_path) -> None:
    from rsstab.experiments.claims.table import read_table

    records = read_table(ROOT / "reports" / "phase_diagram" / "cells.csv")
    phase.phase_figure(phase.GRIDS, records, tmp_path / "p.png")
    (fig,) = caught
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 3 and all("$r^{-\\beta}$" in t and "r^−" not in t for t in titles)
    assert all("$" in ax.get_xlabel() for ax in fig.axes if ax.get_title())


def test_colours_of_ordered_curves_start_with_strong_colours() -> None:
    light = {"#E69F00", "#56B4E9", "#F0E442"}
    assert not light & {figures.colour(i, 5) for i in range(5)}


def test_the_teaching_notebook_uses_the_colour_blind_palette() -> None:
    tree = ast.parse((ROOT / "reports" / "teaching.py").read_text())
    (assign,) = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "COLOURS" for t in n.targets)]
    src = ast.unparse(assign.value)
    assert "OKABE_ITO" in src and "red" not in src and "green" not in src
    indices = [int(i) for i in __import__("re").findall(r"OKABE_ITO\[(\d)\]", src)]
    assert len(set(indices)) == 3 and not {OKABE_ITO[i] for i in indices} & {"#E69F00", "#56B4E9"}
