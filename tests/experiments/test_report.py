"""The reproduction report: one command regenerates it, every verdict is backed by a measured number."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rsstab.experiments.claims import Claim, claims, render, verdict_of

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = {"reproduced", "partly reproduced", "not reproduced", "refuted", "consistent", "partly consistent",
            "inconsistent", "not run"}
KINDS = ("reproduction", "consistency check")


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    p = subprocess.run([sys.executable, str(ROOT / "simulations" / "make_report.py"), "--quick", "--out", str(out),
                        "--skip-real-model", "--no-progress"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_quick_report_has_every_claim_with_a_measured_number(quick_report: Path) -> None:
    text = (quick_report / "REPORT.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 25  # 16 claims of the paper and its seed, 2 of the finite-width theory, the phase diagram,
    # 5 of the real causal LM (not run on the quick grid), the predictions' η range
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[2].startswith(KINDS), f"no kind in: {row}"
        verdict = cells[5].strip("*")
        assert verdict in VERDICTS, row
        if verdict != "not run":
            assert re.search(r"[-+]?\d+[./]\d+", cells[4]), f"no measured number in: {row}"
            assert cells[7].startswith("`"), f"no regenerating command in: {row}"
            assert (verdict in ("consistent", "partly consistent", "inconsistent")) == cells[2].startswith(KINDS[1])
    assert "Real pretrained model" in text and "not run" in text  # skipped on purpose here
    assert "## Disagreements" in text and "rows disagree" in text
    assert (quick_report / "derivations.md").exists()
    for fig in ("ablations/pscan.png", "ablations/lr_sweep.png", "rank_sweep/loss_vs_step.png",
                "lr_transfer/eta_star_vs_rank.png", "lr_transfer/loss_vs_eta.png", "width_sweep/slope_heatmap.png",
                "phase_diagram/phase_diagram.png", "eta_range/ratio_vs_expansion.png"):
        assert (quick_report / fig).stat().st_size > 1000


def test_claims_follow_the_tables(quick_report: Path) -> None:
    cs = {c.claim.split(":")[0]: c for c in claims(quick_report)}
    # the seed's regime table: the exact Monte Carlo route is accurate even on the quick grid
    naive = next(c for k, c in cs.items() if "naive" in c.claim)
    assert naive.verdict == "consistent" and naive.kind == "consistency check"
    # a table that says the opposite of the theory must turn the verdict around
    slopes = quick_report / "ablations" / "slopes.csv"
    original = slopes.read_text()
    try:
        lines = original.splitlines()
        header = lines[0].split(",")
        i_exp, i_s, i_slope, i_lo, i_hi = (header.index(k) for k in ("experiment", "schedule", "slope", "ci_low",
                                                                        "ci_high"))
        flipped = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            if cells[i_exp] == "iid" and cells[i_s] == "alpha":
                # pretend the naive variance collapsed: the slope and its interval
                cells[i_slope], cells[i_lo], cells[i_hi] = "-1.0", "-1.05", "-0.95"
            flipped.append(",".join(cells))
        slopes.write_text("\n".join(flipped) + "\n")
        again = next(c for c in claims(quick_report) if "naive" in c.claim)
        assert again.verdict == "partly consistent"
    finally:
        slopes.write_text(original)


def test_missing_tables_make_claims_not_run(tmp_path: Path) -> None:
    cs = claims(tmp_path)
    assert cs[0].verdict == "consistent"  # the symbolic claim needs no table
    assert {c.verdict for c in cs[1:]} == {"not run"}
    text = render(cs)
    assert text.count("**not run**") == len(cs) - 1


def test_verdict_rule() -> None:
    assert verdict_of([]) == "not reproduced"
    assert verdict_of([True, True, True]) == "reproduced"
    assert verdict_of([False, True]) == "partly reproduced"
    assert verdict_of([True], kind="consistency check") == "consistent"
    c = Claim("a | b", "p", "m", "reproduced", "", "cmd")
    assert "a \\| b" in render([c])


REAL_MODEL_RUNS = ("real_model", "real_model_sgd")


def test_real_model_claims_build_from_the_committed_runs() -> None:
    """``make_report.py`` reuses ``reports/real_model*/``: their claims rebuild as committed."""
    committed = (ROOT / "reports" / "REPORT.md").read_text()
    real = [c for c in claims(ROOT / "reports") if c.command.startswith("python simulations/real_model.py")]
    assert len(real) == len(REAL_MODEL_RUNS)
    for c in real:
        assert c.verdict != "not run"
        row = next(line for line in render([c]).splitlines() if line.startswith("| 1 | "))
        assert row[len("| 1 "):] in committed, row


def test_real_lm_claims_build_from_the_committed_run() -> None:
    """``make_report.py`` reuses ``reports/real_lm/``: its five rows rebuild as committed."""
    committed = (ROOT / "reports" / "REPORT.md").read_text()
    rows = [c for c in claims(ROOT / "reports") if c.command == "python simulations/real_lm.py"]
    assert len(rows) == 5 and all(c.verdict != "not run" for c in rows)
    for c in rows:
        row = next(line for line in render([c]).splitlines() if line.startswith("| 1 | "))
        assert row[len("| 1 "):] in committed, row


def _replot(script_name: str, run: str, tmp_path: Path) -> Path:
    """Run ``simulations/<script_name>.py --replot`` on copies of ``reports/<run>``'s rows and config;
    return the committed folder."""
    source = ROOT / "reports" / run
    for table in ("rows.csv", "config.json"):
        shutil.copy(source / table, tmp_path / table)
    spec = importlib.util.spec_from_file_location(f"{script_name}_script", ROOT / "simulations" / f"{script_name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--replot", "--out", str(tmp_path)]) == 0
    return source


def test_committed_real_lm_rows_replot_to_the_committed_summary(tmp_path: Path) -> None:
    """``real_lm.py --replot`` rebuilds the committed summary, per-cell table and fits from the rows."""
    source = _replot("real_lm", "real_lm", tmp_path)
    for name in ("summary.md", "results.csv"):
        assert (tmp_path / name).read_text() == (source / name).read_text(), name
    _assert_same_json(json.loads((tmp_path / "fits.json").read_text()), json.loads((source / "fits.json").read_text()))


@pytest.mark.parametrize("name", REAL_MODEL_RUNS)
def test_committed_real_model_rows_replot_to_the_committed_summary(name: str, tmp_path: Path) -> None:
    """``real_model.py --replot`` rebuilds the committed summary and fits from the committed rows."""
    source = _replot("real_model", name, tmp_path)
    assert (tmp_path / "summary.md").read_text() == (source / "summary.md").read_text()
    # The fits to the last bits: a least-squares fit's final ulp depends on the CPU's vector
    # paths (an Intel and an AMD machine differ there), so numbers agree to 1e-12, the rest exactly.
    _assert_same_json(json.loads((tmp_path / "fits.json").read_text()), json.loads((source / "fits.json").read_text()))


def _assert_same_json(got, want, path: str = "fits") -> None:
    """``got == want`` with floats compared to a relative 1e-12 (nan equal to nan)."""
    if isinstance(want, float) or isinstance(got, float):
        assert isinstance(got, (int, float)) and isinstance(want, (int, float)), path
        assert got == pytest.approx(want, rel=1e-12, abs=1e-300, nan_ok=True), path
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for k in want:
            _assert_same_json(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same_json(g, w, f"{path}[{i}]")
    else:
        assert got == want, path


def test_eta_range_claim_counts_silent_misses(tmp_path: Path) -> None:
    """The η-range claim fails exactly where a prediction flagged in range misses by > 20 %."""
    from rsstab.experiments.claims.eta_range import range_claim
    from rsstab.io import write_csv

    def rows(ratio_in: float) -> list[dict]:
        base = {"optimizer": "sgd", "depth": 1, "lr": 0.1, "quantity": "forward"}
        return [{**base, "rank": 8, "ratio": ratio_in, "expansion": 0.01, "in_range": True},
                {**base, "rank": 64, "ratio": 3.0, "expansion": 2.0, "in_range": False},  # missed and flagged
                {**base, "depth": 2, "rank": 8, "ratio": float("nan"), "expansion": 50.0, "in_range": False}]

    write_csv(rows(1.1), tmp_path / "eta_range" / "predictions.csv")
    good = range_claim(tmp_path)
    assert good.verdict == "reproduced" and "0 silent of 1 in range (worst 10.0%)" in good.measured
    write_csv(rows(1.3), tmp_path / "eta_range" / "predictions.csv")
    bad = range_claim(tmp_path)
    assert bad.verdict == "partly reproduced" and "sgd depth 1: 1 silent" in bad.measured
