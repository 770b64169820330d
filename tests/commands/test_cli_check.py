"""`rsstab check` from the command line: exit codes, JSON schema, stdin, clean errors, light imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rsstab.cli import main


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rsstab.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "expr, optimizer, code",
    [("alpha/r**0.5", "sgd", 0), ("alpha/r", "sgd", 1), ("alpha", "sgd", 1),
     ("alpha/r", "adam", 0), ("alpha/sqrt(r)", "adam", 1)],
)
def test_exit_codes(expr: str, optimizer: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", expr, "--optimizer", optimizer]) == code
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("verdict: ")
    assert f"optimizer: {optimizer}" in out


def test_human_output_has_order_quantities_reason_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", "alpha/r**0.5"])
    out = capsys.readouterr().out
    assert "verdict: rank-stabilized" in out
    assert "γ_r order: Θ(r^-1/2)" in out
    assert "why: " in out
    for q in ("grad_init", "forward", "backward", "iid_variance"):
        assert q in out
    rows = [line.split() for line in out.splitlines() if line.strip().split(" ")[0] in {"4", "2048"}]
    assert [row[0] for row in rows] == ["4", "2048"]
    assert float(rows[0][2]) == pytest.approx(1.0) and float(rows[1][2]) == pytest.approx(1.0)
    assert "under adam: blow-up" in out


def test_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "16/r", "--json", "--optimizer", "adam"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["label"] == "rank-stabilized" and d["optimizer"] == "adam"
    assert d["schedule"] == "16/r" and d["method"] == "symbolic"
    assert set(d["quantities"]) == {"grad_init", "forward", "backward"}
    for q in d["quantities"].values():
        assert {"order", "exponent", "label", "law"} <= set(q)
    assert d["quantities"]["forward"]["exponent"] == 0.0
    assert d["other_regime"] == {"optimizer": "sgd", "label": "collapse", "lr_exponent": 1.0}
    assert len(d["table"]) == 10 and d["table"][0] == {"r": 4, "gamma": 4.0, "stability": 16.0}


def test_json_is_strict_even_with_overflow(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "exp(exp(r))", "--json"]) == 1
    out = capsys.readouterr().out
    d = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert d["table"][-1]["gamma"] == "inf"


def test_reads_stdin() -> None:
    p = run_cli("check", "-", "--json", stdin="alpha/sqrt(r)\n")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["label"] == "rank-stabilized"


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "__import__(os)"], "names starting with '_'"),
        (["check", "9**9**9**9"], "out of range"),
        (["check", "sin(r)"], "not positive"),
        (["check", "r**(-alpha)", "--assume", "alpha**2 > 1"], "linear"),
        (["check", "r**(-alpha)", "--assume", "alpha > 1, alpha < 0"], "contradict"),
        (["check", "r**(-alpha)", "--assume", "gamma > 1"], "not a parameter"),
        (["check", "1/sqrt(r)", "--assume", "alpha > 1"], "has none"),
        (["check", "r**(-alpha)", "--set", "alpha=1/0"], "not a number"),
        (["check", "1/r", "--set", "alpha"], "NAME=VALUE"),
        (["check", "alpha/r", "--set", "alpha=x"], "not a number"),
        (["check", "1/r", "--optimizer", "rmsprop"], "unknown optimizer 'rmsprop'"),
        (["check"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    p = run_cli(*args)
    assert p.returncode == 2
    assert p.stdout == ""
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_check_does_not_import_heavy_modules() -> None:
    code = ("import sys; from rsstab.cli import main; main(['check', 'alpha/r', '--json']); "
            "sys.stderr.write(repr(sorted(m for m in ('torch', 'matplotlib', 'numpy', 'scipy') "
            "if m in sys.modules)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stderr.strip() == "[]"


def test_simulate_adds_the_measured_verdict_beside_the_symbolic_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/r", "--simulate", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["label"] == "collapse" and d["simulation"]["label"] == "collapse"
    assert main(["check", "alpha/sqrt(r)", "--simulate"]) == 0
    out = capsys.readouterr().out
    assert "empirical verdict: rank-stabilized" in out
    assert "theory" in out.split("empirical verdict")[1]


# --------------------------------------------------------------------------- issue 12: learning-rate rule


def test_adam_rslora_is_a_fixed_learning_rate_statement_with_its_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/sqrt(r)", "--optimizer", "adam", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["lr"] == "fixed" and d["lr_scaling"] == 0.0
    assert d["lr_exponent"] == -0.5 and d["lr_exponent_exact"] == "-1/2"
    assert d["headline"] == "blow-up at a fixed learning rate — rank-stabilized with η ∝ r^-1/2"
    assert "at a fixed learning rate" in d["reason"] and "blow up" not in d["reason"]
    assert d["other_regime"] == {"optimizer": "sgd", "label": "rank-stabilized", "lr_exponent": 0.0}
    assert main(["check", "alpha/sqrt(r)", "--optimizer", "adam"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1] == "verdict: blow-up at a fixed learning rate — rank-stabilized with η ∝ r^-1/2"
    assert ("learning-rate rule: η ∝ r^-1/2 keeps the update Θ(1) (η ∝ 1/(γ_r·r); at a fixed η the update "
            "grows like r^1/2)") in out


@pytest.mark.parametrize(
    "expr, optimizer, exponent",
    [("alpha/r", "sgd", 1.0), ("alpha/sqrt(r)", "sgd", 0.0), ("alpha", "sgd", -1.0), ("alpha/r", "adam", 0.0),
     ("alpha", "adam", -1.0), ("alpha/r**(1/3)", "adam", -2 / 3)],
)
def test_lr_exponent_in_json(expr: str, optimizer: str, exponent: float, capsys: pytest.CaptureFixture[str]) -> None:
    main(["check", expr, "--optimizer", optimizer, "--json"])
    assert json.loads(capsys.readouterr().out)["lr_exponent"] == pytest.approx(exponent, abs=1e-15)


@pytest.mark.parametrize(
    "expr, optimizer, scaling, code, verdict",
    [("alpha/sqrt(r)", "adam", "-1/2", 0, "rank-stabilized with η ∝ r^-1/2"),
     ("alpha/sqrt(r)", "adam", "-0.5", 0, "rank-stabilized with η ∝ r^-1/2"),
     ("alpha/r", "sgd", "1", 0, "rank-stabilized with η ∝ r^1"),
     ("alpha/sqrt(r)", "adam", "-1/4", 1, "blow-up with η ∝ r^-1/4 — rank-stabilized with η ∝ r^-1/2"),
     ("alpha/sqrt(r)", "sgd", "0", 0, "rank-stabilized at a fixed learning rate"),
     ("alpha/sqrt(r)", "sgd", "-1", 1, "collapse with η ∝ r^-1 — rank-stabilized with η ∝ r^0")],
)
def test_lr_scaling_gives_the_verdict_for_a_scaled_learning_rate(expr: str, optimizer: str, scaling: str, code: int,
                                                                 verdict: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", expr, "--optimizer", optimizer, "--lr-scaling", scaling]) == code
    assert capsys.readouterr().out.splitlines()[1] == f"verdict: {verdict}"


def test_adam_eps_says_where_adam_turns_sgd_like(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "1/sqrt(r)", "--optimizer", "adam", "--eps", "0.0625", "--grad-scale", "1"]
    assert main([*args, "--json"]) == 1  # the label stays the sign regime's, at a fixed η
    eps = json.loads(capsys.readouterr().out)["adam_eps"]
    assert eps["crossover_rank"] == pytest.approx(256) and eps["large_r_regime"] == "sgd-like"
    assert eps["sgd_like_label"] == "rank-stabilized" and eps["sign_label"] == "blow-up"
    assert [row["regime"] for row in eps["table"]][-1] == "crossover"  # ρ(2048) = 0.35
    main(args)
    out = capsys.readouterr().out
    assert "cross ε at r_ε ≈ 256: below it Adam is sign-like" in out
    assert "beyond it Adam is SGD-like with rate η/ε" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "1/r", "--lr-scaling", "x"], "lr_scaling must be a number"),
        (["check", "1/r", "--lr-scaling", "inf"], "lr_scaling must be a number"),
        (["check", "1/r", "--optimizer", "adam", "--eps", "1e-8"], "--eps and --grad-scale go together"),
        (["check", "1/r", "--eps", "1e-8", "--grad-scale", "1"], "add --optimizer adam"),
        (["check", "1/r", "--optimizer", "adam", "--eps", "-1", "--grad-scale", "1"], "(see --eps in "),
        (["check", "1/r", "--simulate", "--lr-scaling", "1"], "drop --lr-scaling"),
    ],
)
def test_bad_learning_rate_options_are_one_line_exit_2(args: list[str], message: str) -> None:
    p = run_cli(*args)
    assert p.returncode == 2 and p.stdout == ""
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_simulate_json_carries_the_learning_rate_rule(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    argv = ["simulate", "alpha/sqrt(r)", "--optimizer", "adam", "--ranks", "4,16", "--steps", "1", "--seeds", "2",
            "--width", "4", "--depth", "1", "--batch", "4", "--threads", "1"]
    main([*argv, "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["lr"] == "fixed" and d["lr_exponent"] == -0.5 and d["lr_exponent_exact"] == "-1/2"
    main(argv)
    assert ("symbolic verdict (adam): blow-up at a fixed learning rate — rank-stabilized with η ∝ r^-1/2"
            in capsys.readouterr().out)


def test_cli_conventions_version_bare_usage_and_help_pointers() -> None:
    """`rsstab --version`; bare `rsstab` prints the usage (exit 2); errors point to --help; every
    command's help shows its exit codes, an example and the default optimizer."""
    from rsstab import __version__

    p = run_cli("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"rsstab {__version__}"
    p = run_cli()
    assert p.returncode == 2 and "COMMAND" in p.stderr and "check" in p.stderr
    p = run_cli("check", "--optimizer", "nope", "1/r")
    assert p.returncode == 2 and "'rsstab check --help'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = run_cli("check", "r**(-beta)", "--assume", "beta < 0 < beta")
    assert p.returncode == 2 and "'rsstab check --help'" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    for command in ("check", "simulate", "peft", "derive", "transfer"):
        out = run_cli(command, "--help").stdout
        assert "exit codes:" in out and "example: rsstab " + command in out, command
        if "--optimizer" in out:
            assert "(default: sgd" in out or "(default: adam" in out, command


@pytest.mark.parametrize("command", [["simulate", "1/sqrt(r)"], ["check", "1/sqrt(r)", "--simulate"]])
def test_missing_sim_extra_is_one_line_exit_2(command: list[str]) -> None:
    """Without torch, `simulate` and `check --simulate` say which extra to install (exit 2, one
    line) and print nothing on stdout, as every error (a verdict then exit 2 would mix the two)."""
    code = ("import sys; sys.modules['torch'] = None; from rsstab.cli import main; "
            f"sys.exit(main({command!r}))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert 'pip install "rsstab[sim]"' in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("expr", ["alpha / rank**0.5", "alpha/R**0.5", "alpha/rr", "lora_alpha/sqrt(lora_r)"])
def test_a_misnamed_rank_is_refused_with_did_you_mean(expr: str) -> None:
    p = run_cli("check", expr)
    assert p.returncode == 2 and "did you mean r?" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("expr, code", [("alpha", 1), ("16", 1), ("rho/sqrt(r)", 0)])
def test_constant_and_rank_free_looking_names_stay_valid(expr: str, code: int) -> None:
    assert run_cli("check", expr).returncode == code


def test_header_echoes_the_parsed_form() -> None:
    out = run_cli("check", "alpha/r**0.5").stdout
    assert out.splitlines()[0].startswith("γ_r = alpha/r**0.5    (read as alpha/sqrt(r))")


def test_several_schedules_give_a_table_from_args_and_stdin() -> None:
    p = run_cli("check", "-", "1/r**0.75", stdin="alpha/r\nalpha/sqrt(r)  # rsLoRA\n\n")
    assert p.returncode == 1, p.stderr  # alpha/r and 1/r**0.75 collapse under SGD
    lines = p.stdout.splitlines()
    assert lines[0].split()[:2] == ["γ_r", "order"] and len(lines) == 4
    assert lines[2].split()[:3] == ["alpha/sqrt(r)", "Θ(r^-1/2)", "rank-stabilized"]
    ok = run_cli("check", "alpha/sqrt(r)", "2/sqrt(r)", "--json")
    assert ok.returncode == 0 and [r["stable"] for r in json.loads(ok.stdout)["schedules"]] == [True, True]
    bad = run_cli("check", "alpha/sqrt(r)", "alpha/rank")
    assert bad.returncode == 2 and "invalid" in bad.stdout and "did you mean r?" in bad.stderr
    assert run_cli("check", "1/r", "2/r", "--simulate").returncode == 2


def test_one_json_schema_across_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """check, check (several), transfer, peft and simulate print the same leading keys, with the
    same names for the same things, UTF-8 unescaped."""
    from rsstab.schema import COMMON_KEYS, SCHEMA_VERSION

    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 16, "lora_alpha": 32, "use_rslora": True, "target_modules": ["q_proj"]}))
    runs = {
        "check": run_cli("check", "alpha/sqrt(r)", "--json"),
        "check-table": run_cli("check", "alpha/sqrt(r)", "alpha/r", "--json"),
        "transfer": run_cli("transfer", "alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "64", "--lr", "1e-4",
                            "--json"),
        "peft": run_cli("peft", str(tmp_path / "adapter_config.json"), "--json"),
        "simulate": run_cli("simulate", "1/sqrt(r)", "--ranks", "64,256", "--seeds", "2", "--steps", "2",
                            "--json"),
    }
    for name, p in runs.items():
        assert p.returncode in (0, 1), (name, p.stderr)
        d = json.loads(p.stdout)
        assert list(d)[: len(COMMON_KEYS)] == list(COMMON_KEYS), name
        assert d["schema_version"] == SCHEMA_VERSION and isinstance(d["notes"], list), name
        assert isinstance(d["reason"], str) and d["reason"], name
        assert "also" not in d and "warnings" not in d and "theory_label" not in d, name
        assert "\\u" not in p.stdout, name  # UTF-8 text, not escaped
    assert json.loads(runs["check"].stdout)["stable"] is True
    assert json.loads(runs["peft"].stdout)["optimizer"] == "adam"  # adamw: Adam's regime
