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


def test_figure_formats_write_vector_files_beside_each_other(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from rsstab.experiments.figures import pyplot

    plt = pyplot()
    io.set_figure_formats(["svg", "pdf"])
    try:
        fig, ax = plt.subplots()
        ax.plot([1, 2], [1, 4])
        first = io.save_figure(fig, tmp_path / "f.png")
    finally:
        io.set_figure_formats(None)
    assert first == tmp_path / "f.svg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.svg"]


def test_script_figure_format_option() -> None:
    from rsstab.experiments.scripts import script_parser

    with pytest.raises(SystemExit) as exc:
        script_parser("demo", "x").parse_args(["--figure-format", "gif"])
    assert exc.value.code == 2
    try:
        script_parser("demo", "x").parse_args(["--figure-format", "png,svg"])
        assert io._FIGURE_FORMATS == ["png", "svg"]
    finally:
        io.set_figure_formats(None)


def test_palette_is_colour_blind_safe_and_readable_on_white() -> None:
    """Okabe–Ito without its yellow; sequential curves stop before viridis' yellow end."""
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgb

    from rsstab.experiments.figures import OKABE_ITO, colour

    def luminance(c: object) -> float:
        rgb = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in to_rgb(c)]
        return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]

    contrast = [(1.05) / (luminance(c) + 0.05) for c in [*OKABE_ITO, *(colour(i, 12) for i in range(12))]]
    assert min(contrast) > 1.9, contrast  # yellow #F0E442 would be 1.3
