"""Rank-stability checks for your own CI, and hypothesis strategies of γ_r schedules.

``assert_rank_stabilized(factory)`` is a one-line guard for a LoRA variant: ``factory(r)`` builds
any ``torch.nn.Module`` mapping ``(batch, d_in)`` to ``(batch, d_out)`` whose trainable parameters
are its adapters (your own layers, a PEFT model, …). For every rank and seed the module is trained
a few steps on a synthetic regression task, like a mup coordinate check, and three quantities are
measured through autograd alone (see :mod:`rsstab.testing.probe`): ``grad_init`` (gradient norm at
step 0), ``forward`` (RMS of the learned change of the output) and ``backward`` (RMS of the
gradient into the input through that change). Their log-log slopes against the rank are fitted
with :func:`rsstab.measure.fit.fit_slope`; the check passes when ``forward`` and ``backward`` — Definition
3.1's two conditions — are both measured flat (``grad_init`` is reported but does not vote: under
Adam, LoRA's stable α/r has a collapsing onset gradient). On failure an ``AssertionError`` shows a
rank × quantity table with slopes, intervals and the reasons.

Torch is imported only when a check runs, and hypothesis only by :func:`schedules` /
:func:`labelled_schedules`, so importing this module is cheap.

A measured result can also be built from values you computed yourself:

>>> import numpy as np
>>> ranks = (64, 256, 1024, 4096)
>>> flat = np.ones((4, 3)) * [1.0, 1.05, 0.95]
>>> res = RankStabilityResult.from_values(ranks, {"grad_init": flat, "forward": flat,
...                                               "backward": flat}, optimizer="sgd")
>>> res.passed, res.label
(True, 'rank-stabilized')
>>> shrinking = flat / np.asarray(ranks, float)[:, None]
>>> res = RankStabilityResult.from_values(ranks, {"grad_init": flat, "forward": shrinking,
...                                               "backward": flat}, optimizer="sgd")
>>> res.passed, res.label, res.fits["forward"].label
(False, 'collapse', 'collapse')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsstab.testing.stability import (
    DEFAULTS,
    QUANTITIES,
    VOTING,
    RankStabilityResult,
    assert_rank_stabilized,
    check_rank_stability,
)

if TYPE_CHECKING:  # pragma: no cover
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "DEFAULTS",
    "QUANTITIES",
    "VOTING",
    "RankStabilityResult",
    "check_rank_stability",
    "assert_rank_stabilized",
    "schedules",
    "labelled_schedules",
    "tuples",
]


def schedules(label: str | None = None, optimizer: str = "sgd") -> SearchStrategy[str]:
    """A hypothesis strategy of γ_r expressions whose label under ``optimizer`` is ``label``
    (any of rank-stabilized, collapse, blow-up when ``None``). See
    :func:`rsstab.testing.strategies.schedules`."""
    from rsstab.testing.strategies import schedules as _schedules

    return _schedules(label=label, optimizer=optimizer)


def labelled_schedules(optimizer: str = "sgd") -> SearchStrategy[tuple[str, str]]:
    """A hypothesis strategy of ``(expression, label)`` pairs. See
    :func:`rsstab.testing.strategies.labelled_schedules`."""
    from rsstab.testing.strategies import labelled_schedules as _labelled

    return _labelled(optimizer=optimizer)


def tuples(label: str | None = None, optimizer: str = "sgd") -> SearchStrategy:
    """A hypothesis strategy of hyperparameter tuples (schedule, lr, init, lr ratio — the strings of
    ``rsstab check``) whose labels are known by construction. See
    :func:`rsstab.testing.strategies.tuples`."""
    from rsstab.testing.strategies import tuples as _tuples

    return _tuples(label=label, optimizer=optimizer)
