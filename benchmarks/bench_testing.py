"""Time rsstab.testing's default check at a real width, beside the bare training it cannot avoid.

The setting of issue 26: a frozen ``nn.Linear(width, width)`` with a hand-written LoRA (A ~ N(0, 1/width),
B = 0), every option of :func:`rsstab.testing.check_rank_stability` at its default (ranks 64…4096,
8 seeds × 4 draws, 10 SGD steps of batch 32). For α/√r (must pass) and α/r (must collapse) it
records the wall time of the check and, side by side in the same run, of a bare loop that builds
the same modules and takes the same optimizer steps with no probes — so ``check / bare`` is what the
probes cost, comparable across machines, and the seconds are what a user waits.

    python benchmarks/bench_testing.py                 # width 1024 (about 1½ minutes here)
    python benchmarks/bench_testing.py --width 256     # a quick look
    python benchmarks/bench_testing.py --json out.json

Run it on a quiet machine: nothing else computing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch
from bench_simulate import cpu_model  # benchmarks/ is the script's directory

from rsstab.testing import check_rank_stability
from rsstab.testing.stability import DEFAULTS


def factory(width: int, gamma):
    def make(r: int) -> torch.nn.Module:
        class LoRA(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.base = torch.nn.Linear(width, width, bias=False)
                self.base.weight.requires_grad_(False)
                self.A = torch.nn.Parameter(torch.randn(r, width) / math.sqrt(width))
                self.B = torch.nn.Parameter(torch.zeros(width, r))

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.base(x) + gamma(r) * (x @ self.A.T) @ self.B.T

        return LoRA()

    return make


def bare_loop(make, width: int) -> float:
    """The same modules and SGD steps as the default check, with no probes and no statistics."""
    t0 = time.perf_counter()
    steps, batch = DEFAULTS["steps"], DEFAULTS["batch"]
    for r in DEFAULTS["ranks"]:
        for s in range(DEFAULTS["seeds"]):
            for j in range(DEFAULTS["draws"]):
                torch.manual_seed(1000 * s + j)
                module = make(r)
                opt = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=DEFAULTS["lr"]["sgd"])
                x = torch.randn(steps * batch, width)
                y = torch.randn(steps * batch, width)
                for t in range(steps):
                    opt.zero_grad()
                    loss = 0.5 * (module(x[t * batch:(t + 1) * batch]) - y[t * batch:(t + 1) * batch]).pow(2).sum() / batch
                    loss.backward()
                    opt.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--json", default=None, help="also write the figures as JSON here")
    args = p.parse_args(argv)
    w = args.width
    rows = {}
    for name, gamma, want in (("alpha/sqrt(r)", lambda r: 1 / math.sqrt(r), "rank-stabilized"),
                              ("alpha/r", lambda r: 1 / r, "collapse")):
        make = factory(w, gamma)
        t0 = time.perf_counter()
        result = check_rank_stability(make)
        check = time.perf_counter() - t0
        bare = bare_loop(make, w)
        rows[name] = {"check_s": round(check, 2), "bare_s": round(bare, 2), "ratio": round(check / bare, 2),
                      "label": result.label, "expected": want, "right": result.label == want,
                      "forward_slope": round(result.fits["forward"].slope, 4)}
        print(f"{name:14s} check {check:6.1f} s   bare loop {bare:6.1f} s   check/bare {check / bare:4.2f}   "
              f"{result.label} (expected {want})", flush=True)
    meta = {"width": w, "cpu": cpu_model(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "defaults": {k: DEFAULTS[k] for k in ("ranks", "seeds", "draws", "steps",
                                                                              "batch", "dtype")},
            "load_average": os.getloadavg()[0]}
    print(f"{meta['cpu']}, {meta['cpus']} CPUs, torch {meta['torch']}, 1-minute load {meta['load_average']:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=2, default=list)
            f.write("\n")
    return 0 if all(r["right"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
