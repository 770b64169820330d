"""REPORT.md claim of the phase diagram (``simulations/phase_diagram.py``): the measured label of
every cell of the exponent grids against the predicted region, cell by cell. Registered in
:data:`rsstab.experiments.claims.BUILDERS`.

The predictions are :func:`rsstab.check`'s, written by the sweep beside the measurements in
``phase_diagram/cells.csv``. The rule, fixed before any run: a cell away from the predicted
boundary passes when its measured label equals the predicted one; a cell within one grid step of
the boundary passes when it agrees or is indeterminate (the issue's allowance), and fails when it
shows another label.

>>> _passes({"boundary": False, "outcome": "agree"}), _passes({"boundary": False, "outcome": "indeterminate"})
(True, False)
>>> _passes({"boundary": True, "outcome": "indeterminate"}), _passes({"boundary": True, "outcome": "disagree"})
(True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsstab.experiments.claims.table import REPRODUCTION, Claim, fig, read_table, verdict_of

__all__ = ["phase_claim", "COMMAND"]

COMMAND = "python simulations/phase_diagram.py"


def _passes(row: Mapping[str, Any]) -> bool:
    if row["boundary"]:
        return row["outcome"] in ("agree", "indeterminate")
    return row["outcome"] == "agree"


def phase_claim(root: Path) -> Claim:
    """Measured labels over β × c (SGD, Adam) and β × k (SGD) vs the predicted regions."""
    rows = read_table(root / "phase_diagram" / "cells.csv")
    if not rows:
        raise LookupError("no rows in phase_diagram/cells.csv")
    parts = []
    for grid in dict.fromkeys(r["grid"] for r in rows):
        g = [r for r in rows if r["grid"] == grid]
        away = [r for r in g if not r["boundary"]]
        near = [r for r in g if r["boundary"]]
        n_ind = sum(r["outcome"] == "indeterminate" for r in near)
        n_dis = sum(r["outcome"] == "disagree" for r in near)
        parts.append(f"{grid}: {sum(r['outcome'] == 'agree' for r in away)}/{len(away)} agree away from the "
                     f"boundary; near it {sum(r['outcome'] == 'agree' for r in near)}/{len(near)} agree"
                     + (f", {n_ind} indeterminate" if n_ind else "") + (f", {n_dis} disagree" if n_dis else ""))
    return Claim(
        "The phase diagram of the tuple: measured labels over grids of exponents match the predicted regions",
        "SGD, η ∝ r^c, γ ∝ r^−β: stable iff c = 2β − 1; SGD, σ_A ∝ r^−k: iff β + k = ½; Adam, η ∝ r^c: iff "
        "c = β − 1 (blow-up on one side, collapse on the other; `rsstab check` per cell); cells within one grid "
        "step of the boundary may be indeterminate",
        "; ".join(parts), verdict_of([_passes(r) for r in rows]), fig("phase_diagram/phase_diagram.png"), COMMAND,
        REPRODUCTION, "rsstab's tuple prediction (beyond the paper's fixed η and init), measured where it could fail")
