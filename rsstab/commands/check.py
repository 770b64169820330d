"""``rsstab check EXPR``: is this γ_r rank-stabilized, and why."""

from __future__ import annotations

import argparse
import sys

from rsstab.errors import RsstabError
from rsstab.vocab import OPTIMIZER_METAVAR, OPTIMIZERS, canonical_optimizer

HELP = "classify a scaling factor γ_r (rank-stabilized / collapse / blow-up) per optimizer regime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("expr", metavar="EXPR",
                   help='γ_r as an expression in r, e.g. "alpha/r**0.5"; "-" reads it from stdin')
    p.add_argument("--optimizer", type=canonical_optimizer, choices=OPTIMIZERS, metavar=OPTIMIZER_METAVAR, default="sgd",
                   help="regime: sgd (Theorem 3.2, γ_r²·r) or adam (sign-like updates, γ_r·r); adamw is Adam's regime")
    p.add_argument("--set", dest="constants", action="append", default=[], metavar="NAME=VALUE",
                   help="value of a named constant (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--simulate", action="store_true",
                   help="also measure the slopes with a quick Monte Carlo simulation (needs torch)")


def parse_constants(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RsstabError(f"--set expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise RsstabError(f"--set {name.strip()}: {value!r} is not a number") from None
    return out


def read_expr(expr: str) -> str:
    if expr != "-":
        return expr
    text = sys.stdin.read(100_000)
    return text.strip()


def run(args: argparse.Namespace) -> int:
    from rsstab.classify import check

    expr = read_expr(args.expr)
    constants = parse_constants(args.constants)
    verdict = check(expr, optimizer=args.optimizer, constants=constants)
    other = "adam" if args.optimizer == "sgd" else "sgd"
    also = check(expr, optimizer=other, constants=constants)
    empirical = None
    if args.simulate:
        from rsstab.empirical import empirical_verdict

        empirical = empirical_verdict(expr, optimizer=args.optimizer, constants=constants)
    if args.json:
        import json

        d = verdict.to_dict()
        d["also"] = {other: also.label}
        if empirical is not None:
            d["simulation"] = empirical.as_dict()
        from rsstab.classify import json_safe

        print(json.dumps(json_safe(d), ensure_ascii=False, indent=2))
    else:
        print(render(verdict, also))
        if empirical is not None:
            from rsstab.empirical import render_empirical

            print()
            theory = {q: v.exponent for q, v in verdict.quantities.items()}
            print(render_empirical(empirical, theory))
    return 0 if verdict.stable else 1


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def render(v: object, also: object) -> str:
    """Human-readable verdict."""
    lines = [
        f"γ_r = {v.schedule}    [optimizer: {v.optimizer}, method: {v.method}]",
        f"verdict: {v.label}",
        f"γ_r order: {v.gamma_order}    (γ_r → 0: {_yes(v.gamma_to_zero)})",
        f"why: {v.reason}",
        "",
    ]
    w = max(len("order"), *(len(q.order) for q in v.quantities.values())) + 2
    lines.append(f"{'quantity':<14}{'law':<12}{'order':<{w}}{'exponent':>9}  label")
    for q in v.quantities.values():
        exp = "—" if q.exponent is None else f"{q.exponent:+.4g}"
        lines.append(f"{q.name:<14}{q.law:<12}{q.order:<{w}}{exp:>9}  {q.label}")
    lines += ["", f"{'r':>6}  {'γ_r':>12}  {v.stability_law:>12}"]
    for r, g, q in v.table:
        lines.append(f"{r:>6}  {_fmt(g):>12}  {_fmt(q):>12}")
    lines.append("")
    lines.extend(f"note: {n}".replace("give the constants values", "give the constants values with --set NAME=VALUE")
                 for n in v.notes)
    lines.append(f"under {also.optimizer}: {also.label} ({also.stability_law} ∈ {also.stability_order})")
    return "\n".join(lines)


def _yes(b: bool | None) -> str:
    return "yes" if b else "no" if b is False else "undetermined"
