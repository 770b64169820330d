"""The real-LM experiment beside the theory: tuned learning rates, perplexity against rank, claims.

Report code: reads the tidy rows of :mod:`rsstab.experiments.real_lm` and compares them with the
predictions of :mod:`rsstab.transfer` (never seen by the cells).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rsstab.experiments.real_lm import RealLMConfig, final_losses

__all__ = ["read_config", "read_rows", "report"]


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tidy rows of ``rows.csv`` with their numeric types restored."""
    types = {"rank": int, "lr_k": int, "seed": int, "step": int, "lr": float, "value": float}
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: types.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def read_config(path: str | os.PathLike[str]) -> RealLMConfig:
    """The configuration saved next to the rows (validated again)."""
    data = json.loads(Path(path).read_text())
    return RealLMConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def report(rows: Iterable[Mapping[str, Any]], cfg: RealLMConfig, out: Path) -> int:
    """Print the held-out perplexity per (method, rank, η) (the full summary: see ``--replot``)."""
    losses = final_losses(rows)
    for (m, r, k, s), v in sorted(losses.items()):
        print(f"{m:7s} r={r:4d} η={cfg.lr_grid(k):.3g} seed={s}: ppl {math.exp(min(v, 700)):.3f}")
    return 0
