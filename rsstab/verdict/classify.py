"""Classify a γ_r schedule per optimizer regime: rank-stabilized, collapse, blow-up or indeterminate.

>>> v = check("alpha/r**0.5")
>>> v.label, v.gamma_order, v.method
('rank-stabilized', 'Θ(r^-1/2)', 'symbolic')
>>> check("alpha/r").label, check("alpha/r", optimizer="adam").label
('collapse', 'rank-stabilized')
>>> check("alpha").quantities["forward"].order
'Θ(r)'

Labels are statements **at a fixed learning rate** (``Verdict.lr == "fixed"``); every verdict also
carries the learning-rate rule ``η ∝ r^lr_exponent`` that keeps the update Θ(1), and
``lr_scaling`` asks for the verdict under a learning rate scaled as ``η ∝ r^lr_scaling``:

>>> v = check("alpha/sqrt(r)", optimizer="adam")
>>> v.headline, v.lr_exponent, v.lr_exponent_exact
('blow-up at a fixed learning rate — rank-stabilized with η ∝ r^-1/2', -0.5, '-1/2')
>>> check("alpha/sqrt(r)", optimizer="adam", lr_scaling="-1/2").headline
'rank-stabilized with η ∝ r^-1/2'

This module is the dispatcher: :func:`check` validates and parses its inputs once, into a
:class:`~rsstab.verdict.request.CheckRequest`; a schedule with free parameters, or with a learning
rate / init scale in r, goes to :mod:`rsstab.verdict.parametric`, any other to the exact engine
here. The verdict itself (:class:`Verdict`, :class:`QuantityVerdict`) and the wording both verdicts
share live in :mod:`rsstab.verdict.model` and are importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

import sympy

from rsstab import theory
from rsstab.asymptotics import ZERO, Growth, Scale, growth_of
from rsstab.errors import ScheduleError
from rsstab.verdict.regimes import width_table
from rsstab.schedule import Schedule
from rsstab.schema import json_safe  # public here too (in __all__)
from rsstab.verdict.model import LR_FIXED, QuantityVerdict, Verdict, _rational, _reason
from rsstab.verdict.request import CheckRequest, _fmt_power
from rsstab.verdict.request import _as_lr_scaling as _as_lr_scaling  # rsstab lint parses P with it from here
from rsstab.vocab import BLOW_UP, COLLAPSE, INDETERMINATE, LABELS, STABLE, Label

__all__ = ["LABELS", "LR_FIXED", "QuantityVerdict", "Verdict", "check",
           "json_safe", "label_of"]

TABLE_RANKS = (4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


def label_of(g: Growth) -> Label:
    """Label of a quantity from its growth bounds."""
    if g.upper < ZERO:
        return COLLAPSE
    if g.lower is not None and g.lower > ZERO:
        return BLOW_UP
    if g.exact and g.upper == ZERO:
        return {0: STABLE, 1: BLOW_UP, -1: COLLAPSE}[g.strict]
    return INDETERMINATE


def _exponent(s: Scale | None) -> float | None:
    return None if s is None else s.power


def _quantity(name: str, optimizer: str, gamma: Growth, lr_scaling: Fraction = Fraction(0)) -> QuantityVerdict:
    law = theory.law(name, optimizer)
    g = gamma.times(_rational(law.gamma_power), _rational(law.rank_power + law.lr_power * lr_scaling))
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


def _lr_rule(gamma: Growth, optimizer: str) -> tuple[Fraction | float | None, str | None, str]:
    """(p, the scale η must follow, the rule in words): ``η ∝ r^p`` (or ``η ∝`` that scale, when
    γ_r carries log factors) keeps the stability quantity Θ(1)."""
    stab = theory.stability_law(optimizer)
    general = theory.lr_rule(optimizer)
    fixed = gamma.times(_rational(stab.gamma_power), _rational(stab.rank_power))
    up = fixed.upper
    if fixed.exact and not fixed.strict and up.a[0].is_infinite:
        how = f"{'grows' if up > ZERO else 'vanishes'} faster than any power of r"
    elif fixed.exact and not fixed.strict:
        how = "stays Θ(1)" if up == ZERO else f"grows like {up}" if up > ZERO else f"shrinks like {up}"
    else:
        how = f"is {fixed}"
    at_fixed = f"at a fixed η the update {how}"
    if gamma.exact and not gamma.strict:
        a0, a1, a2 = gamma.upper.a
        if a0.is_infinite or a1.is_infinite or a2.is_infinite:
            return None, None, f"{general}: γ_r is Θ({gamma.upper}), so no power of r does it ({at_fixed})"
        if a1 == 0 and a2 == 0:
            g: Fraction | float = Fraction(int(a0.p), int(a0.q)) if a0.is_Rational else float(a0)
            p = theory.lr_exponent(g, optimizer)
            if p == 0:
                return p, "r^0", f"a fixed η (η ∝ r^0) keeps the update Θ(1) ({general})"
            return p, f"r^{_fmt_power(p)}", f"η ∝ r^{_fmt_power(p)} keeps the update Θ(1) ({general}; {at_fixed})"
        scale = str(up.scaled(sympy.Integer(-1)))
        return None, scale, (f"η ∝ {scale} keeps the update Θ(1) ({general}; not a pure power of r: "
                             f"γ_r has log factors; {at_fixed})")
    if gamma.exact:
        return None, None, (f"{general}: γ_r is {gamma}, a power of r times a slowly varying factor, so "
                            f"no pure power of r does it; scale η with γ_r itself")
    return None, None, (f"{general}: γ_r has no single order in r ({gamma}), so no power of r keeps the "
                        f"update Θ(1)")


def check(schedule: str | Callable[[float], float] | Schedule, optimizer: str = "sgd",
          constants: Mapping[str, float | Fraction] | None = None,
          lr_scaling: str | float | Fraction | None = None, width: int | None = None,
          ranks: Sequence[int] | None = None, assume: str | Sequence[str] | None = None,
          lr: str | None = None, init_std: str | None = None, lr_ratio: str | None = None,
          width_expr: str | None = None) -> Verdict:
    """Classify γ_r in one optimizer regime (``"sgd"`` as in Theorem 3.2, or ``"adam"``).

    Args:
        schedule: text such as ``"alpha/sqrt(r)"``, a callable ``f(r) -> float``, or a Schedule.
        optimizer: ``"sgd"`` (stability ⇔ γ_r²·r ∈ Θ(1)) or ``"adam"`` (⇔ γ_r·r ∈ Θ(1)).
        constants: values for named constants, used for the numeric table (default 1).
        lr_scaling: P when the learning rate is scaled as ``η ∝ r^P`` across ranks (``"-1/2"``,
            ``-0.5``); ``None`` or 0: a fixed learning rate, the regime of the paper's theorem.
        width: the input width d of the adapted layer. Without it the verdict is the r ≫ d limit
            (``regime``); with it the verdict still follows the coherent part (the mean over A), and
            ``width`` holds, per rank, the regime, the predicted coherent/incoherent sizes, the RMS slope
            and the crossover rank (:mod:`rsstab.verdict.regimes`).
        ranks: the ranks of the width table (default 8, 32, … into the r ≫ d regime); needs ``width``.
        assume: linear (in)equalities on the parameters (``"beta > 0"``, ``"0 < beta <= 1"``) that
            restrict a parametric verdict's regions.
        lr: the learning rate as an expression in r (``"eta/sqrt(r)"``, parameters allowed): the
            learned update ∝ η·γ_r^k·r^m (theory's laws) is classified with it (not with lr_scaling).
        init_std: σ_A, the std of A's entries, as an expression in r, or a PEFT init name
            (``"true"``/``"kaiming"``: rank-free; ``"gaussian"``: 1/r), entering through σ_A's power
            in the laws.
        lr_ratio: η_B/η_A (LoRA+'s ratio λ) as an expression in r: η (``lr``, default fixed) is A's
            learning rate and λ·η is B's. Default 1.
        width_expr: the input width d as an expression in r (``"r"``, ``"r**k"``) for a joint width ×
            rank statement (inputs with Θ(1) entries, σ_A in units of Kaiming's 1/√d): adds the
            incoherent part's share (results 9–10) and d's power in A's learning (:mod:`rsstab.verdict.hyperparams`).

    With any of ``lr``, ``init_std``, ``lr_ratio`` the verdict's ``terms`` hold one entry per condition
    (update, forward, backward, and whether A and B both learn), each with the regime it is about
    (:mod:`rsstab.verdict.hyperparams`):

    >>> v = check("alpha/sqrt(r)", lr_ratio="r")
    >>> v.label, [(t["quantity"], t["label"]) for t in v.terms][-1]
    ('blow-up', ('a_and_b', 'same-order'))

    The whole tuple: ``η·γ_r·r`` under Adam with η ∝ 1/√r and γ_r = α/√r is Θ(1); SGD with PEFT's
    Gaussian init (σ_A = 1/r) makes rsLoRA collapse; ``η ∝ r^c`` with γ_r = α/r^β is stable iff c = 2β − 1:

    >>> check("alpha/sqrt(r)", optimizer="adam", lr="eta/sqrt(r)").label
    'rank-stabilized'
    >>> check("alpha/sqrt(r)", init_std="gaussian").label
    'collapse'
    >>> [c["when"] for c in check("alpha/r**beta", lr="eta*r**c").conditions if c["label"] == "rank-stabilized"]
    ['beta = c/2 + 1/2']

    Names in an exponent of r are real parameters: the verdict lists the regions where each label
    holds (exact rational bounds) and its label is ``"conditional"`` when they differ:

    >>> v = check("alpha/r**beta")
    >>> v.label, [(c["when"], c["label"]) for c in v.conditions]
    ('conditional', [('beta < 1/2', 'blow-up'), ('beta = 1/2', 'rank-stabilized'), ('beta > 1/2', 'collapse')])
    >>> check("alpha/r**beta", optimizer="adam", assume="beta > 1").label
    'collapse'

    Raises:
        RsstabError: invalid schedule, optimizer, lr_scaling, width or ranks (one-line message).

    >>> check("alpha/r", lr_scaling=1).label   # LoRA under SGD with η ∝ r
    'rank-stabilized'

    >>> check("16/sqrt(r)").stable
    True
    >>> check(lambda r: 1 / r).method
    'numeric'
    >>> v = check("alpha/sqrt(r)", width=4096)
    >>> v.label, v.width.crossover_rank, v.width.rows[0].regime
    ('rank-stabilized', 4097.0, 'r ≪ d')
    """
    request = CheckRequest.build(schedule, optimizer, constants=constants, lr_scaling=lr_scaling, width=width,
                                 ranks=ranks, assume=assume, lr=lr, init_std=init_std, lr_ratio=lr_ratio,
                                 width_expr=width_expr)
    if request.is_parametric:
        from rsstab.verdict.parametric import parametric_check

        return parametric_check(request)
    return _exact_verdict(request)


def _exact_verdict(request: CheckRequest) -> Verdict:
    """The verdict of a schedule without parameters or factors: γ_r's exact order in r (symbolic, or
    numeric for a callable), each quantity's law, the learning-rate rule and the table over ranks."""
    sched, optimizer, scaling, lr = request.schedule, request.optimizer, request.lr_scaling, request.lr_scaling_text
    names = theory.quantities(optimizer)
    gamma = growth_of(sched)
    quantities = {q: _quantity(q, optimizer, gamma, scaling) for q in names}
    stab = theory.stability_law(optimizer)
    law_text = stab.text if scaling == 0 else f"η·{stab.text}"
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
    p, lr_scale, rule = _lr_rule(gamma, optimizer)
    if sched.constants:
        notes.append("table computed with " + ", ".join(f"{c}=1" for c in sched.constants)
                     + " (give the constants values to change it)")
    k, m = float(stab.gamma_power), float(stab.rank_power + stab.lr_power * scaling)
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
        parsed=str(sched.expr) if sched.expr is not None else "",
        method=gamma.method,
        gamma_order=str(gamma),
        gamma_exponent=gamma.upper.power if gamma.exact else None,
        gamma_to_zero=to_zero,
        stability_law=law_text,
        stability_order=deciding.order,
        reason=_reason(label, optimizer, law_text, deciding.order, lr),
        quantities=quantities,
        table=tuple(table),
        notes=tuple(notes),
        constants=dict(sched.values),
        lr=lr,
        lr_scaling=float(scaling),
        lr_exponent=None if p is None else float(p),
        lr_exponent_exact=str(p) if isinstance(p, Fraction) else None,
        lr_scale=lr_scale,
        lr_rule=rule,
        **_width_fields(sched, optimizer, request.width, request.ranks, label),
    )


def _width_fields(sched: Schedule, optimizer: str, width: int | None, ranks: Sequence[int] | None,
                  label: str) -> dict[str, Any]:
    """``regime`` and ``width`` of a verdict: the r ≫ d limit, or the per-rank table at ``width``."""
    if width is None:
        return {}
    table = width_table(sched, optimizer, width, ranks, label)
    return {"regime": table.regime, "width": table}
