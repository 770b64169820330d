"""The whole hyperparameter tuple in ``rsstab check`` (issue 15, parts 2 and 4): learning rate,
separate rates of A and B (LoRA+ ratio), init scale of A — verdicts per condition, with whether A
and B both learn; ``rsstab.testing.tuples`` draws tuples with labels known by construction.

The held-out families below were worked out by hand from the laws (result 12, ``rsstab derive
hyperparameter-tuple``): with γ_r ∝ r^-β, η_A ∝ r^a, η_B ∝ r^b, σ_A ∝ r^-k,

* SGD:  update (B-driven) ∝ η_B γ_r² r σ_A²  → exponent b − 2β + 1 − 2k;
        A-driven ∝ η_A η_B² γ_r⁴ r σ_A²       → exponent a + 2b − 4β + 1 − 2k;
        ratio A/B ∝ η_A η_B γ_r²              → exponent a + b − 2β.
* Adam: update ∝ η_B γ_r r σ_A                → exponent b − β + 1 − k;
        A-driven ∝ η_A η_B γ_r r              → exponent a + b − β + 1;
        ratio ∝ η_A/σ_A                       → exponent a + k.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsstab.verdict.classify import Verdict, check
from rsstab.cli import main
from rsstab.errors import RsstabError
from rsstab.testing import tuples
from rsstab.vocab import BLOW_UP, COLLAPSE, CONDITIONAL, STABLE

S, C, B = STABLE, COLLAPSE, BLOW_UP


def _sign(x: Fraction) -> str:
    return S if x == 0 else C if x < 0 else B


def _terms(v: Verdict) -> dict[str, dict]:
    return {t["quantity"]: t for t in v.terms}


# ------------------------------------------------------------------------------------- the issue's examples


def test_the_three_examples_of_the_issue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/sqrt(r)", "--init-std", "1/r"]) == 1
    assert "verdict: collapse" in capsys.readouterr().out
    assert main(["check", "alpha/sqrt(r)", "--optimizer", "adam", "--lr", "eta/sqrt(r)"]) == 0
    assert "verdict: rank-stabilized" in capsys.readouterr().out
    v = check("alpha/r**beta", lr="eta*r**c")
    assert v.label == CONDITIONAL
    assert [c["label"] for c in v.conditions if c["when"] == "beta = c/2 + 1/2"] == [S]
    assert {c["label"] for c in v.conditions if c["when"] != "beta = c/2 + 1/2"} == {C, B}


# ------------------------------------------------------------------------------------- held-out families (by hand)

_Q = [Fraction(n, d) for n, d in ((0, 1), (1, 4), (1, 2), (3, 4), (1, 1), (-1, 2), (3, 2))]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(beta=st.sampled_from(_Q), k=st.sampled_from(_Q), optimizer=st.sampled_from(["sgd", "adam"]))
def test_held_out_init_family(beta: Fraction, k: Fraction, optimizer: str) -> None:
    """γ_r = α/r^β, σ_A = r^-k, fixed η: SGD exponent 1 − 2β − 2k, Adam 1 − β − k (hand-derived)."""
    want = _sign(1 - 2 * beta - 2 * k) if optimizer == "sgd" else _sign(1 - beta - k)
    v = check("alpha/r**beta", optimizer, init_std="r**(-k)", constants={"beta": beta, "k": k})
    assert v.label == want
    assert _terms(v)["forward"]["label"] == _terms(v)["backward"]["label"] == want


def test_held_out_init_family_symbolic_conditions() -> None:
    """The same family with β, k free: rank-stabilized exactly on the hand-derived lines."""
    sgd = check("alpha/r**beta", init_std="r**(-k)")
    adam = check("alpha/r**beta", "adam", init_std="r**(-k)")
    for v, line in ((sgd, Fraction(1, 2)), (adam, Fraction(1))):  # β + k = 1/2 (SGD), β + k = 1 (Adam)
        stable = [c for c in v.conditions if c["label"] == S]
        assert v.label == CONDITIONAL and len(stable) == 1
        for beta in (Fraction(0), Fraction(1, 3), Fraction(2)):
            k = line - beta
            assert check("alpha/r**beta", v.optimizer, init_std="r**(-k)",
                         constants={"beta": beta, "k": k}).label == S
            assert check("alpha/r**beta", v.optimizer, init_std="r**(-k)",
                         constants={"beta": beta, "k": k + Fraction(1, 8)}).label == C


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(beta=st.sampled_from(_Q), a=st.sampled_from(_Q), rho=st.sampled_from(_Q), optimizer=st.sampled_from(["sgd", "adam"]))
def test_held_out_ratio_family(beta: Fraction, a: Fraction, rho: Fraction, optimizer: str) -> None:
    """γ_r = α/r^β, η_A = η r^a, η_B/η_A = r^ρ (so b = a + ρ), σ_A fixed: the update and the A/B
    ratio follow the hand-derived exponents above, in both regimes."""
    b = a + rho
    if optimizer == "sgd":
        update, a_term, ratio = b - 2 * beta + 1, a + 2 * b - 4 * beta + 1, a + b - 2 * beta
    else:
        update, a_term, ratio = b - beta + 1, a + b - beta + 1, a
    v = check("alpha/r**beta", optimizer, lr="eta*r**a", lr_ratio="r**rho",
              constants={"beta": beta, "a": a, "rho": rho})
    assert v.label == _sign(update)
    ab = _terms(v)["a_and_b"]
    assert ab["b_driven"]["label"] == _sign(update)
    assert ab["a_driven"]["label"] == _sign(a_term)
    assert ab["ratio"]["label"] == _sign(ratio)
    if update == 0 and a_term == 0:
        assert ab["label"] == "both-learn"
    else:
        assert ab["label"] == {C: "b-dominates", S: "same-order", B: "a-dominates"}[_sign(ratio)]


def test_who_learns_in_the_named_cases() -> None:
    # rsLoRA, SGD, fixed rates: ratio A/B ∝ γ² = 1/r → B does the learning
    assert _terms(check("alpha/sqrt(r)", lr_ratio="1"))["a_and_b"]["label"] == "b-dominates"
    # LoRA α/r with η ∝ r under SGD: update Θ(1) and A-driven η³γ⁴r = Θ(1): both learn
    assert _terms(check("alpha/r", lr="eta*r"))["a_and_b"]["label"] == "both-learn"
    # rsLoRA under SGD with η_A ∝ r, η_B fixed (ratio 1/r): both learn (result 12)
    assert _terms(check("alpha/sqrt(r)", lr="eta*r", lr_ratio="1/r"))["a_and_b"]["label"] == "both-learn"
    # LoRA under Adam with fixed rates: both Θ(1) in r
    assert _terms(check("alpha/r", "adam", lr_ratio="16"))["a_and_b"]["label"] == "both-learn"
    # --lr-a/--lr-b are --lr and their ratio
    v = check("alpha/sqrt(r)", lr="eta*r", lr_ratio="(eta)/(eta*r)")
    assert _terms(v)["a_and_b"]["label"] == "both-learn"


def test_lr_ratio_with_a_free_parameter_gives_conditions() -> None:
    v = check("alpha/r", lr_ratio="r**rho")  # SGD update ∝ r^ρ·r^-2·r = r^(ρ − 1)
    assert [(c["when"], c["label"]) for c in v.conditions] == [("rho < 1", C), ("rho = 1", S), ("rho > 1", B)]
    ab = _terms(v)["a_and_b"]  # ratio A/B ∝ η_A η_B γ² = r^(ρ − 2)
    assert [(c["when"], c["label"]) for c in ab["conditions"]] == [
        ("rho < 2", "b-dominates"), ("rho = 2", "same-order"), ("rho > 2", "a-dominates")]
    assert any("A-driven" in n and "rho > 2" in n for n in v.notes)
    adam = check("alpha/r", "adam", lr_ratio="r**rho")  # Adam update ∝ r^ρ
    assert [(c["when"], c["label"]) for c in adam.conditions] == [("rho < 0", C), ("rho = 0", S), ("rho > 0", B)]


# ------------------------------------------------------------------------------------- CLI: flags, errors, JSON


def test_lr_a_lr_b_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/sqrt(r)", "--lr-a", "eta*r", "--lr-b", "eta"]) == 0
    out = capsys.readouterr().out
    assert "A and B learning: A and B both learn" in out and "conditions (SGD, first order" in out


@pytest.mark.parametrize("argv, flag", [
    (["--lr-ratio", "0"], "--lr-ratio"),
    (["--lr-ratio", "x y"], "--lr-ratio"),
    (["--lr-ratio=-1"], "--lr-ratio"),
    (["--lr-ratio", "r**(1/0)"], "--lr-ratio"),
    (["--lr-a", "eta"], "--lr-a"),
    (["--lr-a", "eta", "--lr-b", "0"], "--lr-b"),
    (["--lr-a", "eta", "--lr-b", "eta", "--lr", "eta"], "--lr-a"),
    (["--init-std=-r"], "--init-std"),
])
def test_invalid_tuple_input_is_one_line_exit_2(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/sqrt(r)", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("rsstab: error: ") and flag in err


def test_hostile_input_is_never_evaluated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    for flag in ("--lr-ratio", "--lr", "--init-std"):
        code = main(["check", "alpha/sqrt(r)", flag, f"__import__('os').system('touch {marker}')"])
        assert code == 2 and not marker.exists()
    capsys.readouterr()
    with pytest.raises(RsstabError):
        check("alpha/sqrt(r)", lr_ratio="().__class__")


def test_json_has_one_entry_per_condition_with_its_regime(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/r**beta", "--lr", "eta*r**c", "--lr-ratio", "2", "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert list(d)[:3] == ["schema_version", "command", "stable"] and d["label"] == CONDITIONAL
    terms = {t["quantity"]: t for t in d["terms"]}
    assert list(terms) == ["update", "forward", "backward", "a_and_b"]
    for name in ("update", "forward", "backward"):
        assert "first order" in terms[name]["regime"] and terms[name]["label"] == CONDITIONAL
    ab = terms["a_and_b"]
    assert "leading order" in ab["regime"] and ab["b_driven"]["law"] == "η_B·γ_r²·r·σ_A²"
    assert ab["a_driven"]["law"] == "η_A·η_B²·γ_r⁴·r·σ_A²" and ab["both_learn_when"]
    assert d["gamma_to_zero"] is None or isinstance(d["gamma_to_zero"], bool)
    back = Verdict.from_dict(d)
    assert back.terms[-1]["quantity"] == "a_and_b" and back.label == CONDITIONAL


def test_a_tuple_analysis_out_of_time_is_indeterminate(slow_parametric_step) -> None:  # type: ignore[no-untyped-def]
    import time

    import rsstab.verdict.hyperparams as hp

    slow_parametric_step(hp, "labelled_regions")
    t0 = time.monotonic()
    v = check("alpha/sqrt(r)", lr_ratio="r**rho")
    assert time.monotonic() - t0 < 3
    assert v.label == "indeterminate" and "exceeded" in v.reason


# ------------------------------------------------------------------------------------- rsstab.testing.tuples


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.sampled_from(["sgd", "adam"]).flatmap(lambda opt: tuples(optimizer=opt)))
def test_the_classifier_agrees_with_the_constructed_labels(t) -> None:  # type: ignore[no-untyped-def]
    v = check(t.schedule, t.optimizer, lr=t.lr, init_std=t.init_std, lr_ratio=t.lr_ratio)
    assert v.label == t.label, t
    assert _terms(v)["a_and_b"]["label"] == t.learning, t


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=tuples(label=STABLE, optimizer="adam"))
def test_tuples_with_a_chosen_label_through_the_cli(t) -> None:  # type: ignore[no-untyped-def]
    import contextlib
    import io

    assert t.label == STABLE
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(t.argv()) == 0, t
    assert "verdict: rank-stabilized" in out.getvalue()


def test_tuples_reject_unknown_labels() -> None:
    with pytest.raises(RsstabError):
        tuples(label="stable-ish")
    with pytest.raises(RsstabError):
        tuples(optimizer="rmsprop")


# ------------------------------------------------------------------------------------- width growing with r


def test_width_growing_with_rank_splits_at_the_hand_derived_exponents() -> None:
    """rsLoRA under SGD with d = r^k (k ≥ 0): the coherent update is width-free in the convention
    (σ_A in Kaiming units), incoherent²/coherent² = (d + 1)/r ∝ r^(k−1), and the A/B ratio
    η_A η_B γ² d ∝ r^(k−1): A learns Θ(1) exactly when d ∝ r."""
    v = check("alpha/sqrt(r)", width_expr="r**k", assume="k >= 0")
    assert v.label == S and v.regime.startswith("joint limit")
    t = _terms(v)
    assert [(c["when"], c["label"]) for c in t["incoherent"]["conditions"]] == [
        ("0 <= k < 1", "coherent-dominates"), ("k = 1", "comparable"), ("k > 1", "incoherent-dominates")]
    assert [(c["when"], c["label"]) for c in t["a_and_b"]["conditions"]] == [
        ("0 <= k < 1", "b-dominates"), ("k = 1", "same-order"), ("k > 1", "a-dominates")]
    assert t["a_and_b"]["both_learn_when"] == ["k = 1"]
    assert "μP" in t["a_and_b"]["regime"] and "not modelled" in t["backward"]["regime"]


@pytest.mark.parametrize("kappa", [Fraction(0), Fraction(1, 2), Fraction(1), Fraction(2)])
def test_width_family_under_adam(kappa: Fraction) -> None:
    """Adam, LoRA's α/r, fixed rates, d = r^κ: update Θ(1); ratio A/B ∝ η_A d/σ_A ∝ r^κ (by hand)."""
    v = check("alpha/r", "adam", width_expr="r**kappa", constants={"kappa": kappa})
    assert v.label == S
    ab = _terms(v)["a_and_b"]
    assert ab["ratio"]["label"] == _sign(kappa)
    assert _terms(v)["incoherent"]["label"] == {C: "coherent-dominates", S: "comparable", B: "incoherent-dominates"}[
        _sign(kappa - 1)]


def test_lora_plus_width_rule(capsys: pytest.CaptureFixture[str]) -> None:
    """LoRA+ under Adam: with d growing (here d = r at γ = α/r), η_A ∝ 1/d and η_B fixed keep both terms Θ(1)."""
    assert main(["check", "alpha/r", "--optimizer", "adam", "--width-expr", "r", "--lr-a", "eta/r", "--lr-b", "eta"]) == 0
    assert "A and B learning: A and B both learn" in capsys.readouterr().out
    v = check("alpha/r", "adam", width_expr="r")  # equal rates: the A-driven term grows like d
    assert _terms(v)["a_and_b"]["label"] == "a-dominates"


def test_a_shrinking_or_invalid_width_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--width-expr", "r**k"], ["--width-expr", "1/r"], ["--width-expr", "x y"], ["--width-expr", "0"],
                 ["--width-expr", "r", "--width", "64"]):
        assert main(["check", "alpha/sqrt(r)", *argv]) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and "--width" in err, (argv, err)
