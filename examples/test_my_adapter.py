"""Rank-stability guards for a LoRA variant: copy this file into your test suite and adapt it.

Run with ``pytest test_my_adapter.py`` (needs ``pip install "rsstab[sim,testing]"``; the PEFT
tests also need ``peft`` and are skipped without it). Every ``assert_rank_stabilized`` call trains
the module built for each rank on a small synthetic task: at the default options (ranks 64…4096,
8 seeds × 4 draws) that is about 2 s of CPU at width 8 and about 40 s on 2 cores at width 1024.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings

import rsstab
from rsstab.testing import assert_rank_stabilized, check_rank_stability, schedules

WIDTH = 8  # any width works (the verdict follows the coherent part); a narrow model is just faster


# --------------------------------------------------------------------------- your own adapter


class MyLoRALinear(torch.nn.Module):
    """A frozen linear layer plus a trainable low-rank update ``scaling · B A`` (B starts at 0)."""

    def __init__(self, d_in: int, d_out: int, r: int, scaling: float) -> None:
        super().__init__()
        self.base = torch.nn.Linear(d_in, d_out)
        self.base.requires_grad_(False)  # only the adapter is trained
        self.lora_A = torch.nn.Parameter(torch.randn(r, d_in) / math.sqrt(d_in))
        self.lora_B = torch.nn.Parameter(torch.zeros(d_out, r))
        self.scaling = scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * (x @ self.lora_A.T) @ self.lora_B.T


def my_adapter(r: int, alpha: float = 16.0) -> torch.nn.Module:
    """The variant under test: rsLoRA's scaling α/√r."""
    return MyLoRALinear(WIDTH, WIDTH, r, scaling=alpha / math.sqrt(r))


def test_my_adapter_is_rank_stabilized() -> None:
    assert_rank_stabilized(my_adapter)  # SGD regime (Theorem 3.2) by default


def test_the_guard_catches_lora_scaling_under_sgd() -> None:
    # α/r shrinks the learned update like 1/r under SGD: the check fails with a readable table.
    with pytest.raises(AssertionError, match="collapse"):
        assert_rank_stabilized(lambda r: MyLoRALinear(WIDTH, WIDTH, r, scaling=16.0 / r))


def test_inspect_without_raising(tmp_path) -> None:
    result = check_rank_stability(my_adapter, optimizer="adam")
    # Under Adam at a fixed learning rate the update is sign-like and α/√r grows like √r
    # (rsLoRA wants η ∝ r^-1/2 there; `rsstab check "alpha/sqrt(r)" --optimizer adam` says so).
    assert not result.passed and result.label == "blow-up"
    assert result.fits["forward"].slope > 0.3
    print(result.report())  # the rank × quantity table, shown with `pytest -s`
    result.plot(tmp_path / "rank_check.png")  # a coordinate-check figure of the same result


# --------------------------------------------------------------------------- a PEFT model

try:
    import peft
except ImportError:  # the tests below are skipped, the rest of the file still runs
    peft = None
needs_peft = pytest.mark.skipif(peft is None, reason="peft is not installed")


def peft_model(r: int, *, use_rslora: bool) -> torch.nn.Module:
    """A tiny base model with one LoRA-adapted linear layer, built the usual PEFT way."""
    base = torch.nn.Sequential(torch.nn.Linear(WIDTH, WIDTH))
    config = peft.LoraConfig(r=r, lora_alpha=16, target_modules=["0"], use_rslora=use_rslora,
                             init_lora_weights=True)
    return peft.get_peft_model(base, config)  # freezes the base, leaves lora_A/lora_B trainable


@needs_peft
def test_peft_rslora_is_rank_stabilized_under_sgd() -> None:
    assert_rank_stabilized(lambda r: peft_model(r, use_rslora=True), optimizer="sgd")


@needs_peft
def test_peft_default_lora_is_rank_stabilized_under_adam() -> None:
    assert_rank_stabilized(lambda r: peft_model(r, use_rslora=False), optimizer="adam")


@needs_peft
def test_peft_default_lora_collapses_under_sgd() -> None:
    with pytest.raises(AssertionError, match="collapse"):
        assert_rank_stabilized(lambda r: peft_model(r, use_rslora=False), optimizer="sgd")


# --------------------------------------------------------------------------- your own tooling


def scaling_warning(schedule: str, optimizer: str) -> str | None:
    """Example tooling under test: a config linter that warns about unstable scalings."""
    verdict = rsstab.check(schedule, optimizer)
    return None if verdict.stable else f"{schedule}: {verdict.label} under {optimizer}"


@settings(max_examples=25, deadline=None)
@given(schedules(label="rank-stabilized", optimizer="sgd"))
def test_linter_accepts_stable_schedules(schedule: str) -> None:
    assert scaling_warning(schedule, "sgd") is None


@settings(max_examples=25, deadline=None)
@given(schedules(label="collapse", optimizer="adam"))
def test_linter_flags_collapsing_schedules(schedule: str) -> None:
    warning = scaling_warning(schedule, "adam")
    assert warning is not None and "collapse" in warning
