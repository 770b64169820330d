"""Tests for rsstab.sweep: resumability (incl. real SIGKILL), corruption, failures, pools, Ctrl-C."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import sweep_tasks
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rsstab.errors import RsstabError
from rsstab.io import write_csv
from rsstab.sweep import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    SweepInterrupted,
    add_sweep_arguments,
    config_key,
    read_record,
    run_sweep,
    run_sweep_command,
    sweep_kwargs,
    task_identity,
)

TESTS = Path(__file__).resolve().parents[1]  # tests/: support.sweep_tasks importable by worker processes
DRIVER = "import sys; from support import sweep_tasks; sys.exit(sweep_tasks.main())"


def _bits(rows: list[dict]) -> list[tuple]:
    """Rows with floats replaced by their bit patterns, so NaN and -0.0 compare exactly."""

    def b(v):
        return ("f", struct.pack("<d", v)) if isinstance(v, float) else (type(v).__name__, v)

    return [tuple((k, b(v)) for k, v in row.items()) for row in rows]


def _driver(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, "--out", str(out), "--no-progress", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _store_files(out: Path) -> list[Path]:
    store = out / "store"
    if not store.is_dir():
        return []
    return sorted(p for p in store.glob("*.json") if not p.name.startswith("."))  # not .tmp-*


# ---------------------------------------------------------------------------------------------
# Resumability
# ---------------------------------------------------------------------------------------------


def test_rerun_skips_finished_configs_and_gives_identical_rows(tmp_path: Path) -> None:
    configs = sweep_tasks.grid(18)
    full = run_sweep(sweep_tasks.toy_task, configs, tmp_path / "full", progress=False)
    assert (full.n_computed, full.n_cached, full.failed, full.n_total) == (18, 0, [], 18)
    assert len(full.rows) == 18 * 5

    part = tmp_path / "part"
    first = run_sweep(sweep_tasks.toy_task, configs[::3], part, progress=False)
    assert first.n_computed == 6
    resumed = run_sweep(sweep_tasks.toy_task, configs, part, progress=False)
    assert (resumed.n_computed, resumed.n_cached) == (12, 6)
    again = run_sweep(sweep_tasks.toy_task, configs, part, progress=False)
    assert (again.n_computed, again.n_cached) == (0, 18)
    assert _bits(resumed.rows) == _bits(full.rows) == _bits(again.rows)
    # rows come back exactly as the task returned them (numpy scalars as Python scalars), in the
    # order of the configs, with no extra column
    assert full.rows[0] == {"rank": 1, "seed": 0, "stat": "rms", "value": full.rows[0]["value"]}
    assert [r["rank"] for r in full.rows[::5]] == [c["rank"] for c in configs]
    assert type(full.rows[1]["value"]) is float and type(full.rows[2]["value"]) is int
    csv_a = full.write_csv(tmp_path / "a.csv").read_bytes()
    csv_b = again.write_csv(tmp_path / "b.csv").read_bytes()
    assert csv_a == csv_b


def test_same_seed_same_numbers_across_stores(tmp_path: Path) -> None:
    configs = sweep_tasks.grid(6)
    a = run_sweep(sweep_tasks.toy_task, configs, tmp_path / "a", progress=False)
    b = run_sweep(sweep_tasks.toy_task, list(reversed(configs)), tmp_path / "b", progress=False)
    by_config = {}
    for row in b.rows:
        by_config.setdefault((row["rank"], row["seed"]), []).append(row)
    assert _bits(a.rows) == _bits([r for c in configs for r in by_config[(c["rank"], c["seed"])]])


finite_or_special = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]
PAYLOAD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(values=[NEG_NAN, PAYLOAD_NAN, float("nan"), -0.0, 5e-324, float("-inf"), 2**64])
@given(values=st.lists(finite_or_special | st.integers(-(2**70), 2**70) | st.none(), max_size=5))
def test_floats_round_trip_bit_exactly(tmp_path: Path, values: list) -> None:
    out = tmp_path / "rt"
    configs = [{"values": values}]
    first = run_sweep(sweep_tasks.echo_task, configs, out, progress=False)
    cached = run_sweep(sweep_tasks.echo_task, configs, out, progress=False)
    assert cached.n_cached == 1
    expected = [{"k": i, "value": v} for i, v in enumerate(values)]
    assert _bits(first.rows) == _bits(cached.rows) == _bits(expected)


def test_key_depends_on_config_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    import rsstab

    k = config_key({"rank": 4, "seed": 1})
    assert k == config_key({"seed": 1, "rank": 4})
    assert k != config_key({"rank": 4, "seed": 2})
    assert config_key({"x": 1}) != config_key({"x": 1.0})
    monkeypatch.setattr(rsstab, "__version__", "99.0")
    assert config_key({"rank": 4, "seed": 1}) != k


def test_key_depends_on_the_task_and_its_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the key was config + version only, so another task (or an edited sim.py) was
    served the old task's cached rows."""
    config = {"experiment": "toy", "rank": 4, "seed": 0, "sleep": 0.0}
    k_toy = config_key(config, sweep_tasks.toy_task)
    assert k_toy == config_key(config, sweep_tasks.toy_task)
    assert k_toy != config_key(config, sweep_tasks.failing_task) != config_key(config)
    first = run_sweep(sweep_tasks.toy_task, [config], tmp_path, progress=False)
    assert [p.stem for p in _store_files(tmp_path)] == [k_toy]
    other = run_sweep(sweep_tasks.echo_task, [{**config, "values": [7.5]}], tmp_path, progress=False)
    assert (other.n_cached, other.n_computed) == (0, 1)
    same_config = run_sweep(sweep_tasks.failing_task, [config], tmp_path, progress=False)
    assert (same_config.n_cached, len(same_config.failed)) == (0, 1)  # not toy_task's cached rows
    again = run_sweep(sweep_tasks.toy_task, [config], tmp_path, progress=False)
    assert (again.n_cached, again.n_computed) == (1, 0) and again.rows == first.rows
    assert read_record(_store_files(tmp_path)[0])["task"]["name"] in (
        "support.sweep_tasks:toy_task",
        "support.sweep_tasks:echo_task",
    )

    # an edit to the file defining the task invalidates its cells
    module = tmp_path / "edited_task_mod.py"
    module.write_text("def task(config):\n    return [{'v': 1}]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import edited_task_mod

    out = tmp_path / "edited"
    assert run_sweep(edited_task_mod.task, [config], out, progress=False).n_computed == 1
    assert run_sweep(edited_task_mod.task, [config], out, progress=False).n_cached == 1
    module.write_text(module.read_text() + "# a fix\n")
    rerun = run_sweep(edited_task_mod.task, [config], out, progress=False)
    assert (rerun.n_cached, rerun.n_computed) == (0, 1)
    # a task without a source file still gets a key of its own
    assert config_key(config, len) != config_key(config, abs)


def test_task_identity_pieces() -> None:
    import hashlib
    import platform

    from rsstab.vocab import combine_labels

    outside = task_identity(sweep_tasks.toy_task)
    inside = task_identity(combine_labels)
    assert list(outside) == ["name", "package", "source", "python", "torch", "transformers"]
    assert outside["name"] == "support.sweep_tasks:toy_task"
    assert inside["name"] == "rsstab.vocab:combine_labels"
    # a task outside the package: its own file; inside: covered by the package fingerprint
    assert outside["source"] == hashlib.sha256((TESTS / "support" / "sweep_tasks.py").read_bytes()).hexdigest()
    assert inside["source"] == ""
    assert outside["package"] == inside["package"] and len(inside["package"]) == 64
    assert inside["python"] == platform.python_version()


def test_key_depends_on_python_torch_and_transformers_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata
    import platform

    config = {"rank": 4, "seed": 0}
    key = config_key(config, sweep_tasks.toy_task)
    real_version = importlib.metadata.version

    with monkeypatch.context() as m:
        m.setattr(platform, "python_version", lambda: "3.99.0")
        assert config_key(config, sweep_tasks.toy_task) != key
    for dist in ("torch", "transformers"):
        with monkeypatch.context() as m:
            m.setattr(importlib.metadata, "version",
                      lambda name, d=dist: "0.0.1-other" if name == d else real_version(name))
            assert task_identity(sweep_tasks.toy_task)[dist] == "0.0.1-other"
            assert config_key(config, sweep_tasks.toy_task) != key

    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    identity = task_identity(sweep_tasks.toy_task)
    assert (identity["torch"], identity["transformers"]) == ("absent", "absent")
    assert config_key(config, sweep_tasks.toy_task) != key


PROBE_TASK = """\
from rsstab.vocab import check_optimizer, combine_labels


def task(config):
    return [{"x": config["x"], "label": combine_labels(["rank-stabilized"]),
             "optimizer": check_optimizer("adam")}]
"""

PROBE_DRIVER = """\
import sys
import rsstab
from rsstab.sweep import run_sweep
from rsstab._probe_task import task

assert rsstab.__file__.startswith(sys.argv[2]), rsstab.__file__
print(run_sweep(task, [{"x": 1}], sys.argv[1], progress=False).summary())
"""


def test_editing_any_rsstab_module_the_task_calls_recomputes_the_cell(tmp_path: Path) -> None:
    """Regression: only the task's own file was fingerprinted, so an edit to a module it calls
    (e.g. sim.run_cell's helpers) kept serving the old cached rows."""
    import shutil

    import rsstab

    copy = tmp_path / "pkg"
    shutil.copytree(Path(rsstab.__file__).parent, copy / "rsstab",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "rsstab" / "_probe_task.py").write_text(PROBE_TASK)
    out = tmp_path / "out"

    def sweep() -> str:
        done = subprocess.run(
            [sys.executable, "-c", PROBE_DRIVER, str(out), str(copy)],
            env={**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"},
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "1 computed, 0 cached" in sweep()
    assert "0 computed, 1 cached" in sweep()
    vocab = copy / "rsstab" / "vocab.py"  # not the task's file: a module the task calls
    vocab.write_text(vocab.read_text() + "# an edit elsewhere in the package\n")
    assert "1 computed, 0 cached" in sweep()
    assert "0 computed, 1 cached" in sweep()
    assert len(_store_files(out)) == 2


def test_sigkill_at_random_moments_then_rerun_matches_uninterrupted_run(tmp_path: Path) -> None:
    n, sleep = 30, "0.03"
    reference = tmp_path / "reference"
    proc = _driver(reference, "--n", str(n), "--sleep", sleep)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    expected_csv = (reference / "rows.csv").read_bytes()

    out = tmp_path / "killed"
    rng = random.Random(20261128)
    counts = []
    for _ in range(5):
        before = len(_store_files(out))
        target = before + rng.randint(1, 4)
        proc = _driver(out, "--n", str(n), "--sleep", sleep)
        deadline = time.monotonic() + 30
        while len(_store_files(out)) < target and proc.poll() is None:
            assert time.monotonic() < deadline, "driver made no progress"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.05))  # a random moment: mid-task or mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        files = _store_files(out)
        for path in files:  # no half-written or corrupt file, ever
            read_record(path)
        counts.append(len(files))
    assert counts == sorted(counts) and 0 < counts[-1] < n, counts

    result = run_sweep(sweep_tasks.toy_task, sweep_tasks.grid(n, float(sleep)), out, progress=False)
    assert (result.n_cached, result.n_computed, result.n_corrupt) == (counts[-1], n - counts[-1], 0)
    assert result.write_csv(out / "rows.csv").read_bytes() == expected_csv
    assert not list((out / "store").glob(".tmp-*")), "leftover temporary files were not cleaned"


def _children(pid: int) -> set[int]:
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.add(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_sigkill_with_a_process_pool_leaves_no_orphans_and_resumes(tmp_path: Path) -> None:
    n, sleep = 20, 0.05
    out = tmp_path / "pool"
    proc = _driver(out, "--n", str(n), "--sleep", str(sleep), "--workers", "2")
    deadline = time.monotonic() + 30
    while len(_store_files(out)) < 4 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    workers = _children(proc.pid)
    assert len(workers) >= 2, workers
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, "pool workers outlived the killed driver"
        time.sleep(0.05)
    configs = sweep_tasks.grid(n, sleep)
    resumed = run_sweep(sweep_tasks.toy_task, configs, out, workers=2, progress=False)
    assert 4 <= resumed.n_cached < n
    reference = run_sweep(sweep_tasks.toy_task, configs, tmp_path / "ref", progress=False)
    assert resumed.write_csv(tmp_path / "a.csv").read_bytes() == reference.write_csv(
        tmp_path / "b.csv"
    ).read_bytes()


def test_stale_tmp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import socket

    store = tmp_path / "store"
    store.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = store / f".tmp-{dead.pid}@{socket.gethostname()}-0123abcd-x.json"
    alive = store / f".tmp-{os.getppid()}@{socket.gethostname()}-0123abcd-y.json"
    stale.write_text('{"sha256":')
    alive.write_text('{"sha256":')
    run_sweep(sweep_tasks.toy_task, sweep_tasks.grid(1), tmp_path, progress=False)
    assert not stale.exists() and alive.exists()


# ---------------------------------------------------------------------------------------------
# Corruption
# ---------------------------------------------------------------------------------------------


def test_corrupt_store_files_are_reported_and_recomputed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    configs = sweep_tasks.grid(8)
    good = run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False)
    keys = [config_key(c, sweep_tasks.toy_task) for c in configs]
    files = {k: tmp_path / "store" / f"{k}.json" for k in keys}
    paths = list(files.values())
    text = paths[0].read_text()
    paths[0].write_text(text[: len(text) // 2])  # truncated
    paths[1].write_bytes(os.urandom(200))  # garbage
    paths[2].write_text(text.replace('"rms","value":1', '"rms","value":2'))  # other key's record
    edited = paths[3].read_text()
    number = json.loads(edited)["record"]["rows"][0]["value"]
    paths[3].write_text(edited.replace(repr(number), repr(number + 1.0), 1))  # silent bit flip
    paths[4].write_text("")  # empty
    paths[5].write_text('{"sha256":"00","record":{}}')  # well-formed JSON, wrong checksum
    doc = json.loads(paths[6].read_text())  # valid checksum, but another version wrote it
    doc["record"]["version"] = "0.0.1"
    import hashlib

    from rsstab.sweep.codec import dump

    doc["sha256"] = hashlib.sha256(dump(doc["record"]).encode()).hexdigest()
    paths[6].write_text(json.dumps({"sha256": doc["sha256"], "record": doc["record"]}))

    with caplog.at_level("WARNING", logger="rsstab.sweep"):
        again = run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False)
    assert (again.n_corrupt, again.n_computed, again.n_cached) == (7, 7, 1)
    reasons = dict(again.corrupt)
    assert "not valid JSON" in reasons[paths[0].stem] and "not valid JSON" in reasons[paths[1].stem]
    assert "checksum mismatch" in reasons[paths[3].stem]
    assert "0.0.1" in reasons[paths[6].stem]
    assert sum("is corrupt" in r.getMessage() for r in caplog.records) == 7
    assert _bits(again.rows) == _bits(good.rows)
    assert len(list((tmp_path / "corrupt").glob("*.json"))) == 7
    for path in paths:
        read_record(path)
    assert run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False).n_cached == 8


def test_read_record_rejects_misplaced_file(tmp_path: Path) -> None:
    run_sweep(sweep_tasks.toy_task, sweep_tasks.grid(2), tmp_path, progress=False)
    a, b = _store_files(tmp_path)
    b.write_bytes(a.read_bytes())  # a valid record under the wrong name
    with pytest.raises(ValueError, match="does not belong"):
        read_record(b)


def test_unreadable_store_entry_is_moved_aside_and_recomputed(tmp_path: Path) -> None:
    """Regression: a folder (or unreadable file) at store/<key>.json raised IsADirectoryError."""
    configs = sweep_tasks.grid(2)
    good = run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False)
    path = tmp_path / "store" / f"{config_key(configs[0], sweep_tasks.toy_task)}.json"
    path.unlink()
    path.mkdir()
    (path / "junk").write_text("x")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / path.name).write_text("an older corrupt file")
    again = run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False)
    assert (again.n_corrupt, again.n_computed, again.n_cached) == (1, 1, 1)
    assert "unreadable" in dict(again.corrupt)[path.stem]
    assert (tmp_path / "corrupt" / path.name / "junk").exists()
    assert path.is_file() and read_record(path)["rows"] == good.rows[:5]  # toy_task: 5 rows
    assert run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False).n_cached == 2


