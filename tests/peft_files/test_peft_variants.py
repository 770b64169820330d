"""Adapters beyond plain LoRA, built with PEFT itself and compared module by module with PEFT.

Expert parameters (``target_parameters``), BD-LoRA, keys carrying the adapter name, several
named adapters, configs PEFT refuses, initialisations outside the theorem, DoRA, loader parity,
and EVA-sized pattern dicts.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsstab.cli import main
from rsstab.peft_files import CONFIG_NAME, WEIGHTS_NAME, PatternIndex, read_adapter
from rsstab.peft_files.hypotheses import assess

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
pytest.importorskip("safetensors")

nn = torch.nn
E, D, H = 3, 8, 6  # experts, hidden width, expert width


class Experts(nn.Module):
    """A fused MoE block as transformers writes them: 3-D expert weights, gate_up registered first."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(E, D, 2 * H))
        self.down_proj = nn.Parameter(torch.randn(E, H, D))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(D, D)
        self.v_proj = nn.Linear(D, D)
        self.up_proj = nn.Linear(D, 2 * D)
        self.down_proj = nn.Linear(2 * D, D)
        self.mlp = nn.Module()
        self.mlp.experts = Experts()


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, D)
        self.layers = nn.ModuleList([Layer() for _ in range(2)])

    def forward(self, x: Any) -> Any:  # EVA calls the model; only the linears see data
        for layer in self.layers:
            x = layer.down_proj(torch.relu(layer.up_proj(layer.q_proj(x) + layer.v_proj(x))))
        return x


def peft_modules(model: Any, adapter: str = "default") -> dict[str, tuple[int, float, float]]:
    """PEFT's own (r, alpha, scaling) per adapted module, named as PEFT matches patterns:
    a ParamWrapper as ``<module without .base_layer>.<parameter>``."""
    out = {}
    for name, module in model.named_modules():
        scaling = getattr(module, "scaling", None)
        if not (isinstance(scaling, dict) and adapter in scaling):
            continue
        name = name.removeprefix("base_model.model.")
        if type(module).__name__ == "ParamWrapper":
            while name.endswith(".base_layer"):
                name = name[: -len(".base_layer")]
            name = f"{name}.{module.parameter_name}"
        out[name] = (module.r[adapter], module.lora_alpha[adapter], scaling[adapter])
    return out


