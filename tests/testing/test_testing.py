"""Tests of rsstab.testing, written the way a user writes theirs: public API only.

The expected exponents come from rsstab's own predictions (``rsstab.check``), never from
numbers typed here, so a measurement and a prediction check each other.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings

import rsstab
from rsstab.errors import RsstabError
from rsstab.testing import (
    QUANTITIES,
    RankStabilityResult,
    assert_rank_stabilized,
    check_rank_stability,
    labelled_schedules,
    schedules,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "test_my_adapter.py"
WIDTH = 8

try:
    import peft
except ImportError:  # pragma: no cover - peft is part of the test extra
    peft = None
needs_peft = pytest.mark.skipif(peft is None, reason="peft is not installed")


class LoRALinear(torch.nn.Module):
    """A user's own adapter: frozen base + scaling·B·A with B = 0 at init."""

    def __init__(self, d: int, r: int, scaling: float) -> None:
        super().__init__()
        self.base = torch.nn.Linear(d, d).requires_grad_(False)
        self.A = torch.nn.Parameter(torch.randn(r, d) / math.sqrt(d))
        self.B = torch.nn.Parameter(torch.zeros(d, r))
        self.scaling = scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * (x @ self.A.T) @ self.B.T


class TwoLayer(torch.nn.Module):
    """Two adapted layers with a ReLU between them: the check sees only input and output."""

    def __init__(self, d: int, r: int, scaling: float) -> None:
        super().__init__()
        self.first = LoRALinear(d, r, scaling)
        self.second = LoRALinear(d, r, scaling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))


def adapter(p: float, alpha: float = 1.0) -> Callable[[int], torch.nn.Module]:
    """Factory of a one-layer adapter with γ_r = alpha · r^p."""
    return lambda r: LoRALinear(WIDTH, r, alpha * r**p)


def peft_model(r: int, use_rslora: bool) -> torch.nn.Module:
    base = torch.nn.Sequential(torch.nn.Linear(WIDTH, WIDTH))
    config = peft.LoraConfig(r=r, lora_alpha=16, target_modules=["0"], use_rslora=use_rslora,
                             init_lora_weights=True)
    return peft.get_peft_model(base, config)


# --------------------------------------------------------------------------- the criteria


def test_own_adapter_with_rslora_scaling_passes_under_sgd() -> None:
    result = assert_rank_stabilized(adapter(-0.5, alpha=16.0))
    assert result.passed and result.label == "rank-stabilized"
    for q in ("forward", "backward"):
        lo, hi = result.fits[q].ci
        assert -0.1 <= lo and hi <= 0.1


@pytest.mark.parametrize("p, label", [(-1.0, "collapse"), (0.0, "blow-up")])
def test_own_adapter_with_lora_or_constant_scaling_fails_under_sgd(p: float, label: str) -> None:
    with pytest.raises(AssertionError) as info:
        assert_rank_stabilized(adapter(p, alpha=2.0))
    message = str(info.value)
    assert f"forward: {label}" in message and f"backward: {label}" in message
    # the readable table: one column per rank, one row per quantity, and the expected regime
    assert "r=64" in message and "r=4096" in message
    for q in QUANTITIES:
        assert any(line.startswith(q) for line in message.splitlines())
    assert "γ_r²·r ∈ Θ(1)" in message


@pytest.mark.parametrize(
    "p, passes", [(-1.0, True), (-0.5, False), (0.0, False)]
)
def test_own_adapter_verdicts_follow_the_adam_regime(p: float, passes: bool) -> None:
    expected = rsstab.check(f"r**({p})", "adam")
    assert expected.stable is passes  # the prediction the measurement must reproduce
    if passes:
        assert_rank_stabilized(adapter(p), optimizer="adam")
    else:
        with pytest.raises(AssertionError, match=f"forward: {expected.label}"):
            assert_rank_stabilized(adapter(p), optimizer="adam")


@needs_peft
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("use_rslora", [True, False])
def test_peft_models_follow_the_regime(use_rslora: bool, optimizer: str) -> None:
    expected = rsstab.check("alpha/sqrt(r)" if use_rslora else "alpha/r", optimizer)

    def factory(r: int) -> torch.nn.Module:
        return peft_model(r, use_rslora)

    if expected.stable:
        assert_rank_stabilized(factory, optimizer=optimizer)
    else:
        with pytest.raises(AssertionError, match=expected.label):
            assert_rank_stabilized(factory, optimizer=optimizer)
    # use_rslora passes under SGD only, plain LoRA under Adam only
    assert expected.stable is (use_rslora == (optimizer == "sgd"))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("p", [-1.0, -0.75, -0.5, -0.25, 0.0])
