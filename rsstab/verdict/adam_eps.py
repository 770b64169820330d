"""Adam with ε > 0: where the sign phase ends for a schedule, and which law holds beyond.

:func:`adam_epsilon` scans ρ(r) = γ_r·G/ε (the mean per-entry gradient of B over ε, first step,
B = 0) for the rank r_ε where Adam leaves the sign phase and turns SGD-like with rate η/ε; the
laws and thresholds are :mod:`rsstab.theory`'s, the derivation is result 11 of ``rsstab derive``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

from rsstab import theory
from rsstab.verdict.classify import TABLE_RANKS, check
from rsstab.errors import RsstabError
from rsstab.schedule import Schedule, as_schedule
from rsstab.vocab import ADAM_SIGN, AdamRegime, VerdictLabel

__all__ = ["AdamEpsilon", "adam_epsilon"]


_SCAN = tuple(2.0 ** (k / 4) for k in range(0, 401))  # r = 1 … 2^100, four points per octave


@dataclass(frozen=True)
class AdamEpsilon:
    """Where Adam with ε > 0 follows which law, for one schedule (first step, B = 0).

    ``ratio`` ρ(r) = γ_r·G/ε compares the mean per-entry gradient of B, γ_r·G, with ε. Where
    ρ ≫ 1 Adam is sign-like (update ∝ η·γ_r·r: the ``adam`` verdict); where ρ ≪ 1 it is SGD
    with learning rate η/ε (update ∝ (η/ε)·γ_r²·r: the ``sgd`` verdict). ``crossover_rank`` is
    the last rank in 1 … 2^100 where ρ crosses 1 (None when it never does).
    """

    schedule: str
    eps: float
    grad_scale: float
    crossover_rank: float | None
    large_r_regime: AdamRegime  # the phase for r → ∞ (at r = 2^100)
    sign_label: VerdictLabel  # "conditional" for a schedule with free parameters
    sgd_like_label: VerdictLabel
    sign_lr_exponent: float | None
    sgd_like_lr_exponent: float | None
    table: tuple[tuple[int, float, float, AdamRegime], ...]  # (r, γ_r, ρ, phase)
    summary: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = [{"r": r, "gamma": g, "ratio": q, "regime": m} for r, g, q, m in self.table]
        return d

    def render(self) -> str:
        """The plain text ``rsstab check --eps EPS --grad-scale G`` prints (a blank line first): the phase
        per rank and where it changes."""
        lines = ["", f"Adam with ε = {self.eps:g}, E|∂L/∂B_ij| = γ_r·{self.grad_scale:g} at step 0 (ρ = γ_r·G/ε):",
                 f"{'r':>6}  {'γ_r':>12}  {'ρ':>12}  regime"]
        for r, g, q, m in self.table:
            lines.append(f"{r:>6}  {_fmt(g):>12}  {_fmt(q):>12}  {m}")
        lines.append(f"{self.summary}.")
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _ratio(sched: Schedule, r: float, grad_scale: float, eps: float) -> float:
    g = sched.value(r)
    if not (g > 0):
        raise RsstabError(f"γ_r is not positive at r = {r:g}", parameter="schedule")
    return theory.adam_gradient_ratio(g, grad_scale, eps) if math.isfinite(g) else math.inf


def adam_epsilon(schedule: str | Callable[[float], float] | Schedule, eps: float, grad_scale: float,
                 constants: Mapping[str, float | Fraction] | None = None,
                 ranks: tuple[int, ...] = TABLE_RANKS) -> AdamEpsilon:
    """Where Adam (ε > 0) leaves the sign phase for this schedule, and which law holds beyond.

    Args:
        schedule: γ_r as text, callable or Schedule.
        eps: Adam's ε (PyTorch's default is 1e-8).
        grad_scale: G with E|∂L/∂B_ij| = γ_r·G at step 0; for Gaussian A (std σ_A), one input x
            and output gradient entry v_i, ``G = |v_i|·σ_A·‖x‖·√(2/π)``
            (:func:`rsstab.theory.adam_grad_scale`).
        constants: values of named constants (default 1).
        ranks: the ranks of the table.

    >>> a = adam_epsilon("1/sqrt(r)", eps=1 / 16, grad_scale=1.0)   # ρ = 16/√r: r_ε = 256
    >>> round(a.crossover_rank), a.large_r_regime, a.sign_label, a.sgd_like_label
    (256, 'sgd-like', 'blow-up', 'rank-stabilized')
    >>> [m for _, _, _, m in adam_epsilon("1/sqrt(r)", 1 / 16, 1.0, ranks=(1, 256, 2**20)).table]
    ['sign', 'crossover', 'sgd-like']
    """
    for name, value in (("eps", eps), ("grad_scale", grad_scale)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise RsstabError(f"{name} must be a positive finite number, got {value!r}", parameter=name)
    sched = as_schedule(schedule)
    if constants:
        sched = sched.with_values(dict(constants))
    rho = [_ratio(sched, r, grad_scale, eps) for r in _SCAN]
    above = [q >= 1 for q in rho]
    last = next((i for i in range(len(above) - 1, 0, -1) if above[i] != above[i - 1]), None)
    crossover = None
    if last is not None:  # bisect log r between _SCAN[last-1] and _SCAN[last] for ρ = 1
        lo, hi = math.log(_SCAN[last - 1]), math.log(_SCAN[last])
        for _ in range(60):
            mid = (lo + hi) / 2
            if (_ratio(sched, math.exp(mid), grad_scale, eps) >= 1) == above[last - 1]:
                lo = mid
            else:
                hi = mid
        crossover = math.exp((lo + hi) / 2)
    large = theory.adam_regime(sched.value(_SCAN[-1]), grad_scale, eps) if math.isfinite(rho[-1]) else ADAM_SIGN
    sign, sgd = check(sched, "adam"), check(sched, "sgd")
    table = tuple((r, sched.value(r), q, theory.adam_regime(sched.value(r), grad_scale, eps))
                  for r in ranks for q in [_ratio(sched, r, grad_scale, eps)])
    sign_text = f"sign-like (update ∝ η·γ_r·r: {sign.headline})"
    sgd_text = f"SGD-like with rate η/ε (update ∝ (η/ε)·γ_r²·r: {sgd.headline})"
    if crossover is None:
        summary = (f"per-entry gradients of B are {'above' if above[-1] else 'below'} ε at every rank "
                   f"from 1 to 2^100: Adam is {sign_text if above[-1] else sgd_text} throughout")
    else:
        first, then = (sgd_text, sign_text) if above[-1] else (sign_text, sgd_text)
        summary = (f"per-entry gradients of B cross ε at r_ε ≈ {crossover:.4g}: below it Adam is {first}; "
                   f"beyond it Adam is {then} (well inside a regime when ρ ≥ {theory.ADAM_SIGN_RATIO:g} "
                   f"or ρ ≤ {theory.ADAM_SGD_RATIO:g})")
    return AdamEpsilon(
        schedule=sched.text, eps=float(eps), grad_scale=float(grad_scale), crossover_rank=crossover,
        large_r_regime=large, sign_label=sign.label, sgd_like_label=sgd.label,
        sign_lr_exponent=sign.lr_exponent, sgd_like_lr_exponent=sgd.lr_exponent, table=table,
        summary=summary,
    )


