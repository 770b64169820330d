"""Hypothesis strategies of γ_r schedules with a label known by construction.

For users who test their own tooling around LoRA scalings (config validators, loaders, linters):
draw γ_r expressions that are rank-stabilized, collapse or blow up in a chosen optimizer regime,
written in the many spellings people use (``alpha/sqrt(r)``, ``r**-0.5``, ``r^(-1/2)``, logs,
bounded wiggles such as ``(2+sin(r))``).

Construction: ``γ_r = c · r^p · (log r)^k · b_1(r) ⋯``, where ``c`` is a positive constant (a
number or a named constant such as ``alpha``) and every ``b_i`` is bounded between two positive
constants for r ≥ 1. In a regime whose stability quantity is ``γ_r^K · r^M``
(:func:`rsstab.theory.stability_law`: ``γ_r²·r`` under SGD, ``γ_r·r`` under Adam) that quantity
is ``Θ(r^(K·p + M) · (log r)^(K·k))``, so with the critical exponent ``p* = −M/K``:

* rank-stabilized ⇔ ``p = p*`` and ``k = 0``;
* collapse ⇔ ``p < p*``, or ``p = p*`` and ``k < 0``;
* blow-up ⇔ ``p > p*``, or ``p = p*`` and ``k > 0``.

>>> from hypothesis import given, settings
>>> import rsstab
>>> @settings(max_examples=5, database=None, derandomize=True, deadline=None)  # a first check fills caches: slower
... @given(schedules(label="collapse", optimizer="adam"))
... def test(expr):
...     assert rsstab.check(expr, "adam").label == "collapse"
>>> test()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

from hypothesis import strategies as st

from rsstab import theory
from rsstab.errors import RsstabError
from rsstab.vocab import BLOW_UP, COLLAPSE, STABLE, Label, normalize_optimizer

if TYPE_CHECKING:
    from rsstab.verdict.request import CheckRequest

__all__ = ["LABELS", "HyperTuple", "schedules", "labelled_schedules", "critical_exponent", "tuples"]

#: The labels a drawn schedule can have (``indeterminate`` is never generated).
LABELS = (STABLE, COLLAPSE, BLOW_UP)  # the labels a drawn schedule can have

#: Offsets of the rank exponent from the critical one.
_OFFSETS = tuple(
    Fraction(sign * n, d)
    for sign in (1, -1)
    for n, d in ((1, 8), (1, 6), (1, 4), (1, 3), (1, 2), (2, 3), (3, 4), (1, 1), (3, 2), (2, 1))
)
_CONSTANTS = ("alpha", "lora_alpha", "16", "8", "0.5", "2", "3/4", "(1/4)")
#: Factors bounded between two positive constants for every r ≥ 1 (so Θ_r(1)).
_BOUNDED = (
    "(2+sin(r))",
    "(3+cos(r))/2",
    "(1+1/r)",
    "exp(1/r)",
    "(2+tanh(r))",
    "(r+1)/r",
    "(1+1/sqrt(r))",
    "(4+sin(sqrt(r)))",
    "atan(r)",
)
_LOGS = ("log(r)", "ln(r)", "log2(r)", "log(r, 2)", "log10(r)")


def critical_exponent(optimizer: str) -> Fraction:
    """The rank exponent ``p*`` with ``γ_r ∝ r^p*`` rank-stabilized in this regime.

    >>> critical_exponent("sgd"), critical_exponent("adam")
    (Fraction(-1, 2), Fraction(-1, 1))
    """
    law = theory.stability_law(optimizer)
    return -Fraction(law.rank_power) / Fraction(law.gamma_power)


def _check(label: str | None, optimizer: str) -> None:
    theory.quantities(optimizer)  # raises RsstabError for an unknown optimizer
    if label is not None and label not in LABELS:
        raise RsstabError(f"unknown label {label!r}: expected one of {', '.join(LABELS)} or None")


def _power_spellings(p: Fraction) -> list[tuple[str, bool]]:
    """Spellings of ``r^p`` as (text, is_denominator): a denominator text means ``r^(-p)``."""
    if p == 0:
        return [("", False)]
    out: list[tuple[str, bool]] = []
    a = abs(p)
    frac = f"{a.numerator}/{a.denominator}" if a.denominator != 1 else f"{a.numerator}"
    wrapped = f"({frac})" if a.denominator != 1 else frac
    out.append((f"r**{wrapped}" if a != 1 else "r", p < 0))
    out.append((f"r^{wrapped}" if a != 1 else "r", p < 0))
    if p < 0:
        out.append((f"r**(-{frac})", False))
        out.append((f"r^(-{frac})", False))
    if a.denominator in (1, 2, 4, 5, 8):
        dec = f"{float(a):g}"
        out.append((f"r**{'-' if p < 0 else ''}{dec}", False))
        out.append((f"r**{dec}", p < 0))
    if a == Fraction(1, 2):
        out.append(("sqrt(r)", p < 0))
        if p < 0:
            out.append(("sqrt(1/r)", False))
    if a == Fraction(1, 3):
        out.append(("cbrt(r)", p < 0))
    if a.denominator == 2 and a.numerator > 1:
        out.append((f"r**{a.numerator // 2}*sqrt(r)" if a.numerator > 2 else "r*sqrt(r)", p < 0))
    return out


def _log_spellings(k: int) -> list[tuple[str, bool]]:
    if k == 0:
        return [("", False)]
    out: list[tuple[str, bool]] = []
    for base in _LOGS:
        power = base if abs(k) == 1 else f"{base}**{abs(k)}"
        out.append((power, k < 0))
        if k < 0:
            out.append((f"{base}**({k})", False))
            out.append((f"{base}^({k})", False))
    return out


@st.composite
def _labelled(draw: st.DrawFn, label: str | None, optimizer: str) -> tuple[str, str]:
    chosen = label if label is not None else draw(st.sampled_from(LABELS))
    p_star = critical_exponent(optimizer)
    if chosen == STABLE:
        offset, k = Fraction(0), 0
    else:
        sign = -1 if chosen == COLLAPSE else 1
        at_critical = draw(st.booleans())
        if at_critical:  # the log factor decides
            offset, k = Fraction(0), sign * draw(st.integers(1, 2))
        else:
            offset = sign * abs(draw(st.sampled_from(_OFFSETS)))
            k = draw(st.integers(-2, 2))
    p = p_star + offset

    numerator: list[str] = []
    denominator: list[str] = []

    def put(text: str, below: bool) -> None:
        if text:
            (denominator if below else numerator).append(text)

    if draw(st.booleans()):
        put(draw(st.sampled_from(_CONSTANTS)), False)
    put(*draw(st.sampled_from(_power_spellings(p))))
    put(*draw(st.sampled_from(_log_spellings(k))))
    for factor in draw(st.lists(st.sampled_from(_BOUNDED), max_size=2)):
        put(factor, draw(st.booleans()))  # 1/b is bounded too
    numerator = draw(st.permutations(numerator)) if numerator else []
    denominator = [_atom(f) for f in (draw(st.permutations(denominator)) if denominator else [])]
    top = "*".join(numerator) or "1"
    if not denominator:
        return top, chosen
    bottom = denominator[0] if len(denominator) == 1 else "(" + "*".join(denominator) + ")"
    return f"{top}/{bottom}", chosen


def _atom(text: str) -> str:
    """``text`` wrapped in brackets unless it is safe as the right operand of ``/``: a name, a
    call, a bracketed group, or such a thing raised to a power."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and (ch in "+-/" or (ch == "*" and "*" not in (text[i - 1 : i], text[i + 1 : i + 2]))):
            return f"({text})"
    return text