def build(root: Path, name: str, **kwargs: Any) -> tuple[Path, dict[str, tuple[int, float, float]]]:
    """Save a PEFT adapter; return its folder and the values PEFT gives it on reloading."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(Model(), peft.LoraConfig(**kwargs))
        path = root / name
        model.save_pretrained(str(path))
        reloaded = peft.PeftModel.from_pretrained(Model(), str(path))
    assert peft_modules(reloaded) == peft_modules(model)
    return path, peft_modules(reloaded)


def ours(path: Path) -> dict[str, tuple[int, float, float]]:
    return {m.name: (m.r, m.lora_alpha, m.scaling) for m in read_adapter(path).modules}


CASES: dict[str, dict[str, Any]] = {
    # The example: PEFT gives the experts r=2, scaling 4.0.
    "experts_down": dict(r=4, lora_alpha=8, target_modules=["q_proj"], target_parameters=["down_proj"],
                         rank_pattern={"down_proj": 2}),
    # Two parameters of one module: nested wrappers, different ranks and alphas, rsLoRA.
    "experts_both": dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj"],
                         target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
                         rank_pattern={"gate_up_proj": 6, "down_proj": 2}, alpha_pattern={"down_proj": 3}),
    # The same listed in the other order: the saved shapes, not the list, decide which wrapper is which.
    "experts_reversed": dict(r=4, lora_alpha=8, target_modules=["q_proj"],
                             target_parameters=["down_proj", "gate_up_proj"],
                             rank_pattern={"gate_up_proj": 6, "down_proj": 2}),
    # gpt-oss cookbook style: attention modules plus the experts of chosen layers only.
    "experts_cookbook": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                             target_parameters=["1.mlp.experts.gate_up_proj", "1.mlp.experts.down_proj"]),
    "bdlora": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj", "down_proj"],
                   use_bdlora=peft.tuners.lora.config.BdLoraConfig(
                       target_modules_bd_a=["q_proj", "up_proj"], target_modules_bd_b=["down_proj"], nblocks=2,
                       match_strict=False)),
    "dora": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True),
    "gaussian": dict(r=4, lora_alpha=8, target_modules=["emb", "q_proj", "v_proj"], init_lora_weights="gaussian"),
    "gaussian_rslora": dict(r=4, lora_alpha=8, use_rslora=True, target_modules=["emb", "q_proj"],
                            rank_pattern={"q_proj": 16}, init_lora_weights="gaussian"),
    # PiSSA starts linear layers with B ≠ 0; PEFT resets embeddings to A = 0, B ~ N(0, 1) anyway.
    "pissa": dict(r=4, lora_alpha=8, target_modules=["emb", "q_proj", "v_proj"], init_lora_weights="pissa"),
    "rslora": dict(r=16, lora_alpha=4, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"],
                   rank_pattern={"layers.1.q_proj": 4}),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, tuple[int, float, float]]]]:
    root = tmp_path_factory.mktemp("variants")
    return {case: build(root, case, **kw) for case, kw in CASES.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_r_and_scaling_equal_peft_per_module(saved, case):
    path, theirs = saved[case]
    report = read_adapter(path)
    assert ours(path) == theirs
    assert not report.mismatches, [m.to_dict() for m in report.mismatches]  # PEFT loaded it: no false mismatch
    assert not [n for n in report.notes if n.kind in ("unmatched_key", "mismatch", "parameters")], report.warnings


def test_expert_parameters_match_peft_with_patterns(saved):
    _, theirs = saved["experts_down"]
    assert theirs["layers.0.mlp.experts.down_proj"] == (2, 8, 4.0)  # the numbers
    rows = {m.name: m for m in read_adapter(saved["experts_down"][0]).modules}
    m = rows["layers.0.mlp.experts.down_proj"]
    assert (m.kind, m.experts, m.r_weight, m.weights_name) == ("parameter", E, 2 * E, "layers.0.mlp.experts")
    both = {m.name: m for m in read_adapter(saved["experts_both"][0]).modules}
    assert both["layers.1.mlp.experts.gate_up_proj"].weights_name == "layers.1.mlp.experts.base_layer"
    assert {both[f"layers.1.mlp.experts.{p}"].r for p in ("gate_up_proj", "down_proj")} == {6, 2}
    # Only layer 1's experts were targeted in the cookbook case.
    assert [n for n in ours(saved["experts_cookbook"][0]) if "experts" in n] == [
        "layers.1.mlp.experts.down_proj", "layers.1.mlp.experts.gate_up_proj"]


def test_a_wrong_rank_pattern_on_experts_is_still_a_mismatch(saved, tmp_path):
    src = saved["experts_down"][0]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / WEIGHTS_NAME).write_bytes((src / WEIGHTS_NAME).read_bytes())
    cfg = json.loads((src / CONFIG_NAME).read_text())
    cfg["rank_pattern"] = {"down_proj": 4}  # weights have 2 × 3 experts = 6 rows: not a multiple of 4
    (bad / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="size mismatch"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft.PeftModel.from_pretrained(Model(), str(bad))
    report = read_adapter(bad)
    assert [m.name for m in report.mismatches] == ["layers.0.mlp.experts.down_proj", "layers.1.mlp.experts.down_proj"]


def test_bdlora_block_diagonal_b_is_not_a_mismatch(saved):
    rows = {m.name: m for m in read_adapter(saved["bdlora"][0]).modules}
    down = rows["layers.0.down_proj"]
    assert (down.r, down.r_weight, down.r_weight_b, down.b_blocks) == (4, 4, 2, 2)
    assert rows["layers.0.q_proj"].b_blocks == 1 and not down.mismatch


def test_keys_with_the_adapter_name_are_read(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    src, theirs = saved["rslora"]
    for name, loads in (("default", True), ("other", False)):
        d = tmp_path / name
        d.mkdir()
        (d / CONFIG_NAME).write_text((src / CONFIG_NAME).read_text())
        sd = {re.sub(r"\.(lora_[AB])\.weight$", rf".\1.{name}.weight", k): v + 1 for k, v in load_file(str(src / WEIGHTS_NAME)).items()}
        save_file(sd, str(d / WEIGHTS_NAME))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = peft.PeftModel.from_pretrained(Model(), str(d))
        b = model.base_model.model.layers[0].q_proj.lora_B["default"].weight
        assert bool(b.abs().sum() > 0) is loads  # PEFT loads the keys only under their own name
        report = read_adapter(d)
        assert ours(d) == theirs
        assert [n.kind for n in report.notes] == ["adapter_name"] and repr(name) in report.warnings[0]


def test_named_adapters_in_subfolders_are_reported(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(Model(), peft.LoraConfig(r=4, target_modules=["q_proj"]))
        model.add_adapter("second", peft.LoraConfig(r=8, lora_alpha=2, use_rslora=True, target_modules=["v_proj"]))
        model.save_pretrained(str(tmp_path))
    report = read_adapter(tmp_path)
    assert [n.kind for n in report.notes] == ["subfolders"] and "second" in report.warnings[0]
    assert ours(tmp_path / "second") == peft_modules(model, "second")
    assert ours(tmp_path) == peft_modules(model, "default")
    code = main(["lint", str(tmp_path), "--format", "json", "--optimizer", "sgd"])
    out = json.loads(capsys.readouterr().out)
    assert out["adapters"] == 2 and code == 1
    assert {Path(f["path"]).parent.name for f in out["findings"]} == {tmp_path.name, "second"}


MLX = {"fine_tune_type": "lora", "num_layers": 16, "lora_parameters": {"rank": 8, "scale": 20.0, "dropout": 0.0}}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("peft_type"), "no peft_type: not a PEFT adapter config"),
        (lambda c: c.update(peft_type=None), "peft_type is null"),
        (lambda c: (c.clear(), c.update(MLX)), "an mlx-lm adapter config, not a PEFT one (its update is scaled by "
                                              "lora_parameters.scale = 20.0"),
    ],
)
def test_configs_peft_refuses_are_refused(saved, tmp_path, capsys, edit, message):
    src = saved["rslora"][0]
    d = tmp_path / "x"
    d.mkdir()
    (d / WEIGHTS_NAME).write_bytes((src / WEIGHTS_NAME).read_bytes())
    cfg = json.loads((src / CONFIG_NAME).read_text())
    edit(cfg)
    (d / CONFIG_NAME).write_text(json.dumps(cfg))
    with pytest.raises(Exception), warnings.catch_warnings():  # noqa: B017 - PEFT raises KeyError/TypeError
        warnings.simplefilter("ignore")
        peft.PeftModel.from_pretrained(Model(), str(d))
    for argv in (["peft", str(d)], ["peft", str(d / CONFIG_NAME)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("rsstab: error: ") and err.count("\n") == 1 and message in err, err


def test_gaussian_init_uses_the_sigma_law(saved):
    """σ_A = 1/r: forward exponents SGD −3 (α/r), −2 (α/√r); Adam −1, −1/2 (measured −3.06/−2.11,
    −0.96/−0.47); embeddings start A = 0, B ~ N(0, 1) and keep the plain law."""
    want = {("gaussian", "sgd"): -3, ("gaussian_rslora", "sgd"): -2,
            ("gaussian", "adam"): -1, ("gaussian_rslora", "adam"): -0.5}
    for (case, opt), exponent in want.items():
        a = assess(read_adapter(saved[case][0]), opt)
        assert a.verdict is not None and a.verdict.quantities["forward"].exponent == exponent
        linear = [r for name, r in a.rows.items() if name != "emb"]
        assert {r["label"] for r in linear} == {"collapse"} and all(r["init"] == "gaussian" for r in linear)
        plain = assess(read_adapter(saved["rslora" if "rslora" in case else "dora"][0]), opt).verdict
        assert a.rows["emb"]["judged_schedule"] == a.rows["emb"]["schedule"]
        assert a.rows["emb"]["label"] == plain.label
        assert a.label == ("blow-up" if plain.label == "blow-up" else "collapse")  # any blow-up wins
        assert any("σ_A ∝ r^-1" in c for c in a.caveats)


@pytest.mark.parametrize(("opt", "emb", "label"), [("sgd", "collapse", "collapse"),
                                                   ("adamw", "rank-stabilized", "indeterminate")])
def test_data_driven_init_claims_no_verdict(saved, capsys, opt, emb, label):
    code = main(["peft", str(saved["pissa"][0]), "--json", "--optimizer", opt])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["label"] == label and out["verdict"] is None  # the linear layers claim none
    rows = {m["name"]: m for m in out["modules"]}
    assert rows.pop("emb")["label"] == emb == rsstab_check("alpha/r", opt)
    assert {m["label"] for m in rows.values()} == {"indeterminate"}
    assert any("B ≠ 0 at the start" in c and "no rank verdict is claimed" in c for c in out["caveats"])


def rsstab_check(schedule: str, optimizer: str) -> str:
    from rsstab import check

    return check(schedule, optimizer=optimizer).label


def test_dora_keeps_the_scaling_and_names_the_variant(saved, capsys):
    main(["peft", str(saved["dora"][0]), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["variants"] == ["use_dora"] and any(c.startswith("LoRA variant not modelled: DoRA") for c in out["caveats"])
    assert out["label"] == "rank-stabilized"  # α/r under Adam: the plain-LoRA verdict, with the caveat


def test_loader_parity_factor_is_sqrt_r(saved, capsys):
    main(["peft", str(saved["rslora"][0]), "--json"])
    out = json.loads(capsys.readouterr().out)
    theirs = saved["rslora"][1]
    for m in out["modules"]:
        r, alpha, scaling = theirs[m["name"]]
        assert m["loader_factor"] == pytest.approx(scaling / (alpha / r)) == pytest.approx(math.sqrt(r))
    assert {m["loader_factor"] for m in out["modules"]} == {2.0, 4.0}
    main(["peft", str(saved["dora"][0]), "--json"])
    assert {m["loader_factor"] for m in json.loads(capsys.readouterr().out)["modules"]} == {1.0}


def test_eva_adapter_made_by_peft(tmp_path):
    """A real EVA run (PEFT's initialize_lora_eva_weights): full-name pattern keys, float alphas."""
    from peft import initialize_lora_eva_weights
    from peft.tuners.lora.config import EvaConfig

    torch.manual_seed(1)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights="eva",
                          eva_config=EvaConfig(rho=2.0, tau=0.5, use_label_mask=False, adjust_scaling_factors=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(Model(), cfg)
        data = [torch.randn(64, D) @ torch.diag(torch.linspace(3, 0.01, D)) for _ in range(4)]
        initialize_lora_eva_weights(model, dataloader=data, forward_fn=lambda m, x: m(x),
                                    prepare_model_inputs_fn=None, prepare_layer_inputs_fn=None, show_progress_bar=False)
        model.save_pretrained(str(tmp_path))
        theirs = peft_modules(peft.PeftModel.from_pretrained(Model(), str(tmp_path)))
    saved_cfg = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert saved_cfg["rank_pattern"] and saved_cfg["init_lora_weights"] == "eva"
    assert ours(tmp_path) == theirs
    a = assess(read_adapter(tmp_path), "adam")
    assert a.label == "indeterminate" and "EVA" in a.caveats[0]


# -- PatternIndex is PEFT's get_pattern_key ------------------------------------------------

_parts = st.sampled_from(["q", "k_proj", "0", "12", "layers", "a-b", "mlp", "x", "qq", "self_attn", "é"])
_names = st.lists(_parts, min_size=1, max_size=5).map(".".join) | st.text(alphabet="ab.\n_-(", max_size=8)
_keys = st.one_of(
    _names,
    st.lists(_parts, min_size=1, max_size=4).map(".".join).map(lambda s: s.replace("_", ".")),  # dots as wildcards
    st.sampled_from([r"mlp\.\d", "q|k", r"layers\.\d+\.q", ".*", r"\d", "", "a.b", "(q)", "la.ers.0.q", "x$", "[qk]"]),
)


@settings(max_examples=400, deadline=None)
@given(keys=st.lists(_keys, max_size=8, unique=True), names=st.lists(_names, min_size=1, max_size=6))
def test_pattern_index_is_get_pattern_key(keys, names):
    from peft.utils.other import get_pattern_key

    keys = [k for k in keys if _compiles(k)]
    idx = PatternIndex(keys)
    for name in names:
        theirs = get_pattern_key(keys, name)
        mine = idx.first(name)
        assert (mine if mine is not None else name) == theirs or (mine is None and theirs not in keys), (keys, name)
        assert idx.matching(name) == [k for k in keys if re.match(rf"(.*\.)?({k})$", name)]


def _compiles(key: str) -> bool:
    try:
        re.compile(rf"(.*\.)?({key})$")
    except re.error:
        return False
    return True


def _eva_adapter(root: Path, layers: int, parts: list[str]) -> tuple[Path, list[str], dict[str, Any]]:
    rng = random.Random(0)
    names = [f"model.layers.{i}.{p}" for i in range(layers) for p in parts]
    ranks = {n: rng.randrange(4, 33) for n in names}
    cfg = {"peft_type": "LORA", "r": 16, "lora_alpha": 16, "init_lora_weights": "eva", "rank_pattern": ranks,
           "alpha_pattern": {n: float(r) for n, r in ranks.items()}}
    root.mkdir()
    (root / CONFIG_NAME).write_text(json.dumps(cfg))
    header = {}
    for n in names:
        header[f"base_model.model.{n}.lora_A.weight"] = {"dtype": "F32", "shape": [ranks[n], 64], "data_offsets": [0, 0]}
        header[f"base_model.model.{n}.lora_B.weight"] = {"dtype": "F32", "shape": [64, ranks[n]], "data_offsets": [0, 0]}
    raw = json.dumps(header).encode()
    (root / WEIGHTS_NAME).write_bytes(len(raw).to_bytes(8, "little") + raw)
    return root, names, cfg


def test_eva_sized_patterns_resolve_fast_and_like_peft(tmp_path):
    """896 full-name keys (Mixtral: 32 layers × 28 modules): PEFT's loop takes tens of seconds."""
    from peft.utils.other import get_pattern_key

    parts = [f"self_attn.{p}_proj" for p in "qkvo"] + [f"block_sparse_moe.experts.{e}.w{w}" for e in range(8) for w in (1, 2, 3)]
    path, names, cfg = _eva_adapter(tmp_path / "eva", 32, parts)
    t = time.perf_counter()
    report = read_adapter(path)
    seconds = time.perf_counter() - t
    assert len(report.modules) == 896 and not report.warnings and not report.mismatches
    assert seconds < 3.0, seconds  # 0.1 s here; PEFT's get_pattern_key loop: ~30 s on this machine
    got = {m.name: (m.r, m.lora_alpha) for m in report.modules}
    rp, ap = cfg["rank_pattern"], cfg["alpha_pattern"]
    compiled_r = [(k, re.compile(rf"(.*\.)?({k})$")) for k in rp]  # get_pattern_key's rule, compiled once
    for n in names:
        rk = next((k for k, rx in compiled_r if rx.match(n)), n)
        assert got[n][0] == rp.get(rk, cfg["r"])
    for n in random.Random(1).sample(names, 40):  # and PEFT's own function on a sample
        assert got[n] == (rp.get(get_pattern_key(rp.keys(), n), 16), ap.get(get_pattern_key(ap.keys(), n), 16))
