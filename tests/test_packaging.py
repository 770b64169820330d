"""Packaging: one version source, and the package says it is typed (PEP 561)."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import rsstab

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_is_written_once() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r'^version\s*=\s*"', pyproject, flags=re.M), "pyproject.toml must not repeat the version"
    assert 'version = { attr = "rsstab.__version__" }' in pyproject
    assert importlib.metadata.version("rsstab") == rsstab.__version__


def test_the_package_is_marked_typed() -> None:
    assert (Path(rsstab.__file__).parent / "py.typed").is_file()
    assert 'rsstab = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()
