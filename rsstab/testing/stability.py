"""The rank-stability check behind :func:`rsstab.testing.assert_rank_stabilized`.

:func:`check_rank_stability` builds the module at each rank, measures it with
:mod:`rsstab.testing.probe` (torch, imported when a check runs), fits the log-log slopes with
:mod:`rsstab.measure.fit` and returns a :class:`RankStabilityResult`, whose report explains a failure
with the theory's laws (:mod:`rsstab.theory`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rsstab import theory
from rsstab.defaults import RANK_STABILITY
from rsstab.errors import RsstabError
from rsstab.validate import integer_at_least, slope_ranks
from rsstab.vocab import (INDETERMINATE, STABLE, SUMMARY_QUANTITIES, VOTING_QUANTITIES, combine_labels,
                          normalize_optimizer)

if TYPE_CHECKING:  # pragma: no cover
    from rsstab.measure.fit import SlopeFit

__all__ = ["DEFAULTS", "QUANTITIES", "VOTING", "RankStabilityResult", "check_rank_stability",
           "assert_rank_stabilized"]

#: Measured quantities, in report order.
QUANTITIES = SUMMARY_QUANTITIES
#: The quantities whose labels decide the verdict (Definition 3.1: outputs and input gradients).
VOTING = VOTING_QUANTITIES

#: Defaults of :func:`check_rank_stability`: :data:`rsstab.defaults.RANK_STABILITY`, beside the
#: simulator's (same ranks, steps and seeds; a smaller batch and learning rate, and why). Ranks well
#: above the width keep the finite-rank bias (a relative ``~width/r`` term in the learned change) small;
#: the learning rate keeps training linearised; float32 suffices because the probes are forward-mode
#: derivatives, not differences.
DEFAULTS: dict[str, Any] = RANK_STABILITY

_OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}
_NAMED_SCHEDULES = ((-1.0, "LoRA's α/r"), (-0.5, "rsLoRA's α/√r"), (0.0, "a constant γ"))
# Relative finite-rank bias stays below ~12% in RMS when r ≥ 8·width.
_RANK_PER_WIDTH = 8


def _fraction(x: float) -> str:
    for den in (1, 2, 3, 4):
        num = round(x * den)
        if abs(num / den - x) < 1e-9:
            return f"{num}" if den == 1 else f"{num}/{den}"
    return f"{x:g}"


def _fmt(x: float, spec: str = "+.2f") -> str:
    return format(x, spec) if math.isfinite(x) else str(x)


@dataclass(frozen=True)
class RankStabilityResult:
    """What :func:`check_rank_stability` measured and concluded.

    Attributes:
        passed: ``True`` when every voting quantity (forward, backward) is labelled
            rank-stabilized, i.e. its whole confidence interval lies inside ``±tolerance``.
        label: the combined empirical label (:func:`rsstab.vocab.combine_labels` of the voting
            quantities): ``rank-stabilized``, ``collapse``, ``blow-up`` or ``indeterminate``.
        optimizer: ``"sgd"`` or ``"adam"``: the optimizer the verdict is for.
        ranks: the ranks, increasing.
        values: per quantity, a tuple over ranks of per-seed values.
        fits: per quantity, the :class:`rsstab.measure.fit.SlopeFit`.
        diverged: rank → seeds whose training loss became non-finite.
        settings: the arguments the measurement used.
        seconds: wall time of the measurement.
        notes: caveats worth reading (finite-rank bias, divergence).
        first_order_gaps: per rank, per seed, how far the learned change is from its first order
            in the learning rate (:func:`rsstab.testing.probe.first_order_step`): the relative size
            of every next term at once, measured on each seed's first draw; empty when not measured.
            The laws behind the verdict are first order in η: a rank whose RMS gap exceeds
            :data:`rsstab.theory.EXPANSION_LIMIT` is **out of range** (:attr:`beyond_small_eta_ranks`).
    """

    passed: bool
    label: str
    optimizer: str
    ranks: tuple[int, ...]
    values: dict[str, tuple[tuple[float, ...], ...]]
    fits: dict[str, SlopeFit]
    diverged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    rms_fits: dict[str, SlopeFit] = field(default_factory=dict)
    first_order_gaps: tuple[tuple[float, ...], ...] = ()

    def first_order_gap(self) -> tuple[float, ...]:
        """Per rank, the root mean square over seeds of :attr:`first_order_gaps` (inf with a
        diverged seed, nan where none was measured; empty when not measured)."""
        out = []
        for per_seed in self.first_order_gaps:
            ok = [g for g in per_seed if not math.isnan(g)]  # inf (a diverged seed) counts
            out.append(math.sqrt(sum(g * g for g in ok) / len(ok)) if ok else math.nan)
        return tuple(out)

    def in_range(self) -> tuple[bool, ...]:
        """Per rank, whether the first-order laws cover the training (gap ≤ EXPANSION_LIMIT; a
        rank without a measured gap counts as in range: nothing says otherwise)."""
        return tuple(not g > theory.EXPANSION_LIMIT for g in self.first_order_gap())

    @property
    def beyond_small_eta_ranks(self) -> tuple[int, ...]:
        """The ranks whose training the first-order laws do not cover (see :meth:`in_range`)."""
        return tuple(r for r, ok in zip(self.ranks, self.in_range()) if not ok)

    @classmethod
    def from_values(
        cls,
        ranks: Sequence[int],
        values: Mapping[str, Any],
        *,
        optimizer: str = "sgd",
        tolerance: float = DEFAULTS["tolerance"],
        confidence: float = DEFAULTS["confidence"],
        diverged: Mapping[int, Sequence[int]] | None = None,
        settings: Mapping[str, Any] | None = None,
        seconds: float = 0.0,
        notes: Sequence[str] = (),
        first_order_gaps: Sequence[Sequence[float]] = (),
    ) -> RankStabilityResult:
        """Fit slopes of measured ``values[q]`` (shape ``(n_ranks, n_seeds)``) and decide.

        Every quantity in :data:`QUANTITIES` must be present; ``first_order_gaps`` (same shape,
        optional) are the measured distances from first order in η.
        """
        from rsstab.measure.fit import fit_slope

        optimizer = normalize_optimizer(optimizer)  # one-line error; "adamw" is read as Adam
        missing = [q for q in QUANTITIES if q not in values]
        if missing:
            raise RsstabError(f"values lack the quantities {', '.join(missing)}")
        fits: dict[str, SlopeFit] = {q: fit_slope(ranks, values[q], tolerance=tolerance, confidence=confidence)
                                     for q in QUANTITIES}
        order = sorted(range(len(ranks)), key=lambda i: ranks[i])
        table: dict[str, tuple[tuple[float, ...], ...]] = {}
        for q in QUANTITIES:
            rows = [list(row) if hasattr(row, "__len__") else [row] for row in values[q]]
            table[q] = tuple(tuple(float(v) for v in rows[i]) for i in order)
        label = combine_labels(fits[q].label for q in VOTING)
        return cls(
            passed=all(fits[q].label == STABLE for q in VOTING),
            label=label,
            optimizer=optimizer,
            ranks=tuple(int(ranks[i]) for i in order),
            values=table,
            fits=fits,
            diverged={int(r): tuple(s) for r, s in (diverged or {}).items() if s},
            settings={"optimizer": optimizer, "tolerance": tolerance, "confidence": confidence,
                      **dict(settings or {})},
            seconds=float(seconds),
            notes=tuple(notes),
            first_order_gaps=tuple(tuple(float(g) for g in first_order_gaps[i]) for i in order)
            if len(first_order_gaps) else (),
        )

    def to_dict(self) -> dict[str, Any]:
        """The result in rsstab's one JSON schema (:mod:`rsstab.schema`, ``command: "testing"``),
        for a CI job that stores or compares checks; ``json.dumps``-ready (non-finite numbers as
        strings).

        >>> import numpy as np
        >>> flat = np.ones((2, 2)) * [1.0, 1.1]
        >>> d = RankStabilityResult.from_values((64, 256), {"grad_init": flat, "forward": flat,
        ...                                     "backward": flat}, optimizer="sgd").to_dict()
        >>> d["schema_version"], d["command"], d["stable"], d["label"]
        (1, 'testing', True, 'rank-stabilized')
        """
        from rsstab.schema import envelope, json_safe

        reason = "; ".join(f"{q}: slope {self.fits[q].slope:+.3f}, interval [{self.fits[q].ci[0]:+.3f}, "
                           f"{self.fits[q].ci[1]:+.3f}] → {self.fits[q].label}" for q in VOTING)
        if self.beyond_small_eta_ranks:
            reason += (f"; beyond the small-η regime at r = {', '.join(map(str, self.beyond_small_eta_ranks))} "
                       f"(first-order gap > {theory.EXPANSION_LIMIT:g}): a statement about the learning rate")
        body = {"ranks": list(self.ranks),
                "quantities": {q: {**f.as_dict(), "votes": q in VOTING} for q, f in self.fits.items()},
                "rms_quantities": {q: f.as_dict() for q, f in self.rms_fits.items()},
                "diverged_seeds": {str(r): list(s) for r, s in self.diverged.items() if s},
                "first_order_gap": list(self.first_order_gap()), "in_range": list(self.in_range()),
                "beyond_small_eta_ranks": list(self.beyond_small_eta_ranks),
                "settings": dict(self.settings), "seconds": round(self.seconds, 3)}
        return json_safe(envelope("testing", stable=self.passed, label=self.label, optimizer=self.optimizer,
                                  schedule=None, reason=reason, notes=self.notes, body=body))  # type: ignore[return-value]

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows ``{rank, seed, quantity, value}`` (the input of
        :func:`rsstab.measure.rows.values_from_rows`)."""
        return [
            {"rank": r, "seed": s, "quantity": q, "value": v}
            for q in QUANTITIES
            for r, per_seed in zip(self.ranks, self.values[q])
            for s, v in enumerate(per_seed)
        ]

    def table(self) -> str:
        """The rank × quantity table: geometric mean over seeds at each rank, slope, interval,
        label."""
        pct = f"{100 * float(self.settings.get('confidence', 0.95)):g}%"
        head = ["quantity"] + [f"r={r}" for r in self.ranks] + ["slope", f"{pct} interval", "verdict"]
        body = []
        for q in QUANTITIES:
            fit = self.fits[q]
            cells = [q] + [f"{v:.3g}" if math.isfinite(v) else str(v) for v in fit.values]
            cells += [_fmt(fit.slope), f"[{_fmt(fit.ci[0])}, {_fmt(fit.ci[1])}]"]
            cells.append(fit.label if q in VOTING else f"{fit.label} (info, does not vote)")
            body.append(cells)
        if self.first_order_gaps:
            cells = ["first-order gap"] + [("—" if not math.isfinite(g) else f"{g:.2g}")
                                           + ("" if ok else " out of range")
                                           for g, ok in zip(self.first_order_gap(), self.in_range())]
            body.append(cells + ["", "", f"in range ≤ {theory.EXPANSION_LIMIT:g}"])
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + body]
        return "\n".join(lines)

    def _why(self, q: str) -> str:
        fit = self.fits[q]
        law = theory.law(q, self.optimizer)
        line = f"{q}: {fit.evidence}."
        if math.isfinite(fit.slope):
            # Invert the law Q ∝ γ_r^k · r^m to say which γ_r exponent the slope corresponds to.
            p = (fit.slope - float(law.rank_power)) / float(law.gamma_power)
            named = [name for e, name in _NAMED_SCHEDULES if abs(e - p) <= 0.1]
            like = f" ({named[0]})" if named else ""
            flat = -float(law.rank_power) / float(law.gamma_power)
            stab = theory.stability_law(self.optimizer)
            stable = -float(stab.rank_power) / float(stab.gamma_power)
            line += (
                f" Under {_OPTIMIZER_NAMES[self.optimizer]} {q} ∝ {law.text}, so the adapter behaves "
                f"like γ_r ∝ r^{p:+.2f}{like}; "
            )
            if q in VOTING:
                line += f"rank-stabilized needs γ_r ∝ r^{_fraction(stable)}."
            else:
                line += f"it is flat for γ_r ∝ r^{_fraction(flat)} and does not vote."
        return line

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """A mup-style coordinate-check figure of this result: per quantity, every seed's value
        against the rank (log-log), their geometric mean, a flat reference line (what a
        rank-stabilized quantity does) and the fitted slope with its interval — so a failing check
        can be shown, not only read. Returns the matplotlib figure, or the path it was written to
        (PNG, SVG or PDF by its suffix) when ``path`` is given. Needs matplotlib.

        >>> import numpy as np, tempfile, os
        >>> flat = np.ones((3, 2)) * [1.0, 1.1]
        >>> res = RankStabilityResult.from_values((64, 256, 1024), {"grad_init": flat, "forward": flat,
        ...                                       "backward": flat / [[1.0], [2.0], [4.0]]}, optimizer="sgd")
        >>> with tempfile.TemporaryDirectory() as d:
        ...     os.path.getsize(res.plot(os.path.join(d, "check.png"))) > 1000
        True
        """
        from rsstab.errors import require_extra

        require_extra("sim", ("matplotlib",))
        from rsstab.style import OKABE_ITO, pyplot

        plt = pyplot()
        names = list(self.fits)
        fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
        for ax, q in zip(axes[0], names):
            fit = self.fits[q]
            per_rank = [[v for v in seeds if math.isfinite(v) and v > 0] for seeds in self.values[q]]
            n_seeds = max((len(s) for s in self.values[q]), default=0)
            for s in range(n_seeds):
                pts = [(r, seeds[s]) for r, seeds in zip(self.ranks, self.values[q])
                       if s < len(seeds) and math.isfinite(seeds[s]) and seeds[s] > 0]
                if pts:
                    ax.plot(*zip(*pts), color=OKABE_ITO[0], alpha=0.25, lw=0.8)
            means = [(r, math.exp(sum(map(math.log, v)) / len(v))) for r, v in zip(self.ranks, per_rank) if v]
            if means:
                ax.plot(*zip(*means), "o-", color=OKABE_ITO[1] if fit.label != STABLE else OKABE_ITO[2],
                        label="geometric mean over seeds")
                ax.axhline(means[0][1], color="grey", ls="--", lw=1, label="flat (rank-stabilized)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ci = f"[{fit.ci[0]:+.2f}, {fit.ci[1]:+.2f}]" if math.isfinite(fit.slope) else "—"
            vote = "" if q in VOTING else " (reported)"
            ax.set_title(f"{q}{vote}: slope {fit.slope:+.2f} {ci}\n{fit.label}")
            ax.set_xlabel("adapter rank r")
            ax.grid(True, which="major", alpha=0.3)
        axes[0][0].legend(loc="best")
        fig.suptitle(f"rank-stability check under {self.optimizer}: {self.label}")
        fig.tight_layout(rect=(0, 0, 1, 0.93))
        if path is None:
            return fig
        from rsstab.io import save_figure

        return str(save_figure(fig, path))

    def report(self) -> str:
        """A readable multi-line report: verdict, expected regime, table, reasons, settings."""
        opt = _OPTIMIZER_NAMES[self.optimizer]
        stab = theory.stability_law(self.optimizer)
        if self.passed:
            head = f"adapter is rank-stabilized under {opt}: forward and backward stay flat across ranks"
        else:
            bad = ", ".join(f"{q}: {self.fits[q].label}" for q in VOTING if self.fits[q].label != STABLE)
            head = f"adapter is not rank-stabilized under {opt} ({bad})"
        beyond = self.beyond_small_eta_ranks
        if beyond:
            worst = max(g for g in self.first_order_gap() if not math.isnan(g))
            far = (f"up to {100 * worst:.0f} % from its first order in η" if math.isfinite(worst)
                   else "far from its first order in η, or diverged")
            head += (f" — but at r = {', '.join(map(str, beyond))} training is beyond the small-η regime the "
                     f"laws are about (the learned change is {far}; out of range past "
                     f"{100 * theory.EXPANSION_LIMIT:g} %): there the slopes are a statement about "
                     f"lr={self.settings.get('lr')}, not about the scaling; lower lr= to test the scaling")
        lines = [
            head,
            (f"Under {opt}, rank-stabilized means {stab.text} ∈ Θ(1) ({stab.why}); the check needs the "
             f"forward and backward slopes to lie within ±{self.settings.get('tolerance')} of 0."),
            "",
            self.table(),
            "",
            "why:",
        ]
        lines += [f"  {self._why(q)}" for q in QUANTITIES]
        for r, seeds in sorted(self.diverged.items()):
            lines.append(f"  r={r}: training diverged (non-finite loss) for seeds {list(seeds)}: lower lr=.")
        if not self.diverged and any(self.fits[q].label == INDETERMINATE for q in VOTING):
            lines.append("  an interval that straddles a band edge cannot confirm a flat slope: raise seeds= "
                         "(the interval shrinks like 1/√seeds) or use larger ranks.")
        if self.rms_fits:
            lines.append("RMS of the whole learned change (coherent + incoherent; reported, does not vote): "
                         + "; ".join(f"{q} slope {_fmt(f.slope)} ({f.label})" for q, f in self.rms_fits.items()))
        if self.notes:
            lines.append("notes:")
            lines += [f"  {n}" for n in self.notes]
        shown = {k: v for k, v in self.settings.items() if k != "optimizer"}
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in shown.items())
                     + f" ({self.seconds:.2f} s)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise RsstabError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


