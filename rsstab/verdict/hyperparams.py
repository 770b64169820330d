"""The whole LoRA hyperparameter tuple (γ_r, η_A, η_B, σ_A) as expressions in r: one entry per
condition — the learned update, the forward and backward passes, and whether A and B both learn —
each with the regime it is about (its ``regime`` entry: the optimizer, the order in η, the
expectation, the width side).

The laws are :mod:`rsstab.theory`'s (``law`` for update/forward/backward, ``update_term`` for the
B-driven and A-driven parts of the learned change); this module only classifies them over the
regions of parameter space (:mod:`rsstab.asymptotics.parametric`).

>>> from rsstab.schedule import parse
>>> [(e["quantity"], e["label"]) for e in tuple_terms(parse("alpha/sqrt(r)").expr, "sgd")]
[('update', 'rank-stabilized'), ('forward', 'rank-stabilized'), ('backward', 'rank-stabilized'), ('a_and_b', 'b-dominates')]
>>> e = tuple_terms(parse("alpha/r").expr, "sgd", lr_a=parse("eta*r").expr)[-1]   # LoRA, η ∝ r: A learns too
>>> e["label"], e["ratio"]["label"]
('both-learn', 'rank-stabilized')
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy

from rsstab import theory
from rsstab.asymptotics.parametric import Region, feasible, labelled_regions, one_label, simplify_region, when
from rsstab.vocab import BLOW_UP, COLLAPSE, CONDITIONAL, STABLE, Label

__all__ = ["A_AND_B_LABELS", "AB_REGIME", "INCOHERENT_REGIME", "QUANTITY_REGIME", "WIDTH_CONVENTION", "tuple_terms",
           "learning_summary"]

#: What each update/forward/backward entry is about, per optimizer.
QUANTITY_REGIME = {
    "sgd": "SGD, first order in η (the B-driven term, Theorem 3.2's expansion), coherent part (mean over A), "
           "r >> d; η here is η_B",
    "adam": "Adam at ε → 0 (sign descent), first order (the B-driven term), coherent part (mean over A), "
            "r >> d; η here is η_B",
}
#: What the A-and-B entry is about.
AB_REGIME = ("γ(B_t A_t) = γB_t A_0 (B-driven) + γB_t(A_t − A_0) (A-driven), exactly since B_0 = 0; each at "
             "its leading order in the learning rates, t steps (t fixed as r grows), a constant data gradient "
             "(linear loss; one example for Adam's A-driven term), coherent part (mean over A), r >> d")

#: Labels of the A-and-B entry: both terms Θ(1); the B-driven term dominates (A's own learning is
#: negligible as r grows); the A-driven term dominates; the two terms have the same order but are not
#: Θ(1); or different labels in different regions of parameter space.
A_AND_B_LABELS = ("both-learn", "b-dominates", "a-dominates", "same-order", CONDITIONAL)

_MEANING = {COLLAPSE: "b-dominates", STABLE: "same-order", BLOW_UP: "a-dominates"}
_ENTRIES = (("update", "forward"), ("forward", "forward"), ("backward", "backward"))


def _power(base: sympy.Expr | None, p: Fraction) -> sympy.Expr:
    if base is None or p == 0:
        return sympy.Integer(1)
    return base ** sympy.Rational(p.numerator, p.denominator)


def _regions(e: sympy.Expr, m: Fraction, region: Region, params: Sequence[str],
             consts: dict[str, float]) -> list[tuple[Region, Label]]:
    return labelled_regions(e, 1, sympy.Rational(m.numerator, m.denominator), region, params, consts)


def _entry(found: list[tuple[Region, Label]]) -> dict[str, Any]:
    return {"label": one_label([lab for _, lab in found]),
            "conditions": [{"when": when(reg), "label": lab} for reg, lab in found]}


def tuple_terms(gamma: sympy.Expr, optimizer: str, params: Sequence[str] = (), region: Region = (),
                consts: dict[str, float] | None = None, lr_a: sympy.Expr | None = None,
                lr_b: sympy.Expr | None = None, sigma: sympy.Expr | None = None,
                width: sympy.Expr | None = None) -> tuple[dict[str, Any], ...]:
    """The per-condition entries of the tuple (γ_r, η_A, η_B, σ_A), each an expression in r (None:
    r-free; ``lr_b`` defaults to ``lr_a``): ``update``, ``forward``, ``backward`` (first order, their
    label is the law's) and ``a_and_b`` (the B-driven and A-driven terms, their ratio, and where both
    are Θ(1)). With ``width`` (d as an expression in r), ``forward_rms`` and ``backward_rms`` follow the
    update/forward/backward entries. Raises :class:`rsstab.asymptotics.parametric.NotParametric` outside the exact
    class, :class:`~rsstab.errors.RsstabError` for a width that shrinks as r grows."""
    consts = dict(consts or {})
    lr_b = lr_a if lr_b is None else lr_b
    out = []
    for name, q in _ENTRIES:
        law = theory.law(q, optimizer)
        e = gamma ** sympy.Rational(law.gamma_power) * _power(lr_b, law.lr_power) * _power(sigma, law.sigma_a_power)
        out.append({"quantity": name, "law": ("η_B·" if law.lr_power else "") + law.text
                    + (f"·σ_A^{law.sigma_a_power}" if law.sigma_a_power else ""),
                    "regime": QUANTITY_REGIME[optimizer] if width is None else
                    QUANTITY_REGIME[optimizer].replace("r >> d", "on the training input; " + WIDTH_CONVENTION)
                    if name != "backward" else QUANTITY_REGIME[optimizer].replace(
                        "r >> d", "the order in r at a given width: d's power in the backward signal is not modelled "
                        "(it depends on how the output gradient scales with width)"),
                    "why": law.why,
                    **_entry(_regions(e, law.rank_power, region, params, consts))})
    if width is not None:
        out.append(_incoherent_entry(optimizer, params, region, consts, width))
    terms = {t: theory.update_term(t, optimizer) for t in theory.UPDATE_TERMS}

    def expr(a: Fraction, b: Fraction, g: Fraction, s: Fraction, w: Fraction) -> sympy.Expr:
        return _power(lr_a, a) * _power(lr_b, b) * gamma ** sympy.Rational(g) * _power(sigma, s) * _power(width, w)

    found = {t: _regions(expr(T.lr_a_power, T.lr_b_power, T.gamma_power, T.sigma_a_power, T.width_power),
                         T.rank_power, region, params, consts) for t, T in terms.items()}
    b, a = terms["b_driven"], terms["a_driven"]
    ratio = theory.UpdateTerm("ratio", optimizer, a.lr_a_power - b.lr_a_power, a.lr_b_power - b.lr_b_power,
                              a.gamma_power - b.gamma_power, a.rank_power - b.rank_power,
                              a.sigma_a_power - b.sigma_a_power, "A-driven over B-driven",
                              a.width_power - b.width_power)
    ratio_found = _regions(expr(ratio.lr_a_power, ratio.lr_b_power, ratio.gamma_power, ratio.sigma_a_power,
                                ratio.width_power), ratio.rank_power, region, params, consts)
    both = []
    for rb, lb in found["b_driven"]:
        for ra, la in found["a_driven"]:
            joint = tuple(dict.fromkeys((*rb, *ra)))
            if lb == STABLE and la == STABLE and feasible(joint):
                both.append(when(simplify_region(joint)))
    per_region = [{"when": when(reg), "label": _MEANING[lab], "ratio": lab} for reg, lab in ratio_found]
    b_entry, a_entry = _entry(found["b_driven"]), _entry(found["a_driven"])
    if b_entry["label"] == STABLE and a_entry["label"] == STABLE:
        label = "both-learn"
    else:
        label = CONDITIONAL if both else one_label([c["label"] for c in per_region])
    def wtext(T: theory.UpdateTerm) -> str:
        return "" if width is None or not T.width_power else f"·d^{T.width_power}"

    out.append({
        "quantity": "a_and_b", "label": label,
        "regime": AB_REGIME if width is None else AB_REGIME.replace("r >> d", WIDTH_CONVENTION),
        "b_driven": {"law": b.text + wtext(b), "why": b.why, **b_entry},
        "a_driven": {"law": a.text + wtext(a), "why": a.why, **a_entry},
        "ratio": {"law": (ratio.text or "1") + wtext(ratio), **_entry(ratio_found)},
        "conditions": per_region,
        "both_learn_when": both,
    })
    return tuple(out)


#: The convention when the width grows with r (``--width-expr``).
WIDTH_CONVENTION = ("width d grows with r: inputs with Θ(1) entries (‖x‖² ∝ d), σ_A in units of Kaiming's 1/√d "
                    "(so σ_A²‖x‖², the combination the B-driven laws carry, is width-free), the change measured on "
                    "the training input, output side fixed (the convention of μP and LoRA+)")
#: What the incoherent entry is about.
INCOHERENT_REGIME = ("the mean square over A (isotropic probes / a fixed output gradient) is coherent² + "
                     "incoherent², exactly (results 9–10); incoherent²/coherent² = r*/r with the crossover rank "
                     "r* ∈ Θ(d)")
_SHARE = {COLLAPSE: "coherent-dominates", STABLE: "comparable", BLOW_UP: "incoherent-dominates"}


def _incoherent_entry(optimizer: str, params: Sequence[str], region: Region, consts: dict[str, float],
                      width: sympy.Expr) -> dict[str, Any]:
    """incoherent²/coherent² = r*/r, r* = c_inc/c_coh (d + 1 under SGD, πd/2 − 1 under Adam; both
    within constant factors of d for d ≥ 1), so its order is that of d/r."""
    from rsstab.errors import RsstabError

    shrinking = [when(reg) for reg, lab in _regions(width, Fraction(0), region, params, consts) if lab == COLLAPSE]
    if shrinking:
        raise RsstabError(f"the width d = {width} must not shrink as r grows; it does for {' or '.join(shrinking)} "
                          "(restrict with {assume})", parameter="width_expr", names=("assume",))
    d = sympy.Symbol("d", positive=True)
    star = sympy.expand(theory.crossover_rank("forward", optimizer, d, pi=sympy.pi))
    found = _regions(width, Fraction(-1), region, params, consts)
    labels = [_SHARE[lab] for _, lab in found]
    return {"quantity": "incoherent", "law": f"incoherent²/coherent² = r*/r, r* = {star}", "width": str(width),
            "regime": INCOHERENT_REGIME, "label": one_label(labels),
            "conditions": [{"when": when(reg), "label": lab} for (reg, _), lab in zip(found, labels)]}


_WORDS = {
    "both-learn": "A and B both learn: both terms are Θ(1)",
    "b-dominates": "B does the learning: the A-driven term vanishes relative to the B-driven one as r grows",
    "a-dominates": "the A-driven term outgrows the B-driven one: beyond the first-order laws",
    "same-order": "the A-driven and B-driven terms have the same order in r",
    CONDITIONAL: "depends on the parameters",
}


def learning_summary(entry: dict[str, Any]) -> list[str]:
    """Text lines for the ``a_and_b`` entry."""
    lines = [f"A and B learning: {_WORDS[entry['label']]}",
             f"  B-driven γ·ΔB·A·x ∝ {entry['b_driven']['law']}: {_label_text(entry['b_driven'])}",
             f"  A-driven γ·B·ΔA·x ∝ {entry['a_driven']['law']}: {_label_text(entry['a_driven'])}",
             f"  ratio A/B ∝ {entry['ratio']['law']}: {_label_text(entry['ratio'])}"]
    if entry["label"] == CONDITIONAL:
        lines += [f"  {_WORDS[c['label']]} for {c['when']}" for c in entry["conditions"]]
    if entry["both_learn_when"] and entry["label"] != "both-learn":
        lines.append(f"  both Θ(1) exactly for {' or '.join(entry['both_learn_when'])}")
    lines.append(f"  (about: {entry['regime']})")
    return lines


def _label_text(e: dict[str, Any]) -> str:
    if e["label"] != CONDITIONAL:
        return str(e["label"])
    return "; ".join(f"{c['label']} for {c['when']}" for c in e["conditions"])
