"""``rsstab peft`` against PEFT itself: save real adapters, reload them, compare every module."""

from __future__ import annotations

import json
import math
import re
import signal
import struct
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rsstab
from rsstab import peft_files as adapters
from rsstab.peft_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    TensorInfo,
    match_pattern,
    parse_config,
    read_safetensors_header,
)
from rsstab.cli import main
from rsstab.errors import RsstabError

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
safetensors = pytest.importorskip("safetensors")

nn = torch.nn


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.q = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))


class Tiny(nn.Module):
    """Embedding, two blocks of named linears, a head: 10 LoRA targets with nested names."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, d)
        self.layers = nn.ModuleList([Block(d) for _ in range(2)])
        self.head = nn.Linear(d, 3)


TARGETS = ["emb", "q", "v", "mlp.0", "mlp.2", "head"]

CASES: dict[str, dict[str, Any]] = {
    "lora": dict(r=4, lora_alpha=8),
    "rslora": dict(r=16, lora_alpha=4, use_rslora=True),
    "peft_defaults": dict(),
    "patterns": dict(
        r=4,
        lora_alpha=8,
        rank_pattern={"q": 6, "layers.1.mlp.0": 12, r"mlp\.\d": 3},
        alpha_pattern={"layers.0.q": 20, "head": 1.5, "emb": 3},
    ),
    "patterns_rslora": dict(
        r=4,
        lora_alpha=8,
        use_rslora=True,
        rank_pattern={"q": 6, "layers.1.mlp.0": 12, r"mlp\.\d": 3},
        alpha_pattern={"layers.0.q": 20, "head": 1.5, "emb": 3},
    ),
    # 'qq' and 'heads' are typos: they match nothing.
    "typo": dict(r=4, lora_alpha=8, rank_pattern={"qq": 3}, alpha_pattern={"heads": 2}),
    # Overlapping alpha keys, not in sorted order: save_pretrained sorts them, so PEFT reloads
    # layers.1.v with alpha 2 although it trained with alpha 16.
    "alpha_overlap": dict(r=4, lora_alpha=8, alpha_pattern={"v": 16, "layers.1.v": 2}),
    # The same with ranks: the reloaded config asks for r=5 where the weights have r=7.
    "rank_overlap": dict(r=4, lora_alpha=8, rank_pattern={"v": 7, "layers.1.v": 5}),
}


def _lora_layers(model: Any, adapter: str = "default") -> dict[str, tuple[int, float, float]]:
    """PEFT's own (r, alpha, scaling) per LoRA layer, with the 'base_model.model.' prefix removed."""
    out = {}
    for name, module in model.named_modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict) and adapter in scaling:
            out[name.removeprefix("base_model.model.")] = (
                module.r[adapter],
                module.lora_alpha[adapter],
                scaling[adapter],
            )
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each case saved with save_pretrained, plus the live model's per-layer values."""
    root = tmp_path_factory.mktemp("adapters")
    out = {}
    for case, kwargs in CASES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = peft.get_peft_model(Tiny(), peft.LoraConfig(target_modules=TARGETS, **kwargs))
        path = root / case
        model.save_pretrained(str(path))
        out[case] = (path, _lora_layers(model))
    # The defaults case: drop the scaling fields from the file so the reader must supply them.
    cfg_path = out["peft_defaults"][0] / CONFIG_NAME
    cfg = json.loads(cfg_path.read_text())
    for key in ("r", "lora_alpha", "use_rslora", "rank_pattern", "alpha_pattern"):
        cfg.pop(key)
    cfg_path.write_text(json.dumps(cfg))
    return out


