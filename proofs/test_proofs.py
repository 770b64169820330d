"""``python -m pytest proofs`` runs every proof script, exactly as ``python proofs/<name>.py`` would."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(p for p in HERE.glob("*.py") if not p.name.startswith(("test_", "conftest")))


def test_one_script_per_result() -> None:
    from rsstab.derive import RESULTS

    keys = [runpy.run_path(str(p))["RESULT"] for p in SCRIPTS]
    keys = [k for k in keys if k is not None]  # RESULT = None would mark a standalone derivation
    assert sorted(keys) == sorted(RESULTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_proof_script_passes(script: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    assert "identities hold" in out


def test_a_script_runs_as_a_program() -> None:
    """One real subprocess, so the exit-code path of ``python proofs/<name>.py`` is exercised."""
    done = subprocess.run([sys.executable, str(HERE / "stability_iff.py")], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "proof of result 5 (iff): all" in done.stdout
