"""The verdict model: :class:`Verdict` and :class:`QuantityVerdict` (one schedule under one
optimizer), their dict / JSON form, and the wording the two verdict modules share — the symbolic
dispatcher :mod:`rsstab.verdict.classify` and the parametric verdict :mod:`rsstab.verdict.parametric`: the
optimizer sentences, "at a fixed learning rate" / "with η ∝ r^P", the reason sentence per label, and
PEFT's init names. Both import from here and neither imports the other's internals; users keep
importing the classes from :mod:`rsstab.verdict.classify` (or ``rsstab.Verdict``).

The rendering rule: every verdict kind presents itself. Beside its dict / JSON form
(:meth:`Verdict.to_dict`, ``EmpiricalVerdict.as_dict``, ``AdamEpsilon.to_dict``,
``WidthTable.json_fields``, ``ExpansionTable.as_list``, ``Transfer.to_dict``, the lint
``Finding.as_dict``) it has ``render() -> str``, the plain text the CLI prints, defined next to
the class and reading its fields directly (typed, no ``getattr``). A command only chooses text or
JSON, puts the pieces in order and writes them; it formats nothing of a verdict's own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import sympy

from rsstab.verdict.hyperparams import learning_summary
from rsstab.verdict.regimes import WidthTable, limit_regime, none_fields
from rsstab.schema import json_safe
from rsstab.vocab import BLOW_UP, COLLAPSE, CONDITIONAL, STABLE, Optimizer, VerdictLabel

__all__ = ["INIT_NAMES", "LR_FIXED", "QuantityVerdict", "Verdict"]

#: ``Verdict.lr`` when the label is for one learning rate used at every rank.
LR_FIXED = "fixed"

_REGIME = {
    "sgd": "SGD learns an adapter of size Θ(η·γ_r²·r) (Theorem 3.2)",
    "adam": "sign-like Adam updates (per-entry gradients ≫ ε) learn an adapter of size Θ(η·γ_r·r)",
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
    label: VerdictLabel


@dataclass(frozen=True)
class Verdict:
    """The classification of a schedule under one optimizer.

    With free parameters (names in an exponent of r, such as ``beta`` in ``alpha/r**beta``) the
    verdict is parametric: ``parameters`` names them, ``conditions`` lists the regions of parameter
    space (``{"when": "beta < 1/2", "label": "blow-up", "constraints": [...]}``, exact rational
    bounds) and ``label`` is the one label that holds in every region, or ``"conditional"``
    (:data:`rsstab.vocab.CONDITIONAL`) when it differs between them.
    """

    label: VerdictLabel
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
    #: how rsstab read the expression (sympy's form), echoed so a misread is visible
    parsed: str = ""
    #: the learning-rate rule the label is for: ``"fixed"`` or ``"η ∝ r^P"``
    lr: str = LR_FIXED
    #: P in ``η ∝ r^P`` for that rule (0: a fixed learning rate)
    lr_scaling: float = 0.0
    #: p such that ``η ∝ r^p`` keeps the update Θ(1); None when γ_r is not a power of r
    lr_exponent: float | None = None
    #: p as an exact fraction (``"-1/2"``) when γ_r's exponent is rational
    lr_exponent_exact: str | None = None
    #: the scale η must follow (``"r^-1/2"``, ``"log(r)^-2"``); None when there is none
    lr_scale: str | None = None
    #: the rule in words, for every γ_r (``"η ∝ r^-1/2 keeps the update Θ(1) (…)"``)
    lr_rule: str = ""
    #: ``r >> d (width fixed, r → ∞)`` without a width; with one, the verdict is about the coherent part.
    regime: str = field(default_factory=limit_regime)
    #: The per-rank finite-width predictions (``check(..., width=d)``), else None.
    width: WidthTable | None = None
    #: Free parameters of a parametric verdict (names in an exponent of r), else empty.
    parameters: tuple[str, ...] = ()
    #: The assumptions on the parameters (``"beta > 0"``), as given.
    assumptions: tuple[str, ...] = ()
    #: Regions of a parametric verdict: ``{"when", "label", "constraints"}`` each.
    conditions: tuple[dict[str, Any], ...] = ()
    #: With a learning rate, init scale or lr ratio in r: one entry per condition (``update``,
    #: ``forward``, ``backward``, ``a_and_b``), each with its ``regime`` (:mod:`rsstab.verdict.hyperparams`).
    terms: tuple[dict[str, Any], ...] = ()

    @property
    def stable(self) -> bool:
        return self.label == STABLE

    @property
    def headline(self) -> str:
        """The label with the learning-rate rule it is for, and the rule that keeps the update Θ(1) when
        the label is not stable.

        >>> from rsstab.verdict.classify import check
        >>> check("alpha/r").headline
        'collapse at a fixed learning rate — rank-stabilized with η ∝ r^1'
        >>> check("alpha/sqrt(r)").headline
        'rank-stabilized at a fixed learning rate'
        """
        text = f"{self.label} {_at(self.lr)}"
        if self.label == CONDITIONAL:
            return text + ": " + "; ".join(f"{c['label']} for {c['when']}" for c in self.conditions)
        if self.label != STABLE and self.lr_scale is not None:
            text += f" — rank-stabilized with η ∝ {self.lr_scale}"
        return text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["table"] = [{"r": r, "gamma": g, "stability": q} for r, g, q in self.table]
        d["notes"] = list(self.notes)
        d["parameters"], d["assumptions"] = list(self.parameters), list(self.assumptions)
        d["conditions"] = [dict(c) for c in self.conditions]
        d["terms"] = [dict(t) for t in self.terms]
        d["headline"] = self.headline
        d.pop("width")
        d.update(self.width.json_fields() if self.width is not None else none_fields())
        return d

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(json_safe(self.to_dict()), ensure_ascii=False, **kwargs)

    def render(self, other: Verdict | None = None) -> str:
        """The plain text ``rsstab check`` prints: the headline, the regime line, γ_r's order, why, the
        learning-rate rule, the quantities, the value table, the width table and the conditions of a
        tuple when there are any, the notes; ``other`` (the same schedule under the other optimizer)
        adds the closing ``under …`` line."""
        lines = [
            f"γ_r = {self.schedule}" + (f"    (read as {self.parsed})" if self.parsed and self.parsed != self.schedule
                                         else "") + f"    [optimizer: {self.optimizer}, method: {self.method}]",
            f"verdict: {self.headline}",
            *(f"  {c['label']:<16} for {c['when']}" for c in (self.conditions if self.parameters else ())),
            self._regime_line(),
            f"γ_r order: {self.gamma_order}    (γ_r → 0: {_yes(self.gamma_to_zero)})",
            f"why: {self.reason}",
            f"learning-rate rule: {self.lr_rule}",
            "",
        ]
        w = max(len("order"), *(len(q.order) for q in self.quantities.values())) + 2
        lines.append(f"{'quantity':<14}{'law':<12}{'order':<{w}}{'exponent':>9}  label")
        for q in self.quantities.values():
            exp = "—" if q.exponent is None else f"{q.exponent:+.4g}"
            lines.append(f"{q.name:<14}{q.law:<12}{q.order:<{w}}{exp:>9}  {q.label}")
        if self.table:
            lines += ["", f"{'r':>6}  {'γ_r':>12}  {self.stability_law:>12}"]
        for r, g, s in self.table:
            lines.append(f"{r:>6}  {_fmt(g):>12}  {_fmt(s):>12}")
        lines.append("")
        if self.width is not None:
            lines += [self.width.render(), ""]
        if self.terms:
            lines += [*self._terms_lines(), ""]
        lines.extend(f"note: {n}".replace("give the constants values", "give the constants values with --set NAME=VALUE")
                     for n in self.notes)
        if other is not None:
            lines.append(f"under {other.optimizer}: {other.headline} ({other.stability_law} ∈ {other.stability_order})")
        return "\n".join(lines)

    def _regime_line(self) -> str:
        """What the verdict is about: the large-rank limit, a joint width × rank statement, or the
        coherent part at a finite width."""
        if self.width is None and self.regime.startswith("joint"):
            return f"regime: {self.regime}; the incoherent part's share is below"
        if self.width is None:
            return f"regime: {self.regime} — the large-rank limit; --width D gives the regime of each rank at your width"
        return (f"regime: width d = {self.width.width} — the verdict is about the coherent part (the mean over A, "
                f"Theorem 3.2's expectation), ∝ {self.stability_law} at every rank; the RMS over A is reported below")

    def _terms_lines(self) -> list[str]:
        """The per-condition entries of the hyperparameter tuple (update, forward, backward, A and B)."""
        terms = self.terms
        lines = [f"conditions ({terms[0]['regime']}):"]
        for t in terms[:-1]:
            if t["quantity"] == "incoherent":
                lines.append(f"incoherent part (RMS over A at width d = {t['width']}; {t['regime']}):")
            cond = t["label"] if t["label"] != "conditional" else "; ".join(
                f"{c['label']} for {c['when']}" for c in t["conditions"])
            lines.append(f"  {t['quantity']:<9} ∝ {t['law']}: {cond}")
        return lines + learning_summary(terms[-1])

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict` (also accepts the output of ``rsstab check --json``)."""
        data = dict(d)
        data["quantities"] = {k: QuantityVerdict(**v) for k, v in data["quantities"].items()}
        data["table"] = tuple((int(t["r"]), _num(t["gamma"]), _num(t["stability"])) for t in data["table"])
        data["notes"] = tuple(data["notes"])
        for key in ("parameters", "assumptions", "conditions", "terms"):
            data[key] = tuple(data.get(key, ()))
        for extra in ("schema_version", "command", "stable", "reason_kind", "other_regime", "headline",
                      "adam_eps", "simulation"):  # added by `rsstab check --json`
            data.pop(extra, None)
        data["width"] = WidthTable.from_json_fields(data, data["optimizer"])
        return cls(**data)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _yes(b: bool | None) -> str:
    return "yes" if b else "no" if b is False else "undetermined"


