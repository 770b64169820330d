"""The teaching notebook (reports/teaching.ipynb): in sync with its jupytext source, and it runs
top to bottom, fast, with results that match the theory.

The notebook is executed once per test session (module fixture) in a fresh kernel whose kernel
spec is written here and points at ``sys.executable``, so it always runs the interpreter (and the
rsstab) under test, whatever kernels the machine has installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import sympy

import rsstab

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "reports" / "teaching.py"
NOTEBOOK = ROOT / "reports" / "teaching.ipynb"
KERNEL = "rsstab-teaching-test"
BUDGET_S = 120.0  # the notebook must execute top to bottom in under two minutes

SCHEDULES = ("alpha", "alpha/r", "alpha/sqrt(r)")
EXPECTED_LABELS = {  # theory.md: Theorem 3.2 (SGD) and the optimizer caveat (Adam)
    ("alpha", "sgd"): "blow-up",
    ("alpha/r", "sgd"): "collapse",
    ("alpha/sqrt(r)", "sgd"): "rank-stabilized",
    ("alpha", "adam"): "blow-up",
    ("alpha/r", "adam"): "rank-stabilized",
    ("alpha/sqrt(r)", "adam"): "blow-up",
}
NUM = r"[+-]?\d+(?:\.\d+)?"


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


# --------------------------------------------------------------------------- (a) sync


def test_notebook_is_in_sync_with_its_jupytext_source() -> None:
    from_source = jupytext.read(SOURCE)
    committed = nbformat.read(NOTEBOOK, as_version=4)
    expected, actual = _cells(from_source), _cells(committed)
    assert len(actual) == len(expected), (
        f"{NOTEBOOK.name} has {len(actual)} cells, {SOURCE.name} converts to {len(expected)}: "
        f"run `jupytext --sync {SOURCE.relative_to(ROOT)}`"
    )
    for i, (e, a) in enumerate(zip(expected, actual)):
        assert a == e, f"cell {i} differs from {SOURCE.name}: run `jupytext --sync {SOURCE.relative_to(ROOT)}`"
    assert len(expected) >= 20 and sum(t == "code" for t, _ in expected) >= 10


def test_committed_notebook_carries_its_outputs() -> None:
    """The notebook is committed executed (by `make report`), so its figures show on GitHub; the
    sync test above guarantees its cells are the source's, so the outputs belong to them."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "run `make report` (it executes the notebook)"
    counts = [c.execution_count for c in code]
    assert counts == sorted(counts), "executed top to bottom"
    images = sum("image/png" in out.get("data", {}) for c in code for out in c.outputs)
    assert images >= 1, "the figures are kept as outputs"


# --------------------------------------------------------------------------- (b) execution


@pytest.fixture(scope="module")
def executed() -> dict:
    from rsstab.experiments.notebook import execute

    nb, seconds = execute(SOURCE, cwd=ROOT, timeout=BUDGET_S)
    stream, markdown, images = [], [], 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                stream.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                markdown.append(out.data.get("text/markdown", ""))
                images += "image/png" in out.data
    return {"text": "".join(stream), "markdown": "\n".join(markdown), "images": images, "seconds": seconds}


def test_notebook_runs_in_under_two_minutes(executed: dict) -> None:
    assert executed["seconds"] < BUDGET_S
    m = re.search(rf"notebook executed in ({NUM}) s", executed["text"])
    assert m and float(m.group(1)) < BUDGET_S


def test_forward_pass_section(executed: dict) -> None:
    text = executed["text"]
    assert text.count("max |adapter contribution| at init = 0\n") == 3  # B = 0: invisible adapter
    m = re.search(r"E\[y_i\^2\] = (\S+)", text)
    assert m, "the Wick second moment is printed"
    r, d, g, sa, sb, sx = sympy.symbols("r d gamma_r sigma_A sigma_B sigma_x")
    assert sympy.simplify(sympy.sympify(m.group(1)) - g**2 * r * d * sa**2 * sb**2 * sx**2) == 0


