"""Classify a γ_r schedule per optimizer regime: rank-stabilized, collapse, blow-up or indeterminate.

>>> v = check("alpha/r**0.5")
>>> v.label, v.gamma_order, v.method
('rank-stabilized', 'Θ(r^-1/2)', 'symbolic')
>>> check("alpha/r").label, check("alpha/r", optimizer="adam").label
('collapse', 'rank-stabilized')
>>> check("alpha").quantities["forward"].order
'Θ(r)'
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import sympy

from rsstab import theory
from rsstab.asymptotics import ZERO, Growth, growth_of
from rsstab.errors import ScheduleError
from rsstab.schedule import Schedule, as_schedule
from rsstab.vocab import BLOW_UP, COLLAPSE, INDETERMINATE, LABELS, STABLE, Label, Optimizer

__all__ = ["LABELS", "QuantityVerdict", "Verdict", "check", "json_safe", "label_of"]

TABLE_RANKS = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

_REGIME = {
    "sgd": "SGD learns an adapter of size Θ(η·γ_r²·r) (Theorem 3.2)",
    "adam": "sign-like Adam updates learn an adapter of size Θ(η·γ_r·r)",
}


@dataclass(frozen=True)
class QuantityVerdict:
    """The predicted order in r of one measurable quantity."""

    name: str
    law: str
    description: str
    order: str
    exponent: float | None  # r-exponent when the order is exact and a power of r (times logs)
    log_exponent: float | None
    lower_exponent: float | None
    upper_exponent: float
    label: Label


@dataclass(frozen=True)
class Verdict:
    """The classification of a schedule in one optimizer regime."""

    label: Label
    optimizer: Optimizer
    schedule: str
    method: str
    gamma_order: str
    gamma_exponent: float | None
    gamma_to_zero: bool | None
    stability_law: str
    stability_order: str
    reason: str
    quantities: dict[str, QuantityVerdict]
    table: tuple[tuple[int, float, float], ...] = ()
    notes: tuple[str, ...] = ()
    constants: dict[str, float] = field(default_factory=dict)

    @property
    def stable(self) -> bool:
        return self.label == STABLE

    def to_dict(self) -> dict:
        d = asdict(self)
        d["table"] = [{"r": r, "gamma": g, "stability": q} for r, g, q in self.table]
        d["notes"] = list(self.notes)
        return d

    def to_json(self, **kwargs: object) -> str:
        return json.dumps(json_safe(self.to_dict()), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, d: Mapping) -> Verdict:
        """Inverse of :meth:`to_dict` (also accepts the output of ``rsstab check --json``)."""
        data = dict(d)
        data["quantities"] = {k: QuantityVerdict(**v) for k, v in data["quantities"].items()}
        data["table"] = tuple((int(t["r"]), _num(t["gamma"]), _num(t["stability"])) for t in data["table"])
        data["notes"] = tuple(data["notes"])
        data.pop("also", None)
        return cls(**data)


def json_safe(x: object) -> object:
    """Replace non-finite floats by the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf" if x < 0 else "nan"
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def _num(x: object) -> float:
    return float(x)  # float("inf") / float("nan") parse the JSON-safe strings back


def label_of(g: Growth) -> Label:
    """Label of a quantity from its growth bounds."""
    if g.upper < ZERO:
        return COLLAPSE
    if g.lower is not None and g.lower > ZERO:
        return BLOW_UP
    if g.exact and g.upper == ZERO:
        return {0: STABLE, 1: BLOW_UP, -1: COLLAPSE}[g.strict]
    return INDETERMINATE


def _exponent(s: object) -> float | None:
    return None if s is None else s.power


def _quantity(name: str, optimizer: str, gamma: Growth) -> QuantityVerdict:
    law = theory.law(name, optimizer)
    g = gamma.times(sympy.Rational(law.gamma_power.numerator, law.gamma_power.denominator),
                    sympy.Rational(law.rank_power.numerator, law.rank_power.denominator))
    return QuantityVerdict(
        name=name,
        law=law.text,
        description=theory.DESCRIPTIONS[name],
        order=str(g),
        exponent=g.upper.power if g.exact else None,
        log_exponent=g.upper.log_power if g.exact else None,
        lower_exponent=_exponent(g.lower),
        upper_exponent=g.upper.power,
        label=label_of(g),
    )


