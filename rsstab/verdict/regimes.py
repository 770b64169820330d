"""Width-side verdicts: what a schedule does at the ranks of a given width, from the exact laws.

A verdict of :func:`rsstab.verdict.classify.check` is about the *coherent* part of the learned change (its
mean over A, the expectation Theorem 3.2 is about), which is ∝ γ_r^k·r at every rank. At width d
the RMS over A also carries an *incoherent* part ∝ γ_r^k·√(r·d) that dominates below the crossover
rank r* (d + 1 under SGD, πd/2 − 1 under Adam); see :func:`rsstab.theory.finite_width_law`. This
module turns those laws into a per-rank table for one schedule: the width side (``regime``), the
predicted coherent and incoherent sizes, the RMS and its local slope (the slope ``rsstab simulate`` measures between
successive ranks), and a one-line summary of the RMS behaviour.

Only the standard library: ``rsstab check`` keeps its start-up time.

>>> from rsstab.schedule import as_schedule
>>> t = width_table(as_schedule("alpha/sqrt(r)"), "sgd", 512, [8, 32, 128, 512, 2048], "rank-stabilized")
>>> t.crossover_rank, [row.regime for row in t.rows]
(513.0, ['r ≪ d', 'r ≪ d', 'r ≪ d', 'crossover', 'crossover'])
>>> [round(row.slope, 2) for row in t.rows[1:]]       # measured: −0.45, −0.44, −0.34, −0.15
[-0.48, -0.44, -0.33, -0.17]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rsstab import theory
from rsstab.validate import MAX_SIZE, check_ranks, check_width
from rsstab.vocab import BLOW_UP, COLLAPSE, FLAT_BAND, INDETERMINATE, STABLE, Label, Optimizer, check_optimizer

__all__ = ["ExpansionTable", "WidthRow", "WidthTable", "default_ranks", "limit_regime", "rms_label", "width_table"]

#: How the RMS behaviour between two ranks is said in words.
RMS_WORDS = {STABLE: "flat", COLLAPSE: "shrinks", BLOW_UP: "grows", INDETERMINATE: "undetermined"}
#: What the verdict is about.
COHERENT_NOTE = "the mean over A, Theorem 3.2's expectation"


def limit_regime() -> str:
    """The regime of a verdict without a width (JSON ``regime``): ``r >> d (width fixed, r → ∞)``."""
    return theory.LIMIT_REGIME


def finite_regime(width: int) -> str:
    """The regime of a verdict at a given width (JSON ``regime``)."""
    return f"finite width d = {width}: the verdict follows the coherent part ({COHERENT_NOTE})"


def default_ranks(crossover: float) -> tuple[int, ...]:
    """8, 32, 128, … until the RMS settles into the r ≫ d side (≥ REGIME_FACTOR²·r*).

    >>> default_ranks(513.0)
    (8, 32, 128, 512, 2048, 8192, 32768)
    """
    out = [8]
    while out[-1] < theory.REGIME_FACTOR**2 * crossover and out[-1] * 4 <= MAX_SIZE:
        out.append(out[-1] * 4)
    return tuple(out)


def rms_label(slope: float | None) -> Label | None:
    """The label of an RMS slope in the ±FLAT_BAND band used for measurements (None: no slope)."""
    if slope is None:
        return None
    if not math.isfinite(slope):
        return INDETERMINATE
    if slope > FLAT_BAND:
        return BLOW_UP
    if slope < -FLAT_BAND:
        return COLLAPSE
    return STABLE


@dataclass(frozen=True)
class WidthRow:
    """One rank at the given width.

    Sizes are RMS over A, relative: the total RMS at the smallest rank of the table is 1.
    ``slope`` is the RMS slope in log r from the previous rank (``None`` for the first row), and
    ``label`` that slope in the ±FLAT_BAND band (:data:`rsstab.vocab.FLAT_BAND`) that measured slopes are judged by.
    """

    r: int
    gamma: float
    regime: str
    coherent: float
    incoherent: float
    rms: float
    slope: float | None
    label: Label | None


@dataclass(frozen=True)
class WidthTable:
    """The per-rank predictions for one schedule at one width (forward and backward follow one law)."""

    width: int
    optimizer: Optimizer
    law: str
    crossover_rank: float
    rows: tuple[WidthRow, ...]
    summary: str

    @property
    def regime(self) -> str:
        return finite_regime(self.width)

    def render(self) -> str:
        """The plain text of the per-rank table (what ``rsstab check --width`` prints)."""
        lines = [f"finite width d = {self.width} (forward and backward): E‖·‖² ∝ {self.law}; crossover rank r* ≈ "
                 f"{self.crossover_rank:.6g} (coherent = incoherent)",
                 f"{'r':>8}  {'γ_r':>10}  {'regime':<10}{'coherent':>10}{'incoherent':>12}{'RMS':>10}  RMS slope"]
        for row in self.rows:
            # a row with a slope has its label (both None on the first row only)
            slope = "—" if row.slope is None or row.label is None else f"{row.slope:+.2f} ({RMS_WORDS[row.label]})"
            lines.append(f"{row.r:>8}  {_fmt(row.gamma):>10}  {row.regime:<10}{_fmt(row.coherent):>10}"
                         f"{_fmt(row.incoherent):>12}{_fmt(row.rms):>10}  {slope}")
        lines.append("(sizes: RMS over A relative to the total at the smallest rank; RMS slope: in log r from the "
                     "previous rank, what `rsstab simulate` reports as local slopes)")
        lines.append(self.summary)
        return "\n".join(lines)

    def json_fields(self) -> dict[str, Any]:
        """The top-level JSON fields of a verdict at this width."""
        return {"width": self.width, "crossover_rank": self.crossover_rank, "width_law": self.law,
                "width_table": [asdict(row) for row in self.rows], "rms_summary": self.summary}

    @classmethod
    def from_json_fields(cls, data: dict[str, Any], optimizer: Optimizer) -> WidthTable | None:
        """Inverse of :meth:`json_fields`; pops its keys from ``data`` (None when there is no width)."""
        width = data.pop("width", None)
        fields = {k: data.pop(k, None) for k in ("crossover_rank", "width_law", "width_table", "rms_summary")}
        if width is None:
            return None
        rows = tuple(WidthRow(int(row["r"]), float(row["gamma"]), row["regime"], float(row["coherent"]),
                              float(row["incoherent"]), float(row["rms"]),
                              None if row["slope"] is None else float(row["slope"]), row["label"])
                     for row in fields["width_table"])
        return cls(int(width), optimizer, fields["width_law"], float(fields["crossover_rank"]), rows,
                   fields["rms_summary"])


def none_fields() -> dict[str, Any]:
    """The JSON fields of a verdict without a width."""
    return {"width": None, "crossover_rank": None, "width_law": None, "width_table": [], "rms_summary": None}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _log(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return -math.inf if x <= 0 else math.inf if math.isinf(x) else math.log(x)


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _summary(rows: Sequence[WidthRow], verdict: str, crossover: float, k: int) -> str:
    spans: list[tuple[Label, int, int]] = []
    for prev, row in zip(rows, rows[1:]):
        lab = row.label or INDETERMINATE
        if spans and spans[-1][0] == lab:
            spans[-1] = (lab, spans[-1][1], row.r)
        else:
            spans.append((lab, prev.r, row.r))
    g = "γ_r" if k == 1 else "γ_r²"
    if not spans:
        how = "one rank: no slope"
    else:
        how = ", ".join(f"{RMS_WORDS[lab]} for r = {a}…{b}" for lab, a, b in spans)
    return (f"RMS over A: {how}. The verdict ({verdict}) is about the coherent part ∝ {g}·r; below "
            f"r* ≈ {crossover:.4g} the incoherent part ∝ {g}·√(r·d) dominates the RMS.")


def width_table(schedule: Any, optimizer: str, width: object, ranks: Sequence[object] | None,
                verdict: str) -> WidthTable:
    """Predict, at ``width``, each rank's width side, coherent/incoherent sizes and RMS slope for ``schedule``.

    Args:
        schedule: a :class:`rsstab.schedule.Schedule` (its ``value(r)`` gives γ_r).
        optimizer: ``"sgd"`` or ``"adam"``.
        width: the input width d of the adapted layer (a positive integer).
        ranks: the ranks (default :func:`default_ranks`: 8, 32, … into the r ≫ d side).
        verdict: the label of the coherent part (the verdict of :func:`rsstab.verdict.classify.check`).
    """
    optimizer = check_optimizer(optimizer)
    width = check_width(width)
    law = theory.finite_width_law("forward", optimizer, width)
    ranks_t = default_ranks(law.crossover_rank) if ranks is None else check_ranks(ranks)
    k = law.gamma_power
    logs = []
    for r in ranks_t:
        g = schedule.value(r)
        lg = k * _log(g)
        logs.append((r, g, lg + 0.5 * math.log(law.coherent_square(r)), lg + 0.5 * math.log(law.incoherent_square(r)),
                     lg + 0.5 * math.log(law.mean_square(r))))
    ref = logs[0][4]
    rows: list[WidthRow] = []
    prev: tuple[int, float] | None = None
    for r, g, lc, li, lt in logs:
        slope = None
        if prev is not None:
            with_nan = lt - prev[1]
            slope = with_nan / math.log(r / prev[0]) if not math.isnan(with_nan) else math.nan
        rows.append(WidthRow(r, g, law.regime(r), _exp(lc - ref), _exp(li - ref), _exp(lt - ref), slope, rms_label(slope)))
        prev = (r, lt)
    return WidthTable(width, optimizer, law.text, law.crossover_rank, tuple(rows),
                      _summary(rows, verdict, law.crossover_rank, k))


def expansion_rows(table: WidthTable, optimizer: str, lr: Any, init_std: Any, steps: int, *,
                   eps: float | None = None, grad_scale: float | None = None) -> list[dict[str, Any]] | None:
    """Per rank of a width table, the range of the first-order laws (result 13) at a numeric learning
    rate, for the first adapted layer (isotropic inputs): what ``rsstab check`` knows without data.
    SGD's B-driven term needs only (η, γ_r, r, d, σ_A, n); its A-driven term needs the data gradient
    and Adam's B-driven term the residual, which a simulation records (``rsstab simulate``): those
    entries are None and ``in_range`` is then None unless the known part already exceeds the limit.
    With Adam's ``eps``/``grad_scale`` a rank below the sign phase is out of the ε → 0 law's range.
    None when the learning rate or σ_A is not a number."""
    try:
        eta = float(lr)
        s = 1.0 if init_std is None else float(init_std)
    except (TypeError, ValueError):
        return None
    if not (eta > 0 and math.isfinite(eta) and s > 0 and math.isfinite(s)):
        return None
    d = float(table.width)
    rows: list[dict[str, Any]] = []
    for row in table.rows:
        g = float(row.gamma)
        b: float | None
        a: float | None
        if optimizer == "sgd":
            b = theory.sgd_expansion(rank=row.r, width=d, gamma=g, lr_a=eta, lr_b=eta, steps=steps,
                                     sigma_a2=s * s / d).b_driven
            a = None
        else:
            coh = row.coherent**2 / (row.coherent**2 + row.incoherent**2) if row.coherent > 0 else 1.0
            e = theory.adam_expansion(width=d, lr_a=eta, steps=steps, sigma_a=s / math.sqrt(d), learned_fraction=0.0,
                                      coherent_fraction=coh)
            a, b = e.a_driven, None
        known = abs(b or 0.0) + (a or 0.0)
        ok: bool | None = None if known <= theory.EXPANSION_LIMIT else False
        ratio = None
        if eps is not None and grad_scale is not None:
            ratio = theory.adam_gradient_ratio(g, grad_scale, eps)
            if ratio < theory.ADAM_SIGN_RATIO:
                ok = False
        rows.append({"r": row.r, "gamma": g, "b_driven": b, "a_driven": a, "known_expansion": known,
                     "in_range": ok, "eps_ratio": ratio})
    return rows


@dataclass(frozen=True)
class ExpansionTable:
    """The rows of :func:`expansion_rows` (their JSON form, ``expansion_table``) with their text."""

    rows: tuple[dict[str, Any], ...]

    def as_list(self) -> list[dict[str, Any]]:
        """The JSON form: one dict per rank, as :func:`expansion_rows` returns them."""
        return list(self.rows)

    def render(self) -> str:
        """The plain text ``rsstab check --width D --lr ETA`` prints (a blank line first)."""
        lines = ["", f"range of the first-order laws (result 13; in range while the next term ≤ "
                 f"{theory.EXPANSION_LIMIT:g} of the first; '?' = needs the data: rsstab simulate gives it):",
                 f"{'r':>8}{'B-driven':>12}{'A-driven':>12}{'in range':>10}"]
        for row in self.rows:
            ok = {True: "yes", False: "no", None: "?"}[row["in_range"]]
            lines.append(f"{row['r']:>8}{_maybe(row['b_driven']):>12}{_maybe(row['a_driven']):>12}{ok:>10}")
        return "\n".join(lines)


def _maybe(v: Any) -> str:
    return "?" if v is None else f"{v:.3g}"
