"""The defaults of rsstab's two Monte Carlo measurements, side by side.

* :data:`SIMULATION`: ``rsstab simulate``, :func:`rsstab.measure.empirical.empirical_verdict` and
  :class:`rsstab.sim.SimConfig` (published as :data:`rsstab.sim.DEFAULTS`; ``rsstab check --steps``
  takes its ``steps``);
* :data:`RANK_STABILITY`: :func:`rsstab.testing.check_rank_stability` and
  :func:`~rsstab.testing.assert_rank_stabilized` (published as :data:`rsstab.testing.DEFAULTS`).

Both measure log-log slopes across the same ranks, steps and seeds (:data:`RANKS`, :data:`STEPS`,
:data:`SEEDS`, one name each). They differ where they train different things: the simulator trains
its own small stack (width 16, a planted teacher), where a batch of 64 and η = 1e-5 (SGD) / 3e-6 (Adam)
stay in the range of the first-order laws its predictions are for; the check trains the user's own module, of any
width and cost per step, so it takes a smaller batch (32, its probes 128 inputs) and a smaller η
(1e-6 under both optimizers) that keeps an unknown module's training linearised (a large one lets
blown-up adapters saturate and hide their slope).

Imports nothing but :mod:`rsstab.vocab`, so ``--help`` and anything that only reads a default stays light.

>>> SIMULATION["ranks"] is RANK_STABILITY["ranks"] is RANKS
True
"""

from __future__ import annotations

from typing import Any

from rsstab.vocab import FLAT_BAND

__all__ = ["RANKS", "STEPS", "SEEDS", "SIMULATION", "RANK_STABILITY"]

#: Ranks a slope is fitted across: well above the usual widths, so the finite-rank bias (a relative
#: ~width/r term in the learned change) stays small.
RANKS = (64, 256, 1024, 4096)
#: Training steps before the probes.
STEPS = 10
#: Independent repetitions per rank.
SEEDS = 8

#: Defaults of the command line and :func:`rsstab.measure.empirical.empirical_verdict`, per optimizer
#: where they differ.
SIMULATION: dict[str, Any] = {
    "ranks": RANKS,
    "depth": 2,
    "width": 16,
    "steps": STEPS,
    "seeds": SEEDS,
    "batch": 64,
    "lr": {"sgd": 1e-5, "adam": 3e-6},
}

#: Defaults of :func:`rsstab.testing.check_rank_stability`. The learning rate keeps training
#: linearised; float32 suffices because the probes are forward-mode derivatives, not differences.
RANK_STABILITY: dict[str, Any] = {
    "ranks": RANKS,
    "steps": STEPS,
    "seeds": SEEDS,
    "batch": 32,
    "probe_batch": 128,
    "lr": {"sgd": 1e-6, "adam": 1e-6},
    "tolerance": FLAT_BAND,
    "confidence": 0.95,
    "dtype": "float32",
    "draws": 4,
}
