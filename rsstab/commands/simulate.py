"""``rsstab simulate EXPR``: measure the rank-scaling of a γ_r schedule by Monte Carlo.

Trains batched LoRA adapter stacks (:mod:`rsstab.sim`) at several ranks, fits log-log slopes of
``grad_init`` (‖∇_B L‖_F at step 0), ``forward`` (RMS adapter output after training) and
``backward`` (RMS gradient into the adapter input after training) with :mod:`rsstab.measure.fit`, and only
then puts the theory's exponents beside them (:func:`rsstab.check`), for comparison. The comparison is
:func:`rsstab.measure.compare.report`; this module parses the arguments and prints.

Exit code: 0 when the empirical verdict is rank-stabilized, 1 otherwise, 2 for bad input.
"""

from __future__ import annotations

import argparse
import sys

from rsstab.commands._args import add_optimizer
from rsstab.measure.compare import init_std_expr, render_predictions, report  # light: lazy inside
from rsstab.sim.config import DEFAULTS  # standard library only: --help imports neither torch nor numpy
from rsstab.errors import RsstabError
from rsstab.sweep.cli import int_at_least  # argparse helpers only: keeps this command light
from rsstab.validate import parse_ranks
from rsstab.vocab import FLAT_BAND, STABLE

HELP = "measure forward/backward/gradient slopes of γ_r across rank with a batched Monte Carlo simulation"


def _ranks(text: str) -> list[int]:
    try:
        return sorted(parse_ranks(text, "expected comma-separated integers", join_spaces=True, count=2,
                                  invalid="need at least two distinct positive ranks", distinct=True))
    except RsstabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_positive_int = int_at_least(1)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return v


def _nonnegative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a non-negative finite number, got {text!r}")
    return v


def _in_r(flag: str, positive_number: bool = True):
    """An argparse type: a positive number (a constant in r) or an expression in r, read by the
    schedule parser (nothing is evaluated); the text is kept for the cells and the record."""

    def parse(text: str) -> float | str:
        try:
            v = float(text)
        except ValueError:
            pass
        else:
            if positive_number and not (v > 0 and v < float("inf")):
                raise argparse.ArgumentTypeError(f"{flag} must be positive and finite, got {text!r}")
            return v
        from rsstab.errors import RsstabError
        from rsstab.schedule import as_schedule

        try:
            as_schedule(text)
        except RsstabError as exc:
            raise argparse.ArgumentTypeError(f"{flag}: {exc}") from None
        return text

    return parse


