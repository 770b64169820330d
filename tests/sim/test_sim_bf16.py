"""The opt-in bfloat16 adapter products (``SimConfig(bf16=True)``): close to float32 cell by cell,
and the same slopes across ranks (the accuracy check of the opt-in path; the full paper grid is
checked by ``benchmarks/bench_simulate.py``, which reports the largest slope difference)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rsstab.errors import RsstabError
from rsstab.measure.fit import fit_slope
from rsstab.sim import SimConfig, simulate_cell

GRID = dict(depth=3, width=32, steps=8, seeds=6, batch=16, probe_batch=32)
SLOPED = ("forward", "backward", "grad_A", "grad_B", "moment4")


@pytest.mark.parametrize("optimizer, lr", [("adam", 1e-4), ("sgd", 1e-3)])
def test_bf16_slopes_agree_with_float32(optimizer: str, lr: float) -> None:
    ranks = [4, 16, 64, 256]
    cells = {bf: [simulate_cell(SimConfig(rank=r, gamma=1 / math.sqrt(r), optimizer=optimizer, lr=lr,
                                           bf16=bf, **GRID)) for r in ranks] for bf in (False, True)}
    for q in SLOPED:
        for layer in range(GRID["depth"]):
            s = [fit_slope(ranks, np.array([c.data[q][-1, :, layer] for c in cells[bf]])).slope for bf in (False, True)]
            assert abs(s[1] - s[0]) < 0.02, (q, layer, s)
    for f32, b16 in zip(cells[False], cells[True]):
        np.testing.assert_allclose(b16.data["test_loss"], f32.data["test_loss"], rtol=1e-2)
        np.testing.assert_allclose(b16.data["forward"], f32.data["forward"], rtol=0.05)


def test_bf16_needs_float32() -> None:
    with pytest.raises(RsstabError, match="float32"):
        SimConfig(rank=4, gamma=1.0, bf16=True, dtype="float64")
    assert SimConfig.from_dict(SimConfig(rank=4, gamma=1.0, bf16=True).to_dict()).bf16


def test_simulate_bf16_flag_reaches_the_cells_and_keeps_the_slopes(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from rsstab.cli import main

    bodies = []
    for extra in ([], ["--bf16"]):
        main(["simulate", "alpha/r", "--optimizer", "adam", "--ranks", "16,64,256", "--width", "16", "--depth", "2",
              "--seeds", "3", "--steps", "3", "--json", *extra])
        out = json.loads(capsys.readouterr().out)
        bodies.append(out.get("body", out))
    assert bodies[1]["settings"]["bf16"] is True and "bf16" not in bodies[0]["settings"]
    for q in ("forward", "backward", "grad_init"):
        f32, b16 = (b["quantities"][q]["slope"] for b in bodies)
        assert abs(f32 - b16) < 0.02, (q, f32, b16)


@pytest.mark.parametrize("native", [False, True])
def test_simulate_bf16_says_when_this_cpu_would_emulate_it(native: bool, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Without bfloat16 matrix units torch emulates the products (slower than float32): the
    command still runs and says so on stderr, once; with them it says nothing."""
    from rsstab.cli import main
    from rsstab.sim import stack

    monkeypatch.setattr(stack, "native_bf16", lambda: native)
    main(["simulate", "alpha/r", "--optimizer", "adam", "--ranks", "16,64", "--width", "16", "--depth", "1",
          "--seeds", "2", "--steps", "2", "--json", "--bf16"])
    err = capsys.readouterr().err
    assert ("no bfloat16 matrix units" in err) is (not native)
    assert err.count("bfloat16") == (0 if native else 1)


def test_native_bf16_matches_the_cpu_flags() -> None:
    """The probe agrees with the kernel's CPU flags where Linux shows them."""
    import pathlib

    from rsstab.sim.stack import native_bf16

    info = pathlib.Path("/proc/cpuinfo")
    if not info.exists():
        pytest.skip("no /proc/cpuinfo")
    flags = set(" ".join(line for line in info.read_text().splitlines() if line.startswith("flags")).split())
    assert native_bf16() == bool({"avx512_bf16", "amx_tile"} & flags)
