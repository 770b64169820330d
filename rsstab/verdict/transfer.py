"""Learning-rate transfer across ranks: "I tuned η at rank 16; what should it be at rank 256?"

The learned update is Θ(η·γ_r^k·r) (:func:`rsstab.theory.stability_law`: SGD k = 2, Adam's sign
phase k = 1). Keeping it equal at two ranks gives

    η_to = η_from · (γ_from^k · r_from) / (γ_to^k · r_to),

computed **exactly from the schedule** (offsets, log factors and oscillating factors included),
which is ``η_from · (r_to/r_from)^p`` with ``p = −(k·g + 1)`` when ``γ_r ∝ r^g``.

>>> t = transfer("alpha/sqrt(r)", lr=2e-4, from_rank=16, to_rank=256, optimizer="adam")
>>> t.lr_to, t.factor_exact, t.lr_exponent_exact
(5e-05, '1/4', '-1/2')
>>> transfer("alpha/sqrt(r)", lr=2e-4, from_rank=16, to_rank=256).lr_to   # SGD: unchanged
0.0002
>>> transfer("alpha/r", lr=1e-3, from_rank=8, to_rank=64).factor_exact    # LoRA, SGD: × r_to/r_from
'8'

With Adam's ε and the per-entry gradient scale G (E|∂L/∂B_ij| = γ_r·G, see
:func:`rsstab.verdict.adam_eps.adam_epsilon`) the Adam prediction follows the exact first-step update
η·γ_r·r·F(ρ), ρ = γ_r·G/ε (:func:`rsstab.theory.adam_update_factor`): the sign law for ρ ≫ 1,
SGD's with rate η/ε for ρ ≪ 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import sympy

from rsstab import theory
from rsstab.errors import RsstabError
from rsstab.schedule import R, Schedule, as_schedule
from rsstab.timelimit import Timeout, can_time, time_limit
from rsstab.validate import integer_at_least
from rsstab.vocab import OPTIMIZERS, STABLE, AdamRegime, Optimizer, VerdictLabel, check_optimizer

__all__ = ["Transfer", "render_transfers", "transfer", "transfer_all"]

SIMPLIFY_SECONDS = 2.0
_MAX_EXACT = 60  # characters of an exact factor worth printing


@dataclass(frozen=True)
class Transfer:
    """The predicted learning rate at ``to_rank`` from one tuned at ``from_rank``, under one optimizer."""

    schedule: str
    optimizer: Optimizer
    from_rank: int
    to_rank: int
    lr_from: float
    lr_to: float
    factor: float  # lr_to / lr_from
    factor_exact: str | None  # e.g. "1/4", "sqrt(2)"; None when numeric or too long
    lr_rule: str  # the learning-rate rule in words, as rsstab check's (its general form: "η ∝ 1/(γ_r·r)")
    lr_exponent: float | None  # p of η ∝ r^p when γ_r is a power of r
    lr_exponent_exact: str | None
    lr_scale: str | None  # what η must follow when γ_r has log factors ("log(r)^-2")
    fixed_lr_growth: float  # update(to_rank) / update(from_rank) at an unchanged η
    law: str  # the update law this optimizer follows
    label: VerdictLabel  # rsstab check's label of the schedule under this optimizer at a fixed learning rate (ε → 0)
    headline: str  # rsstab check's headline: the label and the learning-rate rule in one line
    eps: float | None = None
    grad_scale: float | None = None
    regime_from: AdamRegime | None = None  # Adam with ε: the phase at each rank
    regime_to: AdamRegime | None = None

    @property
    def stable(self) -> bool:
        """True when the schedule is rank-stabilized at a fixed learning rate under this optimizer."""
        return self.label == STABLE

    def to_dict(self) -> dict[str, Any]:
        """The fields, ``stable`` added; Adam's ε fields only where they were given (keys that do
        not apply are left out, not null)."""
        d = {**asdict(self), "stable": self.stable}
        return {k: v for k, v in d.items() if not (k in _ADAM_EPS_FIELDS and v is None)}

    def render(self, chosen: bool = False) -> str:
        """The plain text of this optimizer's block in ``rsstab transfer`` (``chosen``: the optimizer the
        user named, marked)."""
        mark = " [your optimizer]" if chosen else ""
        times = (f"× {self.factor_exact} = {_fmt(self.factor)}"
                 if self.factor_exact and self.factor_exact != _fmt(self.factor) else f"× {_fmt(self.factor)}")
        rule = self._rule()
        if self.eps is not None:
            rule += " while sign-like; η ∝ 1/(γ_r²·r) once SGD-like (rate η/ε)"
        lines = [
            f"{self.optimizer}: {_OPTIMIZER_WORDS[self.optimizer]}{mark}",
            f"  rule: {rule}  ({self.law})",
            f"  η at r = {self.to_rank}: {_fmt(self.lr_to)}  ({times})",
            f"  at an unchanged η = {_fmt(self.lr_from)} the update would be × {_fmt(self.fixed_lr_growth)} "
            f"at r = {self.to_rank}",
        ]
        if self.regime_from is not None:
            lines.append(f"  Adam with ε = {self.eps:g}, G = {self.grad_scale:g}: {self.regime_from} at r = "
                         f"{self.from_rank}, {self.regime_to} at r = {self.to_rank}")
        return "\n".join(lines)

    def _rule(self) -> str:
        rule = theory.lr_rule(self.optimizer)  # "η ∝ 1/(γ_r·r)"
        if self.lr_exponent is not None:
            return f"{rule} = r^{self.lr_exponent_exact or _fmt(self.lr_exponent)}"
        if self.lr_scale is not None:
            return f"{rule} ∝ {self.lr_scale}"
        return rule


def render_transfers(results: Mapping[str, Transfer], optimizer: str) -> str:
    """The plain text ``rsstab transfer`` prints: the prediction for ``optimizer`` first, then each
    optimizer's block (``optimizer``'s first), then what the rule does and does not predict."""
    mine = results[optimizer]
    lines = [f"γ_r = {mine.schedule}: η = {_fmt(mine.lr_from)} tuned at r = {mine.from_rank}, moved to r = "
             f"{mine.to_rank}",
             f"predicted η at r = {mine.to_rank}: {_fmt(mine.lr_to)}  ({optimizer})"]
    for o in [optimizer] + [o for o in results if o != optimizer]:
        lines += ["", results[o].render(o == optimizer)]
    lines += ["", "The rule keeps the learned update's size equal at both ranks (first-order, small η); it "
              "predicts how the optimal η moves with r, not the optimum itself."]
    return "\n".join(lines)


#: How each optimizer's block in ``rsstab transfer`` names it.
_OPTIMIZER_WORDS = {"sgd": "SGD (Theorem 3.2)", "adam": "Adam, sign-like updates (per-entry gradients ≫ ε)"}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


_ADAM_EPS_FIELDS = ("eps", "grad_scale", "regime_from", "regime_to")


def _check_positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise RsstabError(f"{name} must be a positive finite number, got {value!r}", parameter=name)
    return float(value)


def _gamma(sched: Schedule, r: int) -> float:
    g = sched.value(r)
    if not (math.isfinite(g) and g > 0):
        raise RsstabError(f"γ_r must be positive and finite at r = {r}, got {g!r}", parameter="schedule")
    return g


def _exact_factor(sched: Schedule, k: sympy.Rational, from_rank: int, to_rank: int) -> tuple[sympy.Expr, str | None]:
    """(γ_from^k·r_from)/(γ_to^k·r_to) as a sympy number, and its text when short."""
    # called for a symbolic schedule only (sched.symbolic: expr is not None)
    ratio = ((sched.expr.subs(R, from_rank) / sched.expr.subs(R, to_rank)) ** k  # type: ignore[union-attr]
             * sympy.Rational(from_rank, to_rank))
    if ratio.free_symbols or not ratio.is_Rational:
        try:
            if can_time():
                with time_limit(SIMPLIFY_SECONDS, "simplifying the learning-rate ratio"):
                    ratio = sympy.simplify(ratio)
            elif ratio.free_symbols:
                ratio = sympy.simplify(ratio)
        except Timeout:
            pass
    if ratio.free_symbols:
        names = ", ".join(sorted(str(s) for s in ratio.free_symbols))
        raise RsstabError(f"the learning-rate ratio depends on {names}: give its value", parameter="constants")
    text = str(ratio)
    return ratio, text if len(text) <= _MAX_EXACT else None


def _to_float(x: sympy.Expr) -> float:
    try:
        return float(sympy.N(x, 30))
    except (OverflowError, TypeError, ValueError):
        return math.nan


def transfer(schedule: str | Callable[[float], float] | Schedule, lr: float, from_rank: int, to_rank: int,
             optimizer: str = "sgd", constants: Mapping[str, float | Fraction] | None = None,
             eps: float | None = None, grad_scale: float | None = None) -> Transfer:
    """Predict the learning rate at ``to_rank`` from ``lr`` tuned at ``from_rank``.

    Args:
        schedule: γ_r as text, callable or Schedule.
        lr: the learning rate tuned at ``from_rank``.
        from_rank, to_rank: ranks (integers ≥ 1).
        optimizer: ``"sgd"`` (η ∝ 1/(γ_r²·r)) or ``"adam"`` (sign phase: η ∝ 1/(γ_r·r)).
        constants: values of named constants; needed only when they do not cancel.
        eps, grad_scale: Adam's ε and G (E|∂L/∂B_ij| = γ_r·G at step 0), both or neither; with
            them the Adam prediction follows the first-step update η·γ_r·r·F(ρ), ρ = γ_r·G/ε.

    Raises:
        RsstabError: bad input (one line, naming the parameter).

    >>> transfer("log(r)/sqrt(r)", lr=1.0, from_rank=16, to_rank=256).factor_exact   # η ∝ log(r)^-2
    '1/4'
    >>> t = transfer("1/sqrt(r)", 1e-3, 16, 2**22, "adam", eps=1 / 64, grad_scale=1.0)   # ρ = 64/√r
    >>> t.regime_from, t.regime_to, round(t.factor, 3)   # the sign rule alone would say 1/512, SGD's 1
    ('sign', 'sgd-like', 0.04)
    """
    optimizer = check_optimizer(optimizer)
    lr = _check_positive(lr, "lr")
    from_rank = integer_at_least(from_rank, "from_rank", parameter="from_rank")
    to_rank = integer_at_least(to_rank, "to_rank", parameter="to_rank")
    if (eps is None) != (grad_scale is None):
        raise RsstabError("eps and grad_scale go together", parameter="eps" if eps is None else "grad_scale")
    if eps is not None:
        if optimizer != "adam":
            raise RsstabError("eps and grad_scale describe Adam: use optimizer='adam'", parameter="eps")
        eps, grad_scale = _check_positive(eps, "eps"), _check_positive(grad_scale, "grad_scale")
    from rsstab.verdict.classify import check

    sched = as_schedule(schedule)
    if constants:
        sched = sched.with_values(dict(constants))
    verdict = check(sched, optimizer)
    stab = theory.stability_law(optimizer)
    k = sympy.Rational(stab.gamma_power.numerator, stab.gamma_power.denominator)
    g_from, g_to = _gamma(sched, from_rank), _gamma(sched, to_rank)
    exact: str | None = None
    regime_from = regime_to = None
    law = f"update ∝ η·{stab.text}"
    if eps is not None and grad_scale is not None:  # both or neither (checked above)
        rho_f = theory.adam_gradient_ratio(g_from, grad_scale, eps)
        rho_t = theory.adam_gradient_ratio(g_to, grad_scale, eps)
        regime_from = theory.adam_regime(g_from, grad_scale, eps)
        regime_to = theory.adam_regime(g_to, grad_scale, eps)
        factor = ((g_from * from_rank * theory.adam_update_factor(rho_f))
                  / (g_to * to_rank * theory.adam_update_factor(rho_t)))
        law = ("update ∝ η·γ_r·r·F(ρ), ρ = γ_r·G/ε: sign-like (F → 1) for ρ ≫ 1, "
               "SGD-like with rate η/ε (F ≈ π·ρ/2) for ρ ≪ 1")
    elif sched.symbolic:
        ratio, exact = _exact_factor(sched, k, from_rank, to_rank)
        factor = _to_float(ratio)
    else:
        factor = (g_from / g_to) ** float(k) * (from_rank / to_rank)
    lr_to = lr * factor
    if not (math.isfinite(factor) and factor > 0 and math.isfinite(lr_to) and lr_to > 0):
        raise RsstabError(f"the learning-rate ratio between r = {from_rank} and r = {to_rank} is not a "
                          f"positive finite number ({factor!r})", parameter="schedule")
    return Transfer(
        schedule=sched.text, optimizer=optimizer, from_rank=from_rank, to_rank=to_rank, lr_from=lr,
        lr_to=lr_to, factor=factor, factor_exact=exact, lr_rule=verdict.lr_rule,
        lr_exponent=verdict.lr_exponent, lr_exponent_exact=verdict.lr_exponent_exact,
        lr_scale=verdict.lr_scale, fixed_lr_growth=1.0 / factor, law=law, label=verdict.label,
        headline=verdict.headline, eps=eps, grad_scale=grad_scale,
        regime_from=regime_from, regime_to=regime_to,
    )


def transfer_all(schedule: str | Callable[[float], float] | Schedule, lr: float, from_rank: int, to_rank: int,
                 constants: Mapping[str, float | Fraction] | None = None, eps: float | None = None,
                 grad_scale: float | None = None) -> dict[str, Transfer]:
    """:func:`transfer` under every optimizer (ε and G apply to Adam only).

    >>> {o: t.lr_to for o, t in transfer_all("alpha/sqrt(r)", 2e-4, 16, 256).items()}
    {'sgd': 0.0002, 'adam': 5e-05}
    """
    return {o: transfer(schedule, lr, from_rank, to_rank, o, constants,
                        *((eps, grad_scale) if o == "adam" else (None, None)))
            for o in OPTIMIZERS}
