"""`rsstab transfer`: the learning rate at another rank, exact from the schedule, per regime."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rsstab.cli import main
from rsstab.errors import RsstabError
from rsstab.verdict.transfer import transfer, transfer_all

ranks = st.integers(1, 1 << 16)
lrs = st.floats(1e-8, 1.0)


@settings(max_examples=40, deadline=None)
@given(ranks, ranks, lrs)
def test_rslora_under_sgd_keeps_the_learning_rate(r1: int, r2: int, lr: float) -> None:
    t = transfer("alpha/sqrt(r)", lr, r1, r2, "sgd")
    assert t.factor == 1.0 and t.factor_exact == "1" and t.lr_to == lr


@settings(max_examples=40, deadline=None)
@given(ranks, ranks, lrs)
def test_lora_under_sgd_scales_the_learning_rate_with_rank(r1: int, r2: int, lr: float) -> None:
    t = transfer("alpha/r", lr, r1, r2, "sgd")
    assert t.factor_exact == str(Fraction(r2, r1))
    assert t.lr_to == pytest.approx(lr * r2 / r1, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(ranks, ranks, lrs)
def test_rslora_under_adam_scales_the_learning_rate_as_inverse_sqrt_rank(r1: int, r2: int, lr: float) -> None:
    t = transfer("alpha/sqrt(r)", lr, r1, r2, "adam")
    assert t.lr_to == pytest.approx(lr * math.sqrt(r1 / r2), rel=1e-12)
    assert t.lr_exponent_exact == "-1/2" and t.fixed_lr_growth == pytest.approx(math.sqrt(r2 / r1), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.fractions(min_value=-2, max_value=1, max_denominator=12), st.sampled_from(["sgd", "adam"]), ranks, ranks)
def test_power_schedules_follow_the_lr_exponent(p: Fraction, optimizer: str, r1: int, r2: int) -> None:
    t = transfer(f"3*r**({p.numerator}/{p.denominator})", 1.0, r1, r2, optimizer)
    assert t.factor == pytest.approx((r2 / r1) ** float(Fraction(t.lr_exponent_exact)), rel=1e-9)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["log(r)/sqrt(r)", "(2 + sin(r))/sqrt(r)", "alpha/(r + 3)", "1/sqrt(r*log(r+1))"]),
       st.sampled_from(["sgd", "adam"]), st.integers(2, 5000), st.integers(2, 5000))
def test_non_power_schedules_are_exact_and_round_trip(expr: str, optimizer: str, r1: int, r2: int) -> None:
    from rsstab.schedule import parse

    k = 2 if optimizer == "sgd" else 1
    gamma = parse(expr)
    t = transfer(expr, 1.0, r1, r2, optimizer)
    assert t.factor == pytest.approx((gamma(r1) / gamma(r2)) ** k * r1 / r2, rel=1e-9)
    back = transfer(expr, t.lr_to, r2, r1, optimizer)
    assert back.lr_to == pytest.approx(1.0, rel=1e-9)


def test_the_prediction_uses_the_schedule_not_only_its_exponent() -> None:
    t = transfer("(2 + sin(r))/sqrt(r)", 1.0, 16, 256, "sgd")
    assert t.lr_exponent == 0.0  # asymptotically rsLoRA …
    assert t.factor == pytest.approx(((2 + math.sin(16)) / (2 + math.sin(256))) ** 2, rel=1e-12)  # … exactly not


def test_constants_must_be_given_only_when_they_do_not_cancel() -> None:
    expected = (256 / 16) * (math.log(16) / math.log(256)) ** 2
    assert transfer("alpha*log(r)/r", 1.0, 16, 256).factor == pytest.approx(expected)
    with pytest.raises(RsstabError, match="depends on beta") as info:
        transfer("alpha/(r + beta)", 1.0, 16, 256)
    assert info.value.parameter == "constants"
    assert transfer("alpha/(r + beta)", 1.0, 16, 256, constants={"beta": 16}).factor == pytest.approx(
        (272 / 32) ** 2 * 16 / 256)


def test_callables_are_numeric() -> None:
    t = transfer(lambda r: 2 / math.sqrt(r), 1e-3, 4, 64, "adam")
    assert t.factor_exact is None and t.lr_to == pytest.approx(1e-3 / 4)


def test_adam_eps_follows_the_exact_first_step_between_the_laws() -> None:
    t = transfer("1/sqrt(r)", 1e-3, 16, 2**22, "adam", eps=1 / 64, grad_scale=1.0)
    assert (t.regime_from, t.regime_to) == ("sign", "sgd-like")
    assert 1 / 512 < t.factor < 1  # between the sign rule and SGD's
    deep = transfer("1/sqrt(r)", 1e-3, 16, 256, "adam", eps=1e-12, grad_scale=1.0)  # sign-like at both
    assert deep.factor == pytest.approx(1 / 4, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, parameter",
    [(dict(lr=0.0), "lr"), (dict(lr=math.nan), "lr"), (dict(from_rank=0), "from_rank"), (dict(to_rank=2.5), "to_rank"),
     (dict(from_rank=True), "from_rank"), (dict(eps=1e-8), "grad_scale"), (dict(eps=1e-8, grad_scale=1.0), "eps"),
     (dict(optimizer="adam", eps=-1.0, grad_scale=1.0), "eps")],
)
def test_bad_arguments_name_the_parameter(kwargs: dict, parameter: str) -> None:
    args = dict(schedule="1/sqrt(r)", lr=1e-3, from_rank=16, to_rank=256, optimizer="sgd") | kwargs
    with pytest.raises(RsstabError) as info:
        transfer(**args)
    assert info.value.parameter == parameter


def test_transfer_all_gives_every_regime() -> None:
    both = transfer_all("alpha/sqrt(r)", 2e-4, 16, 256)
    assert {o: t.lr_to for o, t in both.items()} == {"sgd": 2e-4, "adam": pytest.approx(5e-5)}


# --------------------------------------------------------------------------- the command line


def test_cli_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["transfer", "alpha/sqrt(r)", "--from-rank", "16", "--to-rank", "256", "--lr", "2e-4", "--optimizer", "adam"]
    assert main([*argv, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["lr_to"] == pytest.approx(5e-5) and d["factor_exact"] == "1/4" and d["lr_exponent"] == -0.5
    assert list(d["regimes"]) == ["adam", "sgd"] and d["regimes"]["sgd"]["lr_to"] == 2e-4
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "predicted η at r = 256: 5e-05  (adam)" in out
    assert "rule: η ∝ 1/(γ_r·r) = r^-1/2" in out and "rule: η ∝ 1/(γ_r²·r) = r^0" in out
    assert "the update would be × 4 at r = 256" in out


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rsstab.cli", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, message",
    [
        (["alpha/sqrt(r)", "--from-rank", "0", "--to-rank", "8", "--lr", "1e-3"], "integer rank ≥ 1"),
        (["alpha/sqrt(r)", "--from-rank", "4", "--to-rank", "x", "--lr", "1e-3"], "integer rank ≥ 1"),
        (["alpha/sqrt(r)", "--from-rank", "4", "--to-rank", "8", "--lr", "-1"], "positive finite"),
        (["alpha/sqrt(r)", "--from-rank", "4", "--to-rank", "8", "--lr", "nan"], "positive finite"),
        (["alpha/sqrt(r)", "--from-rank", "4", "--to-rank", "8"], "required"),
        (["alpha/(r+beta)", "--from-rank", "4", "--to-rank", "8", "--lr", "1"], "--set NAME=VALUE"),
        (["sin(r)", "--from-rank", "4", "--to-rank", "8", "--lr", "1"], "not positive"),
        (["1/r", "--from-rank", "4", "--to-rank", "8", "--lr", "1", "--eps", "1e-8"], "go together"),
        (["1/r", "--from-rank", "4", "--to-rank", "8", "--lr", "1", "--eps", "1e-8", "--grad-scale", "1"],
         "--optimizer adam"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    p = run_cli("transfer", *args)
    assert p.returncode == 2 and p.stdout == ""
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_transfer_does_not_import_heavy_modules() -> None:
    code = ("import sys; from rsstab.cli import main; main(['transfer', 'alpha/r', '--from-rank', '8', "
            "'--to-rank', '64', '--lr', '1e-3', '--json']); sys.stderr.write(repr(sorted(m for m in "
            "('torch', 'matplotlib', 'numpy', 'scipy') if m in sys.modules)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stderr.strip() == "[]"
