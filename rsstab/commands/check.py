"""``rsstab check EXPR``: is this γ_r rank-stabilized, and why.

Labels are for a fixed learning rate unless ``--lr-scaling P`` says η ∝ r^P; every verdict prints
the learning-rate rule that keeps the update Θ(1). ``--eps``/``--grad-scale`` (Adam) say at which
ranks Adam is sign-like and where it turns SGD-like.

Names in an exponent of r (``alpha/r**beta``) are real parameters: the verdict lists the regions
of parameter space (exact rational bounds) and the label in each, ``conditional`` when they differ
(``--assume "beta > 0"`` restricts them; ``--set beta=1/2`` gives the verdict at one value).

Exit code: 0 when rank-stabilized under the stated learning rate (default: a fixed one) — for a
parametric schedule, for every admissible value of the parameters —, 1 when not, 2 for bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
from fractions import Fraction
from typing import Any

from rsstab.commands._args import add_optimizer
from rsstab.defaults import STEPS
from rsstab.errors import RsstabError
from rsstab.validate import parse_integer, parse_ranks as parse_rank_list

HELP = ("classify a scaling factor γ_r (rank-stabilized / collapse / blow-up at a fixed learning rate) "
        "per optimizer regime, with the learning-rate rule that keeps the update Θ(1)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expr", metavar="EXPR", nargs="+",
                   help='γ_r as an expression in r, e.g. "alpha/r**0.5"; several give a table (one row '
                        'each); "-" reads them from stdin, one per line (# starts a comment)')
    add_optimizer(p, default="sgd",
                  help="regime: sgd (Theorem 3.2, γ_r²·r) or adam (sign-like updates, γ_r·r); adamw is Adam's regime")
    p.add_argument("--set", dest="constants", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a named constant or parameter (repeatable); a decimal or an exact "
                        "fraction such as 1/2")
    p.add_argument("--assume", dest="assume", action="append", default=[], metavar="CONDITION",
                   help='linear (in)equality on the parameters (names in an exponent of r), e.g. "beta > 0" '
                        'or "0 < beta <= 1" (repeatable, or comma-separated): restricts the regions of a '
                        "parametric verdict")
    p.add_argument("--lr-scaling", dest="lr_scaling", default=None, metavar="P",
                   help="the verdict for a learning rate scaled as η ∝ r^P across ranks (e.g. -1/2); "
                        "default: a fixed learning rate, the regime of the theorem")
    p.add_argument("--lr", dest="lr", default=None, metavar="EXPR",
                   help='the learning rate as an expression in r (e.g. "eta/sqrt(r)", "eta*r**c"): the verdict '
                        "is for the learned update η·γ_r^k·r^m it gives (instead of --lr-scaling)")
    p.add_argument("--init-std", dest="init_std", default=None, metavar="EXPR",
                   help='the std σ_A of A\'s entries as an expression in r ("1/r"), or a PEFT init name: '
                        "true/kaiming (rank-free), gaussian (1/r); enters through σ_A's power in the laws")
    p.add_argument("--lr-ratio", dest="lr_ratio", default=None, metavar="EXPR",
                   help="η_B/η_A, LoRA+'s ratio λ, as an expression in r (default 1): A learns with η (--lr), "
                        "B with λ·η. The verdict adds whether A and B both learn (orders of the B-driven and "
                        "A-driven parts of the update)")
    p.add_argument("--lr-a", dest="lr_a", default=None, metavar="EXPR",
                   help="A's learning rate as an expression in r (with --lr-b; instead of --lr and --lr-ratio)")
    p.add_argument("--lr-b", dest="lr_b", default=None, metavar="EXPR",
                   help="B's learning rate as an expression in r (with --lr-a)")
    p.add_argument("--eps", type=float, default=None, metavar="EPS",
                   help="Adam's ε (with --grad-scale): say at which ranks Adam is sign-like or SGD-like")
    p.add_argument("--grad-scale", dest="grad_scale", type=float, default=None, metavar="G",
                   help="G with E|∂L/∂B_ij| = γ_r·G at step 0 (Gaussian A: |v|·σ_A·‖x‖·√(2/π))")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--simulate", action="store_true",
                   help="also measure the slopes with a quick Monte Carlo simulation (needs torch)")
    p.add_argument("--width", metavar="D",
                   help="input width d of the adapted layer: per-rank regime (r ≪ d / crossover / r ≫ d), "
                        "predicted coherent and incoherent sizes, RMS slope and crossover rank from the exact "
                        "finite-width laws (without it the verdict is the r ≫ d limit)")
    p.add_argument("--steps", type=_steps, default=STEPS, metavar="N",
                   help="training steps n for the range of the first-order laws with --width and a numeric --lr "
                        "(default 10, as rsstab simulate)")
    p.add_argument("--width-expr", dest="width_expr", metavar="EXPR",
                   help='the width d as an expression in r ("r", "4*r", "r**k") for joint width × rank '
                        "statements (inputs with Θ(1) entries, σ_A in units of Kaiming's 1/√d, as in μP/LoRA+): "
                        "the labels stay about the coherent part; adds the incoherent part's share "
                        "(incoherent²/coherent² = r*/r, r* = d + 1 under SGD) and d's power in A's learning")
    p.add_argument("--ranks", metavar="R1,R2,...",
                   help="ranks of the --width table (default 8, 32, 128, … into the r ≫ d regime)")


def parse_constants(items: list[str]) -> dict[str, float | Fraction]:
    """``NAME=VALUE`` items: a decimal becomes a float, a fraction ``p/q`` an exact Fraction.

    >>> parse_constants(["alpha=16", "beta=1/3", "c=-0.5"])
    {'alpha': 16.0, 'beta': Fraction(1, 3), 'c': -0.5}
    """
    out: dict[str, float | Fraction] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RsstabError(f"--set expects NAME=VALUE, got {item!r}")
        text = value.strip().replace("−", "-")
        try:
            out[name.strip()] = float(text)
        except ValueError:
            try:
                if "/" not in text or len(text) > 100:
                    raise ValueError
                out[name.strip()] = Fraction(text)
            except (ValueError, ZeroDivisionError):
                raise RsstabError(f"--set {name.strip()}: {value!r} is not a number (a decimal or a fraction "
                                  "such as 1/2)") from None
    return out


def _steps(text: str) -> int:
    try:
        return parse_integer(text, "--steps: expected a positive integer (training steps)", strip=True)
    except RsstabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str | None) -> float | None:
    """``text`` as a finite number, or None (an expression in r, or absent)."""
    try:
        v = float(text) if text is not None else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


def parse_width(text: str | None) -> int | None:
    """``--width D`` as a positive integer (None when absent)."""
    return None if text is None else parse_integer(text, "--width: expected a positive integer (the layer's input "
                                                         "width d)", strip=True)


def parse_ranks(text: str | None, width: int | None) -> list[int] | None:
    """``--ranks 8,32,...`` as positive integers (None when absent); only used with ``--width``."""
    if text is None:
        return None
    if width is None:
        raise RsstabError("--ranks is only used with --width D")
    return parse_rank_list(text, "--ranks: expected comma-separated positive integers", each=True)


def read_expr(expr: str) -> str:
    """One schedule: ``expr``, or stdin's text for ``-``."""
    return read_exprs([expr])[0] if expr == "-" else expr