def _num(x: float | str) -> float:
    return float(x)  # float("inf") / float("nan") parse the JSON-safe strings back


def _rational(x: Fraction) -> sympy.Rational:
    return sympy.Rational(x.numerator, x.denominator)


def _at(lr: str) -> str:
    return "at a fixed learning rate" if lr == LR_FIXED else f"with {lr}"


def _reason(label: str, optimizer: str, law: str, order: str, lr: str = LR_FIXED) -> str:
    regime, at = _REGIME[optimizer], _at(lr)
    if label == STABLE:
        return f"{law} ∈ {order}: {regime}, so {at} activations and gradients stay Θ(1) as r grows."
    if label == COLLAPSE:
        return (f"{law} → 0 as {order}: {regime}, so {at} the learned update and its gradients vanish "
                f"as r grows (the effective learning rate shrinks with r).")
    if label == BLOW_UP:
        return (f"{law} → ∞ as {order}: {regime}, so {at} the learned update, and the activations and "
                f"gradients it drives, grow as r grows: the effective learning rate grows with r, "
                f"which is not by itself a divergence of training.")
    return (f"{law} is {order}: it neither converges to a positive constant nor tends to 0 or ∞, "
            f"so stability depends on which ranks are used ({regime}).")


#: PEFT's init names for A (``init_lora_weights``): Kaiming-uniform on the fan-in is rank-free;
#: PEFT's ``"gaussian"`` draws A with std 1/r.
INIT_NAMES = {"true": "1", "kaiming": "1", "gaussian": "1/r"}
