"""The MiniLM experiment beside the theory: fitted slopes against the rank and a markdown summary.

This is report code: it reads :mod:`rsstab.theory` only to print the predicted exponents next to
the slopes fitted (:func:`rsstab.measure.fit.fit_slope`) to the rows of :mod:`rsstab.experiments.minilm`,
which never sees them.

>>> rows = [{"method": "lora", "rank": 4, "quantity": "loss", "seed": 0, "step": s, "value": v}
...         for s, v in ((1, 0.5), (0, 0.9))]
>>> run_series(rows, "lora", 4, "loss")
([0, 1], [0.9, 0.5])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rsstab.experiments.minilm import RealModelConfig, method_scaling

__all__ = ["RankFit", "onset_fits", "run_series", "summarize"]


@dataclass(frozen=True)
class RankFit:
    """A fitted log-log slope of one measured quantity vs rank, next to the theory's exponent."""

    method: str
    quantity: str
    measured: str
    slope: float
    ci: tuple[float, float]
    label: str
    predicted: float | None
    local_slopes: tuple[float, ...]
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (non-finite numbers become ``None``)."""

        def clean(x: Any) -> Any:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        d = asdict(self)
        d["slope"], d["ci"] = clean(self.slope), [clean(c) for c in self.ci]
        d["local_slopes"] = [clean(c) for c in self.local_slopes]
        return d


def run_series(
    rows: Iterable[Mapping[str, Any]], method: str, rank: int, quantity: str, seed: int = 0
) -> tuple[list[int], list[float]]:
    """(steps, values) of one quantity of one run, in step order."""
    pts = sorted(
        (row["step"], row["value"])
        for row in rows
        if (row["method"], row["rank"], row["quantity"], row["seed"]) == (method, rank, quantity, seed)
    )
    return [s for s, _ in pts], [v for _, v in pts]


def _curve(rows: Iterable[Mapping[str, Any]], method: str, rank: int, quantity: str, seed: int = 0) -> list[float]:
    """The values of one quantity in step order for one run."""
    return run_series(rows, method, rank, quantity, seed)[1]


def _onset_values(rows: Sequence[Mapping[str, Any]], method: str, quantity: str, ranks: Sequence[int]) -> Any:
    """Step-0 values, shape (n_ranks, n_seeds)."""
    import numpy as np

    seeds = sorted({row["seed"] for row in rows})
    return np.array(
        [
            [
                next(
                    row["value"]
                    for row in rows
                    if (row["method"], row["rank"], row["quantity"], row["seed"], row["step"])
                    == (method, r, quantity, s, 0)
                )
                for s in seeds
            ]
            for r in ranks
        ]
    )


def onset_fits(rows: Sequence[Mapping[str, Any]], quantity: str = "grad_norm") -> dict[str, Any]:
    """Log-log slope fit (:func:`rsstab.measure.fit.fit_slope`) of ``quantity`` at step 0 vs rank, per method."""
    from rsstab.measure.fit import fit_slope

    ranks = sorted({row["rank"] for row in rows})
    methods = sorted({row["method"] for row in rows})
    return {m: fit_slope(ranks, _onset_values(rows, m, quantity, ranks)) for m in methods}


#: γ ∝ r^p for each method.
_GAMMA_EXPONENT = {"lora": -1.0, "rslora": -0.5}


def summarize(rows: Sequence[Mapping[str, Any]], cfg: RealModelConfig) -> tuple[list[RankFit], str]:
    """Fitted slopes vs rank (onset and over the fine-tune) against the theory, and a markdown text."""
    import numpy as np

    from rsstab import theory
    from rsstab.measure.fit import fit_slope

    ranks = sorted({row["rank"] for row in rows})
    optimizer = "adam" if cfg.optimizer == "adamw" else "sgd"
    fits: list[RankFit] = []

    def add(method: str, quantity: str, measured: str, values: Any, law: str | None) -> None:
        fit = fit_slope(ranks, values)
        predicted = theory.law(law, optimizer).exponent(_GAMMA_EXPONENT[method]) if law else None
        fits.append(
            RankFit(method, quantity, measured, fit.slope, fit.ci, fit.label, predicted, fit.local_slopes, fit.evidence)
        )

    for method in cfg.methods:
        add(method, "grad_norm", "at onset (step 0)", _onset_values(rows, method, "grad_norm", ranks), "grad_init")
    for method in cfg.methods:
        means = [float(np.mean(_curve(rows, method, r, "grad_norm"))) for r in ranks]
        add(method, "grad_norm", "mean over the fine-tune", means, None)
    if cfg.steps >= 2:
        for method in cfg.methods:
            last = [_curve(rows, method, r, "adapter_out_rms")[-1] for r in ranks]
            add(method, "adapter_out_rms", f"after {cfg.steps - 1} updates", last, "forward")

    lines = [
        "# LoRA vs rsLoRA on pretrained MiniLM-L6 (real model check)",
        "",
        (
            f"Model: all-MiniLM-L6-v2 (hidden size 384), PEFT LoRA on all 36 encoder linear layers, "
            f"α = {cfg.lora_alpha:g}, ranks {', '.join(map(str, ranks))}."
        ),
        (
            f"Data: consecutive-sentence pairs from Python's help topics (pydoc_data), contrastive "
            f"in-batch-negatives loss, batch {cfg.batch_size}, max length {cfg.max_length}; "
            f"{cfg.eval_pairs} held-out pairs."
        ),
        (
            f"Fine-tune: {cfg.optimizer} lr {cfg.lr:g}, {cfg.steps} steps (seed 0), held-out loss every "
            f"{cfg.eval_every or cfg.steps} updates; onset replicated over {cfg.seeds} seed(s)."
        ),
        "",
        "## Log-log slopes vs rank",
        "",
        "| method | quantity | measured | slope | 95% CI | local slopes | empirical label | theory |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in fits:
        pred = "—" if f.predicted is None else f"{f.predicted:+.2f} ({optimizer})"
        lines.append(
            f"| {f.method} | {f.quantity} | {f.measured} | {f.slope:+.3f} | [{f.ci[0]:+.3f}, {f.ci[1]:+.3f}] "
            f"| {', '.join(f'{x:+.2f}' for x in f.local_slopes)} | {f.label} | {pred} |"
        )
    lines += [
        "",
        "## Loss per rank",
        "",
        "| method | rank | γ | train loss, mean of the last 5 steps | held-out loss before → after |",
        "|---|---|---|---|---|",
    ]
    for method in cfg.methods:
        for r in ranks:
            tail = _curve(rows, method, r, "loss")[-5:]
            ev = _curve(rows, method, r, "eval_loss")
            evs = f"{ev[0]:.4f} → {ev[-1]:.4f}" if len(ev) >= 2 else "—"
            gamma = method_scaling(method, r, cfg.lora_alpha)
            lines.append(f"| {method} | {r} | {gamma:.4g} | {sum(tail) / len(tail):.4f} | {evs} |")
    lines += [
        "",
        (
            "Theory column: the exponent rsstab.theory predicts for γ ∝ r^(−1) (LoRA) or r^(−1/2) (rsLoRA) "
            "under the optimizer used; the forward law is asymptotic in steps and r, so a short fine-tune "
            "of a pretrained model need not reach it."
        ),
    ]
    return fits, "\n".join(lines) + "\n"
