"""The Disagreements section: every row whose interval misses the prediction, each with causes
derived by rule from its own settings; verdicts that can come out 'refuted'."""

from __future__ import annotations

import math
from pathlib import Path

from rsstab.experiments import disagreements as dis
from rsstab.experiments.claims import REFUTES, verdict_of
from rsstab.experiments.claims import reproductions
from rsstab.io import write_csv

BASE = {"experiment": "x", "optimizer": "sgd", "schedule": "alpha/sqrt(r)", "quantity": "forward", "theory": 0.0,
        "lr": 1e-5, "steps": 10, "width": 16, "rank_min": 64, "rank_max": 4096}


def row(**kw):
    return {**BASE, **kw}


def test_disagreeing_uses_the_interval_not_the_point() -> None:
    near = row(slope=0.15, ci_low=0.05, ci_high=0.25)  # point outside ±0.1, interval reaches in
    far = row(slope=0.15, ci_low=0.12, ci_high=0.18)
    nan = row(slope=math.nan, ci_low=math.nan, ci_high=math.nan)
    no_theory = row(slope=5.0, ci_low=5.0, ci_high=5.0, theory=None)
    assert dis.disagreeing([near, far, nan, no_theory]) == [far, nan]


def test_causes_follow_the_row_settings() -> None:
    # small η, wide ranks: no rule fires — an unexplained disagreement stays visible
    assert dis.causes(row(slope=0.6, ci_low=0.55, ci_high=0.65)) == []
    # the same row at a learning rate where the adapter is bounded by the task
    big = dis.causes(row(slope=0.6, ci_low=0.55, ci_high=0.65, lr=0.1, steps=100, optimizer="adam"))
    assert [c.split(":")[0] for c in big] == ["beyond the small-η regime"] and "Adam" in big[0]
    back = dis.causes(row(quantity="backward", slope=-0.6, ci_low=-0.65, ci_high=-0.55, lr=0.1, steps=100))
    assert [c.split(":")[0] for c in back] == ["beyond the small-η regime", "residual-based backward probe"]
    # finite width: only where the spectrum's spread can move the slope as far as the interval misses
    narrow = dis.causes(row(slope=-0.3, ci_low=-0.35, ci_high=-0.25, rank_min=4, width=32))
    assert [c.split(":")[0] for c in narrow] == ["finite width"]
    assert dis.causes(row(slope=-0.9, ci_low=-0.95, ci_high=-0.85, rank_min=4, width=32)) == []
    div = dis.causes(row(slope=math.nan, ci_low=math.nan, ci_high=math.nan, diverged_ranks="256 1024"))
    assert div[0].startswith("diverged") and "256, 1024" in div[0]
    edge = dis.causes(row(quantity="eta_star", slope=0.3, ci_low=0.2, ci_high=0.4, excluded_ranks="4"))
    assert any(c.startswith("grid edge") for c in edge)
    # a tuned learning rate has no range: the small-η rule cannot fire
    assert dis.first_order_range(row(lr="tuned"), 64) is None
    # the rule is the first-order laws' own range (what `rsstab check --width --lr --steps` prints)
    e = dis.first_order_range(row(lr=0.1, steps=100), 64)  # the largest next term of the fitted ends
    assert e["in_range"] is False and e["known_expansion"] > 0.1
    assert f"{e['known_expansion']:.3g}" in back[0]
    assert dis.first_order_range(row(), 4096)["in_range"] is None  # known part small: the data decides


def test_render_lists_every_disagreeing_row_and_marks_the_unexplained() -> None:
    rows = [row(table="t", slope=0.6, ci_low=0.55, ci_high=0.65),
            row(table="t", slope=0.0, ci_low=-0.01, ci_high=0.01)]
    text = dis.render(rows)
    assert "1 rows disagree" in text and "**unexplained**" in text and "2 rows" in text


def test_verdicts_can_refute() -> None:
    assert verdict_of([REFUTES]) == "refuted"
    assert verdict_of([True, REFUTES]) == "partly reproduced"
    assert verdict_of([False, False]) == "not reproduced"


def _tuned(root: Path, lora_gain: float, lora_top: float) -> None:
    """A fabricated tuned.csv: rsLoRA gains 2.0 from r = 4 to 256; LoRA gains ``lora_gain`` and ends
    ``lora_top`` above rsLoRA at r = 256 (three seeds)."""
    rows = []
    for method, start, end in (("rsLoRA α/√r", 5.0, 3.0), ("LoRA α/r", 5.0, 5.0 - lora_gain)):
        end = end if method != "LoRA α/r" else 3.0 + lora_top
        for protocol in ("tuned per rank", "fixed η"):
            for rank, loss in ((4, start), (256, end)):
                seeds = [loss - 0.01, loss, loss + 0.01]
                rows.append({"optimizer": "adam", "protocol": protocol, "method": method, "rank": rank, "lr": 0.1,
                             "loss_mean": loss, "loss_sd": 0.01, "loss_seeds": " ".join(map(repr, seeds))})
    for rank in (4, 256):
        rows.append({"optimizer": "adam", "protocol": "fixed η", "method": "LoRA, η×√r", "rank": rank, "lr": 0.2,
                     "loss_mean": 3.0, "loss_sd": 0.01, "loss_seeds": "2.99 3.0 3.01"})
    write_csv(rows, root / "lr_transfer" / "tuned.csv")


def test_tuned_claims_could_have_failed(tmp_path: Path) -> None:
    """The same claim builders give 'reproduced' or 'refuted' depending on what was measured."""
    _tuned(tmp_path, lora_gain=0.0, lora_top=2.0)  # LoRA flat, rsLoRA gains: the paper's picture
    assert reproductions.fig2(tmp_path).verdict == "reproduced"
    assert reproductions.lr_boost(tmp_path).verdict == "reproduced"
    _tuned(tmp_path, lora_gain=2.0, lora_top=0.0)  # LoRA tuned per rank gains as much: an lr effect
    assert reproductions.fig2(tmp_path).verdict == "partly reproduced"
    assert "refuted at a tuned η" in reproductions.fig2(tmp_path).measured
    assert reproductions.lr_boost(tmp_path).verdict == "partly reproduced"
