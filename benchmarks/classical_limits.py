"""Run the held-out classical limits (tests/support/classical_limits.py) through the asymptotics engine.

Usage::

    python benchmarks/classical_limits.py [--verbose] [--sympy]

``--sympy``: sympy's own limits at +∞ (tests/support/sympy_limits.py) instead.

Prints, per case, the engine's growth, the verdict it implies (→ 0 / Θ(1) / → ∞), the expected one
and the time taken; then the counts right / wrong / refused / indeterminate (a right direction with
an order other than the one a case pins down counts as wrong). Exits 1 on any wrong answer.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.classical_limits import CASES, verdict  # noqa: E402
from support.sympy_limits import SYMPY_CASES  # noqa: E402

from rsstab.asymptotics import growth  # noqa: E402
from rsstab.errors import ScheduleError  # noqa: E402
from rsstab.schedule import parse  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true", help="print every case, not only the misses")
    ap.add_argument("--sympy", action="store_true", help="sympy's own limits (tests/support/sympy_limits.py)")
    args = ap.parse_args()
    cases = SYMPY_CASES if args.sympy else CASES
    counts: collections.Counter[str] = collections.Counter()
    slowest: list[tuple[float, str]] = []
    for case in cases:
        start = time.perf_counter()
        try:
            g = growth(parse(case.text).expr)
            got, shown = verdict(g), f"{g} [{g.method}]"
        except ScheduleError as exc:
            got, shown = "refused", f"refused: {exc}"
        seconds = time.perf_counter() - start
        slowest.append((seconds, case.text))
        outcome = ("right" if got == case.expected else
                   got if got in ("refused", "indeterminate") else "wrong")
        if outcome == "right" and case.order and shown.split(" [")[0] != case.order:
            outcome = "wrong"  # the right direction with the wrong order
        counts[outcome] += 1
        if args.verbose or outcome != "right":
            print(f"{outcome:>13}  {seconds:5.2f} s  {case.text}\n{'':>22}expected {case.expected}: {shown}")
    print(f"\n{len(cases)} cases: " + ", ".join(f"{counts[k]} {k}" for k in
                                               ("right", "wrong", "refused", "indeterminate")))
    slowest.sort(reverse=True)
    print("slowest: " + "; ".join(f"{s:.2f} s {t}" for s, t in slowest[:3]))
    return 1 if counts["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
