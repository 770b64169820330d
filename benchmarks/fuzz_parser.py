"""Fuzz ``rsstab.schedule.parse`` and ``rsstab check`` with N hypothesis-generated inputs.

Usage::

    python benchmarks/fuzz_parser.py --n 10000 [--seed 0] [--report fuzz.json]

Inputs are split evenly over four generators (random token strings, unicode text, random Python
expression ASTs, random valid schedules; see ``tests/support/fuzz_inputs.py``), each also run with random
``rsstab check`` flags. Prints how many inputs parse accepted and rejected, the exit codes of
``rsstab check``, every crash / hang / traceback / evaluation attempt with its exact input, and the
slowest inputs. Exits 1 if anything went wrong.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import fuzz_inputs  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings

GENERATORS = {
    "tokens": fuzz_inputs.token_texts,
    "unicode": fuzz_inputs.raw_texts,
    "ast": fuzz_inputs.ast_texts,
    "valid": fuzz_inputs.valid_texts,
}


def fuzz(n: int, seed_value: int) -> dict[str, object]:
    """Run about ``n`` inputs; return the statistics (JSON-serializable)."""
    fuzz_inputs.warm_up()
    outcomes: dict[str, list[fuzz_inputs.Outcome]] = {k: [] for k in GENERATORS}
    per = -(-n // len(GENERATORS))
    for kind, strategy in GENERATORS.items():
        sink = outcomes[kind]

        @seed(seed_value)
        @settings(max_examples=per, deadline=None, database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(text=strategy, flags=fuzz_inputs.check_flags)
        def run(text: str, flags: list[str]) -> None:
            outcome = fuzz_inputs.run_one(text, flags)
            outcome.flags = flags  # type: ignore[attr-defined]
            sink.append(outcome)  # noqa: B023 - run() is called before the next iteration

        start = time.perf_counter()
        run()
        print(f"{kind:8s} {len(outcomes[kind]):6d} inputs in {time.perf_counter() - start:6.1f} s",
              file=sys.stderr)

    every = [o for os_ in outcomes.values() for o in os_]
    problems = [o for o in every if o.problems]
    slow_parse = max(every, key=lambda o: o.parse_seconds)
    slow_check = sorted(every, key=lambda o: -o.check_seconds)[:5]
    return {
        "inputs": len(every),
        "distinct_inputs": len({(o.text, tuple(o.flags)) for o in every}),  # type: ignore[attr-defined]
        "per_generator": {
            k: {"inputs": len(v), "accepted": sum(o.accepted for o in v),
                "rejected": sum(not o.accepted for o in v)}
            for k, v in outcomes.items()
        },
        "accepted": sum(o.accepted for o in every),
        "rejected": sum(not o.accepted for o in every),
        "check_exit_codes": dict(sorted(collections.Counter(o.check_code for o in every).items())),
        "problems": [{"input": o.text, "flags": o.flags, "problems": o.problems}  # type: ignore[attr-defined]
                     for o in problems],
        "warnings": collections.Counter(w for o in every for w in o.warnings).most_common(),
        "warning_inputs": [o.text for o in every if o.warnings][:10],
        "slowest_parse": {"input": slow_parse.text, "seconds": round(slow_parse.parse_seconds, 4)},
        "slowest_check": [{"input": o.text, "flags": o.flags,  # type: ignore[attr-defined]
                           "seconds": round(o.check_seconds, 3)} for o in slow_check],
        "limits_seconds": {"parse": fuzz_inputs.PARSE_LIMIT, "check": fuzz_inputs.CHECK_LIMIT},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of inputs (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    parser.add_argument("--report", type=Path, help="also write the statistics as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    stats = fuzz(args.n, args.seed)
    stats["seconds"] = round(time.perf_counter() - start, 1)
    if args.report:
        args.report.write_text(json.dumps(stats, indent=1, ensure_ascii=True) + "\n")
    print(f"inputs: {stats['inputs']} ({stats['distinct_inputs']} distinct) in {stats['seconds']} s")
    print(f"parse: {stats['accepted']} accepted, {stats['rejected']} rejected with ScheduleError")
    print(f"rsstab check exit codes: {stats['check_exit_codes']}")
    for kind, d in stats["per_generator"].items():  # type: ignore[union-attr]
        print(f"  {kind:8s} {d['inputs']:6d} inputs, {d['accepted']:6d} accepted")
    print(f"crashes/hangs/tracebacks/evaluations: {len(stats['problems'])}")  # type: ignore[arg-type]
    for p in stats["problems"]:  # type: ignore[union-attr]
        print(f"  PROBLEM {p['input']!r} {p['flags']}: {'; '.join(p['problems'])}")
    n_warn = sum(n for _, n in stats["warnings"])  # type: ignore[union-attr]
    print(f"warnings raised (not crashes; users see them on stderr): {n_warn}")
    for w, n in stats["warnings"][:5]:  # type: ignore[index]
        print(f"  {n:5d} x {w}")
    for text in stats["warning_inputs"][:5]:  # type: ignore[index]
        print(f"  e.g. {text!r:.100}")
    sp = stats["slowest_parse"]
    print(f"slowest parse: {sp['seconds']} s for {sp['input']!r:.100}")  # type: ignore[index]
    for c in stats["slowest_check"]:  # type: ignore[union-attr]
        print(f"slowest check: {c['seconds']} s for {c['input']!r:.100} {c['flags']}")
    return 1 if stats["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