# ---------------------------------------------------------------------------------------------
# Failures, Ctrl-C, executors
# ---------------------------------------------------------------------------------------------


def test_failing_configs_are_recorded_and_the_sweep_continues(tmp_path: Path) -> None:
    configs = sweep_tasks.grid(12)
    result = run_sweep(sweep_tasks.failing_task, configs, tmp_path, progress=False)
    bad = [c for c in configs if c["rank"] in (4, 16)]
    assert [c for c, _ in result.failed] == bad
    assert result.failed[0][1] == "ValueError: rank 4 is unlucky second line"
    assert (result.n_computed, result.ok) == (8, False)
    assert "4 failed" in result.summary()
    assert len(result.rows) == 8 * 5
    notes = sorted((tmp_path / "failures").glob("*.json"))
    assert len(notes) == 4
    assert "Traceback" in json.loads(notes[0].read_text())["traceback"]
    assert len(_store_files(tmp_path)) == 8  # failures are not cached as success
    again = run_sweep(sweep_tasks.failing_task, configs, tmp_path, progress=False)
    assert (again.n_cached, again.n_computed, len(again.failed)) == (8, 0, 4)


def test_a_fixed_failure_is_retried_and_its_note_removed(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.touch()
    configs = [{"i": i, "flag": str(flag)} for i in range(3)]
    out = tmp_path / "out"
    assert len(run_sweep(sweep_tasks.flag_task, configs, out, progress=False).failed) == 3
    flag.unlink()
    fixed = run_sweep(sweep_tasks.flag_task, configs, out, progress=False)
    assert (fixed.n_computed, fixed.failed) == (3, [])
    assert fixed.rows == [{"i": i, "value": i * 0.5} for i in range(3)]
    assert not list((out / "failures").glob("*.json"))


def test_untidy_rows_are_a_recorded_failure(tmp_path: Path) -> None:
    result = run_sweep(sweep_tasks.bad_rows_task, [{"i": 0}, {"i": 1}], tmp_path, progress=False)
    assert [e for _, e in result.failed] == [
        "TypeError: task must return a list of dicts, got dict",
        "TypeError: row 0 column 'value' is not a scalar: ndarray array([0., 0., 0.])",
    ]


def test_run_sweep_command_exit_codes_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--no-progress"])
    assert sweep_kwargs(args) == {
        "out": str(tmp_path), "scheduler": None, "workers": None, "progress": False
    }
    assert run_sweep_command(sweep_tasks.failing_task, sweep_tasks.grid(6), args) == EXIT_FAILED
    err = capsys.readouterr().err
    assert "6 configurations, 4 computed, 0 cached, 2 failed" in err
    assert err.count("rsstab: failed: ") == 2
    assert run_sweep_command(sweep_tasks.toy_task, sweep_tasks.grid(6), args) == 0
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert lines[0] == "rank,seed,stat,value" and len(lines) == 1 + 6 * 5
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--workers", "-1"])


def test_ctrl_c_keeps_finished_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configs = [{"i": i, "stop": i == 5} for i in range(8)]
    with pytest.raises(SweepInterrupted) as info:
        run_sweep(sweep_tasks.interrupting_task, configs, tmp_path, progress=False)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.n_kept, info.value.n_total) == (5, 8)
    assert "5 of 8 configurations are finished and kept" in str(info.value)
    assert len(_store_files(tmp_path)) == 5
    configs[5]["stop"] = False
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--no-progress"])
    assert run_sweep_command(sweep_tasks.interrupting_task, configs, args) == 0
    # config 5 changed, so it is a new key; the other 5 finished ones are cached
    assert "8 configurations, 3 computed, 5 cached" in capsys.readouterr().err
    configs[6]["stop"] = True
    configs[6]["i"] = 60
    assert run_sweep_command(sweep_tasks.interrupting_task, configs, args) == EXIT_INTERRUPTED
    assert "rsstab: interrupted: 7 of 8" in capsys.readouterr().err