def labelled_schedules(optimizer: str = "sgd") -> st.SearchStrategy[tuple[str, str]]:
    """A strategy of ``(expression, label)`` pairs; the label is the regime's verdict by
    construction (one of :data:`LABELS`).

    Raises:
        RsstabError: an unknown optimizer.
    """
    _check(None, optimizer)
    return _labelled(None, optimizer)


def schedules(label: str | None = None, optimizer: str = "sgd") -> st.SearchStrategy[str]:
    """A strategy of γ_r expressions whose label under ``optimizer`` is ``label``.

    Args:
        label: ``"rank-stabilized"``, ``"collapse"``, ``"blow-up"``, or ``None`` for any of them
            (use :func:`labelled_schedules` to also get the label).
        optimizer: ``"sgd"`` or ``"adam"``: the regime the label is for.

    Raises:
        RsstabError: an unknown label or optimizer.
    """
    _check(label, optimizer)
    return _labelled(label, optimizer).map(lambda pair: pair[0])


# --------------------------------------------------------------------------- the whole tuple


@dataclass(frozen=True)
class HyperTuple:
    """A LoRA hyperparameter tuple as the CLI strings of ``rsstab check`` (``None``: the flag is not
    given), with its labels known by construction.

    ``label`` is the verdict of the learned update in ``optimizer``'s regime; ``learning`` says
    whether A and B both learn (``both-learn``, ``b-dominates``, ``same-order``, ``a-dominates``,
    as in :mod:`rsstab.verdict.hyperparams`); ``exponents`` holds the powers of r drawn for γ_r, η (A's
    rate), η_B/η_A and σ_A.
    """

    schedule: str
    lr: str | None
    init_std: str | None
    lr_ratio: str | None
    optimizer: str
    label: str
    learning: str
    exponents: dict = field(default_factory=dict, compare=False)

    def request(self) -> CheckRequest:
        """The tuple as :func:`rsstab.check` takes it, validated and parsed
        (:class:`rsstab.verdict.request.CheckRequest`): ``rsstab.check(t.schedule, t.optimizer,
        lr=t.lr, …)`` classifies exactly this."""
        from rsstab.verdict.request import CheckRequest

        return CheckRequest.build(self.schedule, self.optimizer, lr=self.lr, init_std=self.init_std,
                                  lr_ratio=self.lr_ratio)

    def argv(self) -> list[str]:
        """The ``rsstab check`` command line."""
        out = ["check", self.schedule, "--optimizer", self.optimizer]
        for flag, value in (("--lr", self.lr), ("--init-std", self.init_std), ("--lr-ratio", self.lr_ratio)):
            if value is not None:
                out.append(f"{flag}={value}")
        return out


