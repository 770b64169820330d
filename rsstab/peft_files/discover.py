"""Adapters named by many paths and globs, as a linter receives them (pre-commit passes files).

* a folder: every folder at or below it that holds ``adapter_config.json`` (hidden folders,
  ``__pycache__`` and ``node_modules`` skipped), so a ``save_pretrained`` folder with named
  adapters in subfolders yields all of them (a folder without ``adapter_model.safetensors`` too:
  :func:`~rsstab.peft_files.read_adapter` with ``config_alone`` says so);
* ``adapter_model.safetensors``, or ``adapter_config.json`` next to one: that adapter folder;
* any other ``.json`` file: a bare config;
* a glob (``*``, ``?``, ``[``; ``**`` recursive) that is not itself an existing path: its matches.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rsstab.peft_files.config import CONFIG_NAME
from rsstab.peft_files.weights import WEIGHTS_NAME

__all__ = ["Target", "find_adapters"]

_SKIP = {"__pycache__", "node_modules"}


@dataclass(frozen=True)
class Target:
    """One adapter to read: ``path`` is a folder (config + weights) or a config file."""

    path: Path

    @property
    def config_file(self) -> Path:
        """The JSON file findings point at."""
        return self.path / CONFIG_NAME if self.path.is_dir() else self.path


def _is_glob(arg: str) -> bool:
    return any(c in arg for c in "*?[")


def _under(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP)
        if CONFIG_NAME in files:
            found.append(Path(root))
    return found


def _targets(p: Path) -> tuple[list[Target], str | None]:
    if p.is_dir():
        found = _under(p)
        if not found:
            return [], f"no {CONFIG_NAME} at or below this folder"
        return [Target(d) for d in found], None  # a folder without weights: RS204, its config linted alone
    if p.is_file():
        if p.name == WEIGHTS_NAME:
            return [Target(p.parent)], None
        if p.name == CONFIG_NAME and (p.parent / WEIGHTS_NAME).is_file():
            return [Target(p.parent)], None
        if p.suffix == ".json":
            return [Target(p)], None
        return [], f"not an adapter: expected a folder, {CONFIG_NAME}, {WEIGHTS_NAME} or a .json config"
    return [], "no such file or directory"


def find_adapters(args: Iterable[str]) -> tuple[list[Target], list[tuple[str, str]]]:
    """The adapters ``args`` name, each once, in order; and ``(arg, reason)`` for those naming none.

    >>> find_adapters(["/no/such/place"])
    ([], [('/no/such/place', 'no such file or directory')])
    """
    targets: dict[Path, Target] = {}
    errors: list[tuple[str, str]] = []
    for arg in args:
        if _is_glob(arg) and not os.path.exists(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                errors.append((arg, "no file matches this pattern"))
                continue
            paths = [Path(m) for m in matches]
        else:
            paths = [Path(arg)]
        for p in paths:
            found, why = _targets(p)
            if why:
                errors.append((str(p), why))
            for t in found:
                targets.setdefault(t.path.resolve(), t)
    return list(targets.values()), errors
