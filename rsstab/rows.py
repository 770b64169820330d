"""Tidy rows — one home for turning a simulation's rows into arrays.

A row is a ``dict`` with ``rank``, ``seed``, ``step``, ``layer``, ``quantity`` and ``value`` (plus
tags such as ``schedule``); :func:`rsstab.sim.run_cell` writes them, the sweep store keeps them,
and fits and figures read them through the functions here.

* :func:`values_from_rows` — one quantity as ``(ranks, values[n_ranks, n_seeds])``;
* :func:`aggregate` — a per-layer quantity collapsed over layers (RMS, norm or mean);
* :func:`summary_values` — the three summary quantities of :data:`SUMMARY`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rsstab.errors import RsstabError

__all__ = ["SUMMARY", "aggregate", "summary_values", "values_from_rows"]


def values_from_rows(
    rows: Iterable[Mapping[str, Any]],
    quantity: str,
    *,
    where: Mapping[str, Any] | None = None,
) -> tuple[list[int], np.ndarray]:
    """Gather one quantity from tidy rows into ``(ranks, values[n_ranks, n_seeds])``.

    Rows must carry ``rank``, ``seed``, ``quantity`` and ``value``; ``where`` filters on other
    keys (e.g. ``{"step": 20, "layer": -1}``). Exactly one row per (rank, seed) must remain.

    >>> rows = [{"rank": r, "seed": s, "quantity": "q", "value": float(r + s)}
    ...         for r in (2, 4) for s in (0, 1)]
    >>> values_from_rows(rows, "q")
    ([2, 4], array([[2., 3.],
           [4., 5.]]))
    """
    where = dict(where or {})
    table: dict[int, dict[int, float]] = {}
    for row in rows:
        if row.get("quantity") != quantity or any(row.get(k) != val for k, val in where.items()):
            continue
        per_rank = table.setdefault(int(row["rank"]), {})
        seed = int(row["seed"])
        if seed in per_rank:
            raise RsstabError(
                f"several {quantity!r} rows for rank {row['rank']}, seed {seed}: narrow `where`"
            )
        value = row["value"]
        per_rank[seed] = math.nan if value is None else float(value)
    if not table:
        raise RsstabError(f"no rows for quantity {quantity!r} matching {where}")
    ranks = sorted(table)
    seeds = sorted(table[ranks[0]])
    for r in ranks:
        if sorted(table[r]) != seeds:
            raise RsstabError(f"rank {r} has seeds {sorted(table[r])}, expected {seeds}")
    return ranks, np.array([[table[r][s] for s in seeds] for r in ranks], dtype=float)


def aggregate(
    rows: Iterable[Mapping[str, Any]], quantity: str, *, step: int | None = None, how: str = "rms"
) -> list[dict[str, Any]]:
    """Collapse a per-layer quantity to one value per (rank, seed, other tags) at ``step``
    (default: each cell's last probed step).

    ``how="rms"``: root mean square over layers (forward, backward); ``how="norm"``: root sum of
    squares (a Frobenius norm over all layers' parameters: grad_A, grad_B); ``how="mean"``.
    """
    groups: dict[tuple, list[float]] = {}
    proto: dict[tuple, dict[str, Any]] = {}
    rows = list(rows)
    last: dict[tuple, int] = {}
    skip = {"layer", "step", "value", "quantity"}
    for row in rows:
        if row["quantity"] != quantity:
            continue
        key = tuple(sorted((k, _hashable(v)) for k, v in row.items() if k not in skip))
        last[key] = max(last.get(key, -1), int(row["step"]))
    for row in rows:
        if row["quantity"] != quantity:
            continue
        key = tuple(sorted((k, _hashable(v)) for k, v in row.items() if k not in skip))
        target = last[key] if step is None else step
        if int(row["step"]) != target:
            continue
        groups.setdefault(key, []).append(float(row["value"]) if row["value"] is not None else math.nan)
        proto.setdefault(key, {k: v for k, v in row.items() if k not in ("layer", "value")})
    out = []
    with np.errstate(all="ignore"):
        for key, vals in groups.items():
            v = np.asarray(vals, dtype=float)
            if how == "rms":
                value = float(np.sqrt(np.mean(v**2)))
            elif how == "norm":
                value = float(np.sqrt(np.sum(v**2)))
            elif how == "mean":
                value = float(np.mean(v))
            else:
                raise RsstabError(f"unknown aggregation {how!r}")
            out.append({**proto[key], "layer": -1, "value": value})
    return out


def _hashable(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


#: The three summary quantities: (per-layer source, aggregation, step: "first" or "last").
SUMMARY = {
    "grad_init": ("grad_B", "norm", "first"),
    "forward": ("forward", "rms", "last"),
    "backward": ("backward", "rms", "last"),
}


def summary_values(rows: Sequence[Mapping[str, Any]], quantity: str) -> tuple[list[int], np.ndarray]:
    """(ranks, values[n_ranks, n_seeds]) of a summary quantity (``grad_init``: ‖∇_B L‖_F over all
    layers at step 0; ``forward``/``backward``: RMS over layers after the last step)."""
    source, how, when = SUMMARY[quantity]
    step = 0 if when == "first" else None
    return values_from_rows(aggregate(rows, source, step=step, how=how), source)