def test_measured_slopes_match_predicted_exponents(p: float, optimizer: str) -> None:
    result = check_rank_stability(adapter(p), optimizer=optimizer, ranks=(64, 512, 4096), seeds=3)
    predicted = rsstab.check(f"r**({p})", optimizer)
    for q in QUANTITIES:
        assert abs(result.fits[q].slope - predicted.quantities[q].exponent) <= 0.1, (q, result.report())
    assert result.label == predicted.label


def test_black_box_two_layer_stack() -> None:
    assert_rank_stabilized(lambda r: TwoLayer(WIDTH, r, 4 / math.sqrt(r)))
    result = check_rank_stability(lambda r: TwoLayer(WIDTH, r, 4 / r))
    assert result.label == "collapse"


# --------------------------------------------------------------------------- behaviour


def test_check_returns_a_result_without_raising_and_is_deterministic() -> None:
    rng = torch.get_rng_state()
    threads = torch.get_num_threads()
    first = check_rank_stability(adapter(-1.0), ranks=(64, 256, 1024), seeds=3)
    second = check_rank_stability(adapter(-1.0), ranks=(64, 256, 1024), seeds=3)
    assert not first.passed and first.label == "collapse"
    assert first.values == second.values
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's RNG is untouched
    assert torch.get_num_threads() == threads
    assert first.ranks == (64, 256, 1024)
    assert all(len(per_rank) == 3 for q in QUANTITIES for per_rank in first.values[q])
    rows = first.rows()
    assert len(rows) == 3 * 3 * len(QUANTITIES)
    assert str(first) == first.report()
    # too few seeds to confirm a flat slope: indeterminate, with a hint
    thin = check_rank_stability(adapter(-0.5), ranks=(64, 128), seeds=2)
    assert not thin.passed and thin.label == "indeterminate"
    assert "raise seeds=" in thin.report()
    # another base seed gives other numbers, the same verdict
    other = check_rank_stability(adapter(-1.0), ranks=(64, 256, 1024), seeds=3, seed=1)
    assert other.values != first.values and other.label == "collapse"


def test_results_can_be_rebuilt_from_rows() -> None:
    from rsstab.measure.rows import values_from_rows

    result = check_rank_stability(adapter(-0.5), ranks=(64, 256, 1024), seeds=3)
    rebuilt = {}
    for q in QUANTITIES:
        ranks, values = values_from_rows(result.rows(), q)
        rebuilt[q] = values
    again = RankStabilityResult.from_values(ranks, rebuilt, optimizer="sgd")
    assert again.passed == result.passed
    assert {q: again.fits[q].slope for q in QUANTITIES} == {q: result.fits[q].slope for q in QUANTITIES}


def test_small_ranks_carry_a_note_about_finite_rank_bias() -> None:
    result = check_rank_stability(adapter(-0.5), ranks=(8, 32, 128), seeds=3, draws=1)
    assert any("below 8× the input width" in n for n in result.notes)
    assert "notes:" in result.report()
    assert not check_rank_stability(adapter(-0.5), ranks=(64, 256), seeds=3).notes


def test_divergence_is_reported_not_raised() -> None:
    result = check_rank_stability(adapter(0.0, alpha=4.0), lr=10.0, ranks=(64, 256, 1024), seeds=2)
    assert not result.passed and result.label == "indeterminate"
    assert result.diverged
    assert "training diverged" in result.report()
    with pytest.raises(AssertionError, match="diverged"):
        assert_rank_stabilized(adapter(0.0, alpha=4.0), lr=10.0, ranks=(64, 256, 1024), seeds=2)


def test_modules_without_in_features_need_d_in() -> None:
    class Bare(torch.nn.Module):
        def __init__(self, r: int) -> None:
            super().__init__()
            self.A = torch.nn.Parameter(torch.randn(r, WIDTH) / math.sqrt(WIDTH))
            self.B = torch.nn.Parameter(torch.zeros(WIDTH, r))
            self.r = r

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + (x @ self.A.T) @ self.B.T / math.sqrt(self.r)

    with pytest.raises(RsstabError, match="d_in"):
        check_rank_stability(Bare)
    assert_rank_stabilized(Bare, d_in=WIDTH)