def test_iid_route_matches_wick_and_theory(executed: dict) -> None:
    text = executed["text"]
    rows = re.findall(rf"^\s+(\d+)\s+({NUM})\s+({NUM})\s+({NUM})$", text.split("r·d (Wick)")[1].split("\n\n")[0], re.MULTILINE)
    assert len(rows) == 5
    for rank, _mc, exact, ratio in rows:
        assert float(exact) == 16 * int(rank)
        assert abs(float(ratio) - 1) < 0.1, f"Monte Carlo E[y²] at r={rank} is {ratio} × the Wick value"
    slopes = re.findall(rf"^\s+(naive|LoRA|rsLoRA) .*: slope ({NUM}) \[.*\], predicted ({NUM})$", text, re.MULTILINE)
    assert {s[0] for s in slopes} == {"naive", "LoRA", "rsLoRA"}
    for name, slope, predicted in slopes:
        assert float(predicted) == {"naive": 1.0, "LoRA": -1.0, "rsLoRA": 0.0}[name]
        assert abs(float(slope) - float(predicted)) < 0.05


def test_first_step_section(executed: dict) -> None:
    text = executed["text"]
    coherent = re.search(rf"coherent sum:\s+slope ({NUM})", text)
    incoherent = re.search(rf"incoherent sum: slope ({NUM})", text)
    assert coherent and abs(float(coherent.group(1)) - 1.0) < 0.1
    assert incoherent and abs(float(incoherent.group(1)) - 0.5) < 0.1
    r, g = sympy.symbols("r gamma_r")
    sgd = re.search(r"SGD stability factor, derived: (\S+)", text)
    adam = re.search(r"Adam stability factor, derived: (\S+)", text)
    assert sgd and sympy.sympify(sgd.group(1)) - g**2 * r == 0
    assert adam and sympy.sympify(adam.group(1)) - g * r == 0
    md = executed["markdown"]
    assert "(`first-step`)" in md and "(`adam`)" in md
    checks = re.findall(r"Checks: (\d+)/(\d+) identities hold", md)
    assert len(checks) == 2 and all(a == b and int(a) > 0 for a, b in checks)
    assert not re.search(r"^# Derivations", md, re.MULTILINE)  # render()'s document title is stripped


def test_predictions_table(executed: dict) -> None:
    found = re.findall(rf"^(alpha\S*)\s+(sgd|adam)\s+(\S+)\s+\S+\s+({NUM})\s+({NUM})\s+({NUM})$",
                       executed["text"], re.MULTILINE)
    assert len(found) == 6
    for text, optimizer, label, grad_init, forward, backward in found:
        v = rsstab.check(text, optimizer=optimizer)
        assert label == v.label == EXPECTED_LABELS[text, optimizer]
        assert [float(grad_init), float(forward), float(backward)] == [
            v.quantities[q].exponent for q in ("grad_init", "forward", "backward")]


def test_simulated_slopes_agree_with_theory(executed: dict) -> None:
    text = executed["text"]
    fits = re.findall(rf"^\s+(sgd|adam)\s+(\S+)\s+(grad_init|forward|backward)\s+slope ({NUM}) "
                      rf"\[({NUM}), ({NUM})\]\s+theory ({NUM})", text, re.MULTILINE)
    assert len(fits) == 18  # 3 schedules × 2 optimizers × 3 quantities
    assert {(f[1], f[0]) for f in fits} == set(EXPECTED_LABELS)
    for optimizer, schedule, quantity, slope, lo, hi, theory in fits:
        predicted = rsstab.check(schedule, optimizer=optimizer).quantities[quantity].exponent
        assert float(theory) == predicted
        assert float(lo) <= float(slope) <= float(hi)
        assert abs(float(slope) - predicted) <= 0.1, f"{optimizer} {schedule} {quantity}: {slope} vs {predicted}"
    verdicts = {(s, o): (m, p) for o, s, m, p in re.findall(
        r"^\s+(sgd|adam)\s+(\S+)\s+verdict: measured (\S+), predicted (\S+)$", text, re.MULTILINE)}
    assert set(verdicts) == set(EXPECTED_LABELS)
    for key, (measured, predicted) in verdicts.items():
        assert predicted == EXPECTED_LABELS[key]
        if predicted != "rank-stabilized":  # blow-up / collapse: slopes ≥ 0.45 away from flat
            assert measured == predicted, key
    assert re.search(r"18/18 fitted slopes agree with the predicted exponent \(interval meets ±0\.1\)", text)
    assert "empirical verdict: rank-stabilized" in text  # render_empirical, rsLoRA under SGD


def test_figures_and_exercises(executed: dict) -> None:
    assert executed["images"] >= 2  # the iid figure and the three-panel simulation figure
    text = executed["text"]
    assert "γ = log(r)/√r under sgd:" in text and "→ blow-up" in text
