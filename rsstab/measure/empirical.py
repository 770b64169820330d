"""The empirical verdict: simulate a schedule across ranks, fit the slopes, label them.

The measured counterpart of :func:`rsstab.verdict.classify.check`. It runs :mod:`rsstab.sim` through the
sweep store, fits with :mod:`rsstab.measure.fit` and labels with :func:`rsstab.vocab.combine_labels`;
it never reads the theory (a caller who wants the predicted exponents beside the measured ones
passes them to :meth:`EmpiricalVerdict.render`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from rsstab.errors import RsstabError
from rsstab.sim.config import DEFAULTS
from rsstab.vocab import (BLOW_UP, INDETERMINATE, SUMMARY_QUANTITIES, VOTING_QUANTITIES, Label, Optimizer,
                          FLAT_BAND, check_optimizer, combine_labels)

__all__ = ["EmpiricalVerdict", "empirical_verdict", "render_empirical"]


@dataclass(frozen=True)
class EmpiricalVerdict:
    """Measured slopes of the summary quantities and the empirical label they imply.

    ``label`` combines ``forward`` and ``backward`` (Definition 3.1's two conditions) with
    :func:`rsstab.vocab.combine_labels`; ``backward`` is probed with a fixed N(0, 1) output
    gradient (``backward_fixed``), and the held-out residual's backward is reported beside it as
    ``backward_residual`` (it shrinks as the loss falls, so it does not vote). ``grad_init`` is
    reported but does not vote (it is an onset quantity, not a stability condition).
    ``diverged`` maps rank → seeds that diverged. ``split`` (with ``share_data``) holds, per
    quantity, the measured coherent and incoherent RMS per rank (see :mod:`rsstab.sim.finite`);
    ``rows`` and ``cells`` (rank → config) are the raw material of predictions
    (:mod:`rsstab.measure.predict`).
    """

    label: Label
    optimizer: Optimizer
    schedule: str
    fits: dict[str, Any]
    diverged: dict[int, list[int]]
    settings: dict[str, Any]
    seconds: float
    split: dict[str, dict[str, list[float | None]]] = field(default_factory=dict)
    #: why the label, in one sentence, with what to do when it is indeterminate
    reason: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    cells: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def headline(self) -> str:
        """The measured label and the learning rate it was measured at, in one line (the empirical
        counterpart of :attr:`rsstab.verdict.classify.Verdict.headline`): ``measured collapse at a fixed
        learning rate (η = 1e-05)``, ``measured rank-stabilized with η = eta/sqrt(r) at each rank``."""
        lr = self.settings.get("lr")
        if isinstance(lr, (int, float)):
            return f"measured {self.label} at a fixed learning rate (η = {_lr_text(self.settings)})"
        return f"measured {self.label} with η = {_lr_text(self.settings)} at each rank"

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "reason": self.reason,
            "headline": self.headline,
            "diverged": bool(any(self.diverged.values())),
            "diverged_seeds": {str(r): s for r, s in self.diverged.items() if s},
            "quantities": {q: {**f.as_dict(), **self.split.get(q, {})} for q, f in self.fits.items()},
            "settings": self.settings,
            "seconds": round(self.seconds, 3),
        }

    def render(self, theory: Mapping[str, float | None] | None = None) -> str:
        """The plain text ``rsstab simulate`` prints (``rsstab check --simulate`` after the verdict);
        ``theory`` (quantity → predicted exponent, supplied by the caller) adds a comparison column."""
        s = self.settings
        lines = [
            f"simulation: γ_r = {self.schedule}    [optimizer: {self.optimizer}, "
            f"depth {s['depth']}, width {s['width']}, {s['steps']} steps, {s['seeds']} seeds, "
            f"batch {s['batch']}, lr {_lr_text(s)}; {self.seconds:.1f} s]",
            f"empirical verdict: {self.label} (at this fixed learning rate)" if isinstance(s["lr"], (int, float))
            else f"empirical verdict: {self.label} (with η = {s['lr']} at each rank)",
            f"why: {self.reason}",
        ]
        n_div = sum(len(v) for v in self.diverged.values())
        if n_div:
            where = ", ".join(f"r={r}: {len(v)}" for r, v in self.diverged.items() if v)
            lines.append(f"diverged runs (seeds): {where}")
        qw = max(len("quantity"), *(len(q) for q in self.fits))  # the widest name; slopes are 8 wide
        head = f"{'quantity':<{qw}}{'slope':>8}  {'95% CI':<17}"
        if theory is not None:
            head += f"{'theory':>7}  "
        head += f"{'label':<16}local slopes"
        lines += ["", head]
        for q, f in self.fits.items():
            ci = f"[{f.ci[0]:+.3f}, {f.ci[1]:+.3f}]" if math.isfinite(f.slope) else "—"
            line = f"{q:<{qw}}{f.slope:>+8.3f}  {ci:<17}"
            if theory is not None:
                th = theory.get(q)
                line += f"{'—' if th is None else format(th, '+.3g'):>7}  "
            line += f"{f.label:<16}" + " ".join(f"{x:+.2f}" for x in f.local_slopes)
            lines.append(line)
        lines += ["", *value_table(next(iter(self.fits.values())).ranks,
                                   {q: f.values for q, f in self.fits.items()})]
        return "\n".join(lines)


def empirical_verdict(
    schedule: Any,
    optimizer: str = "sgd",
    *,
    constants: Mapping[str, float | Fraction] | None = None,
    ranks: Sequence[int] | None = None,
    depth: int | None = None,
    width: int | None = None,
    steps: int | None = None,
    seeds: int | None = None,
    batch: int | None = None,
    lr: Any = None,
    lr_ratio: Any = 1.0,
    seed: int = 0,
    adapted_layers: Sequence[int] | None = None,
    a_init_scale: Any = 1.0,
    gram: str = "auto",
    bf16: bool = False,
    tolerance: float | None = None,
    out: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | None = None,
    share_data: bool = False,
    fixed_batch: bool = False,
    eps: float | None = None,
) -> EmpiricalVerdict:
    """Simulate ``schedule`` across ranks and fit the slopes of grad_init, forward and backward.

    ``schedule`` is a Schedule, a callable ``f(r)`` or a text expression; ``constants`` gives its
    named constants values (default 1). ``adapted_layers``, ``a_init_scale``, ``lr`` and
    ``lr_ratio`` (η_B/η_A) — each a number or a function of r (text such as ``"eta*r**c"``, see
    :func:`make_configs`; ``constants`` apply to them too) — are passed to every cell; the other unset options
    take :data:`DEFAULTS`. ``gram="wishart"`` (SGD only) draws A₀'s d×d Bartlett factor instead of
    A₀ itself when r > d: exact in distribution, and the cost no longer grows with r (see
    :func:`rsstab.sim.draws.draw_seed`). ``bf16``: the adapter products take bfloat16 operands
    (float32 accumulation; opt-in, slopes within 0.02 of float32, see :mod:`rsstab.sim`). The cells (one per
    rank, all seeds batched) run through :func:`rsstab.sweep.run_sweep`: in ``out`` (a resumable
    store) when given, else in a temporary directory; ``scheduler``/``workers`` choose where.
    Every cell records the fixed-gradient backward and the data statistics (SimConfig's
    ``fixed_output_grad`` and ``data_stats``); ``share_data`` (seeds = draws of A at fixed data:
    adds the measured coherent/incoherent split) and ``fixed_batch`` are passed through. ``eps`` is
    Adam's ε (default: SimConfig's 1e-8; with SGD it must be None), applied to the true gradients
    (the simulator's AdamW runs on γ-less gradients with ε/γ: the same update).

    Raises:
        RsstabError: bad input, or a cell that failed to run.
    """
    import tempfile

    from rsstab.errors import require_extra

    require_extra("sim", ("numpy", "torch"))
    from rsstab.measure.fit import fit_slope
    from rsstab.measure.rows import layer_rms, summary_values
    from rsstab.sim.cells import run_cell
    from rsstab.sim.grid import make_configs
    from rsstab.sweep import run_sweep

    optimizer = check_optimizer(optimizer)  # "adamw" is read as Adam
    ranks = [int(r) for r in (ranks if ranks is not None else DEFAULTS["ranks"])]
    if len(set(ranks)) < 2:
        raise RsstabError("give at least two distinct ranks to fit a slope")
    opts = {
        "optimizer": optimizer,
        "depth": depth if depth is not None else DEFAULTS["depth"],
        "width": width if width is not None else DEFAULTS["width"],
        "steps": steps if steps is not None else DEFAULTS["steps"],
        "seeds": seeds if seeds is not None else DEFAULTS["seeds"],
        "batch": batch if batch is not None else DEFAULTS["batch"],
        "lr": lr if lr is not None else DEFAULTS["lr"][optimizer],
        "seed": seed,
        "fixed_output_grad": True,
        "data_stats": True,
        "share_data": bool(share_data),
        "fixed_batch": bool(fixed_batch),
    }
    if opts["seeds"] < 2:
        raise RsstabError("an empirical verdict needs at least 2 seeds for its confidence intervals")
    if opts["steps"] < 1:
        raise RsstabError("an empirical verdict needs at least 1 training step")
    if eps is not None:
        import numbers

        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not (0 <= float(eps) < math.inf):
            raise RsstabError(f"eps must be a non-negative finite number, got {eps!r}")
        if optimizer != "adam":
            raise RsstabError("eps is Adam's ε: it applies to optimizer='adam' only")
        opts["eps"] = float(eps)
    if adapted_layers is not None:
        opts["adapted_layers"] = tuple(adapted_layers)
    if gram != "auto":  # the default stays out of the configs (and of their store keys)
        opts["gram"] = gram
    if bf16:
        opts["bf16"] = True
    if not _is_one(lr_ratio):
        opts["lr_ratio"] = lr_ratio
    text = getattr(schedule, "text", None) or (schedule if isinstance(schedule, str) else "callable")
    numeric = {k: float(v) for k, v in (constants or {}).items()}  # an exact Fraction (--set beta=1/4) as a float
    configs = make_configs(schedule, ranks, label=text, constants=numeric, a_init_scale=a_init_scale, **opts)
    from rsstab.sim.config import SimConfig

    drawn = [int(c["rank"]) for c in configs if gram == "auto" and SimConfig.from_dict(c).resolved_gram() == "wishart"]
    gram_note = (f"gram auto: at r = {', '.join(map(str, drawn))} the explicit A₀ would not fit in memory, so A₀ᵀA₀ "
                 "was drawn from its Wishart law instead (the d×d Bartlett factor; exact in distribution under "
                 "SGD, not number by number)") if drawn else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rsstab-sim-") as tmp:
        result = run_sweep(run_cell, configs, out or tmp, scheduler=scheduler, workers=workers,
                           progress=progress)
    if result.failed:
        config, error = result.failed[0]
        raise RsstabError(f"the simulation of rank {config.get('rank')} failed: {error}")
    rows = result.rows
    diverged: dict[int, list[int]] = {r: [] for r in ranks}
    for row in rows:
        if row["quantity"] == "diverged_step":
            diverged[int(row["rank"])].append(int(row["seed"]))
    tol = FLAT_BAND if tolerance is None else tolerance
    fits: dict[str, Any] = {}
    for q in SUMMARY_QUANTITIES:
        rk, vals = summary_values(rows, q) if q != "backward" else layer_rms(rows, "backward_fixed")
        fits[q] = fit_slope(rk, vals, tolerance=tol)
    fits["backward_residual"] = fit_slope(*summary_values(rows, "backward"), tolerance=tol)
    split: dict[str, dict[str, list[float | None]]] = {}
    if share_data:
        for q, source in (("forward", "forward"), ("backward", "backward_fixed")):
            split[q] = {part: _split_values(rows, f"{source}_{part}") for part in ("coherent", "incoherent")}
    label, reason = _label_and_reason(fits, diverged, ranks, opts["seeds"], opts["width"], tol)
    return EmpiricalVerdict(
        label=label,
        reason=reason,
        optimizer=optimizer,
        schedule=text,
        fits=fits,
        diverged=diverged,
        settings={"ranks": ranks, **opts, **({"gram_note": gram_note} if gram_note else {}), **_per_rank_settings(opts, configs, a_init_scale), "tolerance": tol,
                  "constants": dict(constants or {})},
        seconds=time.perf_counter() - t0,
        split=split,
        rows=rows,
        cells={int(c["rank"]): c for c in configs},
    )


def _label_and_reason(fits: Mapping[str, Any], diverged: Mapping[int, list[int]], ranks: Sequence[int],
                      seeds: int, width: int, tol: float) -> tuple[Label, str]:
    """The empirical label and why. Training that diverged for every seed at the largest ranks
    (and at every larger rank too) is a blow-up, not an unfittable run; an indeterminate verdict
    says what would decide it (more seeds, ranks away from the width, a lower learning rate)."""
    whole = sorted(r for r in ranks if seeds and len(diverged.get(r, [])) >= seeds)
    if whole and all(r in whole for r in ranks if r >= whole[0]):
        return BLOW_UP, (f"training diverged for every seed at r ≥ {whole[0]} (and not below): "
                         "the update grows with the rank until it diverges")
    parts = [f"{q}: slope {fits[q].slope:+.3f}, interval [{fits[q].ci[0]:+.3f}, {fits[q].ci[1]:+.3f}] → {fits[q].label}"
             for q in VOTING_QUANTITIES]
    label = combine_labels(fits[q].label for q in VOTING_QUANTITIES)
    reason = "; ".join(parts)
    if label == INDETERMINATE:
        hints = []
        if any(diverged.get(r) for r in ranks):
            hints.append("some seeds diverged (no slope through them): lower the learning rate")
        if any(math.isfinite(fits[q].slope) and fits[q].ci[0] <= tol <= fits[q].ci[1] or
               math.isfinite(fits[q].slope) and fits[q].ci[0] <= -tol <= fits[q].ci[1] for q in VOTING_QUANTITIES):
            hints.append(f"an interval straddles the ±{tol:g} band: more seeds narrow it (∝ 1/√seeds; now {seeds})")
        if min(ranks) <= width:
            hints.append(f"ranks at or below the width ({width}) are where the incoherent part dominates the "
                         "RMS: use ranks well above it, or --share-data to measure the coherent part")
        reason += " — indeterminate: " + "; ".join(hints or ["no power law fits the measured values"])
    return label, reason


def _split_values(rows: Sequence[Mapping[str, Any]], quantity: str) -> list[float | None]:
    """A cell-level split quantity (seed -1 rows) per rank, at each cell's last step: the
    RMS over layers of ``value·|value|`` (a signed mean square), as a signed root."""
    last: dict[int, int] = {}
    for r in rows:
        if r["quantity"] == quantity:
            last[int(r["rank"])] = max(last.get(int(r["rank"]), -1), int(r["step"]))
    sums: dict[int, list[float]] = {}
    for r in rows:
        if r["quantity"] == quantity and int(r["step"]) == last[int(r["rank"])]:
            v = float(r["value"])
            sums.setdefault(int(r["rank"]), []).append(v * abs(v))
    out: list[float | None] = []
    for rank in sorted(sums):
        m = sum(sums[rank]) / len(sums[rank])
        out.append(math.copysign(math.sqrt(abs(m)), m) if math.isfinite(m) else None)
    return out


def _per_rank_settings(opts: Mapping[str, Any], configs: Sequence[Mapping[str, Any]],
                       a_init_scale: Any) -> dict[str, Any]:
    """The settings given as functions of r, as given (text) and per rank (``<name>_values``)."""
    import numbers

    out: dict[str, Any] = {}
    for name, given in (("lr", opts["lr"]), ("lr_ratio", opts.get("lr_ratio", 1.0)), ("a_init_scale", a_init_scale)):
        if isinstance(given, numbers.Real) and not isinstance(given, bool):
            if name != "lr" and not _is_one(given):
                out[name] = float(given)
            continue
        out[name] = getattr(given, "text", None) or (given if isinstance(given, str) else "callable")
        out[f"{name}_values"] = [c[name] for c in configs]
    return out


def _is_one(v: Any) -> bool:
    """True for the number 1 (the default ``a_init_scale``)."""
    import numbers

    return isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v) == 1.0


def _lr_text(s: Mapping[str, Any]) -> str:
    """The learning rate(s) of the settings: ``1e-05``, ``eta*r**c``, with η_B/η_A when not 1."""
    lr = s["lr"]
    text = f"{lr:g}" if isinstance(lr, (int, float)) else str(lr)
    ratio = s.get("lr_ratio", 1.0)
    if not _is_one(ratio):
        text += f", η_B/η_A {ratio:g}" if isinstance(ratio, (int, float)) else f", η_B/η_A {ratio}"
    return text


def render_empirical(verdict: EmpiricalVerdict, theory: Mapping[str, float | None] | None = None) -> str:
    """``verdict.render(theory)``: kept for callers of the function."""
    return verdict.render(theory)


def value_table(ranks: Sequence[int], columns: Mapping[str, Sequence[float]]) -> list[str]:
    """Per-rank values, one right-aligned column per quantity, each at least two spaces wider
    than its header and its widest cell (a long name such as ``backward_residual`` never runs
    into its neighbour).

    >>> print("\\n".join(value_table([4, 8], {"backward": [1.5, 2.0], "backward_residual": [1e-6, 2e-6]})))
         r    backward  backward_residual
         4         1.5              1e-06
         8           2              2e-06
    """
    cells = {q: ["—" if v is None else f"{v:.4g}" for v in vals] for q, vals in columns.items()}
    widths = {q: max(10, len(q), *(len(c) for c in cs)) + 2 for q, cs in cells.items()}
    lines = [f"{'r':>6}" + "".join(f"{q:>{widths[q]}}" for q in cells)]
    for i, r in enumerate(ranks):
        lines.append(f"{r:>6}" + "".join(f"{cs[i]:>{widths[q]}}" for q, cs in cells.items()))
    return lines
