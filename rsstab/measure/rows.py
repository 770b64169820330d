"""Tidy rows — one home for turning a simulation's rows into arrays.

A row is a ``dict`` with ``rank``, ``seed``, ``step``, ``layer``, ``quantity`` and ``value`` (plus
tags such as ``schedule``); :func:`rsstab.sim.run_cell` writes them, the sweep store keeps them,
and fits and figures read them through the functions here.

* :func:`values_from_rows` — one quantity as ``(ranks, values[n_ranks, n_seeds])``;
* :func:`aggregate` — a per-layer quantity collapsed over layers (RMS, norm or mean);
* :func:`summary_values` — the three summary quantities of :data:`SUMMARY`;
* :func:`layer_rms` — a per-layer quantity's RMS over layers at the last step, per (rank, seed);
* :func:`seed_rms` — the root mean square over seeds of such values, with its standard error;
* :func:`rms_ratio` — measured over predicted root mean square, seed by seed paired, with its error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from rsstab.errors import RsstabError

__all__ = ["SUMMARY", "aggregate", "layer_rms", "rms_ratio", "seed_rms", "summary_values", "values_from_rows"]


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


def layer_rms(rows: Sequence[Mapping[str, Any]], quantity: str) -> tuple[list[int], np.ndarray]:
    """(ranks, values[n_ranks, n_seeds]) of a per-layer quantity, RMS over layers at each cell's last
    step (the per-seed rows only: cell-level rows have seed −1)."""
    per_seed = [r for r in rows if r["quantity"] == quantity and int(r["seed"]) >= 0]
    return values_from_rows(aggregate(per_seed, quantity, how="rms"), quantity)


def seed_rms(values: np.ndarray) -> tuple[list[float], list[float]]:
    """Per rank (row of ``values[n_ranks, n_seeds]``): the root mean square over seeds and its
    standard error (delta method: the seeds' standard error of the mean square over 2·RMS; nan for
    one seed). Non-finite seeds (diverged) are left out.

    The mean square over seeds is unbiased for the mean square over the draw of A that the exact
    finite-(r, d) laws predict (:mod:`rsstab.measure.predict`); the geometric mean that the slope fits use
    lies below its root by Jensen's inequality, by up to a quarter where the seeds spread widely
    (a deep layer at r ≪ d: its input's mean makes the learned change coherent, a sum of r terms,
    so a seed's mean square goes like (χ²_r)², relative variance ≈ 8/r).

    >>> rms, se = seed_rms(np.array([[1.0, 1.0], [3.0, 4.0]]))
    >>> [round(v, 4) for v in rms], [round(v, 4) for v in se]
    ([1.0, 3.5355], [0.0, 0.495])
    """
    rms: list[float] = []
    se: list[float] = []
    with np.errstate(all="ignore"):
        for row in np.asarray(values, dtype=float):
            sq = row[np.isfinite(row)] ** 2
            m = float(np.mean(sq)) if sq.size else math.nan
            rms.append(math.sqrt(m) if m >= 0 else math.nan)
            sd = float(np.std(sq, ddof=1)) if sq.size > 1 else math.nan
            se.append(sd / math.sqrt(sq.size) / (2 * rms[-1]) if sq.size > 1 and rms[-1] > 0 else math.nan)
    return rms, se


def rms_ratio(measured: Sequence[float], predicted_ms: Sequence[float]) -> tuple[float, float]:
    """``(ratio, se)``: the root mean square over seeds of ``measured`` (one value per seed) over
    the root of the mean of ``predicted_ms`` (each seed's predicted mean square, the same seeds in
    the same order), and its standard error. Paired by seed, the error counts only what the
    prediction does not follow: a seed's data move both sides, so the ratio estimator's residuals
    ``m_s² − R²·p_s`` carry the draw of A alone (delta method: se(R²)/(2R)). Non-finite pairs are
    left out; nan when nothing is left.

    >>> rms_ratio([1.0, 2.0, 3.0], [1.0, 4.0, 9.0])   # every seed exactly as predicted
    (1.0, 0.0)
    """
    m = np.asarray(measured, dtype=float) ** 2
    p = np.asarray(predicted_ms, dtype=float)
    ok = np.isfinite(m) & np.isfinite(p)
    m, p = m[ok], p[ok]
    if not m.size or not p.mean() > 0:
        return math.nan, math.nan
    r2 = float(m.mean() / p.mean())
    ratio = math.sqrt(r2)
    if m.size < 2:
        return ratio, math.nan
    se_r2 = float(np.std(m - r2 * p, ddof=1)) / math.sqrt(m.size) / float(p.mean())
    return ratio, se_r2 / (2 * ratio) if ratio > 0 else math.nan
