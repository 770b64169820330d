"""``rsstab transfer EXPR --from-rank R1 --to-rank R2 --lr ETA``: the learning rate to use at R2.

Keeps the learned update Θ(η·γ_r^k·r) equal at both ranks (SGD k = 2, Adam's sign phase k = 1),
computed exactly from the schedule (:mod:`rsstab.verdict.transfer`), and prints the prediction for the
chosen optimizer first, then for the other optimizer.

Exit code: 0 on success, 2 for bad input.
"""

from __future__ import annotations

import argparse
import math

from rsstab.commands._args import add_optimizer
from rsstab.errors import RsstabError
from rsstab.validate import parse_integer

HELP = "predict the learning rate at another rank from one tuned at a given rank (per optimizer regime)"


def _rank(text: str) -> int:
    try:
        return parse_integer(text, "expected an integer rank ≥ 1")
    except RsstabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``rsstab transfer``."""
    p.add_argument("expr", metavar="EXPR", help='γ_r as an expression in r, e.g. "alpha/sqrt(r)"; "-" reads stdin')
    p.add_argument("--from-rank", dest="from_rank", type=_rank, required=True, metavar="R1",
                   help="the rank the learning rate was tuned at")
    p.add_argument("--to-rank", dest="to_rank", type=_rank, required=True, metavar="R2", help="the new rank")
    p.add_argument("--lr", type=_positive, required=True, metavar="ETA", help="the learning rate tuned at R1")
    add_optimizer(p, default="sgd", help="optimizer (default: sgd)")
    p.add_argument("--set", dest="constants", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a named constant (needed only when it does not cancel)")
    p.add_argument("--eps", type=_positive, default=None, metavar="EPS",
                   help="Adam's ε (with --grad-scale): follow Adam from the sign to the SGD-like regime")
    p.add_argument("--grad-scale", dest="grad_scale", type=_positive, default=None, metavar="G",
                   help="G with E|∂L/∂B_ij| = γ_r·G at step 0")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def run(args: argparse.Namespace) -> int:
    from rsstab.commands.check import parse_constants, read_expr
    from rsstab.errors import RsstabError
    from rsstab.verdict.transfer import render_transfers, transfer_all

    if (args.eps is None) != (args.grad_scale is None):
        raise RsstabError("--eps and --grad-scale go together: Adam's regime depends on E|∂L/∂B_ij|/ε")
    if args.eps is not None and args.optimizer != "adam":
        raise RsstabError("--eps and --grad-scale describe Adam: add --optimizer adam")
    expr = read_expr(args.expr)
    results = transfer_all(expr, args.lr, args.from_rank, args.to_rank, parse_constants(args.constants),
                           args.eps, args.grad_scale)
    mine = results[args.optimizer]
    order = [args.optimizer] + [o for o in results if o != args.optimizer]
    if args.json:
        from rsstab.verdict.classify import LR_FIXED
        from rsstab.schema import dumps, envelope

        # the common keys: the schedule's verdict under this optimizer at a fixed learning rate (rsstab
        # check's); then the transfer: lr_from tuned at from_rank, lr_to predicted at to_rank
        out = {
            "schedule": mine.schedule, "optimizer": args.optimizer, "headline": mine.headline, "lr": LR_FIXED,
            "lr_exponent": mine.lr_exponent, "lr_exponent_exact": mine.lr_exponent_exact, "lr_rule": mine.lr_rule,
            "from_rank": args.from_rank, "to_rank": args.to_rank, "lr_from": mine.lr_from, "lr_to": mine.lr_to,
            "factor": mine.factor, "factor_exact": mine.factor_exact, "fixed_lr_growth": mine.fixed_lr_growth,
            "regimes": {o: results[o].to_dict() for o in order},
        }
        if mine.eps is not None:
            out.update(eps=mine.eps, grad_scale=mine.grad_scale, regime_from=mine.regime_from,
                       regime_to=mine.regime_to)
        reason = (f"η ∝ r^{mine.lr_exponent_exact} keeps the update Θ(1) between r = {args.from_rank} and "
                  f"r = {args.to_rank}: η × {_fmt(mine.factor)}" if mine.lr_exponent_exact is not None and mine.eps is None else
                  f"{mine.lr_rule}: η × {_fmt(mine.factor)} from r = {args.from_rank} to r = {args.to_rank}")
        notes = [] if mine.eps is None else [
            "label, headline and lr_exponent are for Adam's sign regime (ε → 0); lr_to follows ε"]
        print(dumps(envelope("transfer", stable=mine.stable, label=mine.label, optimizer=args.optimizer,
                             schedule=mine.schedule, reason=reason, notes=notes, body=out)))
        return 0
    print(render_transfers(results, args.optimizer))
    return 0
