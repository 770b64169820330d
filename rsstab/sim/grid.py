"""Grids of cells: γ_r (and any per-rank setting) evaluated at each rank, and one JSON config per
rank for :func:`rsstab.sim.cells.run_cell`. Standard library only (no torch, no numpy), so an
experiment script builds its grid — and answers ``--help`` — without loading the simulator."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

from rsstab.errors import RsstabError
from rsstab.sim.config import SimConfig

__all__ = ["gamma_values", "make_configs"]


def gamma_values(
    schedule: Any, ranks: Iterable[int], constants: Mapping[str, float] | None = None
) -> list[float]:
    """γ_r at each rank for a Schedule, a callable ``f(r)``, a text expression or a number.

    ``constants`` gives values to a schedule's named constants (default 1).

    >>> gamma_values("alpha/sqrt(r)", [4, 16], {"alpha": 8})
    [4.0, 2.0]
    """
    return _rank_values(schedule, ranks, constants, "γ_r")


def _rank_values(
    schedule: Any, ranks: Iterable[int], constants: Mapping[str, float] | None, name: str
) -> list[float]:
    """Positive finite values of a per-rank function (see :func:`gamma_values`); ``name`` names it
    in errors."""
    if isinstance(schedule, str):
        from rsstab.schedule import as_schedule

        schedule = as_schedule(schedule)
    out = []
    for r in ranks:
        if isinstance(schedule, (int, float)):
            g = float(schedule)
        elif constants and hasattr(schedule, "value"):
            g = float(schedule.value(r, dict(constants)))
        elif callable(schedule):
            try:
                g = float(schedule(r))
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise RsstabError(f"the schedule failed at r={r}: {exc}") from None
        else:
            raise RsstabError(f"a schedule is text, a callable or a number, got {type(schedule).__name__}")
        if not (math.isfinite(g) and g > 0):
            raise RsstabError(f"{name} must be positive and finite, got {g!r} at r={r}")
        out.append(g)
    return out


#: SimConfig fields that :func:`make_configs` also takes as functions of the rank.
PER_RANK = ("lr", "lr_ratio")


def _per_rank(value: Any, ranks: Sequence[int], constants: Mapping[str, float] | None, name: str) -> list[Any]:
    """A number (the same at every rank; SimConfig validates it) or a function of the rank
    evaluated at each rank (:func:`_rank_values`)."""
    if isinstance(value, Real) and not isinstance(value, bool):
        return [float(value)] * len(ranks)
    return _rank_values(value, ranks, constants, name)


def make_configs(
    schedule: Any,
    ranks: Sequence[int],
    *,
    label: str | None = None,
    constants: Mapping[str, float] | None = None,
    a_init_scale: Any = 1.0,
    **options: Any,
) -> list[dict[str, Any]]:
    """JSON-serialisable configs (one per rank) for :func:`rsstab.sim.cells.run_cell` /
    :func:`rsstab.sweep.run_sweep`.

    ``label`` names the schedule in the rows (default: its text); other keyword arguments are
    :class:`SimConfig` fields (e.g. ``adapted_layers=(0, 2)``). A config key ``tags`` (a dict) is
    copied into every row. ``a_init_scale`` is a number, or a function of the rank like the
    schedule (text such as ``"1/sqrt(r)"``, a callable or a Schedule; ``constants`` apply to it
    too), evaluated per rank: each config stores its float. The learning rate ``lr`` and
    ``lr_ratio`` (η_B/η_A) may be functions of the rank in the same way.

    >>> [c["a_init_scale"] for c in make_configs("alpha/r", [4, 16], a_init_scale="1/sqrt(r)")]
    [0.5, 0.25]
    >>> [c["lr"] for c in make_configs("alpha/r", [4, 16], lr="eta*r", constants={"eta": 0.01})]
    [0.04, 0.16]
    """
    gammas = gamma_values(schedule, ranks, constants)
    scales = _per_rank(a_init_scale, ranks, constants, "a_init_scale")
    per_rank = {k: _per_rank(options.pop(k), ranks, constants, k) for k in PER_RANK if options.get(k) is not None}
    if label is None:
        label = getattr(schedule, "text", None) or (schedule if isinstance(schedule, str) else repr(schedule))
    tags = dict(options.pop("tags", {}) or {})
    configs = []
    for i, (r, g, a_scale) in enumerate(zip(ranks, gammas, scales)):
        at_rank = {k: v[i] for k, v in per_rank.items()}
        cfg = SimConfig(rank=int(r), gamma=g, a_init_scale=a_scale, **at_rank, **options)  # validates early
        d = cfg.to_dict()
        d["tags"] = {"schedule": label, "optimizer": cfg.optimizer, "gamma": g, **tags}
        configs.append(d)
    return configs