class _OldStyleMatmul(torch.autograd.Function):
    """A custom autograd function without forward-mode support: torch.func cannot trace it."""

    @staticmethod
    def forward(ctx, x, w):  # type: ignore[override]
        ctx.save_for_backward(x, w)
        return x @ w.T

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        x, w = ctx.saved_tensors
        return g @ w, g.T @ x


class CustomFunctionLoRA(LoRALinear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = _OldStyleMatmul.apply(x, self.A)
        return self.base(x) + self.scaling * _OldStyleMatmul.apply(a, self.B)


def test_modules_torch_func_cannot_trace_fall_back_with_a_note() -> None:
    result = assert_rank_stabilized(lambda r: CustomFunctionLoRA(WIDTH, r, 1 / math.sqrt(r)))
    assert any("torch.func could not trace" in n for n in result.notes)
    with pytest.raises(AssertionError, match="collapse"):
        assert_rank_stabilized(lambda r: CustomFunctionLoRA(WIDTH, r, 1 / r))
    assert not any("torch.func" in n for n in check_rank_stability(adapter(-0.5), seeds=2).notes)


class _NoTrainable(torch.nn.Module):
    def __init__(self, r: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(WIDTH, WIDTH).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


class _TupleOut(LoRALinear):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:  # type: ignore[override]
        return (super().forward(x),)


@pytest.mark.parametrize(
    "factory, options, match",
    [
        (adapter(-0.5), {"optimizer": "adagrad"}, "unknown optimizer"),
        (adapter(-0.5), {"ranks": (64,)}, "at least two ranks"),
        (adapter(-0.5), {"ranks": (64, 64)}, "distinct"),
        (adapter(-0.5), {"ranks": (0, 64)}, "every rank"),
        (adapter(-0.5), {"seeds": 1}, "seeds"),
        (adapter(-0.5), {"steps": 0}, "steps"),
        (adapter(-0.5), {"tolerance": -1.0}, "tolerance"),
        (adapter(-0.5), {"lr": float("nan")}, "lr"),
        (adapter(-0.5), {"dtype": "float16"}, "dtype"),
        (adapter(-0.5), {"confidence": 1.5}, "confidence"),
        ("not callable", {}, "callable"),
        (lambda r: "a string", {}, "expected a torch.nn.Module"),
        (_NoTrainable, {}, "no trainable parameters"),
        (lambda r: _TupleOut(WIDTH, r, 1.0), {}, "returned tuple"),
        (lambda r: LoRALinear(WIDTH, r, 1.0), {"d_in": WIDTH + 1}, "is d_in=9 right"),
    ],
)
def test_bad_arguments_raise_rsstab_error(factory, options, match: str) -> None:
    with pytest.raises(RsstabError, match=match) as info:
        check_rank_stability(factory, **{"ranks": (64, 256), "seeds": 2, **options})
    assert "\n" not in str(info.value)


def test_import_is_light() -> None:
    code = "import sys, rsstab.testing; print([m for m in ('torch', 'hypothesis') if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------- strategies


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("label", ["rank-stabilized", "collapse", "blow-up"])
def test_schedules_have_the_label_they_promise(label: str, optimizer: str) -> None:
    @settings(max_examples=40, deadline=None, database=None)
    @given(schedules(label=label, optimizer=optimizer))
    def agree(expr: str) -> None:
        assert rsstab.check(expr, optimizer).label == label, expr

    agree()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_labelled_schedules_cover_every_label(optimizer: str) -> None:
    seen: set[str] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(labelled_schedules(optimizer))
    def agree(pair: tuple[str, str]) -> None:
        expr, label = pair
        assert rsstab.check(expr, optimizer).label == label, expr
        seen.add(label)

    agree()
    assert seen == {"rank-stabilized", "collapse", "blow-up"}


def test_strategy_arguments_are_checked() -> None:
    with pytest.raises(RsstabError, match="unknown label"):
        schedules(label="stable")
    with pytest.raises(RsstabError, match="unknown optimizer"):
        schedules(optimizer="lion")


# --------------------------------------------------------------------------- as users run it


def _run_pytest(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=cwd, check=False, capture_output=True, text=True, timeout=300, env=env,
    )


def test_example_file_passes_from_a_clean_install(tmp_path: Path) -> None:
    """Build a wheel from the source tree, install it into an empty folder, and run the example
    test file there with pytest, as a user who copied it would (no rsstab source on the path)."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copytree(ROOT / "rsstab", src / "rsstab", ignore=shutil.ignore_patterns("__pycache__"))
    readme = ROOT / "README.md"
    (src / "README.md").write_text(readme.read_text() if readme.exists() else "rsstab\n")
    site = tmp_path / "site"
    try:
        import setuptools  # noqa: F401  (the build backend, used without network access)
    except ImportError:  # no backend to build a wheel offline: install the package files as-is
        shutil.copytree(src / "rsstab", site / "rsstab")
    else:
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
        build = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                                "-w", str(tmp_path / "dist"), str(src)], check=False, capture_output=True, text=True, timeout=300)
        assert build.returncode == 0, build.stderr
        wheel = next((tmp_path / "dist").glob("rsstab-*.whl"))
        install = subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                                 check=False, capture_output=True, text=True, timeout=300)
        assert install.returncode == 0, install.stderr

    work = tmp_path / "user_project"
    work.mkdir()
    shutil.copy(EXAMPLE, work / "test_my_adapter.py")
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run([sys.executable, "-c", "import rsstab.testing; print(rsstab.testing.__file__)"],
                           cwd=work, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout + where.stderr
    proc = _run_pytest(["-rs", "test_my_adapter.py"], cwd=work, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "failed" not in proc.stdout and "skipped" not in proc.stdout
    assert " passed" in proc.stdout


def test_readme_shows_the_example_file_verbatim() -> None:
    doc = (ROOT / "README.md").read_text()
    blocks = doc.split("```python\n")
    assert EXAMPLE.read_text() in [block.split("```", 1)[0] for block in blocks[1:]]


def test_pytest_plugin_fixture_options_and_summary(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["rsstab.testing.plugin"]\n')
    (tmp_path / "test_user.py").write_text(textwrap.dedent(f"""
        import math
        import pytest
        import torch

        class LoRALinear(torch.nn.Module):
            def __init__(self, r, scaling):
                super().__init__()
                self.base = torch.nn.Linear({WIDTH}, {WIDTH}).requires_grad_(False)
                self.A = torch.nn.Parameter(torch.randn(r, {WIDTH}) / math.sqrt({WIDTH}))
                self.B = torch.nn.Parameter(torch.zeros({WIDTH}, r))
                self.scaling = scaling

            def forward(self, x):
                return self.base(x) + self.scaling * (x @ self.A.T) @ self.B.T

        def test_stable(rank_stability):
            result = rank_stability(lambda r: LoRALinear(r, 1 / math.sqrt(r)))
            assert result.settings["seeds"] == 6
            assert result.ranks == (64, 256, 1024)

        def test_explicit_arguments_win(rank_stability):
            result = rank_stability(lambda r: LoRALinear(r, 1 / r), optimizer="adam", seeds=5)
            assert result.settings["seeds"] == 5

        def test_unstable(rank_stability):
            with pytest.raises(AssertionError, match="collapse"):
                rank_stability(lambda r: LoRALinear(r, 1 / r))

        def test_readme_style_call_sees_the_flags():
            from rsstab.testing import assert_rank_stabilized

            result = assert_rank_stabilized(lambda r: LoRALinear(r, 1 / math.sqrt(r)))
            assert result.settings["seeds"] == 6 and result.ranks == (64, 256, 1024)
    """))
    proc = _run_pytest(["-W", "error::DeprecationWarning", "--rsstab-seeds", "6", "--rsstab-ranks", "64,256,1024", "test_user.py"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout
    summary = proc.stdout.split("rsstab rank stability", 1)[1].splitlines()
    lines = [line for line in summary if "test_user.py::" in line]
    assert len(lines) == 3
    assert sum(line.startswith("FAILED") for line in lines) == 1
    assert any(line.startswith("passed") and "adam" in line for line in lines)


def test_result_plot_shows_a_failing_check(tmp_path: Path) -> None:
    """`result.plot()`: one panel per quantity, the fitted slope and label in each title."""
    import numpy as np

    from rsstab.testing import RankStabilityResult

    ranks = (64, 256, 1024)
    flat = np.ones((3, 2)) * [1.0, 1.1]
    res = RankStabilityResult.from_values(ranks, {"grad_init": flat, "forward": flat / np.asarray(ranks, float)[:, None],
                                                  "backward": flat}, optimizer="sgd")
    fig = res.plot()
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and "collapse" in titles[1] and "slope -1.00" in titles[1]
    assert "collapse" in fig._suptitle.get_text()
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml")):
        path = res.plot(str(tmp_path / f"check{suffix}"))
        assert Path(path).read_bytes().startswith(magic)
