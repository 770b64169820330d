"""The rank × width grid of ``simulations/width_sweep.py``: per-cell tables, measured and predicted
crossover ranks.

The measurement side reads only the simulation's rows: the forward RMS (geometric mean over the
seeds), its coherent and incoherent parts across the seeds' draws of A at fixed data
(``share_data``), and the A-independent data statistics. The prediction side is
:func:`rsstab.theory.crossover_rank` (r* at d_eff = d) and, exactly for the data the cell saw,
r* at the measured-free effective width of :mod:`rsstab.measure.predict` (from the data statistics).
The **measured** crossover is the rank where the measured coherent and incoherent squares are
equal, interpolated linearly in log r between the two ranks that bracket it — model-free: it
does not assume the ratio grows like r.

>>> round(crossover_from_ratio([4, 16, 64], [0.25, 1.0 / 1.5, 4.0]), 2)  # crosses 1 between 16 and 64
21.9
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rsstab.experiments.figures import geometric_mean

__all__ = ["cell_table", "crossover_from_ratio", "crossover_records", "local_slope_grid"]


def crossover_from_ratio(ranks: Sequence[float], ratio: Sequence[float]) -> float | None:
    """The first rank where ``ratio`` (coherent² / incoherent²) reaches 1, log-log interpolated
    between the bracketing ranks; None when no two successive finite positive ratios bracket 1."""
    pts = [(math.log(r), math.log(q)) for r, q in zip(ranks, ratio) if q is not None and math.isfinite(q) and q > 0]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if y0 <= 0 <= y1 and y1 > y0:
            return math.exp(x0 + (0 - y0) * (x1 - x0) / (y1 - y0))
    return None


def cell_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per (optimizer, schedule, width, rank): ``forward`` (geometric mean over seeds
    of the RMS), ``coherent``/``incoherent`` (the split, signed root of the mean square), and the
    data-exact effective width ``d_eff`` of the forward law (``predict``'s table) from seed 0's
    data statistics at the last step."""
    from rsstab.measure.predict import predict_layer

    groups: dict[tuple, dict[str, Any]] = {}
    last: dict[tuple, int] = {}
    for row in rows:
        key = (row["optimizer"], row["schedule"], int(row["width"]), int(row["rank"]))
        last[key] = max(last.get(key, -1), int(row["step"]))
    for row in rows:
        key = (row["optimizer"], row["schedule"], int(row["width"]), int(row["rank"]))
        if int(row["step"]) != last[key] or int(row.get("layer", 0)) != 0:
            continue
        g = groups.setdefault(key, {"forward": [], "stats": {}})
        q, s, v = row["quantity"], int(row["seed"]), float(row["value"])
        if q == "forward" and s >= 0:
            g["forward"].append(v)
        elif q in ("forward_coherent", "forward_incoherent", "forward_coherent_se", "forward_incoherent_se"):
            g[q.removeprefix("forward_")] = v
        elif s == 0 and q.startswith(("data_grad", "sign_", "probe_input")):
            g["stats"][q] = v
    out = []
    for (opt, sched, d, r), g in sorted(groups.items()):
        pred = predict_layer("forward", opt, g["stats"], rank=r, width=d, gamma=1.0, lr=1.0, steps=1)
        out.append({"optimizer": opt, "schedule": sched, "width": d, "rank": r,
                    "forward": geometric_mean(g["forward"]), "coherent": g.get("coherent", math.nan),
                    "incoherent": g.get("incoherent", math.nan), "coherent_se": g.get("coherent_se", math.nan),
                    "incoherent_se": g.get("incoherent_se", math.nan), "d_eff": pred.d_eff})
    return out


def _column(table: Sequence[Mapping[str, Any]], opt: str, sched: str, d: int) -> list[Mapping[str, Any]]:
    return sorted((t for t in table if (t["optimizer"], t["schedule"], t["width"]) == (opt, sched, d)),
                  key=lambda t: t["rank"])


def local_slope_grid(table: Sequence[Mapping[str, Any]], opt: str, sched: str, widths: Sequence[int],
                     ranks: Sequence[int]) -> list[list[float]]:
    """values[width][i]: the measured local slope of the forward RMS between ranks[i] and
    ranks[i+1] (nan where a cell was skipped)."""
    grid = []
    for d in widths:
        by_rank = {t["rank"]: t["forward"] for t in _column(table, opt, sched, d)}
        row = []
        for r0, r1 in zip(ranks, ranks[1:]):
            v0, v1 = by_rank.get(r0, math.nan), by_rank.get(r1, math.nan)
            ok = all(math.isfinite(v) and v > 0 for v in (v0, v1))
            row.append(math.log(v1 / v0) / math.log(r1 / r0) if ok else math.nan)
        grid.append(row)
    return grid


def crossover_records(table: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (optimizer, schedule, width): the measured crossover rank, theory's r*(d) and the
    data-exact r* (at the cell's d_eff), their ratio, and the measured slope of
    log(incoherent/coherent) in log r (predicted −½)."""
    from rsstab.theory import crossover_rank

    out = []
    for opt, sched, d in sorted({(t["optimizer"], t["schedule"], t["width"]) for t in table}):
        col = _column(table, opt, sched, d)
        ranks = [t["rank"] for t in col]
        ratio = [(t["coherent"] * abs(t["coherent"])) / t["incoherent"] ** 2 if t["incoherent"] > 0 else math.nan
                 for t in col]
        measured = crossover_from_ratio(ranks, ratio)
        predicted = float(crossover_rank("forward", opt, d))
        d_eff = geometric_mean([t["d_eff"] for t in col])
        exact = float(crossover_rank("forward", opt, d, d_eff=d_eff)) if math.isfinite(d_eff) else math.nan
        pts = [(math.log(r), 0.5 * math.log(1 / q)) for r, q in zip(ranks, ratio) if math.isfinite(q) and q > 0]
        slope = math.nan
        if len(pts) >= 2:
            mx = sum(p[0] for p in pts) / len(pts)
            my = sum(p[1] for p in pts) / len(pts)
            slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        out.append({"optimizer": opt, "schedule": sched, "width": d, "ranks": " ".join(map(str, ranks)),
                    "measured_crossover": measured, "predicted_crossover": predicted,
                    "predicted_crossover_data": exact,
                    "ratio": None if measured is None else measured / predicted,
                    "inc_coh_slope": slope, "d_eff": d_eff})
    return out