def _reloaded(path: Path) -> dict[str, tuple[int, float, float]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.PeftModel.from_pretrained(Tiny(), str(path))
    return _lora_layers(model)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _cli_json(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    code, out, err = _cli(capsys, "peft", str(path), "--json", *extra)
    return code, json.loads(out), err


@pytest.mark.parametrize("case", ["lora", "rslora", "peft_defaults", "patterns", "patterns_rslora", "typo"])
def test_scaling_equals_peft_exactly(saved, capsys, case):
    path, live = saved[case]
    reloaded = _reloaded(path)
    assert reloaded == live  # no overlapping patterns: PEFT reloads what it trained
    code, report, _ = _cli_json(capsys, path)
    mods = {m["name"]: m for m in report["modules"]}
    assert set(mods) == set(reloaded) and len(mods) == 10
    for name, (r, alpha, scaling) in reloaded.items():
        m = mods[name]
        assert (m["r"], m["lora_alpha"], m["scaling"]) == (r, alpha, scaling), name
        assert m["r_weight"] == m["r_weight_b"] == r and m["r_mismatch"] is False
    assert report["use_rslora"] is CASES[case].get("use_rslora", False)
    assert report["schedule"] == ("alpha/sqrt(r)" if report["use_rslora"] else "alpha/r")


def test_named_adapter_in_subfolder(tmp_path, capsys):
    """save_pretrained puts a non-default adapter in a subfolder and strips its name from the keys."""
    cfg = peft.LoraConfig(target_modules=TARGETS, r=8, lora_alpha=3, use_rslora=True, rank_pattern={"head": 2})
    model = peft.get_peft_model(Tiny(), cfg, adapter_name="mine")
    model.save_pretrained(str(tmp_path))
    assert "adapters found in subfolders: mine" in _one_line_error(capsys, str(tmp_path))
    _, report, _ = _cli_json(capsys, tmp_path / "mine")
    got = {m["name"]: (m["r"], m["lora_alpha"], m["scaling"]) for m in report["modules"]}
    assert got == _lora_layers(model, "mine") and got["head"] == (2, 3, 3 / math.sqrt(2))


def test_patterns_actually_vary_the_scaling(saved, capsys):
    """Guard against a vacuous comparison: the pattern cases give several distinct scalings."""
    for case in ("patterns", "patterns_rslora"):
        _, report, _ = _cli_json(capsys, saved[case][0])
        assert len({m["scaling"] for m in report["modules"]}) >= 4
        assert {m["rank_pattern_key"] for m in report["modules"]} >= {"q", "layers.1.mlp.0", r"mlp\.\d"}
    _, a, _ = _cli_json(capsys, saved["patterns"][0])
    _, b, _ = _cli_json(capsys, saved["patterns_rslora"][0])
    for ma, mb in zip(a["modules"], b["modules"]):
        assert mb["scaling"] == pytest.approx(ma["scaling"] * math.sqrt(ma["r"]))


def test_missing_fields_take_peft_defaults(saved, capsys):
    _, report, _ = _cli_json(capsys, saved["peft_defaults"][0])
    assert report["defaults_used"] == ["r", "lora_alpha", "use_rslora"]
    assert {(m["r"], m["lora_alpha"]) for m in report["modules"]} == {
        (peft.LoraConfig().r, peft.LoraConfig().lora_alpha)
    }


def test_unmatched_pattern_warns(saved, capsys):
    _, report, err = _cli_json(capsys, saved["typo"][0])
    assert "rsstab: warning: rank_pattern key 'qq' matches no adapted module" in err
    assert "rsstab: warning: alpha_pattern key 'heads' matches no adapted module" in err
    assert len(report["notes"]) == 2
    _, clean, err_clean = _cli_json(capsys, saved["lora"][0])
    assert clean["notes"] == [] and err_clean == ""
    # A specific key and a general one both matching a module: reported, since only file order decides.
    _, overlap, _ = _cli_json(capsys, saved["patterns"][0])
    assert len(overlap["notes"]) == 1 and "'layers.1.mlp.0' matches rank_pattern keys" in overlap["notes"][0]


def test_overlapping_alpha_keys_follow_file_order_and_warn(saved, capsys):
    path, live = saved["alpha_overlap"]
    reloaded = _reloaded(path)
    # The PEFT pitfall itself: keys saved sorted, so the reloaded scaling differs from training.
    assert reloaded["layers.1.v"] != live["layers.1.v"]
    _, report, err = _cli_json(capsys, path)
    mods = {m["name"]: m for m in report["modules"]}
    for name, (r, alpha, scaling) in reloaded.items():
        assert (mods[name]["r"], mods[name]["lora_alpha"], mods[name]["scaling"]) == (r, alpha, scaling)
    assert "module 'layers.1.v' matches alpha_pattern keys ['layers.1.v', 'v']" in err


def test_rank_mismatch_is_flagged(saved, capsys):
    path, live = saved["rank_overlap"]
    with pytest.raises(RuntimeError, match="size mismatch"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft.PeftModel.from_pretrained(Tiny(), str(path))
    code, report, err = _cli_json(capsys, path, "--optimizer", "sgd")
    bad = [m for m in report["modules"] if m["r_mismatch"]]
    assert [(m["name"], m["r"], m["r_weight"]) for m in bad] == [("layers.1.v", 5, live["layers.1.v"][0])]
    assert code == 1 and "weights have rank 7" in err


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("case", ["lora", "rslora"])
def test_verdict_and_exit_code_follow_rsstab_check(saved, capsys, case, optimizer):
    code, report, _ = _cli_json(capsys, saved[case][0], "--optimizer", optimizer)
    expected = rsstab.check(report["schedule"], optimizer=optimizer).label
    assert {m["label"] for m in report["modules"]} == {expected} and report["label"] == expected
    assert code == (0 if expected == "rank-stabilized" else 1)
    if optimizer == "sgd":  # the paper's theorem: rsLoRA stable, LoRA collapses
        assert expected == ("rank-stabilized" if case == "rslora" else "collapse")


def test_text_table(saved, capsys):
    code, out, err = _cli(capsys, "peft", str(saved["patterns"][0]))
    lines = out.splitlines()
    assert "use_rslora=false" in lines[0] and "alpha/r" in lines[0]
    body = [ln for ln in lines if ln.startswith(("emb ", "head ", "layers."))]
    assert len(body) == 10
    head = next(ln for ln in body if ln.startswith("head "))
    assert "0.375" in head and "alpha_pattern['head']" in head  # 1.5 / 4


def test_bare_config_rows(saved, capsys):
    code, report, err = _cli_json(capsys, saved["patterns"][0] / CONFIG_NAME)
    assert report["source"] == "config"
    rows = {m["name"]: m for m in report["modules"]}
    cfg = json.loads((saved["patterns"][0] / CONFIG_NAME).read_text())  # keys as saved (sorted)
    assert set(cfg["rank_pattern"]) == set(CASES["patterns"]["rank_pattern"])
    keys = list(dict.fromkeys([*cfg["rank_pattern"], *cfg["alpha_pattern"]]))
    assert list(rows) == [*keys, "<default>"]
    live = saved["patterns"][1]
    for key, row in rows.items():
        if key == "<default>":
            assert (row["r"], row["lora_alpha"]) == (cfg["r"], cfg["lora_alpha"])
            continue
        r, alpha, _, _ = _peft_resolution(cfg, key)
        assert (row["r"], row["lora_alpha"], row["scaling"]) == (r, alpha, alpha / r)
        assert row["r_weight"] is None
        if key in live:  # a key that is also a real module name: the row is that module exactly
            assert (row["r"], row["lora_alpha"], row["scaling"]) == live[key]
    # 'layers.0.q' is an alpha key only, yet its rank comes from rank_pattern key 'q'.
    assert (rows["layers.0.q"]["r"], rows["layers.0.q"]["rank_pattern_key"]) == (6, "q")
    _, via_weights, _ = _cli_json(capsys, saved["patterns"][0] / WEIGHTS_NAME)
    assert via_weights["source"] == "weights" and len(via_weights["modules"]) == 10
    _, plain, _ = _cli_json(capsys, saved["rslora"][0] / CONFIG_NAME)
    assert [(m["name"], m["scaling"]) for m in plain["modules"]] == [("<default>", 4 / math.sqrt(16))]


def _peft_resolution(cfg: dict[str, Any], name: str) -> tuple[int, float, str, str]:
    """(r, alpha, rank key, alpha key) as PEFT's LoraModel._create_and_replace resolves them."""
    from peft.utils.other import get_pattern_key

    ranks, alphas = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    rkey, akey = get_pattern_key(list(ranks), name), get_pattern_key(list(alphas), name)
    return ranks.get(rkey, cfg.get("r", 8)), alphas.get(akey, cfg.get("lora_alpha", 8)), rkey, akey


def test_bare_config_row_takes_rank_and_alpha_from_both_dicts(tmp_path, capsys):
    # Review finding: row 'attn.q' used to show r 8 / scaling 16, ignoring rank key 'q'.
    cfg = {"peft_type": "LORA", "r": 8, "lora_alpha": 8, "rank_pattern": {"q": 64}, "alpha_pattern": {"attn.q": 128}}
    f = tmp_path / "pat.json"
    f.write_text(json.dumps(cfg))
    _, report, _ = _cli_json(capsys, f)
    rows = {m["name"]: m for m in report["modules"]}
    assert list(rows) == ["q", "attn.q", "<default>"]
    for name in ("q", "attn.q"):
        r, alpha, rkey, akey = _peft_resolution(cfg, name)
        row = rows[name]
        assert (row["r"], row["lora_alpha"], row["scaling"]) == (r, alpha, alpha / r)
        assert row["rank_pattern_key"] == (rkey if rkey in cfg["rank_pattern"] else None)
        assert row["alpha_pattern_key"] == (akey if akey in cfg["alpha_pattern"] else None)
    assert (rows["attn.q"]["r"], rows["attn.q"]["lora_alpha"], rows["attn.q"]["scaling"]) == (64, 128, 2.0)
    assert (rows["attn.q"]["rank_pattern_key"], rows["attn.q"]["alpha_pattern_key"]) == ("q", "attn.q")
    _, out, _ = _cli(capsys, "peft", str(f))
    assert "rank_pattern['q'], alpha_pattern['attn.q']" in out


def test_header_reader_agrees_with_safetensors(saved, tmp_path):
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import save_file

    files = [saved[c][0] / WEIGHTS_NAME for c in ("lora", "patterns")]
    extra = tmp_path / "x.safetensors"
    save_file(
        {"a": np.zeros((3, 0, 2), np.float16), "b": np.ones(5, np.int64), "c": np.zeros((), np.float32)},
        str(extra),
        metadata={"format": "np"},
    )
    for f in [*files, extra]:
        ours = read_safetensors_header(f)
        with safe_open(str(f), "np") as fh:
            theirs = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
            dtypes = {k: fh.get_slice(k).get_dtype() for k in fh.keys()}
        assert {k: v.shape for k, v in ours.items()} == theirs
        assert {k: v.dtype for k, v in ours.items()} == dtypes
    assert read_safetensors_header(extra)["c"] == TensorInfo("F32", ())


def _one_line_error(capsys, *argv: str) -> str:
    code, out, err = _cli(capsys, "peft", *argv)
    assert code == 2 and out == ""
    assert err.startswith("rsstab: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"r": "8"}', "r must be a positive integer"),
        ('{"r": 0}', "r must be a positive integer"),
        ('{"r": 2.5}', "r must be a positive integer"),
        ('{"r": true}', "r must be a positive integer"),
        ('{"r": null}', "r must be a positive integer"),
        ('{"lora_alpha": "x"}', "lora_alpha must be a finite number"),
        ('{"use_rslora": "yes"}', "use_rslora must be true or false"),
        ('{"rank_pattern": [1]}', "rank_pattern must be a JSON object"),
        ('{"rank_pattern": {"q": -1}}', "rank_pattern['q'] must be a positive integer"),
        ('{"alpha_pattern": {"q": "1"}}', "alpha_pattern['q'] must be a finite number"),
        ('{"rank_pattern": {"q(": 4}}', "is not a valid regular expression"),
        ('{"peft_type": "IA3"}', "peft_type is 'IA3'"),
        ("[1, 2]", "expected a JSON object"),
        ('{"r": 8,', "malformed JSON"),
        ("", "malformed JSON"),
        # Review findings: these used to end in a traceback.
        ('{"lora_alpha": 1' + "0" * 400 + "}", "lora_alpha must be a finite number"),
        ('{"alpha_pattern": {"q": -1' + "0" * 400 + "}}", "alpha_pattern['q'] must be a finite number"),
        ('{"use_rslora": true, "r": 1' + "0" * 400 + "}", "r must be at most 2**53"),
        ('{"rank_pattern": {"q": 9007199254740993}}', "rank_pattern['q'] must be at most 2**53"),
        ('{"r": 1' + "0" * 5000 + "}", "malformed JSON"),
        ('{"r": ' + "[" * 100_000 + "]" * 100_000 + "}", "malformed JSON"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path, capsys, config, message):
    f = tmp_path / CONFIG_NAME
    if config.startswith('{"'):  # a JSON object: a LoRA config, so the field under test decides
        config = '{"peft_type": "LORA", ' + config[1:]
    f.write_text(config)
    assert message in _one_line_error(capsys, str(f))


LORA_CONFIG = '{"peft_type": "LORA"}'


def test_bad_paths_exit_2(saved, tmp_path, capsys):
    assert "no such file or directory" in _one_line_error(capsys, str(tmp_path / "missing"))
    assert f"no {CONFIG_NAME}" in _one_line_error(capsys, str(tmp_path))
    (tmp_path / "named" / "other").mkdir(parents=True)
    (tmp_path / "named" / "other" / CONFIG_NAME).write_text("{}")
    assert "adapters found in subfolders: other" in _one_line_error(capsys, str(tmp_path / "named"))
    only_cfg = tmp_path / "only_cfg"
    only_cfg.mkdir()
    (only_cfg / CONFIG_NAME).write_text("{}")
    assert f"no {WEIGHTS_NAME}" in _one_line_error(capsys, str(only_cfg))
    for name, blob in [
        ("short", b"\x01\x02"),
        ("huge_len", struct.pack("<Q", 10**12) + b"{}"),
        ("not_json", struct.pack("<Q", 3) + b"abc"),
        ("bad_entry", struct.pack("<Q", 23) + b'{"x": {"shape": "no"}} '),
    ]:
        d = tmp_path / name
        d.mkdir()
        (d / CONFIG_NAME).write_text(LORA_CONFIG)
        (d / WEIGHTS_NAME).write_bytes(blob)
        assert "safetensors" in _one_line_error(capsys, str(d)), name
    for name, header in [  # review finding: these used to end in a traceback
        ("huge_int", b'{"x": {"dtype": "F32", "shape": [1' + b"0" * 5000 + b"]}}"),
        ("deep", b"[" * 100_000 + b"]" * 100_000),
    ]:
        d = tmp_path / name
        d.mkdir()
        (d / CONFIG_NAME).write_text(LORA_CONFIG)
        (d / WEIGHTS_NAME).write_bytes(struct.pack("<Q", len(header)) + header)
        assert "not a safetensors file (header is not JSON)" in _one_line_error(capsys, str(d)), name
    no_lora = tmp_path / "no_lora"
    no_lora.mkdir()
    (no_lora / CONFIG_NAME).write_text(LORA_CONFIG)
    (no_lora / WEIGHTS_NAME).write_bytes(struct.pack("<Q", 2) + b"{}")
    assert "no LoRA weights" in _one_line_error(capsys, str(no_lora))


def test_rank_cap_boundary():
    assert parse_config({"peft_type": "LORA", "r": 2**53, "use_rslora": True}).r == 2**53
    with pytest.raises(RsstabError, match=r"at most 2\*\*53"):
        parse_config({"peft_type": "LORA", "r": 2**53 + 1})


_EVIL_KEY = "(a+)+b"  # catastrophic backtracking on a run of a's not followed by b
_EVIL_NAME = "a" * 30 + "!"


def _evil_adapter(root: Path) -> Path:
    d = root / "evil"
    d.mkdir()
    (d / CONFIG_NAME).write_text(json.dumps({"peft_type": "LORA", "r": 4, "lora_alpha": 8, "rank_pattern": {_EVIL_KEY: 2}}))
    prefix = adapters.MODEL_PREFIX + _EVIL_NAME
    header = json.dumps(
        {
            f"{prefix}.lora_A.weight": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 0]},
            f"{prefix}.lora_B.weight": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 0]},
        }
    ).encode()
    (d / WEIGHTS_NAME).write_bytes(struct.pack("<Q", len(header)) + header)
    return d