def test_sigint_stops_a_process_pool_cleanly(tmp_path: Path) -> None:
    proc = _driver(tmp_path, "--n", "40", "--sleep", "0.05", "--workers", "2")
    deadline = time.monotonic() + 30
    while len(_store_files(tmp_path)) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "rsstab: interrupted: " in err
    kept = int(err.split("rsstab: interrupted: ")[1].split()[0])
    assert kept == len(_store_files(tmp_path)) and 3 <= kept < 40
    for path in _store_files(tmp_path):
        read_record(path)


def test_process_pool_gives_the_same_rows_as_in_process(tmp_path: Path) -> None:
    configs = sweep_tasks.grid(10)
    local = run_sweep(sweep_tasks.failing_task, configs, tmp_path / "a", progress=False)
    pooled = run_sweep(sweep_tasks.failing_task, configs, tmp_path / "b", workers=2, progress=True)
    assert _bits(pooled.rows) == _bits(local.rows)
    assert pooled.failed == local.failed and pooled.n_computed == local.n_computed
    pids = run_sweep(
        sweep_tasks.pid_task, [{"i": i} for i in range(6)], tmp_path / "c", workers=2, progress=False
    )
    assert os.getpid() not in {r["pid"] for r in pids.rows}


def test_custom_executor_instance(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    configs = sweep_tasks.grid(6)
    local = run_sweep(sweep_tasks.toy_task, configs, tmp_path / "a", progress=False)
    with ThreadPoolExecutor(2) as pool:
        threaded = run_sweep(sweep_tasks.toy_task, configs, tmp_path / "b", scheduler=pool, progress=False)
    assert _bits(threaded.rows) == _bits(local.rows)


@pytest.mark.parametrize(
    ("configs", "kwargs", "message"),
    [
        ([{"a": 1}, {"a": 1}], {}, "config #1 repeats config #0"),
        ([{"a": 1}, [1]], {}, "config #1 is a list, not a dict"),
        ([{"a": {1: 2}}], {}, "non-string key 1"),
        ([{"a": object()}], {}, "is not JSON-serializable: object"),
        ([{"a": 1}], {"workers": -2}, "workers must be a non-negative integer, got -2"),
        ([{"a": 1}], {"workers": 1.5}, "workers must be a non-negative integer, got 1.5"),
        ([{"a": 1}], {"scheduler": "localhost:8786"}, "scheduler must look like tcp://HOST:PORT"),
        ([{"a": 1}], {"scheduler": 8786}, "scheduler must be an address or an Executor"),
        ([{"a": 1}], {"scheduler": "tcp://127.0.0.1:1", "workers": 3},
         "workers is for the local pool; a Dask cluster brings its own"),
    ],
)
def test_bad_input_is_a_one_line_rsstab_error(tmp_path: Path, configs, kwargs, message) -> None:
    with pytest.raises(RsstabError, match=message) as info:
        run_sweep(sweep_tasks.toy_task, configs, tmp_path, progress=False, **kwargs)
    assert "\n" not in str(info.value)
    # a library error names the parameter, never a command-line flag
    assert "--" not in str(info.value)
    expected = next((p for p in ("workers", "scheduler") if p in kwargs), "configs")
    assert info.value.parameter == expected


def test_bad_workers_are_an_error_even_when_everything_is_cached(tmp_path: Path) -> None:
    run_sweep(sweep_tasks.toy_task, sweep_tasks.grid(2), tmp_path, progress=False)
    with pytest.raises(RsstabError, match="workers must be"):
        run_sweep(sweep_tasks.toy_task, sweep_tasks.grid(2), tmp_path, workers=-1, progress=False)


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--scheduler", "localhost:8786"],
         "rsstab: error: scheduler must look like tcp://HOST:PORT, got 'localhost:8786' "
         "(see --scheduler)"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "3"],
         "rsstab: error: workers is for the local pool; a Dask cluster brings its own "
         "(see --workers)"),
    ],
)
def test_run_sweep_command_names_the_flag_of_a_bad_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], line: str
) -> None:
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path), "--no-progress", *argv])
    assert run_sweep_command(sweep_tasks.toy_task, sweep_tasks.grid(2), args) == 2
    assert capsys.readouterr().err.splitlines() == [line]
    assert not (tmp_path / "rows.csv").exists()