#: Defaults set for a whole test session (the pytest plugin's ``--rsstab-ranks`` /
#: ``--rsstab-seeds``): they replace :data:`DEFAULTS` for arguments a check does not pass.
SESSION_DEFAULTS: dict[str, Any] = {}


def check_rank_stability(
    factory: Callable[[int], Any],
    *,
    ranks: Sequence[int] | None = None,
    optimizer: str = "sgd",
    steps: int = DEFAULTS["steps"],
    seeds: int | None = None,
    tolerance: float = DEFAULTS["tolerance"],
    lr: float | None = None,
    batch: int = DEFAULTS["batch"],
    probe_batch: int = DEFAULTS["probe_batch"],
    d_in: int | None = None,
    dtype: str = DEFAULTS["dtype"],
    confidence: float = DEFAULTS["confidence"],
    seed: int = 0,
    draws: int = DEFAULTS["draws"],
    coherent_probes: int | None = None,
) -> RankStabilityResult:
    """Train ``factory(r)`` for every rank and seed, fit slopes across ranks, and decide.

    Args:
        factory: ``factory(r)`` returns a ``torch.nn.Module`` mapping ``(batch, d_in)`` to
            ``(batch, d_out)``; its trainable parameters are the adapters (freeze the rest).
        ranks: at least two distinct ranks (default: the session's ``--rsstab-ranks`` under the
            pytest plugin, else ``DEFAULTS["ranks"]``), at any width: with ``draws`` ≥ 2 the verdict
            follows the coherent part of the learned change, which obeys the theorem at every rank.
        optimizer: ``"sgd"`` (Theorem 3.2's optimizer: stable ⇔ γ_r²·r ∈ Θ(1)) or ``"adam"``
            (sign-like updates: stable ⇔ γ_r·r ∈ Θ(1), LoRA's α/r).
        steps: training steps before the forward/backward probes.
        seeds: independent repetitions (≥ 2: the slope interval is a t-interval over seeds;
            default: the session's ``--rsstab-seeds``, else ``DEFAULTS["seeds"]``).
        tolerance: half-width of the band of slopes counted as flat.
        lr: learning rate (default ``DEFAULTS["lr"][optimizer]``: small, so training stays
            linearised — a large one lets blown-up adapters saturate and hide their slope).
        batch: training batch size (a fresh batch every step).
        probe_batch: held-out inputs for the forward/backward probes.
        d_in: input width; default: ``in_features`` of the first submodule that has one.
        dtype: ``"float32"`` (default) or ``"float64"``. The learned change and the backward
            tangent are forward-mode derivatives along the learned parameter step, so float32
            measures them to ~1e-6 relative however small they are beside the base output
            (a module torch.func cannot trace is measured by differences in float64).
        confidence: coverage of the slope intervals.
        seed: base seed; the same arguments give the same numbers.
        draws: draws of the adapters' initialisation per seed, at fixed base and data (≥ 2: the
            verdict follows the **coherent** part, the mean over draws of the learned change —
            Theorem 3.2's expectation — estimated without bias from the pairwise products of the
            draws; the RMS of the whole change, which at r ≪ width is dominated by an incoherent
            random-projection part ∝ 1/√r relative to it, is reported beside it; 1: the verdict
            follows that RMS, right only for ranks well above the width).
        coherent_probes: held-out inputs for the coherent part (with ``draws`` ≥ 2; default, per
            rank r: ``min(width, ⌈8·(width/r)²⌉)``, and never below ``probe_batch``). In the
            pairwise products of the draws the incoherent squares are ~width/r times the coherent
            one; averaged over P inputs they leave a relative error ~width/(r·√(P·n)), n ≤
            steps·batch the rank of the data gradient, above the draws' own error unless P ≳ width
            at r ≪ width (measured at width 512, r = 8: 32 inputs give the forward slope an error
            8× that of 512). The default keeps width/(r·√P) ≤ 1/√8 where the width allows, and
            at small ranks uses the width (as before); at r ≳ width/4 the incoherent part is small
            and ``probe_batch`` inputs suffice.

    Returns:
        A :class:`RankStabilityResult` (``.passed``, ``.label``, ``.report()``).

    Raises:
        RsstabError: a bad argument, or a factory/module that does not fit the contract.
    """
    if not callable(factory):
        raise RsstabError(f"factory must be callable as factory(rank), got {type(factory).__name__}")
    ranks = SESSION_DEFAULTS.get("ranks", DEFAULTS["ranks"]) if ranks is None else ranks
    seeds = SESSION_DEFAULTS.get("seeds", DEFAULTS["seeds"]) if seeds is None else seeds
    rank_list = slope_ranks(ranks)
    optimizer = normalize_optimizer(optimizer)  # one-line error; "adamw" is read as Adam
    steps = integer_at_least(steps, "steps", python_int=True)
    seeds = integer_at_least(seeds, "seeds", 2, python_int=True)
    batch = integer_at_least(batch, "batch", python_int=True)
    probe_batch = integer_at_least(probe_batch, "probe_batch", python_int=True)
    tolerance = _positive_float("tolerance", tolerance)
    learning_rate = _positive_float("lr", DEFAULTS["lr"][optimizer] if lr is None else lr)
    if d_in is not None:
        d_in = integer_at_least(d_in, "d_in", python_int=True)
    if dtype not in ("float32", "float64"):
        raise RsstabError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise RsstabError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    seed = integer_at_least(seed, "seed", 0, python_int=True)
    draws = integer_at_least(draws, "draws", python_int=True)
    if coherent_probes is not None:
        coherent_probes = integer_at_least(coherent_probes, "coherent_probes", python_int=True)

    import torch

    from rsstab.testing.probe import measure

    t0 = time.perf_counter()
    values: dict[str, list[list[float]]] = {q: [[math.nan] * seeds for _ in rank_list] for q in QUANTITIES}
    rms = {q: [[math.nan] * seeds for _ in rank_list] for q in VOTING}
    gaps = [[math.nan] * seeds for _ in rank_list]
    diverged: dict[int, list[int]] = {}
    fallback = False
    probes: list[int] = []
    threads = torch.get_num_threads()
    width = d_in or _width_of(factory, rank_list[0], dtype)
    try:
        for i, r in enumerate(rank_list):
            n_probes = _coherent_probes(coherent_probes, width, r, probe_batch)
            probes.append(n_probes)
            # Small tensors: intra-op threads only add overhead (and on a loaded CI machine
            # oversubscribed threads turn a 2-second check into tens of seconds); a wide
            # module's matrix products use the machine's threads.
            torch.set_num_threads(threads if width * max(r, width) * n_probes >= _THREADED_WORK else 1)
            for s in range(seeds):
                sums: dict[str, Any] = {}
                frozen = None
                for j in range(draws):
                    x = measure(factory, rank=r, seed=s, optimizer=optimizer, steps=steps, batch=batch,
                                probe_batch=probe_batch, lr=learning_rate, d_in=d_in, dtype=dtype, base_seed=seed,
                                draw=j, keep=draws > 1, coherent_probes=n_probes, frozen=frozen, first_order=j == 0)
                    if j == 0:
                        m, frozen = x, x.frozen
                    if x.diverged_step >= 0 and s not in diverged.get(r, []):
                        diverged.setdefault(r, []).append(s)
                    if draws > 1:  # running sums: one draw's tensors in memory at a time
                        for q, t in (("forward", x.change), ("backward", x.tangent)):
                            _accumulate(sums, q, t)
                fallback = fallback or m.backward_method == "difference"
                gaps[i][s] = math.inf if m.diverged_step >= 0 else m.first_order_gap  # diverged: no expansion
                for q in QUANTITIES:
                    values[q][i][s] = m.values[q]
                if draws > 1:
                    for q in VOTING:
                        rms[q][i][s] = m.values[q]
                        values[q][i][s] = _coherent_from_sums(sums.get(q), draws)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0

    notes = []
    if draws == 1 and rank_list[0] < _RANK_PER_WIDTH * width:
        notes.append(
            f"the smallest rank ({rank_list[0]}) is below {_RANK_PER_WIDTH}× the input width ({width}): "
            "the RMS then carries an incoherent part ∝ √(width/r) that bends the slopes downwards; use "
            "draws ≥ 2 (the verdict then follows the coherent part at any rank)."
        )
    if fallback:
        notes.append(
            "torch.func could not trace the module, so backward was measured as a difference of input "
            "gradients, not to first order: in piecewise-linear models examples whose activation pattern "
            "flips during training add outliers."
        )
    settings = {"ranks": rank_list, "seeds": seeds, "steps": steps, "lr": learning_rate, "batch": batch,
                "probe_batch": probe_batch, "dtype": dtype, "seed": seed, "draws": draws,
                **({"coherent_probes": max(probes), "coherent_probes_per_rank": probes} if draws > 1 else {}),
                "verdict_on": "coherent part (mean over draws of A)" if draws > 1 else "RMS"}
    result = RankStabilityResult.from_values(
        rank_list, values, optimizer=optimizer, tolerance=tolerance, confidence=confidence,
        diverged=diverged, settings=settings, seconds=seconds, notes=notes, first_order_gaps=gaps,
    )
    if draws > 1:
        from dataclasses import replace

        from rsstab.measure.fit import fit_slope

        result = replace(result, rms_fits={q: fit_slope(rank_list, rms[q], tolerance=tolerance, confidence=confidence)
                                           for q in VOTING})
    return result