def test_catastrophic_pattern_hits_the_time_limit(tmp_path, capsys, monkeypatch):
    # Review finding: this hung `rsstab peft` (re.match backtracks ~2**30 times).
    monkeypatch.setattr(adapters.patterns, "PATTERN_TIME_LIMIT", 0.2)
    before = signal.getsignal(signal.SIGALRM)
    err = _one_line_error(capsys, str(_evil_adapter(tmp_path)))
    assert "pattern key '(a+)+b'" in err and _EVIL_NAME in err and "0.2 s limit" in err
    # A bare config whose other key is such a name: matching the keys against each other hangs too.
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"peft_type": "LORA", "rank_pattern": {_EVIL_KEY: 2}, "alpha_pattern": {_EVIL_NAME: 3}}))
    assert "pattern key '(a+)+b'" in _one_line_error(capsys, str(bare))
    assert signal.getsignal(signal.SIGALRM) is before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    # The limit does not disturb ordinary adapters.
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"peft_type": "LORA", "rank_pattern": {_EVIL_KEY: 2, "q": 3}}))
    assert [m.r for m in adapters.read_adapter(ok).modules] == [2, 3, 8]


def test_pattern_matching_off_the_main_thread_runs_without_a_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(adapters.patterns, "PATTERN_TIME_LIMIT", 1e-9)  # would fire at once if armed
    f = tmp_path / "pat.json"
    f.write_text(json.dumps({"peft_type": "LORA", "rank_pattern": {"q": 64}, "alpha_pattern": {"attn.q": 128}}))
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(adapters.read_adapter(f)))
    t.start()
    t.join(60)
    rows = [(m.name, m.r, m.lora_alpha) for m in out[0].modules]
    assert rows == [("q", 64, 8), ("attn.q", 64, 128), ("<default>", 8, 8)]


