"""``rsstab lint``: ruff-style findings over many adapters, stable codes, formats, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from rsstab.cli import main
from rsstab.lint import CODES, Finding, exit_code, format_findings
from rsstab.peft_files import CONFIG_NAME, WEIGHTS_NAME

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")

nn = torch.nn
ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<path>[^:]+):(?:(?P<line>\d+):)?(?P<module>[^:]+): (?P<code>RS\d{3}) (?P<message>.+)$")


class Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(12, 8)
        self.layers = nn.ModuleList(nn.ModuleDict({"q_proj": nn.Linear(8, 8), "v_proj": nn.Linear(8, 8)}) for _ in range(2))


ADAPTERS: dict[str, dict[str, Any]] = {
    "lora": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]),  # α/r: Adam's stable scaling
    "rslora": dict(r=16, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj"],
                   rank_pattern={"layers.1.v_proj": 4}),
    "typo": dict(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], rank_pattern={"q_prj": 4}),
    "gaussian": dict(r=8, lora_alpha=16, target_modules=["q_proj"], init_lora_weights="gaussian"),
    "pissa": dict(r=4, lora_alpha=8, target_modules=["q_proj"], init_lora_weights="pissa"),
    "dora": dict(r=8, lora_alpha=16, target_modules=["q_proj"], use_dora=True),
}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("lint")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, kw in ADAPTERS.items():
            peft.get_peft_model(Model(), peft.LoraConfig(**kw)).save_pretrained(str(base / name))
    # A config whose scaling fields are missing (PEFT defaults) and one PEFT would refuse.
    (base / "defaults.json").write_text(json.dumps({"peft_type": "LORA", "target_modules": ["q"]}))
    (base / "broken").mkdir()
    (base / "broken" / CONFIG_NAME).write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    return base


def _lint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, str]], str]:
    code = main(["lint", *argv])
    cap = capsys.readouterr()
    lines = cap.out.splitlines()
    parsed = [LINE.match(ln) for ln in lines]
    assert all(parsed), [ln for ln, m in zip(lines, parsed) if not m]
    return code, [m.groupdict() for m in parsed if m], cap.err


def _codes(findings: list[dict[str, str]], adapter: str) -> set[str]:
    return {f["code"] for f in findings if Path(f["path"]).parent.name == adapter or Path(f["path"]).stem == adapter}


def test_each_kind_of_adapter_gets_its_code(root, capsys):
    code, findings, err = _lint(capsys, *(str(root / n) for n in ADAPTERS), str(root / "defaults.json"))
    assert code == 1 and "6 adapter(s)" not in err and "7 adapter(s)" in err
    assert _codes(findings, "lora") == set()
    assert _codes(findings, "rslora") == {"RS301", "RS304"}  # α/√r under AdamW: lr rule; loader parity
    assert _codes(findings, "typo") == {"RS102"}
    assert _codes(findings, "gaussian") == {"RS301", "RS302"}
    assert _codes(findings, "pissa") == {"RS302"}  # no verdict claimed, so no RS301
    assert _codes(findings, "dora") == {"RS303"}
    assert _codes(findings, "defaults") == {"RS101"}  # α/r = 8/8 under Adam is stable
    by = {(Path(f["path"]).parent.name, f["code"]): f for f in findings}
    assert by[("typo", "RS102")]["module"] == "q_prj"
    assert "scale η as r^-0.5" in by[("rslora", "RS301")]["message"]
    assert all(f["path"].endswith(CONFIG_NAME) for f in findings if "defaults" not in f["path"])
    parity = [f for f in findings if f["code"] == "RS304"]
    assert sorted(f["message"].split(":")[0] for f in parity) == ["r=16", "r=4"]  # one line per distinct r
    assert any("√r = 4× too small" in f["message"] for f in parity)


def test_exit_codes_clean_findings_unreadable(root, capsys):
    assert _lint(capsys, str(root / "lora"))[0] == 0
    assert _lint(capsys, str(root / "typo"))[0] == 1
    code, findings, _ = _lint(capsys, str(root / "rslora"), "--optimizer", "sgd")  # stable in SGD; RS304 is info
    assert code == 0 and {f["code"] for f in findings} == {"RS304"}
    code, findings, _ = _lint(capsys, str(root / "broken"), str(root / "typo"), str(root / "nowhere"))
    assert code == 1  # unreadable input is a finding (exit 2 is for usage errors), the readable adapter is linted
    assert {f["code"] for f in findings} == {"RS001", "RS102"}
    assert any("no peft_type" in f["message"] for f in findings)
    assert _lint(capsys, str(root / "typo"), "--ignore", "RS102")[0] == 0


def test_folders_files_and_globs(root, capsys):
    _, by_folder, err = _lint(capsys, str(root))
    assert "7 adapter(s)" in err  # the 6 saved folders and broken/ (a folder yields folders, not loose .json)
    _, by_glob, _ = _lint(capsys, str(root / "*" / CONFIG_NAME))
    _, by_files, _ = _lint(capsys, *(str(root / n / WEIGHTS_NAME) for n in ADAPTERS), str(root / "broken" / CONFIG_NAME))
    key = lambda fs: sorted((f["code"], f["module"], Path(f["path"]).parent.name) for f in fs)  # noqa: E731
    assert key(by_folder) == key(by_glob) == key(by_files)
    code, findings, _ = _lint(capsys, str(root / "no-such-*"))
    assert code == 1 and findings[0]["message"] == "no file matches this pattern"


def test_json_and_github_formats(root, capsys):
    code = main(["lint", str(root / "typo"), str(root / "rslora"), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["adapters"] == 2 and out["optimizer"] == "adam"
    assert {f["code"] for f in out["findings"]} == {"RS102", "RS301", "RS304"}
    assert all(f["severity"] == CODES[f["code"]][0] for f in out["findings"])
    assert set(out["codes"]) == set(CODES)
    main(["lint", str(root / "typo"), str(root / "rslora"), "--format", "github"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(out["findings"])
    assert all(re.match(r"^::(error|warning|notice) file=[^,]+(,line=\d+)?,title=RS\d{3}::", ln) for ln in lines), lines
    assert any(ln.startswith("::notice ") and "title=RS304" in ln for ln in lines)


def test_github_escaping_and_exit_code_rules():
    f = Finding("a,b:c.json", "m", "RS201", "50% bad\nnext")
    assert format_findings([f], "github") == "::error file=a%2Cb%3Ac.json,title=RS201::m: 50%25 bad%0Anext"
    assert exit_code([]) == 0
    assert exit_code([Finding("p", "*", "RS304", "x")]) == 0
    assert exit_code([Finding("p", "*", "RS304", "x"), Finding("p", "-", "RS303", "y")]) == 1
    assert exit_code([Finding("p", "-", "RS001", "z"), Finding("p", "-", "RS303", "y")]) == 1
    assert exit_code([Finding("p", "-", "RS001", "z")]) == 1  # a finding, not a usage error


def test_bad_ignore_code_is_a_usage_error(root, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["lint", str(root / "lora"), "--ignore", "RS999"])
    assert exc.value.code == 2 and "unknown code or prefix 'RS999'" in capsys.readouterr().err


def test_every_code_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Lint adapters"):]
    for code, (severity, _) in CODES.items():
        row = re.search(rf"^\| `{code}` \| {severity} \|", section, re.M)
        assert row, f"{code} ({severity}) missing from the README's code table"


def test_pre_commit_hook_definition():
    yaml = pytest.importorskip("yaml")
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "rsstab-lint" and hook["entry"] == "rsstab lint" and hook["language"] == "python"
    files = re.compile(hook["files"])
    assert files.search("adapters/x/adapter_config.json") and files.search("adapter_model.safetensors")
    assert not files.search("config.json") and not files.search("my_adapter_config.json.bak")


def _varied_configs(root: Path, n: int = 42) -> None:
    """n configs of the shapes seen in the wild: patterns, floats, all-linear, EVA, inits, variants."""
    inits = [True, "gaussian", "pissa", "eva", "olora", "loftq", False, "corda"]
    for i in range(n):
        cfg: dict[str, Any] = {"peft_type": "LORA", "r": 2 ** (i % 7 + 2), "lora_alpha": [8, 16, 32.0, 1.5][i % 4],
                               "use_rslora": i % 3 == 0, "init_lora_weights": inits[i % len(inits)],
                               "target_modules": "all-linear" if i % 5 == 0 else ["q_proj", "v_proj"],
                               "layers_to_transform": [0, 1] if i % 6 == 0 else None}
        if i % 4 == 1:
            cfg["rank_pattern"] = {rf"layers\.{j}\.q_proj": 4 + j for j in range(i % 9)}
        if i % 7 == 2:
            cfg["rank_pattern"] = {f"model.layers.{j}.self_attn.{p}": 8 for j in range(20) for p in ("q_proj", "v_proj")}
        if i % 8 == 3:
            cfg["use_dora"] = True
        if i == 41:
            del cfg["r"]
        d = root / f"cfg{i:02d}"
        d.mkdir()
        (d / CONFIG_NAME).write_text(json.dumps(cfg))


def test_42_configs_in_seconds(tmp_path):
    _varied_configs(tmp_path)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rsstab.cli", "lint", str(tmp_path), "--format", "json"],
                          capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["adapters"] == 42
    assert {f["code"] for f in out["findings"]} >= {"RS101", "RS104", "RS301", "RS302", "RS303", "RS304"}
    assert seconds < 30, seconds  # a whole process, sympy import included: ~2 s on an idle machine


def test_lint_imports_neither_torch_nor_peft(root):
    code = ("import sys; from rsstab.cli import main; rc = main(['lint', sys.argv[1]]);"
            "heavy = [m for m in ('torch', 'peft', 'safetensors', 'transformers', 'numpy') if m in sys.modules];"
            "assert not heavy, heavy; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # the broken config in the folder: RS001, a finding
    light = ("import sys, rsstab.lint, rsstab.peft_files.hypotheses, rsstab.peft_files.discover;"
             "print([m for m in ('sympy', 'torch') if m in sys.modules])")
    assert subprocess.run([sys.executable, "-c", light], capture_output=True, text=True).stdout.strip() == "[]"
