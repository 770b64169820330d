"""The benchmark scripts run (their quick grids; the timings themselves live in reports/, never
in tests): ``bench_simulate.py --quick`` times rsstab simulate as a user runs it beside the PEFT
loop and the library with and without the prediction statistics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_simulate_quick_writes_the_command_rows(tmp_path: Path) -> None:
    bench = _script("bench_simulate")
    out, raw = tmp_path / "perf.md", tmp_path / "perf.json"
    assert bench.main(["--quick", "--out", str(out), "--json", str(raw)]) in (0, None)
    text = out.read_text()
    for opt in ("SGD", "ADAM"):
        assert f"### `rsstab simulate` as users run it ({opt})" in text
    data = json.loads(raw.read_text())["results"]
    for opt in ("sgd", "adam"):
        rec = data[opt]["command"]
        assert rec["rsstab simulate s"] > 0 and rec["PEFT loop s"] > 0
        assert rec["library, with statistics s"] > 0 and rec["library, no statistics s"] > 0
        assert data[opt]["max_rel_diff"] < 1e-4  # the simulator and PEFT compute the same numbers
