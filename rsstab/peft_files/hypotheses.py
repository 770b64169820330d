"""Theorem 3.2's hypotheses, adapter by adapter: which verdict a saved adapter earns.

The theorem assumes B = 0 at the start and A with iid entries of a variance independent of r. A
PEFT adapter says how it started in ``init_lora_weights``:

* ``True`` (default): A Kaiming-uniform (σ_A ∝ 1/√d_in, free of r), B = 0 — the hypothesis holds;
* ``"gaussian"``: A ~ N(0, 1/r²), so σ_A ∝ r^-1. Every law of :mod:`rsstab.theory` carries σ_A to
  the power it carries γ_r (SGD: γ_r²·r·σ_A², Adam: γ_r·r·σ_A), so the adapter behaves like the
  schedule γ_r·σ_A ∝ γ_r/r and the verdict is that schedule's: neither α/r nor α/√r is stable;
* data-driven or debugging inits (``pissa``, ``olora``, ``loftq``, ``corda``, ``orthogonal``,
  ``lora_ga``, ``mica``, ``False``) start with B ≠ 0, and ``eva`` with a data-driven A (the
  layer inputs' top singular vectors, not iid): the hypothesis fails and no rank verdict is
  claimed.

Embedding layers start the other way round (A = 0, B ~ N(0, 1) under every value but ``False``,
``"loftq"`` and ``"mica"``): the roles of A and B swap, the law is the same, σ_B is free of r.

LoRA variants (DoRA, BD-LoRA, KaSA, …) keep PEFT's scaling, reported as is, but change the update
the laws describe: their verdict carries a caveat naming the variant.

A loader that ignores ``use_rslora`` applies α/r: smaller than PEFT's α/√r by √r per module
(:attr:`~rsstab.peft_files.ModuleScaling.loader_factor`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from rsstab import theory
from rsstab.peft_files.config import VARIANTS, AdapterConfig
from rsstab.peft_files.resolve import AdapterReport, ModuleScaling
from rsstab.vocab import INDETERMINATE, Label, Optimizer, combine_labels, normalize_optimizer

if TYPE_CHECKING:
    from rsstab.verdict.classify import Verdict

__all__ = ["Assessment", "InitInfo", "assess", "init_info", "variant_caveats"]

# init_lora_weights values (or prefixes) that start with B ≠ 0 or a data-driven A.
_OUTSIDE = {
    "pissa": "B ≠ 0 at the start (PiSSA: A, B from the base weight's principal singular vectors)",
    "olora": "B ≠ 0 at the start (OLoRA: A, B from a QR decomposition of the base weight)",
    "loftq": "B ≠ 0 at the start (LoftQ: A, B fit the quantisation error of the base weight)",
    "corda": "B ≠ 0 at the start (CorDA: A, B from a context-oriented decomposition of the base weight)",
    "orthogonal": "B ≠ 0 at the start (orthogonal A and B)",
    "lora_ga": "B ≠ 0 at the start (LoRA-GA: A, B from the gradient's singular vectors)",
    "mica": "A = 0 and a frozen B from the base weight's minor singular vectors (MiCA)",
    "eva": "A is data-driven (EVA: the top right-singular vectors of the layer inputs), not iid",
}


@dataclass(frozen=True)
class InitInfo:
    """How ``init_lora_weights`` starts one kind of layer, and whether the theorem applies.

    ``sigma_a_exponent`` is the r-exponent of the std of the iid factor (``None`` when the
    hypothesis fails).
    """

    value: bool | str
    name: str
    holds: bool
    sigma_a_exponent: Fraction | None
    why: str


def init_info(value: bool | str, kind: str = "linear") -> InitInfo:
    """The start ``init_lora_weights=value`` gives a layer of ``kind`` (PEFT 0.21's rules).

    >>> init_info(True).sigma_a_exponent, init_info("gaussian").sigma_a_exponent
    (Fraction(0, 1), Fraction(-1, 1))
    >>> init_info("gaussian", "embedding").sigma_a_exponent
    Fraction(0, 1)
    >>> init_info("pissa_niter_4").holds, init_info("pissa", "embedding").holds
    (False, True)
    """
    low = value.lower() if isinstance(value, str) else value
    if kind == "embedding" and value is not False and low not in ("loftq", "mica"):
        # PEFT's Embedding resets every other value (data-driven ones included) to A = 0, B ~ N(0, 1).
        name = "default" if value is True else str(value)
        return InitInfo(value, name, True, Fraction(0), "A = 0, B ~ N(0, 1): A and B swap roles, σ_B is free of r")
    if value is True:
        return InitInfo(value, "default", True, Fraction(0), "A Kaiming-uniform (σ_A ∝ 1/√d_in, free of r), B = 0")
    if isinstance(value, str) and value.lower() == "gaussian":
        return InitInfo(value, "gaussian", True, Fraction(-1), "A ~ N(0, 1/r²): σ_A ∝ r^-1, B = 0")
    if value is False:
        return InitInfo(value, "random", False, None, "B ≠ 0 at the start (init_lora_weights=false: A and B random)")
    for prefix, why in _OUTSIDE.items():
        if isinstance(value, str) and value.lower().startswith(prefix):
            return InitInfo(value, prefix, False, None, why)
    return InitInfo(value, str(value), False, None, f"an initialisation rsstab does not know ({value!r})")


def _sigma_as_gamma(optimizer: Optimizer) -> Fraction:
    """The power of γ_r that σ_A's power stands for in every law of the optimizer (1 today)."""
    ratios = set()
    for q in theory.quantities(optimizer):
        law = theory.law(q, optimizer)
        ratios.add(Fraction(law.sigma_a_power) / Fraction(law.gamma_power))
    if len(ratios) != 1:  # pragma: no cover - a change of rsstab.theory would land here
        raise RuntimeError(f"the {optimizer} laws carry σ_A at different powers relative to γ_r: {ratios}")
    return ratios.pop()


_FAMILIES = {"alpha/r": Fraction(-1), "alpha/sqrt(r)": Fraction(-1, 2)}


def _alpha_power(p: Fraction) -> str:
    for text, q in _FAMILIES.items():
        if p == q:
            return text
    if p == 0:
        return "alpha"
    mag = -p if p < 0 else p
    power = f"{mag}" if mag.denominator == 1 else f"({mag})"
    return f"alpha/r**{power}" if p < 0 else f"alpha*r**{power}"


def effective_schedule(schedule: str, optimizer: Optimizer, sigma_a_exponent: Fraction) -> str:
    """The schedule whose verdict is the adapter's when σ_A ∝ r^sigma_a_exponent.

    >>> effective_schedule("alpha/r", "sgd", Fraction(-1)), effective_schedule("alpha/sqrt(r)", "adam", Fraction(-1))
    ('alpha/r**2', 'alpha/r**(3/2)')
    >>> effective_schedule("alpha/r", "adam", Fraction(0))
    'alpha/r'
    """
    if sigma_a_exponent == 0:
        return schedule
    shift = sigma_a_exponent * _sigma_as_gamma(optimizer)
    if schedule in _FAMILIES:
        return _alpha_power(_FAMILIES[schedule] + shift)
    return f"({schedule})*r**({shift})"


@functools.lru_cache(maxsize=64)
def _verdict(schedule: str, optimizer: Optimizer, lr_scaling: str | float | None = None) -> Verdict:
    from rsstab.verdict.classify import check

    return check(schedule, optimizer=optimizer, lr_scaling=lr_scaling)


def variant_caveats(config: AdapterConfig) -> list[str]:
    """One caveat per active LoRA variant."""
    return [f"LoRA variant not modelled: {VARIANTS[v]} ({v}); the scaling is PEFT's, the verdict is plain "
            "LoRA's" for v in config.variants]


@dataclass(frozen=True)
class Assessment:
    """The verdict of every module of one adapter under one optimizer, with its caveats."""

    optimizer: Optimizer
    label: Label
    verdict: Verdict | None
    init: InitInfo
    caveats: tuple[str, ...]
    rows: dict[str, dict[str, Any]]
    lr_exponent: float | None
    verdicts: dict[str, Verdict]

    def row(self, module: ModuleScaling) -> dict[str, Any]:
        """The per-module fields: ``label``, ``schedule`` (the one judged), ``init``."""
        return self.rows[module.name]


def _kind_class(kind: str) -> str:
    return "embedding" if kind == "embedding" else "linear"


def assess(report: AdapterReport, optimizer: str = "adam", lr_scaling: str | float | None = None) -> Assessment:
    """Label every module of ``report`` under ``optimizer``, the theory's hypotheses checked;
    ``lr_scaling`` P: the verdict for a learning rate scaled as η ∝ r^P (default: a fixed one).

    Imports :mod:`rsstab.verdict.classify` (sympy) on first use; verdicts are cached per schedule.
    """
    opt = normalize_optimizer(optimizer)
    cfg = report.config
    by_class: dict[str, tuple[InitInfo, Verdict | None]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for m in report.modules:
        cls = _kind_class(m.kind)
        if cls not in by_class:
            info = init_info(cfg.init_lora_weights, cls)
            verdict = None
            if info.holds and info.sigma_a_exponent is not None:
                verdict = _verdict(effective_schedule(cfg.schedule, opt, info.sigma_a_exponent), opt, lr_scaling)
            by_class[cls] = (info, verdict)
        info, verdict = by_class[cls]
        rows[m.name] = {
            "label": verdict.label if verdict else INDETERMINATE,
            "schedule": cfg.schedule,
            "judged_schedule": verdict.schedule if verdict else None,
            "init": info.name,
            "hypothesis_holds": info.holds,
        }
    # read_adapter always yields at least one row; the linear layers' verdict speaks for the adapter
    main_info, main_verdict = by_class.get("linear") or next(iter(by_class.values()))
    label = combine_labels(r["label"] for r in rows.values())
    caveats = []
    for cls, (info, verdict) in by_class.items():
        where = "" if len(by_class) == 1 else f" ({cls} layers)"
        if not info.holds:
            caveats.append(f"init {info.value!r}{where}: {info.why}: Theorem 3.2's hypothesis (B = 0, A iid with a "
                           "rank-free variance) does not hold, so no rank verdict is claimed")
        elif info.sigma_a_exponent:
            caveats.append(f"init {info.value!r}{where}: {info.why}, so the laws apply to γ_r·σ_A: judged as "
                           f"{verdict.schedule if verdict else '?'}")
    caveats += variant_caveats(cfg)
    lr = main_verdict.lr_exponent if main_verdict else None
    verdicts = {v.schedule: v for _, v in by_class.values() if v is not None}
    return Assessment(opt, label, main_verdict, main_info, tuple(caveats), rows, lr, verdicts)
