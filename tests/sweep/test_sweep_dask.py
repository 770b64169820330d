"""rsstab.sweep through a real Dask scheduler on 127.0.0.1: same rows as the local run."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from support import sweep_tasks

from rsstab.errors import RsstabError
from rsstab.sweep import executors, run_sweep

distributed = pytest.importorskip(
    "distributed", reason="Dask is the optional extra rsstab[dask]; distributed is not installed"
)


def _bits(rows: list[dict]) -> list[tuple]:
    def b(v):
        return ("f", struct.pack("<d", v)) if isinstance(v, float) else (type(v).__name__, v)

    return [tuple((k, b(v)) for k, v in row.items()) for row in rows]


def _cluster(**kwargs):
    return distributed.LocalCluster(
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
        **kwargs,
    )


@pytest.fixture(scope="module")
def scheduler():
    """Address of a real scheduler: one in-process worker thread, reached over loopback TCP."""
    with _cluster(n_workers=1, threads_per_worker=1, processes=False) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        yield cluster.scheduler_address


def test_dask_rows_equal_local_rows(tmp_path: Path, scheduler: str) -> None:
    configs = sweep_tasks.grid(12)
    local = run_sweep(sweep_tasks.failing_task, configs, tmp_path / "local", progress=False)
    remote = run_sweep(
        sweep_tasks.failing_task, configs, tmp_path / "dask", scheduler=scheduler, progress=False
    )
    assert _bits(remote.rows) == _bits(local.rows)
    assert remote.failed == local.failed and len(remote.failed) == 4
    assert remote.n_computed == local.n_computed == 8
    csv_local = local.write_csv(tmp_path / "local.csv").read_bytes()
    assert remote.write_csv(tmp_path / "dask.csv").read_bytes() == csv_local
    # the store written through Dask is a cache for a local run, and the other way round (same
    # task: the store key includes the task's identity, so another task would recompute)
    mixed = run_sweep(sweep_tasks.failing_task, configs, tmp_path / "dask", progress=False)
    assert (mixed.n_cached, mixed.n_computed, len(mixed.failed)) == (8, 0, 4)
    back = run_sweep(
        sweep_tasks.failing_task, configs, tmp_path / "local", scheduler=scheduler, progress=False
    )
    assert (back.n_cached, back.n_computed, len(back.failed)) == (8, 0, 4)
    assert _bits(mixed.rows) == _bits(back.rows) == _bits(local.rows)


def test_unreachable_scheduler_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", 1.0)
    with socket.socket() as s:  # a loopback port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RsstabError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}") as info:
        run_sweep(
            sweep_tasks.toy_task,
            sweep_tasks.grid(2),
            tmp_path,
            scheduler=f"tcp://127.0.0.1:{port}",
            progress=False,
        )
    assert "\n" not in str(info.value) and info.value.parameter == "scheduler"


@pytest.mark.slow
def test_dask_worker_processes_give_the_same_csv(tmp_path: Path) -> None:
    configs = sweep_tasks.grid(24, sleep=0.01)
    local = run_sweep(sweep_tasks.toy_task, configs, tmp_path / "local", progress=False)
    with _cluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        remote = run_sweep(
            sweep_tasks.toy_task,
            configs,
            tmp_path / "dask",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert _bits(remote.rows) == _bits(local.rows)
    assert remote.write_csv(tmp_path / "b.csv").read_bytes() == local.write_csv(
        tmp_path / "a.csv"
    ).read_bytes()