def _reason(label: str, optimizer: str, law: str, order: str) -> str:
    regime = _REGIME[optimizer]
    if label == STABLE:
        return f"{law} ∈ {order}: {regime}, so activations and gradients stay Θ(1) as r grows."
    if label == COLLAPSE:
        return f"{law} → 0 as {order}: {regime}, so the learned update and its gradients vanish as r grows."
    if label == BLOW_UP:
        return f"{law} → ∞ as {order}: {regime}, so activations and gradients blow up as r grows."
    return (f"{law} is {order}: it neither converges to a positive constant nor tends to 0 or ∞, "
            f"so stability depends on which ranks are used ({regime}).")


def check(schedule: str | Callable[[float], float] | Schedule, optimizer: str = "sgd",
          constants: Mapping[str, float] | None = None) -> Verdict:
    """Classify γ_r in one optimizer regime (``"sgd"`` as in Theorem 3.2, or ``"adam"``).

    Args:
        schedule: text such as ``"alpha/sqrt(r)"``, a callable ``f(r) -> float``, or a Schedule.
        optimizer: ``"sgd"`` (stability ⇔ γ_r²·r ∈ Θ(1)) or ``"adam"`` (⇔ γ_r·r ∈ Θ(1)).
        constants: values for named constants, used for the numeric table (default 1).

    Raises:
        RsstabError: invalid schedule or optimizer (one-line message).

    >>> check("16/sqrt(r)").stable
    True
    >>> check(lambda r: 1 / r).method
    'numeric'
    """
    names = theory.quantities(optimizer)  # validates the optimizer
    sched = as_schedule(schedule)
    if constants:
        sched = sched.with_values(dict(constants))
    gamma = growth_of(sched)
    quantities = {q: _quantity(q, optimizer, gamma) for q in names}
    stab = theory.stability_law(optimizer)
    deciding = quantities[stab.quantity]
    label = deciding.label
    if gamma.upper < ZERO or (gamma.exact and gamma.upper == ZERO and gamma.strict < 0):
        to_zero: bool | None = True
    elif gamma.lower is not None and gamma.lower >= ZERO:
        to_zero = False
    else:
        to_zero = None
    notes = []
    if gamma.note:
        notes.append(gamma.note)
    if to_zero is not True:
        notes.append("γ_r does not tend to 0: the hypothesis of Theorem 3.2 fails, so the O(γ_r³) "
                     "terms of the trajectory are not negligible and the first-order laws are heuristics.")
    if sched.constants:
        notes.append("table computed with " + ", ".join(f"{c}=1" for c in sched.constants)
                     + " (give the constants values to change it)")
    k, m = float(stab.gamma_power), float(stab.rank_power)
    table = []
    undefined = []
    for r in TABLE_RANKS:
        try:
            g = sched.value(r)
        except ScheduleError:  # e.g. 1/(r - 4) at r = 4: the order is about large r, not this rank
            g = math.nan
            undefined.append(r)
        try:
            q = g**k * r**m
        except OverflowError:
            q = math.inf
        table.append((r, g, q))
    if undefined:
        notes.append(f"γ_r is undefined at r = {', '.join(map(str, undefined))} (nan in the table)")
    return Verdict(
        label=label,
        optimizer=optimizer,
        schedule=sched.text,
        method=gamma.method,
        gamma_order=str(gamma),
        gamma_exponent=gamma.upper.power if gamma.exact else None,
        gamma_to_zero=to_zero,
        stability_law=stab.text,
        stability_order=deciding.order,
        reason=_reason(label, optimizer, stab.text, deciding.order),
        quantities=quantities,
        table=tuple(table),
        notes=tuple(notes),
        constants=dict(sched.values),
    )