def test_a_script_reports_the_flag_of_a_bad_parameter(tmp_path: Path) -> None:
    proc = _driver(tmp_path, "--n", "2", "--scheduler", "not-an-address")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip() == (
        "rsstab: error: scheduler must look like tcp://HOST:PORT, got 'not-an-address' "
        "(see --scheduler)"
    )


def test_empty_sweep_and_write_csv(tmp_path: Path) -> None:
    result = run_sweep(sweep_tasks.toy_task, [], tmp_path, progress=False)
    assert (result.rows, result.n_total, result.ok) == ([], 0, True)
    path = write_csv([{"a": 1.0, "b": "x,y"}, {"c": True, "a": -0.0}], tmp_path / "t" / "t.csv")
    assert path.read_text() == 'a,b,c\n1.0,"x,y",\n-0.0,,True\n'
    nan_csv = write_csv([{"v": float("nan")}, {"v": 5e-324}], tmp_path / "n.csv").read_text()
    cells = [float(x) for x in nan_csv.splitlines()[1:]]
    assert math.isnan(cells[0]) and cells[1] == 5e-324


def test_progress_is_on_for_a_terminal_and_off_when_piped(tmp_path: Path) -> None:
    """tqdm's convention: with no --progress/--no-progress, a bar on a terminal, none in a pipe."""
    import os
    import pty

    code = ("import sys; from support import sweep_tasks; from rsstab.sweep import run_sweep; "
            "run_sweep(sweep_tasks.toy_task, sweep_tasks.grid(2), sys.argv[1])")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    piped = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a")], capture_output=True, text=True,
                           env=env, timeout=60)
    assert piped.returncode == 0 and "config" not in piped.stderr, piped.stderr
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], stdout=subprocess.DEVNULL,
                          stderr=slave, env=env, timeout=60)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.returncode == 0 and b"2/2" in b"".join(chunks)
