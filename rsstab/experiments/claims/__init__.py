"""The claims table of ``reports/REPORT.md``: every claim, its kind, its prediction, what was
measured, a verdict — then the Disagreements section.

Pure functions over the tables the experiment scripts write (``slopes.csv``, ``final_loss.csv``,
``tuned.csv``, ``rows.csv``, ``fits.json``); ``simulations/make_report.py`` runs the experiments
and calls :func:`build`. Predictions come from :func:`rsstab.check` and :mod:`rsstab.theory`,
measurements from the tables; nothing here is a typed-in number except the paper's own reported
figures, which are quoted as such.

* :mod:`~rsstab.experiments.claims.table` — :class:`Claim`, kinds, verdict rules, rendering;
* :mod:`~rsstab.experiments.claims.checks` — claims measured by exponents (mostly consistency checks);
* :mod:`~rsstab.experiments.claims.reproductions` — claims measured where they could fail (tuned η,
  the real model, learning-rate transfer);
* :mod:`~rsstab.experiments.claims.real_lm` — the paper's headline on a real causal LM (SmolLM2-135M);
* :mod:`~rsstab.experiments.claims.width` — the finite-width claims (crossover rank, cleaner with rank);
* :mod:`~rsstab.experiments.claims.phase` — the phase diagram of the tuple, cell by cell;
* :mod:`~rsstab.experiments.claims.eta_range` — the predictions' range past first order in η.

>>> verdict_of([True, True]), verdict_of([True, False]), verdict_of([False])
('reproduced', 'partly reproduced', 'not reproduced')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rsstab.experiments.claims import checks, eta_range, phase, real_lm, reproductions, width
from rsstab.experiments.claims.table import (CONSISTENCY, NOT_RUN, REFUTES, REPRODUCTION, Claim, read_table, render,
                                             verdict_of)
from rsstab.io import atomic_write

__all__ = ["Claim", "BUILDERS", "build", "claims", "verdict_of", "read_table", "render", "REFUTES",
           "REPRODUCTION", "CONSISTENCY"]

Builder = Callable[[Path], "Claim | list[Claim]"]

#: The claims in table order, each with its kind (used when its tables are missing).
BUILDERS: tuple[tuple[Builder, str, int], ...] = (
    (checks.iff_symbolic, CONSISTENCY, 1),
    (checks.iff_measured, CONSISTENCY, 1),
    (checks.seed_rows, CONSISTENCY, 3),
    (reproductions.fig2, REPRODUCTION, 1),
    (checks.fig3, CONSISTENCY, 1),
    (reproductions.sgd, REPRODUCTION, 1),
    (reproductions.lr_boost, REPRODUCTION, 1),
    (checks.subset, REPRODUCTION, 1),
    (checks.init_only, CONSISTENCY, 1),
    (reproductions.real_model, REPRODUCTION, 1),
    (reproductions.real_model_sgd, REPRODUCTION, 1),
    (real_lm.real_lm, REPRODUCTION, 4),
    (real_lm.real_lm_onset, CONSISTENCY, 1),
    (checks.adam, CONSISTENCY, 1),
    (checks.depth, CONSISTENCY, 1),
    (reproductions.lr_transfer, REPRODUCTION, 1),
    (width.crossover_claim, REPRODUCTION, 1),
    (width.cleaner_claim, REPRODUCTION, 1),
    (phase.phase_claim, REPRODUCTION, 1),
    (eta_range.range_claim, REPRODUCTION, 1),
)


def claims(root: str | Path) -> list[Claim]:
    """Evaluate every claim from the tables under ``root``; a missing table makes that claim
    'not run' instead of failing the report."""
    root = Path(root)
    out: list[Claim] = []
    for build_claim, kind, n in BUILDERS:
        try:
            got = build_claim(root)
        except (FileNotFoundError, LookupError, TypeError, ValueError, KeyError, StopIteration) as exc:
            name = build_claim.__name__.strip("_").replace("_", " ")
            out.extend(Claim(name, "—", f"not measured: {type(exc).__name__}: {exc}", NOT_RUN, "", "", kind)
                       for _ in range(n))
            continue
        out.extend(got if isinstance(got, list) else [got])
    return out


def build(root: str | Path, header: str = "", appendix: Sequence[tuple[str, str]] = ()) -> Path:
    """Write ``<root>/REPORT.md``: the claims table, the Disagreements section, the appendix."""
    from rsstab.experiments import disagreements

    root = Path(root)
    section = disagreements.render(disagreements.collect(root))
    return atomic_write(root / "REPORT.md", render(claims(root), header=header, appendix=appendix,
                                                   sections=[section]))
