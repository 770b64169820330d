"""The whole LoRA hyperparameter tuple (γ_r, η_A, η_B, σ_A) as expressions in r: one entry per
condition — the learned update, the forward and backward passes, and whether A and B both learn —
each with the regime (order in η, expectation, optimizer limit) it is about.

The laws are :mod:`rsstab.theory`'s (``law`` for update/forward/backward, ``update_term`` for the
B-driven and A-driven parts of the learned change); this module only classifies them over the
regions of parameter space (:mod:`rsstab.parametric`).

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

import sympy

from rsstab import theory
from rsstab.parametric import Region, feasible, labelled_regions, simplify_region, when
from rsstab.vocab import BLOW_UP, COLLAPSE, CONDITIONAL, STABLE

__all__ = ["A_AND_B_LABELS", "AB_REGIME", "QUANTITY_REGIME", "tuple_terms", "learning_summary"]

#: What each update/forward/backward entry is about, per optimizer regime.
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
             consts: dict[str, float]) -> list[tuple[Region, str]]:
    return labelled_regions(e, 1, sympy.Rational(m.numerator, m.denominator), region, params, consts)


def _one(labels: Sequence[str]) -> str:
    distinct = list(dict.fromkeys(labels))
    return distinct[0] if len(distinct) == 1 else CONDITIONAL


def _entry(found: list[tuple[Region, str]]) -> dict:
    return {"label": _one([lab for _, lab in found]),
            "conditions": [{"when": when(reg), "label": lab} for reg, lab in found]}


def tuple_terms(gamma: sympy.Expr, optimizer: str, params: Sequence[str] = (), region: Region = (),
                consts: dict[str, float] | None = None, lr_a: sympy.Expr | None = None,
                lr_b: sympy.Expr | None = None, sigma: sympy.Expr | None = None) -> tuple[dict, ...]:
    """The per-condition entries of the tuple (γ_r, η_A, η_B, σ_A), each an expression in r (None:
    r-free; ``lr_b`` defaults to ``lr_a``): ``update``, ``forward``, ``backward`` (first order, their
    label is the law's) and ``a_and_b`` (the B-driven and A-driven terms, their ratio, and where both
    are Θ(1)). Raises :class:`rsstab.parametric.NotParametric` outside the exact class."""
    consts = dict(consts or {})
    lr_b = lr_a if lr_b is None else lr_b
    out = []
    for name, q in _ENTRIES:
        law = theory.law(q, optimizer)
        e = gamma ** sympy.Rational(law.gamma_power) * _power(lr_b, law.lr_power) * _power(sigma, law.sigma_a_power)
        out.append({"quantity": name, "law": ("η_B·" if law.lr_power else "") + law.text
                    + (f"·σ_A^{law.sigma_a_power}" if law.sigma_a_power else ""),
                    "regime": QUANTITY_REGIME[optimizer], "why": law.why,
                    **_entry(_regions(e, law.rank_power, region, params, consts))})
    terms = {t: theory.update_term(t, optimizer) for t in theory.UPDATE_TERMS}

    def expr(a: Fraction, b: Fraction, g: Fraction, s: Fraction) -> sympy.Expr:
        return _power(lr_a, a) * _power(lr_b, b) * gamma ** sympy.Rational(g) * _power(sigma, s)

    found = {t: _regions(expr(T.lr_a_power, T.lr_b_power, T.gamma_power, T.sigma_a_power), T.rank_power, region,
                         params, consts) for t, T in terms.items()}
    b, a = terms["b_driven"], terms["a_driven"]
    ratio = theory.UpdateTerm("ratio", optimizer, a.lr_a_power - b.lr_a_power, a.lr_b_power - b.lr_b_power,
                              a.gamma_power - b.gamma_power, a.rank_power - b.rank_power,
                              a.sigma_a_power - b.sigma_a_power, "A-driven over B-driven")
    ratio_found = _regions(expr(ratio.lr_a_power, ratio.lr_b_power, ratio.gamma_power, ratio.sigma_a_power),
                           ratio.rank_power, region, params, consts)
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
        label = CONDITIONAL if both else _one([c["label"] for c in per_region])
    out.append({
        "quantity": "a_and_b", "regime": AB_REGIME, "label": label,
        "b_driven": {"law": b.text, "why": b.why, **b_entry},
        "a_driven": {"law": a.text, "why": a.why, **a_entry},
        "ratio": {"law": ratio.text or "1", **_entry(ratio_found)},
        "conditions": per_region,
        "both_learn_when": both,
    })
    return tuple(out)


_WORDS = {
    "both-learn": "A and B both learn: both terms are Θ(1)",
    "b-dominates": "B does the learning: the A-driven term vanishes relative to the B-driven one as r grows",
    "a-dominates": "the A-driven term outgrows the B-driven one: beyond the first-order laws",
    "same-order": "the A-driven and B-driven terms have the same order in r",
    CONDITIONAL: "depends on the parameters",
}


def learning_summary(entry: dict) -> list[str]:
    """Text lines for the ``a_and_b`` entry."""
    lines = [f"A and B: {_WORDS[entry['label']]}",
             f"  B-driven γ·ΔB·A·x ∝ {entry['b_driven']['law']}: {_label_text(entry['b_driven'])}",
             f"  A-driven γ·B·ΔA·x ∝ {entry['a_driven']['law']}: {_label_text(entry['a_driven'])}",
             f"  ratio A/B ∝ {entry['ratio']['law']}: {_label_text(entry['ratio'])}"]
    if entry["label"] == CONDITIONAL:
        lines += [f"  {_WORDS[c['label']]} for {c['when']}" for c in entry["conditions"]]
    if entry["both_learn_when"] and entry["label"] != "both-learn":
        lines.append(f"  both Θ(1) exactly for {' or '.join(entry['both_learn_when'])}")
    lines.append(f"  (about: {entry['regime']})")
    return lines


def _label_text(e: dict) -> str:
    if e["label"] != CONDITIONAL:
        return e["label"]
    return "; ".join(f"{c['label']} for {c['when']}" for c in e["conditions"])
