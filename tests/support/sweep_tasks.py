"""Cheap deterministic tasks for the sweep tests, importable by worker processes and subprocesses.

Run as ``python -c "import sys; from support import sweep_tasks; sys.exit(sweep_tasks.main())" --out DIR --n N``
(with this directory on ``PYTHONPATH``) to run a toy sweep that writes ``DIR/rows.csv``.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np

from rsstab.sweep import add_sweep_arguments, run_sweep_command

SPECIAL = (float("nan"), float("inf"), float("-inf"), -0.0, 5e-324, 0.1 + 0.2)


def grid(n: int, sleep: float = 0.0) -> list[dict[str, Any]]:
    """``n`` toy configurations over rank × seed."""
    ranks = (1, 2, 4, 8, 16, 32)
    return [
        {"experiment": "toy", "rank": ranks[i % len(ranks)], "seed": i // len(ranks), "sleep": sleep}
        for i in range(n)
    ]


def toy_task(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Seeded numpy statistics of an r×16 Gaussian matrix; includes numpy scalars and non-finites."""
    rank, seed = int(config["rank"]), int(config["seed"])
    rng = np.random.default_rng([seed, rank])
    x = rng.standard_normal((rank, 16))
    if config.get("sleep"):
        time.sleep(float(config["sleep"]))
    base = {"rank": rank, "seed": seed}
    return [
        {**base, "stat": "rms", "value": float(np.sqrt(np.mean(x**2)) / np.sqrt(rank))},
        {**base, "stat": "max", "value": np.float32(x.max())},
        {**base, "stat": "argmax", "value": np.int64(np.argmax(x))},
        {**base, "stat": "special", "value": SPECIAL[(seed + rank) % len(SPECIAL)]},
        {**base, "stat": "note", "value": None},
    ]


def failing_task(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Like :func:`toy_task`, but raises for ranks 4 and 16."""
    if config["rank"] in (4, 16):
        raise ValueError(f"rank {config['rank']} is unlucky\nsecond line")
    return toy_task(config)


def flag_task(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Raises while the file ``config["flag"]`` exists (a failure that is later fixed)."""
    if Path(config["flag"]).exists():
        raise RuntimeError("flag file present")
    return [{"i": config["i"], "value": config["i"] * 0.5}]


def bad_rows_task(config: dict[str, Any]) -> Any:
    """Returns rows that are not tidy scalars."""
    return [{"value": np.zeros(3)}] if config["i"] % 2 else {"not": "a list"}


def echo_task(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Returns the config's ``values`` list as rows (for float round-trip tests)."""
    return [{"k": i, "value": v} for i, v in enumerate(config["values"])]


def interrupting_task(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Raises KeyboardInterrupt (as Ctrl-C would) on the config with ``stop`` true."""
    if config.get("stop"):
        raise KeyboardInterrupt
    return [{"i": config["i"]}]


def pid_task(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Reports the worker's process id (not deterministic: only for the process-pool test)."""
    time.sleep(0.05)
    return [{"i": config["i"], "pid": os.getpid()}]


def main(argv: list[str] | None = None) -> int:
    """Toy sweep command (``--n N --sleep S`` plus the standard sweep arguments); its exit code."""
    # Like a command typed at a terminal: Ctrl-C raises KeyboardInterrupt even when this process
    # was started from a background job (which inherits SIGINT ignored).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="sweep_tasks")
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--sleep", type=float, default=0.0)
    add_sweep_arguments(parser)
    args = parser.parse_args(argv)
    return run_sweep_command(toy_task, grid(args.n, args.sleep), args)
