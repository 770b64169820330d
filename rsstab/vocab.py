"""One vocabulary: the labels of a verdict, the optimizers, the measured quantities, and the rule
that combines per-quantity labels into one.

Every module that names a label or an optimizer takes it from here, typed as a
:data:`~typing.Literal` so that a misspelt label is a type error, not a silent mismatch.

Words, each meaning one thing (docstrings, comments and the README use them so):

* **regime** — the combination a verdict is for: an optimizer, a learning-rate rule and a width
  side ("SGD at a fixed learning rate, r ≫ d"). Each part has its own name:
* **optimizer** — SGD (Theorem 3.2, update ∝ η·γ_r²·r) or Adam (sign-like updates, ∝ η·γ_r·r);
  :data:`Optimizer`, with AdamW read as Adam (:data:`OPTIMIZER_ALIASES`).
* **learning-rate rule** — how η moves with r: fixed (the theorem's) or scaled, η ∝ r^P.
* **width side** — where a rank sits against the width d: ``r ≪ d``, ``crossover`` or ``r ≫ d``
  (:meth:`rsstab.theory.WidthLaw.regime`); a verdict without a width is about the large-rank
  limit r ≫ d.
* **phase** (Adam's ε) — ``sign`` (per-entry gradients of B ≫ ε), ``crossover`` or ``sgd-like``
  (≪ ε: SGD with rate η/ε): :data:`AdamRegime`, :func:`rsstab.theory.adam_regime`.
* **range** — where a law's prediction holds. The first-order (small-η) laws hold in the
  *small-η range*: while their next term stays ≤ :data:`rsstab.theory.EXPANSION_LIMIT` of the
  first (result 13); a prediction carried to finite η (result 14) can be *in range* beyond it;
  elsewhere a rank is *out of range*. ("first-order regime", "linearised regime" and "small-η
  regime" said the same.)

Printed text and JSON keys are a contract and keep their older words: the width table's and
Adam's ε table's ``regime`` column, JSON ``regime`` / ``other_regime`` / ``regime_from`` /
``regime_to`` / ``large_r_regime`` / ``regimes``, and "beyond the small-η regime" in
``rsstab simulate``'s range statement; so do the public names :data:`AdamRegime`,
:data:`ADAM_REGIMES`, :func:`rsstab.theory.adam_regime`, ``WidthLaw.regime`` and the module
:mod:`rsstab.verdict.regimes` (the width side's tables).

>>> combine_labels([STABLE, COLLAPSE])
'collapse'
>>> check_optimizer("adam")
'adam'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, cast

from rsstab.errors import RsstabError

__all__ = [
    "Label", "LABELS", "STABLE", "COLLAPSE", "BLOW_UP", "INDETERMINATE",
    "CONDITIONAL", "VerdictLabel", "VERDICT_LABELS",
    "Optimizer", "OPTIMIZERS", "OPTIMIZER_ALIASES", "OPTIMIZER_NAMES", "OPTIMIZER_METAVAR", "check_optimizer",
    "canonical_optimizer", "normalize_optimizer",
    "Quantity", "SUMMARY_QUANTITIES", "VOTING_QUANTITIES", "combine_labels",
    "AdamRegime", "ADAM_SIGN", "ADAM_CROSSOVER", "ADAM_SGD_LIKE", "ADAM_REGIMES",
    "FLAT_BAND",
]

#: The verdict about rank stabilization of one quantity or of a whole schedule.
Label = Literal["rank-stabilized", "collapse", "blow-up", "indeterminate"]
STABLE: Final[Label] = "rank-stabilized"
COLLAPSE: Final[Label] = "collapse"
BLOW_UP: Final[Label] = "blow-up"
INDETERMINATE: Final[Label] = "indeterminate"
LABELS: Final[tuple[Label, ...]] = (STABLE, COLLAPSE, BLOW_UP, INDETERMINATE)
#: Half-width of the band of measured log-log slopes counted as flat (Θ_r(1)): a slope within ±FLAT_BAND of
#: 0 is labelled rank-stabilized, and a slope agrees with a predicted one when within ±FLAT_BAND of it.
FLAT_BAND: Final = 0.1
#: The label of a verdict with free parameters whose label differs between regions of parameter
#: space (``rsstab check "alpha/r**beta"``); the regions and their labels (each one of
#: :data:`LABELS`) are in the verdict's ``conditions``. Not a label of one quantity or one
#: measurement, so :data:`LABELS` (what a simulation or a property test can produce) leaves it out.
CONDITIONAL: Final = "conditional"
#: What ``Verdict.label`` can be: one of :data:`LABELS`, or :data:`CONDITIONAL`.
VerdictLabel = Literal["rank-stabilized", "collapse", "blow-up", "indeterminate", "conditional"]
VERDICT_LABELS: Final[tuple[VerdictLabel, ...]] = (STABLE, COLLAPSE, BLOW_UP, INDETERMINATE, CONDITIONAL)

#: The optimizers: SGD (Theorem 3.2) and Adam (sign-like updates).
Optimizer = Literal["sgd", "adam"]
OPTIMIZERS: Final[tuple[Optimizer, ...]] = ("sgd", "adam")
#: Other accepted names of an optimizer. AdamW is read as Adam: decoupled weight decay leaves the
#: sign-like first update Θ(η) whatever γ_r, which is what sets Adam's law.
OPTIMIZER_ALIASES: Final[dict[str, Optimizer]] = {"adamw": "adam"}
#: Every name an ``optimizer`` argument accepts.
OPTIMIZER_NAMES: Final[tuple[str, ...]] = (*OPTIMIZERS, *OPTIMIZER_ALIASES)
#: How a command line shows the accepted names.
OPTIMIZER_METAVAR: Final[str] = "{" + ",".join(OPTIMIZER_NAMES) + "}"

#: The measured summary quantities; ``forward`` and ``backward`` are Definition 3.1's two
#: conditions and vote in an empirical verdict, ``grad_init`` (an onset quantity) is reported.
Quantity = Literal["grad_init", "forward", "backward"]
SUMMARY_QUANTITIES: Final[tuple[Quantity, ...]] = ("grad_init", "forward", "backward")
VOTING_QUANTITIES: Final[tuple[Quantity, ...]] = ("forward", "backward")


def check_optimizer(name: object) -> Optimizer:
    """``name`` as an :data:`Optimizer` (aliases such as ``"adamw"`` accepted, see
    :func:`normalize_optimizer`), or a one-line :class:`RsstabError`.

    >>> check_optimizer("sgd"), check_optimizer("adamw")
    ('sgd', 'adam')
    """
    return normalize_optimizer(name)


def canonical_optimizer(name: str) -> str:
    """The optimizer an accepted name stands for; any other string unchanged (for argparse's
    ``type=``, ahead of ``choices=OPTIMIZERS``).

    >>> canonical_optimizer("AdamW"), canonical_optimizer("sgd"), canonical_optimizer("lion")
    ('adam', 'sgd', 'lion')
    """
    low = name.lower()
    if low in OPTIMIZERS:
        return low
    return OPTIMIZER_ALIASES.get(low, name)


def normalize_optimizer(name: object) -> Optimizer:
    """``name`` (``"sgd"``, ``"adam"`` or an alias such as ``"adamw"``, any case) as the
    :data:`Optimizer`, or a one-line :class:`RsstabError`.

    >>> normalize_optimizer("adamw")
    'adam'
    """
    if isinstance(name, str) and canonical_optimizer(name) in OPTIMIZERS:
        return cast(Optimizer, canonical_optimizer(name))
    raise RsstabError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZER_NAMES)}")


def combine_labels(labels: Iterable[str]) -> Label:
    """One verdict from per-quantity labels.

    Any blow-up wins (an unstable direction is enough), then any collapse; otherwise all must be
    rank-stabilized, else the verdict is indeterminate.

    >>> combine_labels(["rank-stabilized", "collapse"])
    'collapse'
    >>> combine_labels(["rank-stabilized", "indeterminate"])
    'indeterminate'
    >>> combine_labels([])
    'indeterminate'
    """
    labels = list(labels)
    if not labels:
        return INDETERMINATE
    for special in (BLOW_UP, COLLAPSE):
        if special in labels:
            return special
    if all(lab == STABLE for lab in labels):
        return STABLE
    return INDETERMINATE


#: Adam's phase: which law its first step follows (:func:`rsstab.theory.adam_regime`): per-entry gradients
#: of B well above ε give sign-like steps, well below ε steps like SGD with rate η/ε.
AdamRegime = Literal["sign", "crossover", "sgd-like"]
ADAM_SIGN: Final[AdamRegime] = "sign"
ADAM_CROSSOVER: Final[AdamRegime] = "crossover"
ADAM_SGD_LIKE: Final[AdamRegime] = "sgd-like"
ADAM_REGIMES: Final[tuple[AdamRegime, ...]] = (ADAM_SIGN, ADAM_CROSSOVER, ADAM_SGD_LIKE)
