"""The rendering rule (issue 25): every verdict kind presents itself — ``render() -> str`` is the plain
text the CLI prints, beside its dict / JSON form — and the commands print ``render()`` unchanged."""

from __future__ import annotations

import inspect
import json

import pytest

from rsstab.cli import main
from rsstab.lint import Finding, format_findings
from rsstab.measure.empirical import EmpiricalVerdict
from rsstab.verdict.adam_eps import AdamEpsilon, adam_epsilon
from rsstab.verdict.classify import check
from rsstab.verdict.model import Verdict
from rsstab.verdict.regimes import ExpansionTable, WidthTable, expansion_rows
from rsstab.verdict.transfer import Transfer, render_transfers, transfer_all

#: each verdict kind and the name of its dict / JSON form
KINDS = {Verdict: "to_dict", EmpiricalVerdict: "as_dict", AdamEpsilon: "to_dict", WidthTable: "json_fields",
         ExpansionTable: "as_list", Transfer: "to_dict", Finding: "as_dict"}


@pytest.mark.parametrize("cls", list(KINDS), ids=lambda c: c.__name__)
def test_every_verdict_kind_renders_itself_beside_its_json_form(cls: type) -> None:
    assert callable(getattr(cls, "render", None)), f"{cls.__name__} has no render()"
    assert inspect.signature(cls.render).return_annotation in ("str", str)
    assert callable(getattr(cls, KINDS[cls], None)), f"{cls.__name__} has no {KINDS[cls]}()"


def test_the_commands_read_no_field_through_getattr() -> None:
    import rsstab.commands.check as cmd

    assert "getattr(v" not in inspect.getsource(cmd)  # the fields are read directly, typed


@pytest.mark.parametrize("argv, optimizer", [
    (["alpha/sqrt(r)"], "sgd"),
    (["alpha/r**beta"], "sgd"),
    (["alpha/sqrt(r)", "--lr-a", "eta*r", "--lr-b", "eta"], "sgd"),
    (["alpha/r", "--optimizer", "adam"], "adam"),
])
def test_check_prints_the_verdicts_render(argv: list[str], optimizer: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", *argv])
    out = capsys.readouterr().out
    kw = {"lr": "eta*r", "lr_ratio": "(eta)/(eta*r)"} if "--lr-a" in argv else {}
    other = "adam" if optimizer == "sgd" else "sgd"
    v, w = check(argv[0], optimizer=optimizer, **kw), check(argv[0], optimizer=other, **kw)
    assert out == v.render(w) + "\n"


def test_check_with_width_eps_and_range_prints_each_render(capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", "alpha/sqrt(r)", "--optimizer", "adam", "--eps", "1e-8", "--grad-scale", "1e-6",
          "--width", "64", "--ranks", "4,16,64,256", "--lr", "1e-3"])
    out = capsys.readouterr().out
    v = check("alpha/sqrt(r)", optimizer="adam", width=64, ranks=[4, 16, 64, 256])
    assert v.width is not None
    eps = adam_epsilon("alpha/sqrt(r)", 1e-8, 1e-6)
    rows = expansion_rows(v.width, "adam", 1e-3, None, 10, eps=1e-8, grad_scale=1e-6)
    assert rows is not None
    expected = [v.render(check("alpha/sqrt(r)", optimizer="sgd")), eps.render(), ExpansionTable(tuple(rows)).render()]
    assert out == "\n".join(expected) + "\n"
    assert v.width.render() in out


def test_transfer_prints_render_transfers(capsys: pytest.CaptureFixture[str]) -> None:
    main(["transfer", "alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "2e-4", "--optimizer", "adam"])
    out = capsys.readouterr().out
    results = transfer_all("alpha/sqrt(r)", 2e-4, 16, 256)
    assert out == render_transfers(results, "adam") + "\n"
    assert results["adam"].render(chosen=True) in out and results["sgd"].render() in out


def test_lint_text_is_each_findings_render_and_json_its_as_dict() -> None:
    findings = [Finding("a.json", "q", "RS201", "bad: 1,2", line=3), Finding("b.json", "-", "RS303", "DoRA")]
    assert format_findings(findings, "text") == "\n".join(f.render() for f in findings)
    assert json.loads(format_findings(findings, "json"))["findings"] == [f.as_dict() for f in findings]
