"""``rsstab schema``: the JSON Schema of every command's ``--json`` output, and every command's
output on a fixed set of representative inputs validated against it (issue 27)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rsstab.cli import main
from rsstab.schema import COMMON_KEYS, SCHEMA_COMMANDS, json_schema

jsonschema = pytest.importorskip("jsonschema")

from test_lint_ruff import STOCK_RSLORA, _linear, adapter  # noqa: E402  (the tests' adapter folders)

TINY = ["--ranks", "4,8", "--steps", "2", "--seeds", "2", "--width", "8", "--depth", "1"]
README = Path(__file__).resolve().parents[2] / "README.md"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``rsstab ARGV`` as the command line runs it: exit code, stdout, stderr."""
    code = main(list(argv))
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def validator(command: str | None) -> Any:
    return jsonschema.Draft202012Validator(json_schema(command))


def errors(document: Any, command: str | None) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:300]}" for e in validator(command).iter_errors(document)]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("schema_adapters")
    return {
        "rslora": adapter(root / "rslora", STOCK_RSLORA, _linear(16)),
        "mismatch": adapter(root / "mismatch", {**STOCK_RSLORA, "use_rslora": False}, _linear(8)),
        "gaussian": adapter(root / "gaussian", {**STOCK_RSLORA, "init_lora_weights": "gaussian"}, _linear(16)),
        "bare": adapter(root / "bare", {**STOCK_RSLORA, "rank_pattern": {"v_proj": 4}}, None) / "adapter_config.json",
        "lint": root,
    }


# --------------------------------------------------------------------------- the schema itself


@pytest.mark.parametrize("command", [None, *SCHEMA_COMMANDS])
def test_the_schema_is_a_valid_draft_2020_12_schema(command: str | None) -> None:
    s = json_schema(command)
    jsonschema.Draft202012Validator.check_schema(s)
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("argv, command", [(["schema"], None), (["schema", "simulate"], "simulate"),
                                           (["schema", "lint"], "lint")])
def test_the_command_prints_the_librarys_schema(capsys, argv: list[str], command: str | None) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 0 and err == ""
    assert json.loads(out) == json_schema(command)


