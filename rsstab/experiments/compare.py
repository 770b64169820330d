"""Predictions beside measurements: the theory's exponents next to the slopes fitted to a sweep.

:mod:`rsstab.sim` measures and :mod:`rsstab.measure.fit` fits without knowing the theory; here the
exponents of :func:`rsstab.check` are put beside the fitted slopes, and tables are rendered as
GitHub markdown.

>>> markdown_table([{"a": 1, "b": 0.12345, "c": None, "d": True}], ["a", "b", "c", "d"])
'| a | b | c | d |\\n|---|---|---|---|\\n| 1 | 0.1235 | — | yes |'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from rsstab.vocab import FLAT_BAND, SUMMARY_QUANTITIES

__all__ = ["CONTEXT", "theory_exponent", "theory_label", "slope_records", "markdown_table"]


@lru_cache(maxsize=256)
def _verdict(schedule: str, optimizer: str, constants: tuple[tuple[str, float], ...]) -> Any:
    import rsstab

    return rsstab.check(schedule, optimizer=optimizer, constants=dict(constants) or None)


def theory_exponent(
    schedule: str, optimizer: str, quantity: str, constants: Mapping[str, float] | None = None
) -> float | None:
    """The r-exponent the theory predicts for a quantity (None when it is not a pure power).

    >>> theory_exponent("alpha/sqrt(r)", "adam", "forward")
    0.5
    """
    v = _verdict(schedule, optimizer, tuple(sorted((constants or {}).items())))
    q = v.quantities.get(quantity)
    return None if q is None else q.exponent


def theory_label(schedule: str, optimizer: str) -> str:
    """The symbolic verdict's label for a schedule under one optimizer.

    >>> theory_label("alpha/r", "adam")
    'rank-stabilized'
    """
    return str(_verdict(schedule, optimizer, ()).label)


#: Settings copied from the rows into every slope record when the group shares them (the
#: Disagreements section derives causes from them).
CONTEXT = ("optimizer", "width", "lr", "steps", "a_init")


def slope_records(
    rows: Sequence[Mapping[str, Any]],
    group_by: Sequence[str],
    *,
    quantities: Sequence[str] = SUMMARY_QUANTITIES,
    tolerance: float | None = None,
    theory: Callable[[Mapping[str, Any], str], float | None] | None = None,
) -> list[dict[str, Any]]:
    """Fit every summary quantity within each group of rows (e.g. by schedule and depth) and put
    the theory's exponent beside it. Rows need ``schedule`` and ``optimizer`` columns.

    ``agrees`` is the report's rule: the fit's interval meets [theory ± tolerance]
    (:func:`rsstab.measure.fit.agrees_with` in interval mode). ``theory(row, quantity)`` overrides the
    exponent (default :func:`theory_exponent` of the group's schedule and optimizer; ``row`` is the
    group's first row, e.g. to read a tag such as ``a_init``). Each record also carries the
    group's settings (:data:`CONTEXT`, when the rows have them) and the fitted ranks' range."""
    from rsstab.measure.fit import agrees_with, fit_slope
    from rsstab.measure.rows import summary_values

    tol = FLAT_BAND if tolerance is None else tolerance
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in group_by), []).append(row)
    out = []
    for key, grp in groups.items():
        meta = dict(zip(group_by, key))
        schedule, optimizer = grp[0]["schedule"], grp[0]["optimizer"]
        context = {c: grp[0][c] for c in CONTEXT
                   if c not in meta and c in grp[0] and all(r.get(c) == grp[0][c] for r in grp)}
        diverged = sorted({int(r["rank"]) for r in grp if r["quantity"] == "diverged_step"})
        for q in quantities:
            ranks, values = summary_values(grp, q)
            if len(ranks) < 2:
                continue
            fit = fit_slope(ranks, values, tolerance=tol)
            th = theory(grp[0], q) if theory is not None else theory_exponent(schedule, optimizer, q)
            out.append({
                **meta,
                "quantity": q,
                "slope": fit.slope,
                "ci_low": fit.ci[0],
                "ci_high": fit.ci[1],
                "theory": th,
                "agrees": None if th is None else agrees_with(fit, th, tol, interval=True),
                "label": fit.label,
                "local_slopes": " ".join(f"{s:+.2f}" for s in fit.local_slopes),
                "diverged_ranks": " ".join(map(str, diverged)),
                **context,
                "rank_min": min(ranks),
                "rank_max": max(ranks),
            })
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def markdown_table(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-markdown table of ``records`` restricted to ``columns``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for rec in records:
        lines.append("| " + " | ".join(_cell(rec.get(c)) for c in columns) + " |")
    return "\n".join(lines)