#: Exponents drawn for γ_r, σ_A and the ratio (the learning rate's is then solved for).
_TUPLE_EXPONENTS = tuple(Fraction(n, d) for n, d in ((0, 1), (-1, 2), (-1, 1), (1, 2), (-1, 4), (1, 1), (-3, 2)))


def _factor(draw: st.DrawFn, constant: str, p: Fraction) -> str:
    """``constant · r^p`` in one of its spellings."""
    text, below = draw(st.sampled_from(_power_spellings(p)))
    if not text:
        return constant
    return f"{constant}/{_atom(text)}" if below else f"{constant}*{text}"


def _sign_label(x: Fraction) -> Label:
    return STABLE if x == 0 else COLLAPSE if x < 0 else BLOW_UP


@st.composite
def _tuples(draw: st.DrawFn, label: str | None, optimizer: str) -> HyperTuple:
    chosen = label if label is not None else draw(st.sampled_from(LABELS))
    g, s, rho = (draw(st.sampled_from(_TUPLE_EXPONENTS)) for _ in range(3))
    law = theory.stability_law(optimizer)
    # the update ∝ η_B^l · γ_r^k · r^m · σ_A^q with η_B = η·ratio ∝ r^(c + ρ): its exponent is
    # l(c + ρ) + k g + m + q s; solve for the c that puts it at the chosen offset from 0.
    offset = Fraction(0) if chosen == STABLE else (-1 if chosen == COLLAPSE else 1) * abs(draw(st.sampled_from(_OFFSETS)))
    c = (offset - law.gamma_power * g - law.rank_power - law.sigma_a_power * s) / law.lr_power - rho
    if _sign_label(law.lr_power * (c + rho) + law.gamma_power * g + law.rank_power + law.sigma_a_power * s) != chosen:
        raise AssertionError("construction error")  # pragma: no cover - the arithmetic above
    a, b = c, c + rho
    terms = {t: theory.update_term(t, optimizer).exponent(g, lr_a=a, lr_b=b, sigma_a=s) for t in theory.UPDATE_TERMS}
    if terms["b_driven"] == 0 and terms["a_driven"] == 0:
        learning = "both-learn"
    else:
        ratio = terms["a_driven"] - terms["b_driven"]
        learning = {COLLAPSE: "b-dominates", STABLE: "same-order", BLOW_UP: "a-dominates"}[_sign_label(ratio)]
    schedule = _factor(draw, draw(st.sampled_from(("alpha", "16", "lora_alpha", "(1/4)"))), g)
    lr = None if c == 0 and draw(st.booleans()) else _factor(draw, draw(st.sampled_from(("eta", "1e-3", "2"))), c)
    if s == 0:
        init = draw(st.sampled_from((None, "true", "kaiming", "1", "0.02")))
    elif s == -1:
        init = draw(st.sampled_from(("gaussian", "1/r", "r**(-1)")))
    else:
        init = _factor(draw, draw(st.sampled_from(("1", "0.5", "sigma"))), s)
    ratio_text = None if rho == 0 and draw(st.booleans()) else _factor(draw, draw(st.sampled_from(("1", "16", "lam"))), rho)
    return HyperTuple(schedule, lr, init, ratio_text, optimizer, chosen, learning,
                      {"gamma": g, "lr": c, "lr_ratio": rho, "init_std": s})


def tuples(label: str | None = None, optimizer: str = "sgd") -> st.SearchStrategy[HyperTuple]:
    """A strategy of hyperparameter tuples (γ_r, η, σ_A, η_B/η_A) — :class:`HyperTuple`, CLI strings
    — whose update label under ``optimizer`` is ``label`` (any when ``None``), computed by exponent
    arithmetic on :mod:`rsstab.theory`'s laws (never by the classifier), with whether A and B both
    learn.

    >>> from hypothesis import given, settings
    >>> import rsstab
    >>> @settings(max_examples=3, database=None, derandomize=True, deadline=None)
    ... @given(tuples(label="rank-stabilized", optimizer="adam"))
    ... def test(t):
    ...     assert rsstab.check(t.schedule, t.optimizer, lr=t.lr, init_std=t.init_std, lr_ratio=t.lr_ratio).label == t.label
    >>> test()

    Raises:
        RsstabError: an unknown label or optimizer.
    """
    _check(label, optimizer)
    return _tuples(label, normalize_optimizer(optimizer))
