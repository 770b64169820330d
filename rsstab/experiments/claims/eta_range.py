"""REPORT.md claim of the η-range grid (``simulations/eta_range.py``): every prediction off by more
than 20 % is flagged out of its range — zero silent misses — over three decades of η, SGD and
Adam, depths 1, 2 and 4. Registered in :data:`rsstab.experiments.claims.BUILDERS`.

The flag is the prediction's own (``rsstab simulate``'s ``predicted_in_range``: the expansion
parameter of result 13 or the batch noise of result 14 against ``theory.EXPANSION_LIMIT``), set
before the measurement is compared; the 20 % miss is fixed here.

>>> silent({"ratio": 1.5, "in_range": True}), silent({"ratio": 1.5, "in_range": False})
(True, False)
>>> silent({"ratio": float("nan"), "in_range": True})
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rsstab.experiments.claims.table import REPRODUCTION, Claim, fig, read_table, verdict_of

__all__ = ["MISS", "missed", "silent", "range_claim"]

#: A prediction is missed when measured/predicted is off by more than this (or not finite).
MISS = 0.2
COMMAND = "python simulations/eta_range.py"


def missed(row: Mapping[str, Any]) -> bool:
    """measured/predicted off by more than :data:`MISS`, or not finite (a diverged rank)."""
    ratio = float(row["ratio"]) if row["ratio"] is not None else math.nan
    return not math.isfinite(ratio) or abs(ratio - 1) > MISS


def silent(row: Mapping[str, Any]) -> bool:
    """A miss flagged in range."""
    return bool(row["in_range"]) and missed(row)


def range_claim(root: Path) -> Claim:
    """Per (optimizer, depth): no prediction flagged in range misses by more than :data:`MISS`."""
    rows = read_table(root / "eta_range" / "predictions.csv")
    if not rows:
        raise LookupError("no rows in eta_range/predictions.csv")
    checks, parts = [], []
    for opt, depth in sorted({(r["optimizer"], int(r["depth"])) for r in rows}):
        part = [r for r in rows if (r["optimizer"], int(r["depth"])) == (opt, depth)]
        inside = [r for r in part if bool(r["in_range"])]
        n_silent = sum(map(silent, part))
        checks.append(n_silent == 0)
        worst = max((abs(float(r["ratio"]) - 1) for r in inside), default=math.nan)
        parts.append(f"{opt} depth {depth}: {n_silent} silent of {len(inside)} in range (worst {worst:.1%}), "
                     f"{sum(map(missed, part))} of {len(part)} missed and flagged")
    lrs = {o: sorted({float(r["lr"]) for r in rows if r["optimizer"] == o}) for o in sorted({r["optimizer"] for r in rows})}
    span = "; ".join(f"{o} η {v[0]:g}…{v[-1]:g}" for o, v in lrs.items())
    return Claim(
        "Predictions know their range: past first order in η, a prediction that misses is flagged out of range",
        f"zero silent misses (in range and off by > {MISS:.0%}) over {span}",
        "; ".join(parts), verdict_of(checks), fig("eta_range/ratio_vs_expansion.png"), COMMAND, REPRODUCTION,
        "rsstab's own range (beyond the paper), tried where it could fail: learning rates to divergence")
