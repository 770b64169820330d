"""Light imports: the package root and the stdlib-only modules load neither sympy nor torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("sympy", "torch", "numpy", "matplotlib", "scipy")


@pytest.mark.parametrize("module", ["rsstab", "rsstab.sweep", "rsstab.io", "rsstab.vocab", "rsstab.errors", "rsstab.experiments",
                                    "rsstab.verdict", "rsstab.measure", "rsstab.measure.compare",
                                    "rsstab.peft_files", "rsstab.cli"])
def test_module_imports_nothing_heavy(module: str) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {module} loaded {out.stdout.strip()}"


def test_lazy_root_still_offers_its_names() -> None:
    import rsstab

    assert set(rsstab.__all__) <= set(dir(rsstab))
    assert rsstab.check("alpha/r").label == "collapse"
    with pytest.raises(AttributeError):
        rsstab.no_such_name  # noqa: B018
