"""``rsstab lint`` as ruff users expect it (issue 27): code prefixes, --exit-zero, --explain,
[tool.rsstab.lint], unreadable adapters as findings, line numbers, --lr-scaling, folders without
weights, convolutions and malformed factors, the README's pre-commit snippet, the JSON envelope.

Every adapter here is written by the test itself (a JSON config and a hand-made safetensors
header), so these tests need neither torch nor PEFT.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rsstab.cli import main
from rsstab.lint import CODES, RULES
from rsstab.peft_files import CONFIG_NAME, MODEL_PREFIX, WEIGHTS_NAME

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(?P<path>[^:]+):(?:(?P<line>\d+):)?(?P<module>[^:]+): (?P<code>RS\d{3}) (?P<message>.+)$")

STOCK_RSLORA = {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "use_rslora": True,
                "target_modules": ["q_proj", "v_proj"], "init_lora_weights": True}
PLAIN_LORA = {**STOCK_RSLORA, "use_rslora": False}


def _safetensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    header, offset = {}, 0
    for key, shape in shapes.items():
        size = 4 * math.prod(shape)
        header[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def _linear(r: int, names: tuple[str, ...] = ("layers.0.q_proj", "layers.0.v_proj")) -> dict[str, tuple[int, ...]]:
    out = {}
    for n in names:
        out[f"{MODEL_PREFIX}{n}.lora_A.weight"] = (r, 16)
        out[f"{MODEL_PREFIX}{n}.lora_B.weight"] = (16, r)
    return out


def adapter(folder: Path, config: dict[str, Any] | str, shapes: dict[str, tuple[int, ...]] | None = None) -> Path:
    """An adapter folder: the config (indented, one key per line, as save_pretrained writes it)
    and, unless ``shapes`` is None, adapter_model.safetensors with those tensors."""
    folder.mkdir(parents=True, exist_ok=True)
    text = config if isinstance(config, str) else json.dumps(config, indent=2)
    (folder / CONFIG_NAME).write_text(text)
    if shapes is not None:
        _safetensors(folder / WEIGHTS_NAME, shapes)
    return folder


def lint(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, str]], str, str]:
    """Run ``rsstab lint`` as the command line does: exit code, parsed findings, stdout, stderr."""
    try:
        code = main(["lint", *argv])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    cap = capsys.readouterr()
    parsed = []
    if "--format" not in argv and "--explain" not in argv:
        for ln in cap.out.splitlines():
            m = LINE.match(ln)
            assert m, ln
            parsed.append(m.groupdict())
    return code, parsed, cap.out, cap.err


def codes(findings: list[dict[str, str]]) -> set[str]:
    return {f["code"] for f in findings}


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and "error: " in err and "Traceback" not in err, err
    return err


@pytest.fixture(autouse=True)
def _no_settings_from_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder, so no pyproject.toml above the test's own is found."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


# --------------------------------------------------------------------------- --select / --ignore / --exit-zero


def test_select_and_ignore_take_code_prefixes(tmp_path, capsys):
    a = adapter(tmp_path / "a", {**STOCK_RSLORA, "rank_pattern": {"q_prj": 4}}, _linear(16))
    code, f, _, _ = lint(capsys, str(a))
    assert code == 1 and codes(f) == {"RS102", "RS301", "RS304"}
    assert codes(lint(capsys, str(a), "--select", "RS3")[1]) == {"RS301", "RS304"}
    assert codes(lint(capsys, str(a), "--ignore", "RS3")[1]) == {"RS102"}
    assert codes(lint(capsys, str(a), "--select", "rs3", "--ignore", "RS304")[1]) == {"RS301"}
    assert codes(lint(capsys, str(a), "--ignore", "RS3", "--select", "RS301")[1]) == {"RS301"}  # longest prefix wins
    assert codes(lint(capsys, str(a), "--select", "RS1,RS304")[1]) == {"RS102", "RS304"}
    assert codes(lint(capsys, str(a), "--ignore", "ALL")[1]) == set()
    # RS001 is never filtered out: an unreadable path cannot be silenced
    code, f, _, _ = lint(capsys, str(a), str(tmp_path / "nowhere"), "--select", "RS3", "--ignore", "RS0")
    assert code == 1 and codes(f) == {"RS001", "RS301", "RS304"}
    code, _, out, err = lint(capsys, str(a), "--select", "RS9")
    assert "unknown code or prefix 'RS9'" in one_line_error(code, out, err)


def test_exit_zero(tmp_path, capsys):
    a = adapter(tmp_path / "a", STOCK_RSLORA, _linear(16))
    code, f, _, err = lint(capsys, str(a), "--exit-zero")
    assert code == 0 and "RS301" in codes(f) and "1 finding(s)" in err
    code, _, out, err = lint(capsys, str(a), "--exit-zero", "--optimizer", "lion")
    one_line_error(code, out, err)  # usage errors still exit 2


def test_explain_every_code(capsys):
    assert set(RULES) == set(CODES)
    for c, (severity, meaning) in CODES.items():
        code, _, out, err = lint(capsys, "--explain", c.lower())
        assert code == 0 and err == ""
        first = out.splitlines()[0]
        assert first == f"{c} {RULES[c].name} ({severity}): {meaning}"
        for part in ("What it checks: ", "Why: ", "How to fix: "):
            assert re.search(rf"^{part}\S", out, re.M), (c, part)
    code, _, out, err = lint(capsys, "--explain", "RS999")
    assert "unknown code 'RS999'" in one_line_error(code, out, err)
    code, _, out, err = lint(capsys, "--explain", "RS301", "some/path")
    one_line_error(code, out, err)
    code, _, out, err = lint(capsys)  # neither paths nor --explain
    assert "no PATH given" in one_line_error(code, out, err)


# --------------------------------------------------------------------------- [tool.rsstab.lint]


def _project(tmp_path: Path, table: str) -> tuple[Path, Path]:
    """project/pyproject.toml with ``table``; project/sub/pyproject.toml without one (skipped, as
    ruff skips a pyproject.toml without [tool.ruff]); returns (project/sub/deeper, an adapter)."""
    project = tmp_path / "project"
    (project / "sub" / "deeper").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.rsstab.lint]\n' + table)
    (project / "sub" / "pyproject.toml").write_text('[project]\nname = "sub"\n')
    a = adapter(tmp_path / "a", {**STOCK_RSLORA, "rank_pattern": {"q_prj": 4}}, _linear(16))
    return project / "sub" / "deeper", a


def test_pyproject_settings_and_flags_override(tmp_path, capsys, monkeypatch):
    cwd, a = _project(tmp_path, 'ignore = ["RS1"]\nlr-scaling = "-1/2"\noptimizer = "adamw"\n')
    monkeypatch.chdir(cwd)
    code, f, _, err = lint(capsys, str(a))
    assert code == 0 and codes(f) == {"RS304"}  # RS102 ignored, RS301 silenced by η ∝ r^-1/2
    assert f"settings: {tmp_path / 'project' / 'pyproject.toml'}" in err
    assert codes(lint(capsys, str(a), "--lr-scaling", "0")[1]) == {"RS301", "RS304"}  # the flag overrides
    assert codes(lint(capsys, str(a), "--ignore", "RS304")[1]) == {"RS102"}  # replaces the key's ignore
    assert codes(lint(capsys, str(a), "--isolated")[1]) == {"RS102", "RS301", "RS304"}  # no settings read
    code, _, out, _ = lint(capsys, str(a), "--optimizer", "sgd", "--format", "json")
    assert json.loads(out)["optimizer"] == "sgd"


@pytest.mark.parametrize(("table", "message"), [
    ('select = ["RS9"]\n', "select: unknown code or prefix 'RS9'"),
    ('ignore = "RS3"\n', "ignore must be a list of codes"),
    ('optimizer = "lion"\n', "optimizer must be one of sgd, adam, adamw"),
    ('lr-scaling = "fast"\n', "lr-scaling: lr_scaling must be a number"),
    ('lr-scaling = true\n', "lr-scaling must be a number"),
    ('format = "xml"\n', "format must be one of text, json, github"),
    ('lr_scaling = -0.5\n', "unknown key 'lr_scaling' (did you mean 'lr-scaling'?)"),
    ('select = [\n', "not valid TOML"),
])
def test_bad_setting_is_a_one_line_error(tmp_path, capsys, monkeypatch, table, message):
    cwd, a = _project(tmp_path, table)
    monkeypatch.chdir(cwd)
    code, _, out, err = lint(capsys, str(a))
    err = one_line_error(code, out, err)
    assert message in err and "pyproject.toml" in err, err


def test_without_a_toml_reader_says_so_in_one_line(tmp_path):
    """Python 3.10 without tomli: tomllib and tomli made unimportable."""
    cwd, a = _project(tmp_path, 'ignore = ["RS"]\n')
    script = ("import sys; sys.modules['tomllib'] = None; sys.modules['tomli'] = None\n"
              "from rsstab.cli import main; sys.exit(main(['lint', sys.argv[1]]))")
    proc = subprocess.run([sys.executable, "-c", script, str(a)], cwd=cwd, capture_output=True, text=True, timeout=300)
    warnings = [ln for ln in proc.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and "tomli" in warnings[0] and "[tool.rsstab.lint]" in warnings[0], proc.stderr
    assert proc.returncode == 1 and "RS301" in proc.stdout  # the defaults: nothing ignored
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- unreadable adapters, paths, lines


def test_unreadable_or_non_lora_adapters_among_many_are_findings(tmp_path, capsys):
    good = adapter(tmp_path / "good", STOCK_RSLORA, _linear(16))
    adapter(tmp_path / "ia3", {"peft_type": "IA3"}, _linear(16))
    adapter(tmp_path / "mlx", {"fine_tune_type": "lora", "lora_parameters": {"scale": 20.0}}, _linear(16))
    adapter(tmp_path / "broken", '{\n  "peft_type": "LORA",\n  "r": 8,,\n}', _linear(8))
    bad_weights = adapter(tmp_path / "bad_weights", PLAIN_LORA)
    (bad_weights / WEIGHTS_NAME).write_bytes(b"\x01\x02")
    code, f, _, err = lint(capsys, str(tmp_path))
    assert code == 1 and "5 adapter(s)" in err  # not 2: exit 2 is for usage errors only
    by = {Path(x["path"]).parent.name: x for x in f if x["code"] == "RS001"}
    assert set(by) == {"ia3", "mlx", "broken", "bad_weights"}
    assert "peft_type is 'IA3'" in by["ia3"]["message"] and "mlx-lm" in by["mlx"]["message"]
    assert by["broken"]["line"] == "3"  # the JSON error's line
    assert Path(by["bad_weights"]["path"]).name == WEIGHTS_NAME  # the file at fault
    assert {x["code"] for x in f if Path(x["path"]).parent.name == "good"} == {"RS301", "RS304"}  # still linted
    assert str(good) in {str(Path(x["path"]).parent) for x in f}


def test_a_finding_does_not_repeat_its_path(tmp_path, capsys):
    a = adapter(tmp_path / "x", {"r": 8}, _linear(8))
    b = adapter(tmp_path / "y", PLAIN_LORA)
    (b / WEIGHTS_NAME).write_bytes(b"\x01\x02")
    code, f, out, _ = lint(capsys, str(a), str(b), str(tmp_path / "missing.json"))
    assert code == 1 and [x["code"] for x in f] == ["RS001", "RS001", "RS001"]
    for x in f:
        assert x["path"] not in x["message"] and str(tmp_path) not in x["message"], x
    by = {Path(x["path"]).parent.name or x["path"]: x["message"] for x in f}
    assert by["x"] == "no peft_type: not a PEFT adapter config (PEFT refuses to load it too)"
    assert by["y"] == "not a safetensors file (shorter than 8 bytes)"
    code, _, out, _ = lint(capsys, str(a), "--format", "github")
    assert out.startswith("::error file=") and "title=RS001::no peft_type" in out
    assert "::-:" not in out and "-: " not in out  # module '-' does not leak into the annotation


def test_findings_give_the_line_of_their_key(tmp_path, capsys):
    cfg = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "use_rslora": True, "init_lora_weights": "gaussian",
           "use_dora": True, "rank_pattern": {"layers.0.v_proj": 8, "q_prj": 4}, "target_modules": ["q_proj"]}
    a = adapter(tmp_path / "a", cfg, _linear(8))
    text = (a / CONFIG_NAME).read_text().splitlines()

    def line_of(needle: str) -> str:
        return str(next(i for i, ln in enumerate(text, 1) if needle in ln))

    code, f, _, _ = lint(capsys, str(a))
    by = {x["code"]: x for x in f}
    assert by["RS102"]["line"] == line_of('"q_prj"')
    assert by["RS301"]["line"] == line_of('"use_rslora"') == by["RS304"]["line"]
    assert by["RS302"]["line"] == line_of('"init_lora_weights"')
    assert by["RS303"]["line"] == line_of('"use_dora"')
    assert all(x["path"] == str(a / CONFIG_NAME) for x in f)
    _, _, out, _ = lint(capsys, str(a), "--format", "github")
    assert f"file={a / CONFIG_NAME},line={line_of('q_prj')},title=RS102::q_prj: " in out
    _, _, out, _ = lint(capsys, str(a), "--format", "json")
    assert {x["code"]: x["line"] for x in json.loads(out)["findings"]}["RS102"] == int(line_of('"q_prj"'))
    # a mismatched rank points at the key that sets it
    b = adapter(tmp_path / "b", {**PLAIN_LORA, "r": 8, "rank_pattern": {"q_proj": 4}}, _linear(8))
    _, f, _, _ = lint(capsys, str(b))
    text = (b / CONFIG_NAME).read_text().splitlines()
    (mismatch,) = [x for x in f if x["code"] == "RS201"]
    assert mismatch["line"] == line_of('"q_proj": 4')


# --------------------------------------------------------------------------- --lr-scaling


def test_lr_scaling_silences_rs301_for_stock_rslora_under_adamw(tmp_path, capsys):
    a = adapter(tmp_path / "rslora", STOCK_RSLORA, _linear(16))
    code, f, _, _ = lint(capsys, str(a))  # the pre-commit hook's default run
    assert code == 1 and codes(f) == {"RS301", "RS304"}
    (rs301,) = [x for x in f if x["code"] == "RS301"]
    assert "scale η as r^-0.5 (then --lr-scaling -1/2 says so)" in rs301["message"]
    code, f, _, _ = lint(capsys, str(a), "--lr-scaling", "-1/2")  # following that advice
    assert code == 0 and codes(f) == {"RS304"}  # RS304 is info
    assert lint(capsys, str(a), "--lr-scaling=-0.5")[0] == 0
    code, f, _, _ = lint(capsys, str(a), "--lr-scaling", "-1")  # too much: collapse
    (rs301,) = [x for x in f if x["code"] == "RS301"]
    assert code == 1 and "under adam with η ∝ r^-1: collapse" in rs301["message"]
    # the same verdict as `rsstab check --lr-scaling` (one implementation)
    for p in ("-1/2", "-1", "0"):
        assert main(["check", "alpha/sqrt(r)", "--optimizer", "adamw", "--lr-scaling", p, "--json"]) in (0, 1)
        label = json.loads(capsys.readouterr().out)["label"]
        _, f, _, _ = lint(capsys, str(a), "--lr-scaling", p)
        assert ("RS301" not in codes(f)) == (label == "rank-stabilized"), p
    code, _, out, err = lint(capsys, str(a), "--lr-scaling", "fast")
    assert "lr_scaling must be a number" in one_line_error(code, out, err) and "--lr-scaling" in err


# --------------------------------------------------------------------------- a folder without weights


def test_peft_and_lint_agree_on_a_folder_without_weights(tmp_path, capsys):
    for legacy in (None, "adapter_model.bin"):
        d = adapter(tmp_path / f"only_config_{legacy}", {**PLAIN_LORA, "rank_pattern": {"q_proj": 4}})
        if legacy:
            (d / legacy).write_bytes(b"pickle")
        code = main(["peft", str(d)])
        cap = capsys.readouterr()
        err = one_line_error(code, cap.out, cap.err)
        why = f"no {WEIGHTS_NAME} in this folder"
        assert why in err and f"pass {d / CONFIG_NAME} to check the config alone" in err
        code, f, _, _ = lint(capsys, str(d))
        (rs204,) = [x for x in f if x["code"] == "RS204"]
        assert code == 1 and rs204["message"].startswith(why) and "the config was checked alone" in rs204["message"]
        assert err.split(f"{d}: ")[1].split(";")[0] == rs204["message"].split(";")[0]  # one message, shared
        assert "RS104" in codes(f)  # the config's own findings are still reported
        assert ("pickle" in rs204["message"]) == bool(legacy)
    # the config file itself is a bare config, for both commands
    cfg = tmp_path / "only_config_None" / CONFIG_NAME
    assert main(["peft", str(cfg)]) == 0 and capsys.readouterr().out
    assert "RS204" not in codes(lint(capsys, str(cfg))[1])


# --------------------------------------------------------------------------- convolutions, malformed factors


def test_conv2d_is_not_labelled_linear_and_malformed_factors_are_flagged(tmp_path, capsys):
    conv = adapter(tmp_path / "conv", {**PLAIN_LORA, "target_modules": ["conv"]}, {
        f"{MODEL_PREFIX}conv.lora_A.weight": (16, 3, 3, 3), f"{MODEL_PREFIX}conv.lora_B.weight": (8, 16, 1, 1),
        f"{MODEL_PREFIX}fc.lora_A.weight": (16, 32), f"{MODEL_PREFIX}fc.lora_B.weight": (10, 16)})
    assert main(["peft", str(conv), "--json"]) == 0
    kinds = {m["name"]: m["kind"] for m in json.loads(capsys.readouterr().out)["modules"]}
    assert kinds == {"conv": "conv2d", "fc": "linear"}
    assert lint(capsys, str(conv))[:2] == (0, [])
    cases = {
        "a3d": {"lora_A.weight": (16, 32, 2), "lora_B.weight": (10, 16)},  # a 3-D lora_A beside a 2-D lora_B
        "a1d": {"lora_A.weight": (16,), "lora_B.weight": (10, 16)},
        "kernel": {"lora_A.weight": (16, 3, 3, 3), "lora_B.weight": (8, 16, 3, 3)},  # B is no 1×1 kernel
        "no_b": {"lora_A.weight": (16, 32)},
        "emb3d": {"lora_embedding_A": (16, 100, 2), "lora_embedding_B": (8, 16)},
    }
    for name, factors in cases.items():
        d = adapter(tmp_path / name, PLAIN_LORA, {f"{MODEL_PREFIX}m.{k}": s for k, s in factors.items()})
        code, f, _, _ = lint(capsys, str(d))
        assert code == 1 and codes(f) == {"RS205"}, (name, f)
        assert f[0]["module"] == "m" and "PEFT" in f[0]["message"]
        code = main(["peft", str(d)])
        cap = capsys.readouterr()
        assert code == 1 and "rsstab: warning: module 'm': " in cap.err, name
        if name in ("a3d", "a1d"):
            (row,) = [ln.split() for ln in cap.out.splitlines() if ln.startswith("m ")]
            assert row[:2] == ["m", "malformed"]  # the kind column
    # a grouped Conv2d (groups=2): PEFT saves lora_B with r / groups input channels, no rank mismatch
    d = adapter(tmp_path / "grouped", PLAIN_LORA, {f"{MODEL_PREFIX}m.lora_A.weight": (16, 4, 3, 3),
                                                   f"{MODEL_PREFIX}m.lora_B.weight": (8, 8, 1, 1)})
    assert lint(capsys, str(d))[:2] == (0, [])
    d = adapter(tmp_path / "grouped_bad", PLAIN_LORA, {f"{MODEL_PREFIX}m.lora_A.weight": (16, 4, 3, 3),
                                                       f"{MODEL_PREFIX}m.lora_B.weight": (8, 5, 1, 1)})
    assert codes(lint(capsys, str(d))[1]) == {"RS201"}
    # a Conv1d adapter (3-D A and B, PEFT's own layout) is not malformed
    d = adapter(tmp_path / "conv1d", PLAIN_LORA, {f"{MODEL_PREFIX}m.lora_A.weight": (16, 4, 3),
                                                  f"{MODEL_PREFIX}m.lora_B.weight": (8, 16, 1)})
    assert lint(capsys, str(d))[:2] == (0, [])


# --------------------------------------------------------------------------- JSON envelope, pre-commit


def test_json_starts_with_schema_version_and_command(tmp_path, capsys):
    from rsstab.schema import SCHEMA_VERSION

    a = adapter(tmp_path / "a", STOCK_RSLORA, _linear(16))
    code, _, out, _ = lint(capsys, str(a), "--format", "json")
    obj = json.loads(out)
    assert list(obj)[:2] == ["schema_version", "command"]
    assert obj["schema_version"] == SCHEMA_VERSION and obj["command"] == "lint" and code == 1


def _readme_pre_commit() -> dict[str, Any]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Lint adapters"):readme.index("### Guard your own adapters")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "one pre-commit snippet in the lint section"
    return {"text": blocks[0]}


def test_readme_pre_commit_snippet_works_when_pasted(tmp_path):
    yaml = pytest.importorskip("yaml")
    text = _readme_pre_commit()["text"]
    assert "<" not in text, "no placeholders such as <tag> or <owner>: it must work as pasted"
    config = yaml.safe_load(text)
    (repo,) = config["repos"]
    (hook,) = repo["hooks"]
    assert hook["id"] == "rsstab-lint"
    if repo["repo"] != "local":  # a remote hook pins a revision that exists
        tags = subprocess.run(["git", "tag"], cwd=ROOT, capture_output=True, text=True).stdout.split()
        assert repo["rev"] in tags
        return
    (defined,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["language"] in ("system", "python") and hook["entry"] == defined["entry"]
    assert hook["files"] == defined["files"] and hook["require_serial"] is True
    # What pre-commit runs: the entry, split as a shell would, with the staged files matching `files`.
    good = adapter(tmp_path / "adapters" / "good", PLAIN_LORA, _linear(16))
    staged = [str(good / CONFIG_NAME), str(good / WEIGHTS_NAME), str(tmp_path / "README.md")]
    files = [f for f in staged if re.search(hook["files"], f)]
    assert len(files) == 2
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([*shlex.split(hook["entry"]), *files], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rslora = adapter(tmp_path / "adapters" / "rslora", STOCK_RSLORA, _linear(16))
    proc = subprocess.run([*shlex.split(hook["entry"]), str(rslora / CONFIG_NAME)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "RS301" in proc.stdout  # the hook fails a commit with findings
