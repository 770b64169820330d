"""The verdict of a schedule with free parameters, or of the tuple (γ_r, η(r), σ_A(r)): one label
per exact region of parameter space (:mod:`rsstab.asymptotics.parametric` does the regions), time-limited.

:func:`rsstab.verdict.classify.check` calls :func:`parametric_check` with its validated inputs (a
:class:`~rsstab.verdict.request.CheckRequest`) when the schedule has parameters or a learning rate / init
scale is given as an expression in r.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sympy

from rsstab import theory
from rsstab.asymptotics.parametric import (NotParametric, Region, labelled_regions, one_label, order_text,
                                           parse_assumptions, pgrowth, to_real, when)
from rsstab.verdict.model import _REGIME, INIT_NAMES, QuantityVerdict, Verdict, _at, _rational, _reason
from rsstab.vocab import CONDITIONAL, INDETERMINATE, STABLE, Label

if TYPE_CHECKING:
    from rsstab.verdict.request import CheckRequest

__all__ = ["PARAMETRIC_TIME_LIMIT", "parametric_check"]


#: Seconds for a whole parametric verdict (region splits, feasibility, the engine's own limits nest).
PARAMETRIC_TIME_LIMIT = 8.0


def parametric_check(request: CheckRequest) -> Verdict:
    """The verdict of a schedule with free parameters (one label per region of parameter space), or
    of the tuple (γ_r, η(r), σ_A(r)): each quantity's law η^l·γ_r^k·r^m·σ_A^s is classified whole.
    Time-limited (:data:`PARAMETRIC_TIME_LIMIT`): past it the verdict is indeterminate, with why.

    ``request`` is :func:`rsstab.verdict.classify.check`'s inputs, validated
    (:meth:`~rsstab.verdict.request.CheckRequest.build`).
    """
    from rsstab.timelimit import Timeout, can_time, time_limit

    _ = request.lr_text  # the learning rate the verdict names (cached), worked out before the time limit starts
    if not can_time():
        return _parametric_untimed(request)
    try:
        with time_limit(PARAMETRIC_TIME_LIMIT, "the parametric analysis"):
            return _parametric_untimed(request)
    except Timeout as exc:
        return _parametric_untimed(request, undecided=str(exc))


def _parametric_untimed(request: CheckRequest, undecided: str | None = None) -> Verdict:
    """:func:`parametric_check` without its time limit; ``undecided`` (a reason) skips the analysis
    and returns the indeterminate verdict."""
    sched, optimizer, params, assumptions = request.schedule, request.optimizer, request.params, request.assumptions
    scaling, lr = request.lr_scaling, request.lr_text
    lr_expr, sigma, ratio, width = (None if f is None else f.expr
                                    for f in (request.lr, request.init_std, request.lr_ratio, request.width_expr))
    init_std = None if request.init_std is None else request.init_std.text
    region = parse_assumptions(assumptions, params)
    expr = sched.expr
    consts = dict(sched.values)
    stab = theory.stability_law(optimizer)
    law_text = (stab.text if scaling == 0 and lr_expr is None and ratio is None
                else f"{'η' if ratio is None else 'η_B'}·{stab.text}")
    if sigma is not None:
        law_text += f"·σ_A^{stab.sigma_a_power}"
    notes = [f"{', '.join(params)} {'is a real parameter' if len(params) == 1 else 'are real parameters'} "
             "(in an exponent of r): the verdict is per region of parameter space, exact; "
             "--set NAME=VALUE (e.g. 1/2) gives the verdict at one value"] if params else []
    if lr_expr is not None:
        notes.append(f"learning rate η = {lr_expr} (the label is for it)")
    if ratio is not None:
        notes.append(f"learning-rate ratio η_B/η_A = {ratio}: A learns with η, B with η·({ratio}); the update, "
                     "forward and backward laws are first order, driven by B (η_B)")
    if width is not None:
        notes.append(f"width d = {width} grows with r (inputs with Θ(1) entries, σ_A in units of Kaiming's 1/√d): "
                     "the labels are about the coherent part (the mean over A), width-free in this convention; "
                     "the incoherent entry says how much of the RMS over A is random projection")
    eta_a = lr_expr
    eta_b = ratio if lr_expr is None else lr_expr if ratio is None else lr_expr * ratio
    if sigma is not None:
        notes.append(f"A's init std σ_A = {sigma}" + (f" ({init_std})" if init_std and init_std.strip().lower()
                                                       in INIT_NAMES else ""))
    if assumptions:
        notes.append("assuming " + " and ".join(assumptions))
    quantities: dict[str, QuantityVerdict] = {}
    try:
        if undecided is not None:
            raise NotParametric(undecided)
        real = [sympy.Symbol(n, real=True) for n in params]
        pieces = pgrowth(to_real(expr, params), real, region, consts)
        if len(pieces) == 1:
            gamma_order = order_text(pieces[0][1])
        else:
            gamma_order = "; ".join(f"{order_text(t)} for {when(reg)}" for reg, t in pieces)
        regions: list[tuple[Region, Label]] = []
        for q in theory.quantities(optimizer):
            law = theory.law(q, optimizer)
            m = law.rank_power + law.lr_power * scaling
            found = labelled_regions(_law_expr(law, expr, eta_b, sigma), 1, _rational(m), region, params,
                                     consts)
            if q == stab.quantity:
                regions = found
            quantities[q] = QuantityVerdict(
                name=q, law=law.text, description=theory.DESCRIPTIONS[q], order="parametric",
                exponent=None, log_exponent=None, lower_exponent=None, upper_exponent=math.nan,
                label=one_label([lab for _, lab in found]))
        terms: tuple[dict[str, Any], ...] = ()
        if lr_expr is not None or sigma is not None or ratio is not None or width is not None:
            from rsstab.verdict.hyperparams import tuple_terms

            terms = tuple_terms(expr, optimizer, params, region, consts, eta_a, eta_b, sigma, width)
            grows = [c["when"] for c in terms[-1]["conditions"] if c["label"] == "a-dominates"]
            if grows:
                notes.append("the A-driven (higher-order) term outgrows the first-order B-driven update for "
                             f"{' or '.join(grows)}: there the labels, which are first order, understate the update")
    except NotParametric as exc:
        reason = (f"the parametric analysis was undecided in its time: {exc}" if undecided is not None else
                  f"the order of γ_r in r depends on {', '.join(params)} in a way outside the exact parametric "
                  f"class (exponents linear in the parameters, through products, sums, min and max): {exc}")
        return Verdict(label=INDETERMINATE, optimizer=optimizer, schedule=sched.text, parsed=str(expr),
                       method="parametric", gamma_order="undecided", gamma_exponent=None, gamma_to_zero=None,
                       stability_law=law_text, stability_order="undecided", reason=reason,
                       quantities={q: QuantityVerdict(
                           name=q, law=theory.law(q, optimizer).text, description=theory.DESCRIPTIONS[q],
                           order="undecided", exponent=None, log_exponent=None, lower_exponent=None,
                           upper_exponent=math.nan, label=INDETERMINATE) for q in theory.quantities(optimizer)},
                       notes=tuple(notes), constants=consts, lr=lr, lr_scaling=float(scaling),
                       lr_rule=f"{theory.lr_rule(optimizer)} (γ_r's order is undecided)",
                       parameters=params, assumptions=assumptions,
                       conditions=({"when": when(region), "label": INDETERMINATE,
                                    "constraints": [when((c,)) for c in region]},))
    conditions: tuple[dict[str, Any], ...] = tuple(
        {"when": when(reg), "label": lab, "constraints": [when((c,)) for c in reg]} for reg, lab in regions)
    label = one_label([c["label"] for c in conditions])
    lr_scale = lr_exact = None
    fixed = pgrowth(to_real(_law_expr(stab, expr, ratio, sigma), params), real, region, consts)
    if len(fixed) == 1 and fixed[0][1][1] == 0 and fixed[0][1][2] == 0:
        p = sympy.expand(-(fixed[0][1][0] + _rational(stab.rank_power)) / _rational(stab.lr_power))
        lr_exact, lr_scale = str(p), f"r^({p})" if not p.is_Rational else f"r^{p}"
        rule = f"η ∝ {lr_scale} keeps the update Θ(1) ({theory.lr_rule(optimizer)})"
    else:
        rule = f"{theory.lr_rule(optimizer)}: γ_r is {gamma_order}"
    stable_when = [c["when"] for c in conditions if c["label"] == STABLE]
    if label == CONDITIONAL:
        reason = (f"{law_text} has an order in r that depends on {', '.join(params)} (γ_r is {gamma_order}): "
                  f"{_REGIME[optimizer]}, so {_at(lr)} it is rank-stabilized "
                  + (f"exactly for {' or '.join(stable_when)}" if stable_when else "for no admissible value")
                  + "; " + "; ".join(f"{c['label']} for {c['when']}" for c in conditions if c["label"] != STABLE))
    else:
        m = _rational(stab.rank_power + stab.lr_power * scaling)
        qp = pgrowth(to_real(_law_expr(stab, expr, eta_b, sigma), params), real, region, consts)
        order = "; ".join(f"{order_text((sympy.expand(t[0] + m), t[1], t[2]))}"
                          + (f" for {when(reg)}" if len(qp) > 1 else "") for reg, t in qp)
        reason = (f"for every admissible value of {', '.join(params)}: " if params else "") + _reason(
            label, optimizer, law_text, order, lr)
    to_zero = [t[0] < 0 for _, t in pieces if t[0].is_number]
    return Verdict(
        label=label, optimizer=optimizer, schedule=sched.text, parsed=str(expr), method="parametric",
        gamma_order=gamma_order, gamma_exponent=None,
        gamma_to_zero=bool(to_zero[0]) if len(to_zero) == len(pieces) and len(set(to_zero)) == 1 else None,
        stability_law=law_text, stability_order="parametric", reason=reason, quantities=quantities,
        notes=tuple(notes), constants=consts, lr=lr, lr_scaling=float(scaling), lr_exponent=None,
        lr_exponent_exact=lr_exact, lr_scale=lr_scale, lr_rule=rule, parameters=params,
        assumptions=assumptions, conditions=conditions, terms=terms,
        **({} if width is None else {"regime": f"joint limit: width d = {width} as r → ∞ (coherent part)"}))  # type: ignore[arg-type]  # only regime, a str


def _law_expr(law: theory.Law, gamma: sympy.Expr, lr_expr: sympy.Expr | None,
              sigma: sympy.Expr | None) -> sympy.Expr:
    """η^l·γ_r^k·σ_A^s of one law (r^m left to the caller)."""
    out = gamma ** _rational(law.gamma_power)
    if lr_expr is not None and law.lr_power:
        out *= lr_expr ** _rational(law.lr_power)
    if sigma is not None and law.sigma_a_power:
        out *= sigma ** _rational(law.sigma_a_power)
    return out


