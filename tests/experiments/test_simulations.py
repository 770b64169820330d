"""Each ``simulations/*.py`` script runs with ``--quick`` into a temporary directory."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPTS = {
    "depth_sweep": ["forward_vs_rank.png", "test_loss_vs_rank.png", "forward_vs_layer.png"],
    "rank_sweep": ["loss_vs_step.png", "grad_norm_vs_step.png", "grad_init_vs_rank.png"],
    "optimizer_sweep": ["forward_vs_rank.png", "backward_vs_rank.png", "grad_init_vs_rank.png"],
    "lr_transfer": ["loss_vs_eta.png", "eta_star_vs_rank.png", "tuned_loss_vs_rank.png"],
}


def _run(name: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "simulations" / f"{name}.py"), "--quick", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script_quick_writes_table_figures_and_summary(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    proc = _run(name, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 failed" in proc.stderr
    with open(out / "rows.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {"rank", "depth", "layer", "step", "seed", "quantity", "value", "schedule"} <= set(rows[0])
    with open(out / "slopes.csv", newline="") as fh:
        slopes = list(csv.DictReader(fh))
    assert {"slope", "ci_low", "ci_high", "theory", "label"} <= set(slopes[0])
    for fig in SCRIPTS[name]:
        data = (out / fig).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, fig
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# ") and "| theory | agrees |" in summary
    if name == "depth_sweep":
        # A re-run is resumed from the store and reproduces the rows exactly.
        rows_text = (out / "rows.csv").read_bytes()
        (out / "rows.csv").unlink()
        again = _run(name, out)
        assert again.returncode == 0 and "0 computed" in again.stderr, again.stderr[-2000:]
        assert (out / "rows.csv").read_bytes() == rows_text


def test_slope_records_agrees_uses_its_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: ``slope_records(tolerance=...)`` fitted with it but ``agrees`` used 0.1."""
    import numpy as np

    import rsstab.measure.rows
    from rsstab.experiments import compare

    ranks = [4, 16, 64, 256]
    values = np.array([[r**0.3, 1.01 * r**0.3] for r in ranks])  # slope 0.3
    monkeypatch.setattr(rsstab.measure.rows, "summary_values", lambda grp, q: (ranks, values))
    monkeypatch.setattr(compare, "theory_exponent", lambda schedule, optimizer, q: 0.0)
    rows = [{"schedule": "1/sqrt(r)", "optimizer": "sgd", "quantity": "forward", "rank": r} for r in ranks]
    narrow = compare.slope_records(rows, ["schedule"], quantities=["forward"])
    wide = compare.slope_records(rows, ["schedule"], quantities=["forward"], tolerance=0.5)
    assert abs(narrow[0]["slope"] - 0.3) < 1e-6
    assert narrow[0]["agrees"] is False and wide[0]["agrees"] is True


def test_quick_runs_never_write_into_the_published_results() -> None:
    """Without --out, a --quick run goes to reports/_quick/<name>; a full run to reports/<name>."""
    import importlib.util
    from pathlib import Path

    from rsstab.experiments.scripts import script_parser

    assert script_parser("depth_sweep", "x").parse_args(["--quick"]).out == str(Path("reports/_quick/depth_sweep"))
    assert script_parser("depth_sweep", "x").parse_args([]).out == str(Path("reports/depth_sweep"))
    spec = importlib.util.spec_from_file_location(
        "real_model_script", Path(__file__).resolve().parents[2] / "simulations" / "real_model.py")
    assert spec is not None and spec.loader is not None
    source = Path(spec.origin or "").read_text()
    assert 'script_parser("real_model"' in source


@pytest.mark.parametrize("script", ["depth_sweep", "rank_sweep", "optimizer_sweep", "ablations", "width_sweep",
                                    "phase_diagram", "lr_transfer", "real_model", "eta_range", "make_report"])
def test_script_help_answers_without_loading_the_simulator(script: str) -> None:
    """`simulations/*.py --help` parses its arguments before importing torch (it answers at once)."""
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "simulations" / f"{script}.py"
    code = ("import runpy, sys\n"
            f"sys.argv = [{str(path)!r}, '--help']\n"
            "try:\n"
            f"    runpy.run_path({str(path)!r}, run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert e.code in (0, None), e.code\n"
            "print('LOADED:' + ' '.join(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.rsplit("LOADED:", 1)[1].strip()
    assert loaded == "", f"{script} --help loaded {loaded}"


def test_partly_diverged_cells_are_circled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A cell where some seeds diverged is drawn from its survivors: the figure must say so."""
    from rsstab.experiments.figures import loglog_vs_rank, pyplot

    plt = pyplot()
    seen = {}
    real_save = plt.Figure.savefig

    def spy(fig, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["labels"] = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
        return real_save(fig, *args, **kwargs)

    plt.Figure.savefig = spy
    try:
        loglog_vs_rank({"alpha": {"L=16": ([16, 256, 4096], [1.0, 2.0, 0.5])}}, ylabel="y",
                       path=tmp_path / "f.png", partly_diverged={"alpha": {"L=16": [4096.0]}})
    finally:
        plt.Figure.savefig = real_save
    assert "some seeds diverged: survivors only" in seen["labels"]
