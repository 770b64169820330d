"""rsstab.io: the one atomic writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rsstab import io


def test_atomic_write_fsyncs_the_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: ``return path`` came before the directory fsync, so the rename was never synced."""
    synced: list[Path] = []
    monkeypatch.setattr(io, "fsync_dir", synced.append)
    path = io.atomic_write(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello" and synced == [tmp_path / "sub"]


def test_atomic_write_bytes_and_no_leftovers(tmp_path: Path) -> None:
    io.atomic_write(tmp_path / "b.bin", b"\x00\x01")
    io.atomic_write(tmp_path / "b.bin", b"\x02")
    assert (tmp_path / "b.bin").read_bytes() == b"\x02"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin"]


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = io.atomic_write(tmp_path / "t.txt", "old")

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        io.atomic_write(target, "new")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]


def test_stale_temporaries_are_those_of_dead_writers(tmp_path: Path) -> None:
    host = io._host()
    dead = tmp_path / f".tmp-{2**22 + 12345}@{host}-0123abcd-x.json"  # beyond pid_max: no such process
    alive = tmp_path / f".tmp-{os.getppid()}@{host}-0123abcd-y.json"
    other_host = tmp_path / f".tmp-{2**22 + 12345}@not-{host}-0123abcd-z.json"
    for p in (dead, alive, other_host):
        p.write_text("")
    assert list(io.stale_temporaries(tmp_path)) == [dead]


def test_save_figure_writes_the_suffix_format(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        fig, ax = plt.subplots()
        ax.plot([1, 2], [3, 4])
        path = io.save_figure(fig, tmp_path / f"f{suffix}")
        assert path.read_bytes().startswith(magic)
        assert not plt.fignum_exists(fig.number)