def read_exprs(items: list[str]) -> list[str]:
    """The schedules of the command line, ``-`` replaced by stdin's non-empty, non-comment lines."""
    out: list[str] = []
    for item in items:
        if item != "-":
            out.append(item)
            continue
        lines = sys.stdin.read(1_000_000).splitlines()
        out += [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
    if not out:
        raise RsstabError("no schedule given (stdin was empty)")
    return out


def learning_rates(lr: str | None, lr_ratio: str | None, lr_a: str | None,
                   lr_b: str | None) -> tuple[str | None, str | None]:
    """``(lr, lr_ratio)`` from the flags: ``--lr-a A --lr-b B`` is ``--lr A --lr-ratio (B)/(A)``.

    >>> learning_rates(None, None, "eta", "eta*r")
    ('eta', '(eta*r)/(eta)')
    """
    if lr_a is None and lr_b is None:
        return lr, lr_ratio
    if lr_a is None or lr_b is None:
        raise RsstabError("--lr-a and --lr-b go together (or give --lr and --lr-ratio)")
    if lr is not None or lr_ratio is not None:
        raise RsstabError("give either --lr-a/--lr-b or --lr/--lr-ratio, not both")
    from rsstab.verdict.request import Factor

    for flag, text in (("--lr-a", lr_a), ("--lr-b", lr_b)):  # each is checked alone, for a precise message
        try:
            Factor.parse(text, flag.lstrip("-").replace("-", "_"))
        except RsstabError as exc:
            raise _for_flag(flag, exc) from None
    return lr_a, f"({lr_b})/({lr_a})"


def _for_flag(flag: str, exc: RsstabError) -> RsstabError:
    """``exc``'s message under the flag the user typed (instead of the library's parameter name)."""
    return RsstabError(f"{flag}: {exc.template.split(': ', 1)[-1]}", names=exc.names)


def run(args: argparse.Namespace) -> int:
    from rsstab.verdict.classify import check

    if args.simulate:  # a missing extra is one line and nothing on stdout, as every error
        from rsstab.errors import SIM_MODULES, require_extra

        require_extra("sim", SIM_MODULES)
    exprs = read_exprs(args.expr)
    lr, lr_ratio = learning_rates(args.lr, args.lr_ratio, args.lr_a, args.lr_b)
    tuple_given = any(x is not None for x in (lr, args.init_std, lr_ratio, args.width_expr))
    constants = parse_constants(args.constants)
    if len(exprs) > 1:
        if args.simulate or args.width is not None or args.eps is not None:
            raise RsstabError("--simulate, --width and --eps take one schedule at a time")
        if tuple_given:
            raise RsstabError("--lr, --lr-ratio, --lr-a/--lr-b, --init-std and --width-expr take one schedule at a time")
        return run_table(exprs, args.optimizer, constants, args.lr_scaling, args.json, args.assume)
    expr = exprs[0]
    if (args.eps is None) != (args.grad_scale is None):
        raise RsstabError("--eps and --grad-scale go together: Adam's regime depends on E|∂L/∂B_ij|/ε")
    if args.eps is not None and args.optimizer != "adam":
        raise RsstabError("--eps and --grad-scale describe Adam: add --optimizer adam")
    if args.simulate and args.lr_scaling is not None:
        raise RsstabError("--simulate measures at a fixed learning rate: drop --lr-scaling to compare")
    width = parse_width(args.width)
    ranks = parse_ranks(args.ranks, width)
    range_lr = None
    if width is not None and lr_ratio is None and _number(lr) is not None:
        # a numeric learning rate is a fixed one (the verdict's default learning-rate rule); with --width it
        # gives each rank's range of the first-order laws (result 13)
        range_lr, lr = _number(lr), None
        tuple_given = any(x is not None for x in (args.init_std, args.width_expr))
    try:
        verdict = check(expr, optimizer=args.optimizer, constants=constants, lr_scaling=args.lr_scaling,
                        width=width, ranks=ranks, assume=args.assume, lr=lr, init_std=args.init_std,
                        lr_ratio=lr_ratio, width_expr=args.width_expr)
    except RsstabError as exc:  # name the flag the user typed
        flag = "--lr-a" if args.lr_a is not None and exc.parameter == "lr" else \
            "--lr-b" if args.lr_b is not None and exc.parameter == "lr_ratio" else None
        if flag is None and exc.parameter in ("lr", "lr_ratio", "init_std", "width_expr"):
            flag = "--" + exc.parameter.replace("_", "-")
        if flag is None:
            raise
        raise _for_flag(flag, exc) from None
    if tuple_given and (args.simulate or args.eps is not None):
        raise RsstabError("--simulate and --eps are for a fixed learning rate and init: drop --lr / --init-std / "
                          "--lr-ratio")
    if verdict.parameters and (args.simulate or args.eps is not None):
        raise RsstabError(f"--simulate and --eps need values for the parameters {', '.join(verdict.parameters)} "
                          "(--set NAME=VALUE)")
    other = "adam" if args.optimizer == "sgd" else "sgd"
    also = check(expr, optimizer=other, constants=constants, assume=args.assume, lr=lr,
                 init_std=args.init_std, lr_ratio=lr_ratio, width_expr=args.width_expr)
    eps = None
    if args.eps is not None:
        from rsstab.verdict.adam_eps import adam_epsilon

        eps = adam_epsilon(expr, args.eps, args.grad_scale, constants=constants)
    expansion = None
    if range_lr is not None and verdict.width is not None:
        from rsstab.verdict.regimes import expansion_rows

        expansion = expansion_rows(verdict.width, args.optimizer, range_lr, args.init_std, args.steps,
                                   eps=args.eps, grad_scale=args.grad_scale)
    empirical = None
    if args.simulate:
        from rsstab.measure.empirical import empirical_verdict

        empirical = empirical_verdict(expr, optimizer=args.optimizer, constants=constants)
    if args.json:
        from rsstab.schema import dumps, envelope

        d = verdict.to_dict()
        d["other_regime"] = {"optimizer": other, "label": also.label, "lr_exponent": also.lr_exponent}
        if eps is not None:
            d["adam_eps"] = eps.to_dict()
        if expansion is not None:
            d["expansion_table"] = expansion
        if empirical is not None:
            d["simulation"] = empirical.as_dict()
        print(dumps(envelope("check", stable=verdict.stable, label=verdict.label, optimizer=verdict.optimizer,
                             schedule=verdict.schedule, reason=verdict.reason, notes=verdict.notes, body=d)))
    else:
        print(verdict.render(also))
        if eps is not None:
            print(eps.render())
        if expansion is not None:
            from rsstab.verdict.regimes import ExpansionTable

            print(ExpansionTable(tuple(expansion)).render())
        if empirical is not None:
            print()
            print(empirical.render({q: v.exponent for q, v in verdict.quantities.items()}))
    return 0 if verdict.stable else 1


def run_table(exprs: list[str], optimizer: str, constants: dict[str, float | Fraction], lr_scaling: str | None,
              as_json: bool, assume: list[str] | None = None) -> int:
    """Several schedules: one row each (both optimizers and their learning-rate rules), for course
    sheets and sweeps over candidate rules. Exit 0 when every schedule is rank-stabilized under
    ``optimizer``, 1 when one is not, 2 when one is invalid (its row says why; with ``--json``
    a one-line error and no JSON)."""
    from rsstab.verdict.classify import check

    other = "adam" if optimizer == "sgd" else "sgd"
    rows: list[dict[str, Any]] = []
    for expr in exprs:
        try:
            v = check(expr, optimizer=optimizer, constants=constants, lr_scaling=lr_scaling, assume=assume)
            w = check(expr, optimizer=other, constants=constants, assume=assume)
        except RsstabError as exc:
            rows.append({"schedule": expr, "error": str(exc)})
            continue
        rows.append({"schedule": expr, "parsed": v.parsed, "gamma_order": v.gamma_order, "label": v.label,
                     "stable": v.stable, "lr_exponent": v.lr_exponent, "headline": v.headline,
                     "other_regime": {"optimizer": other, "label": w.label, "lr_exponent": w.lr_exponent},
                     "method": v.method})
    code = 2 if any("error" in r for r in rows) else 0 if all(r.get("stable") for r in rows) else 1
    if as_json:
        bad = [r for r in rows if "error" in r]
        if bad:  # errors are never JSON: one line on stderr, nothing on stdout
            more = f" (and {len(bad) - 1} more invalid)" if len(bad) > 1 else ""
            raise RsstabError(f"{bad[0]['schedule']}: {bad[0]['error']}{more}")
        from rsstab.schema import dumps, envelope

        labels = {str(r["label"]) for r in rows if "label" in r}
        print(dumps(envelope("check", stable=code == 0, label=labels.pop() if len(labels) == 1 else None,
                             optimizer=optimizer, schedule=None,
                             reason=f"{len(rows)} schedules, one row each", notes=[], body={"schedules": rows})))
        return code

    def p(x: object) -> str:
        return "—" if x is None else f"{x:+.3g}"

    head = ["γ_r", "order", f"{optimizer} (fixed η)", "η ∝ r^p", f"{other} (fixed η)", "η ∝ r^p"]
    cells = [[str(r["schedule"]), "", "invalid (below)", "", "", ""] if "error" in r else
             [str(r["schedule"]), str(r["gamma_order"]), str(r["label"]), p(r["lr_exponent"]),
              str(r["other_regime"]["label"]), p(r["other_regime"]["lr_exponent"])] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for c in cells:
        print("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    for r in rows:
        if "error" in r:
            print(f"rsstab: error: {r['schedule']}: {r['error']}", file=sys.stderr)
    return code