def test_reader_imports_nothing_heavy(saved):
    code = (
        "import sys; from rsstab.cli import main; rc = main(['peft', sys.argv[1], '--optimizer', 'sgd']);"
        "heavy = [m for m in ('torch', 'peft', 'safetensors', 'transformers', 'numpy') if m in sys.modules];"
        "assert not heavy, heavy; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(saved["rslora"][0])], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


# -- PEFT's first-match rule, property-tested against PEFT's own function ---------------------

_COMPONENTS = ["q", "k", "v", "qq", "mlp", "0", "1", "layers", "attn"]
_names = st.lists(st.sampled_from(_COMPONENTS), min_size=1, max_size=4).map(".".join)
_keys = st.one_of(
    _names,
    st.sampled_from([r"mlp\.\d", r"q|k", r"layers\.\d\.v", r".*", r"\d", "a.tn", r"(q)"]),
)


@settings(max_examples=200, deadline=None)
@given(
    name=_names,
    pattern=st.dictionaries(_keys, st.integers(1, 64), max_size=5),
)
def test_match_pattern_is_peft_get_pattern_key(name, pattern):
    from peft.utils.other import get_pattern_key

    ours = match_pattern(pattern, name)
    theirs = pattern.get(get_pattern_key(pattern.keys(), name), -1)
    assert (pattern[ours] if ours is not None else -1) == theirs


def test_parse_config_keeps_file_order():
    cfg = parse_config(json.loads('{"peft_type": "LORA", "rank_pattern": {"v": 7, "layers.1.v": 5}}'))
    assert [k for k, _ in cfg.rank_pattern] == ["v", "layers.1.v"]
    with pytest.raises(RsstabError):
        parse_config({"peft_type": "LORA", "lora_alpha": float("inf")})
    assert re.fullmatch(r"alpha/(sqrt\(r\)|r)", cfg.schedule)


def test_stock_rslora_under_adamw_is_qualified_not_called_unstable(saved, capsys):
    """Issue 12: the Adam verdict is a fixed-learning-rate statement and names the η rule."""
    path = str(saved["rslora"][0])
    code, out, _ = _cli(capsys, "peft", path, "--optimizer", "adam")
    assert code == 1  # not rank-stabilized *at a fixed learning rate* …
    summary = next(ln for ln in out.splitlines() if "row(s); verdict" in ln)
    assert "blow-up at a fixed learning rate — rank-stabilized with η ∝ r^-1/2" in summary
    assert "verdict (fixed η)" in out.splitlines()[1]
    assert "learning-rate rule: η ∝ r^-1/2 keeps the update Θ(1)" in out
    code, report, _ = _cli_json(capsys, saved["rslora"][0], "--optimizer", "adam")
    assert report["lr"] == "fixed" and report["lr_exponent"] == -0.5
    assert report["headline"].startswith("blow-up at a fixed learning rate")
    # … and rank-stabilized for a user who scales η as r^-1/2
    code, out, _ = _cli(capsys, "peft", path, "--optimizer", "adam", "--lr-scaling", "-1/2")
    assert code == 0 and "verdict (η ∝ r^-1/2)" in out
    code, report, _ = _cli_json(capsys, saved["lora"][0], "--optimizer", "sgd")
    assert report["label"] == "collapse" and report["lr_exponent"] == 1.0