#: Multiply-adds (width · max(rank, width) · probes) above which a measurement uses the machine's
#: threads rather than one: about the size where one probe pass takes tens of milliseconds.
_THREADED_WORK = 2**27


def _coherent_probes(given: int | None, width: int, rank: int, probe_batch: int) -> int:
    """Held-out inputs for the coherent part at ``rank`` (see :func:`check_rank_stability`).

    >>> [_coherent_probes(None, 1024, r, 128) for r in (8, 64, 128, 256, 4096)]
    [1024, 1024, 512, 128, 128]
    >>> _coherent_probes(8, 1024, 64, 32)
    32
    """
    if given is not None:
        return max(probe_batch, given)
    return max(probe_batch, min(width, -(-8 * width * width // (rank * rank))))


def _width_of(factory: Callable[[int], Any], rank: int, dtype: str) -> int:
    """The input width the probes will infer (0 when they cannot: they then raise the error)."""
    from rsstab.testing.probe import DTYPES, _build, infer_d_in

    return infer_d_in(_build(factory, rank, 0, DTYPES[dtype])) or 0


def _accumulate(sums: dict[str, Any], q: str, t: Any) -> None:
    """Add one draw's tensor ``t`` to the running ``[Σt, Σ mean(t²), count]`` of ``q`` (``None``
    for a missing tensor poisons ``q``)."""
    if q in sums and sums[q] is None:
        return
    if t is None:
        sums[q] = None
        return
    if q not in sums:
        sums[q] = [t.clone(), float(t.pow(2).mean()), 1]
    else:
        sums[q][0] += t
        sums[q][1] += float(t.pow(2).mean())
        sums[q][2] += 1


def _coherent_from_sums(acc: Any, draws: int) -> float:
    """√ of the unbiased estimate of the mean square of the mean over draws, from the pairwise
    products ((Σt)² − Σt²)/(S(S−1)) averaged over entries; nan when it is not positive (the
    coherent part is below what the draws resolve) or a draw is missing."""
    if acc is None or acc[2] != draws:
        return math.nan
    total, m2, S = acc
    v = (float(total.pow(2).mean()) - m2) / (S * (S - 1))
    return math.sqrt(v) if v > 0 else math.nan


def assert_rank_stabilized(factory: Callable[[int], Any], **options: Any) -> RankStabilityResult:
    """Fail a test unless ``factory(r)``'s adapters are rank-stabilized under the chosen optimizer.

    Takes the arguments of :func:`check_rank_stability` (``ranks``, ``optimizer``, ``steps``,
    ``seeds``, ``tolerance``, ``lr``, …) and returns its result when the check passes.

    Raises:
        AssertionError: when forward or backward collapses, blows up or cannot be confirmed flat
            (indeterminate: an interval straddling the band edge, or a diverged run); the message
            is :meth:`RankStabilityResult.report`.
        RsstabError: a bad argument (a usage error, not a failed check).
    """
    result = check_rank_stability(factory, **options)
    if not result.passed:
        raise AssertionError(result.report())
    return result