def test_a_command_without_json_output_is_a_one_line_error() -> None:
    p = subprocess.run([sys.executable, "-m", "rsstab.cli", "schema", "derive"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and p.stdout == "" and len(p.stderr.strip().splitlines()) == 1
    assert "no JSON output for 'derive'" in p.stderr and "Traceback" not in p.stderr


def test_the_commands_list_of_the_help_is_the_librarys() -> None:
    from rsstab.commands import schema as command

    assert command.SCHEMA_COMMANDS == SCHEMA_COMMANDS


def test_the_schema_is_real_not_empty() -> None:
    """Required keys, types and enums that a wrong document would break (see the negative tests)."""
    s = json_schema()["$defs"]
    for name in ("simulate", "transfer", "peft", "lint"):
        assert s[name]["additionalProperties"] is False and s[name]["required"], name
    one, several = s["check"]["oneOf"]
    assert set(COMMON_KEYS) <= set(one["required"]) and "other_regime" in one["required"]
    assert several["required"] == [*COMMON_KEYS, "schedules"]
    assert s["label"]["enum"] == ["rank-stabilized", "collapse", "blow-up", "indeterminate"]
    assert s["optimizer"]["enum"] == ["sgd", "adam"]


# --------------------------------------------------------------------------- every command's output validates

#: (name, argv) on inputs that reach each shape of output: one schedule and several; Adam's ε, a
#: width with a numeric η, a parametric schedule, the hyperparameter tuple, --simulate; simulate
#: under SGD and Adam with an η in r; transfer with and without ε. Cheap: tiny simulation grids.
CASES = [
    ("check", ["check", "alpha/sqrt(r)", "--json"]),
    ("check-adam-eps-width", ["check", "alpha/sqrt(r)", "--optimizer", "adamw", "--eps", "1e-8", "--grad-scale", "1",
                              "--width", "64", "--lr", "1e-3", "--json"]),
    ("check-parametric", ["check", "alpha/r**beta", "--json"]),
    ("check-tuple", ["check", "alpha/sqrt(r)", "--lr", "eta/sqrt(r)", "--lr-ratio", "r", "--json"]),
    ("check-lr-scaling", ["check", "alpha/r", "--lr-scaling", "1", "--json"]),
    ("check-several", ["check", "alpha/sqrt(r)", "alpha/r", "r**(-0.75)", "--json"]),
    ("check-several-same-label", ["check", "alpha/sqrt(r)", "2/sqrt(r)", "--json"]),
    ("check-simulate", ["check", "alpha/r", "--simulate", "--json"]),
    ("simulate", ["simulate", "alpha/sqrt(r)", *TINY, "--json"]),
    ("simulate-adam-eps", ["simulate", "alpha/r", "--optimizer", "adam", "--eps", "1e-6", *TINY, "--json"]),
    ("simulate-lr-in-r", ["simulate", "alpha/sqrt(r)", "--lr", "1e-5/sqrt(r)", "--lr-ratio", "2", *TINY,
                          "--share-data", "--json"]),
    ("transfer", ["transfer", "alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "2e-4", "--json"]),
    ("transfer-eps", ["transfer", "alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "2e-4",
                      "--optimizer", "adam", "--eps", "1e-8", "--grad-scale", "1", "--json"]),
    ("transfer-log", ["transfer", "log(r)/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "1", "--json"]),
]


def _output(capsys, name: str, argv: list[str], adapters: dict[str, Path]) -> tuple[int, Any]:
    argv = [str(adapters[a[1:]]) if a.startswith("@") else a for a in argv]
    code, out, err = run(capsys, *argv)
    assert code in (0, 1), (name, err)
    return code, json.loads(out)


PEFT_LINT = [
    ("peft-rslora", ["peft", "@rslora", "--json"]),
    ("peft-sgd-lr-scaling", ["peft", "@rslora", "--optimizer", "sgd", "--lr-scaling", "-1/2", "--json"]),
    ("peft-mismatch", ["peft", "@mismatch", "--json"]),
    ("peft-gaussian", ["peft", "@gaussian", "--json"]),
    ("peft-bare-config", ["peft", "@bare", "--json"]),
    ("lint", ["lint", "@lint", "--format", "json", "--isolated"]),
    ("lint-clean", ["lint", "@rslora", "--format", "json", "--isolated", "--lr-scaling", "-1/2", "--select", "RS301"]),
]


@pytest.mark.parametrize("name, argv", CASES + PEFT_LINT, ids=[c[0] for c in CASES + PEFT_LINT])
def test_each_commands_json_validates_against_its_schema(capsys, adapters, name: str, argv: list[str]) -> None:
    _, doc = _output(capsys, name, argv, adapters)
    command = argv[0]
    assert doc["command"] == command
    assert errors(doc, command) == [], name
    assert errors(doc, None) == [], name  # and against the schema of them all (oneOf by command)
    others = [c for c in SCHEMA_COMMANDS if c != command]
    assert all(errors(doc, c) for c in others), name  # a document is one command's only


# --------------------------------------------------------------------------- the schema can fail


@pytest.fixture(scope="module")
def samples(adapters: dict[str, Path]) -> dict[str, Any]:
    """One real document per command (cheap ones), for the negative tests."""
    out = {}
    for name, argv in [("check", CASES[0][1]), ("check-several", CASES[5][1]), ("transfer", CASES[11][1]),
                       ("peft", PEFT_LINT[0][1]), ("lint", PEFT_LINT[5][1])]:
        p = subprocess.run([sys.executable, "-m", "rsstab.cli",
                            *[str(adapters[a[1:]]) if a.startswith("@") else a for a in argv]],
                           capture_output=True, text=True, timeout=120)
        out[name] = json.loads(p.stdout)
    return out


@pytest.mark.parametrize("name, key", [("check", "lr_rule"), ("check", "other_regime"), ("check", "stable"),
                                       ("check-several", "schedules"), ("transfer", "lr_to"),
                                       ("transfer", "lr_rule"), ("peft", "modules"), ("lint", "findings"),
                                       ("check", "schema_version")])
def test_a_document_missing_a_required_key_fails(samples, name: str, key: str) -> None:
    doc = copy.deepcopy(samples[name])
    command = doc["command"]
    assert errors(doc, command) == []
    del doc[key]
    assert errors(doc, command) and errors(doc, None)


@pytest.mark.parametrize("name, change", [
    ("check", lambda d: d.update(label="unstable")),  # not a label
    ("check", lambda d: d.update(optimizer="adamw")),  # printed as its regime, adam
    ("check", lambda d: d.update(stable="yes")),
    ("check", lambda d: d.update(rule=d["lr_rule"])),  # an unknown top-level key: a schema change
    ("check", lambda d: d["other_regime"].update(adam="blow-up")),
    ("check", lambda d: d["quantities"]["forward"].update(exponent="0")),
    ("check-several", lambda d: d["schedules"][0].pop("other_regime")),
    ("transfer", lambda d: d.update(stable=None, label=None)),  # transfer gives the schedule's verdict
    ("transfer", lambda d: d.update(lr=2e-4)),  # lr is the regime ("fixed"); the tuned η is lr_from
    ("transfer", lambda d: d["regimes"]["sgd"].update(eps=None)),  # keys that do not apply are left out
    ("peft", lambda d: d["modules"][0].update(r="16")),
    ("lint", lambda d: d["findings"].append({"path": "a", "module": "-", "code": "RS999", "message": "x",
                                             "line": None, "severity": "error"})),
], ids=lambda x: x if isinstance(x, str) else "")
def test_a_wrong_value_fails(samples, name: str, change: Any) -> None:
    doc = copy.deepcopy(samples[name])
    change(doc)
    assert errors(doc, doc["command"])


def test_readme_documents_the_schema_command_beside_the_json_output() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### One JSON schema"):]
    section = section[: section.index("\n## ")]
    assert "rsstab schema" in section and "2020-12" in section
