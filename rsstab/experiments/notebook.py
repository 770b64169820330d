"""Execute the teaching notebook from its jupytext source and keep it, with its outputs.

``reports/teaching.py`` (jupytext percent format) is the source; ``reports/teaching.ipynb`` is
generated from it by :func:`execute`, run top to bottom in a fresh kernel whose kernel spec points
at ``sys.executable`` (so it runs the interpreter and the rsstab of the caller, whatever kernels
the machine has), with figures kept as outputs so the notebook reads on GitHub without running it.
``simulations/make_report.py`` calls it; the test suite executes it the same way.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rsstab.errors import require_extra
from rsstab.io import atomic_write

__all__ = ["execute", "run"]

KERNEL = "rsstab-notebook"


def execute(source: str | os.PathLike[str], *, cwd: str | os.PathLike[str], timeout: float = 300.0) -> tuple[Any, float]:
    """Run the jupytext ``source`` top to bottom; return (the executed notebook, seconds).

    Raises:
        MissingExtraError: jupytext, nbclient or ipykernel is not installed.
        nbclient.exceptions.CellExecutionError: a cell failed.
    """
    require_extra("test", ("jupytext", "nbclient", "ipykernel"))
    import jupytext
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="rsstab-kernels-") as kernels:
        spec_dir = Path(kernels) / KERNEL
        spec_dir.mkdir()
        (spec_dir / "kernel.json").write_text(json.dumps({
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "rsstab", "language": "python",
        }))
        km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernels]))
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)  # let ipykernel pick the inline backend, so figures become outputs
        nb = jupytext.read(str(source))
        client = NotebookClient(nb, km=km, timeout=int(timeout), resources={"metadata": {"path": str(cwd)}})
        t0 = time.perf_counter()
        client.execute(env=env)
        seconds = time.perf_counter() - t0
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb, seconds


def run(source: str | os.PathLike[str], target: str | os.PathLike[str], *,
        cwd: str | os.PathLike[str]) -> float:
    """Execute ``source`` and write the notebook with its outputs to ``target`` atomically;
    return the seconds it took."""
    import nbformat

    nb, seconds = execute(source, cwd=cwd)
    atomic_write(target, nbformat.writes(nb) + "\n")
    return seconds