def _init_std(text: str) -> str:
    expr = init_std_expr(text)
    _in_r("--init-std")(expr)
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsstab simulate``."""
    p.add_argument("expr", metavar="EXPR", help='γ_r as an expression in r, e.g. "alpha/sqrt(r)"; "-" reads it '
                                                "from stdin (one schedule; # starts a comment)")
    add_optimizer(p, default="sgd", help="optimizer (default: sgd)")
    p.add_argument("--ranks", type=_ranks, default=None, metavar="R1,R2,...",
                   help=f"ranks to simulate (default: {','.join(map(str, DEFAULTS['ranks']))})")
    p.add_argument("--depth", type=_positive_int, default=None, metavar="L",
                   help=f"number of adapted layers (default: {DEFAULTS['depth']})")
    p.add_argument("--width", type=_positive_int, default=None, metavar="D",
                   help=f"layer width d (default: {DEFAULTS['width']})")
    p.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                   help=f"training steps (default: {DEFAULTS['steps']})")
    p.add_argument("--seeds", type=_positive_int, default=None, metavar="S",
                   help=f"independent seeds, batched (default: {DEFAULTS['seeds']})")
    p.add_argument("--batch", type=_positive_int, default=None, metavar="B",
                   help=f"examples per step (default: {DEFAULTS['batch']})")
    p.add_argument("--lr", type=_in_r("--lr"), default=None, metavar="ETA|EXPR",
                   help="learning rate: a number, or an expression in r (e.g. \"eta*r**c\"; --set gives its "
                        f"constants) evaluated at each rank (default: {DEFAULTS['lr']['sgd']:g} for sgd, "
                        f"{DEFAULTS['lr']['adam']:g} for adam)")
    p.add_argument("--lr-ratio", dest="lr_ratio", type=_in_r("--lr-ratio"), default=1.0, metavar="EXPR",
                   help="η_B/η_A: B learns at the learning rate times this, A at the learning rate (a number or "
                        "an expression in r; default 1)")
    p.add_argument("--init-std", dest="init_std", type=_init_std, default=None, metavar="EXPR|true|kaiming|gaussian",
                   help="σ_A, A's init std as in `rsstab check --init-std` (an expression in r, or a PEFT init "
                        "name: true/kaiming = 1, gaussian = 1/r), in units of the fan-in std 1/√width: "
                        "A₀ ~ N(0, σ_A(r)²/width) (default 1: rank-free, Kaiming-like)")
    p.add_argument("--seed", type=int, default=0, help="base random seed (default: 0)")
    p.add_argument("--gram", choices=("auto", "explicit", "wishart"), default="auto",
                   help="explicit: draw A₀ (r×d). wishart (SGD only): for r > width draw the "
                        "width×width Bartlett factor of A₀ instead — exact in distribution for Gaussian "
                        "A₀, cost independent of r (ranks up to 2^30 in seconds). auto (default): wishart "
                        "under SGD where the explicit A₀ would not fit in memory (said in the notes), else explicit")
    p.add_argument("--bf16", action="store_true",
                   help="opt-in faster adapter products: bfloat16 operands with float32 accumulation "
                        "(A, B, optimizer state and the base stay float32; slopes within 0.02 of float32)")
    p.add_argument("--set", dest="constants", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a named constant of EXPR (repeatable; default 1)")
    p.add_argument("--tolerance", type=_positive_float, default=None,
                   help=f"half-width of the band of slopes counted as flat (default: {FLAT_BAND})")
    p.add_argument("--share-data", action="store_true",
                   help="seeds share one base, teacher and data (independent draws of A): adds the "
                        "measured coherent/incoherent split")
    p.add_argument("--fixed-batch", action="store_true",
                   help="train on the first batch at every step (Adam's prediction is then a closed form: n sign steps)")
    p.add_argument("--eps", type=_nonnegative_float, default=None, metavar="E",
                   help="Adam's ε (adam only; default 1e-8), as `rsstab check --eps`: between the sign regime "
                        "and SGD with rate η/ε")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    sweep = p.add_argument_group("execution")
    sweep.add_argument("--out", default=None, metavar="DIR",
                       help="keep the cells in a resumable store here (default: a temporary directory)")
    sweep.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT", help="run the cells on a Dask cluster")
    sweep.add_argument("--workers", type=int_at_least(0), default=None, metavar="N", help="local worker processes")
    sweep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr (default: on when stderr is a terminal, off when piped)")
    sweep.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                       help="torch threads in this process (default: torch's choice; 1 is often "
                            "fastest on a busy machine)")


def read_schedule(expr: str) -> str:
    """``expr``, or the one schedule on stdin for ``-`` (as ``rsstab check -``; a simulation
    measures one schedule, so several lines are refused)."""
    from rsstab.commands.check import read_exprs
    from rsstab.errors import RsstabError

    exprs = read_exprs([expr])
    if len(exprs) > 1:
        raise RsstabError(f"simulate measures one schedule at a time; stdin had {len(exprs)} "
                          f"({', '.join(exprs[:3])}{', …' if len(exprs) > 3 else ''})")
    return exprs[0]


def run(args: argparse.Namespace) -> int:
    from rsstab.errors import SIM_MODULES, require_extra

    require_extra("sim", SIM_MODULES)  # one line naming the extra, before any work
    from rsstab.commands.check import parse_constants

    args.expr = read_schedule(args.expr)

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.bf16:
        from rsstab.sim.stack import native_bf16

        if not native_bf16():
            print("rsstab simulate: note: this CPU has no bfloat16 matrix units (AVX512-BF16 or AMX); "
                  "--bf16 keeps its accuracy but runs slower than float32 here", file=sys.stderr)
    constants = parse_constants(args.constants)
    options = {
        k: getattr(args, k)
        for k in ("ranks", "depth", "width", "steps", "seeds", "batch", "lr", "lr_ratio", "seed", "gram", "bf16",
                  "tolerance", "out", "scheduler", "workers", "share_data", "fixed_batch", "eps")
    }
    verdict, out = report(args.expr, args.optimizer, constants, init_std=args.init_std, progress=args.progress,
                          **options)
    if args.json:
        from rsstab.schema import dumps, envelope

        from rsstab.measure.predict import RANGE_NOTE

        notes = [out["prediction"], RANGE_NOTE] if isinstance(out.get("prediction"), str) else []
        if out.get("prediction_range", {}).get("out_of_range_ranks"):
            notes.append(out["prediction_range"]["statement"])
        if verdict.settings.get("gram_note"):
            notes.append(verdict.settings["gram_note"])
        print(dumps(envelope("simulate", stable=verdict.label == STABLE, label=verdict.label,
                             optimizer=verdict.optimizer, schedule=verdict.schedule, reason=out["reason"],
                             notes=notes, body=out)))
    else:
        theory = {q: d["theory"] for q, d in out["quantities"].items()}
        print(verdict.render(theory))
        if out.get("prediction_range", {}).get("out_of_range_ranks"):
            print(f"range: {out['prediction_range']['statement']}")
        print()
        print(render_predictions(out))
        print(f"\nsymbolic verdict ({args.optimizer}" + (f", η = {out['tuple']['symbolic_lr']}"
              if out["tuple"]["symbolic_lr"] else "") + (f", η_B/η_A = {out['tuple']['symbolic_lr_ratio']}"
              if out["tuple"]["symbolic_lr_ratio"] else "") + (f", σ_A = {out['tuple']['init_std_expr']}"
              if args.init_std is not None else "") + f"): {out['symbolic']['headline']}")
        for note in out["tuple"]["notes"] + ([verdict.settings["gram_note"]] if verdict.settings.get("gram_note") else []):
            print(f"note: {note}")
    sys.stdout.flush()
    return 0 if verdict.label == STABLE else 1
