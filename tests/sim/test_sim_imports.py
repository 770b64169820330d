"""What rsstab.sim imports: its config is standard library only, and the simulator never loads
the theory or the fitting code."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_config_and_the_simulate_command_load_neither_torch_nor_numpy() -> None:
    code = ("import sys, rsstab.sim, rsstab.sim.config, rsstab.commands.simulate; "
            "print(' '.join(m for m in ('torch', 'numpy', 'sympy') if m in sys.modules))")
    assert _run(code) == ""


def test_simulate_help_shows_the_simulator_defaults() -> None:
    import argparse

    from rsstab.commands.simulate import add_arguments
    from rsstab.sim.config import DEFAULTS

    p = argparse.ArgumentParser()
    add_arguments(p)
    text = " ".join(p.format_help().split())
    assert f"(default: {','.join(map(str, DEFAULTS['ranks']))})" in text
    for flag in ("depth", "width", "steps", "seeds", "batch"):
        assert p.get_default(flag) is None  # unset options take DEFAULTS in empirical_verdict
        assert f"(default: {DEFAULTS[flag]})" in text
    assert f"{DEFAULTS['lr']['sgd']:g} for sgd, {DEFAULTS['lr']['adam']:g} for adam" in text


def test_simulator_never_imports_theory_fit_or_classify() -> None:
    code = ("import sys\n"
            "from rsstab.sim import make_configs, run_cell\n"
            "rows = [r for c in make_configs('alpha/sqrt(r)', [4, 8], width=4, steps=1, seeds=2, batch=2, "
            "probe_batch=2, depth=2) for r in run_cell(c)]\n"
            "assert rows and 'torch' in sys.modules\n"
            "print(' '.join(m for m in ('rsstab.theory', 'rsstab.measure.fit', 'rsstab.verdict.classify') if m in sys.modules))")
    assert _run(code) == ""


def test_lazy_names_resolve_to_their_modules() -> None:
    import rsstab.sim as sim

    assert set(sim.__all__) <= set(dir(sim))
    for name in sim.__all__:
        assert getattr(sim, name) is not None
    assert sim.run_cell.__module__ == "rsstab.sim.cells"
    assert sim.SimConfig.__module__ == "rsstab.sim.config"
    with pytest.raises(AttributeError):
        sim.no_such_name  # noqa: B018
