"""``rsstab peft PATH``: the scaling PEFT applies to every module of a saved LoRA adapter.

Reads ``adapter_config.json`` (+ ``adapter_model.safetensors``) with :mod:`rsstab.peft_files`
(json only: no torch, no peft), resolves ``rank_pattern`` / ``alpha_pattern`` exactly as PEFT
does, and attaches the verdict of the adapter's schedule family (``alpha/sqrt(r)`` with
``use_rslora``, else ``alpha/r``) from :func:`rsstab.check`, with the theorem's hypotheses checked
(:func:`rsstab.peft_files.hypotheses.assess`: ``init_lora_weights``, LoRA variants). The default
optimizer is Adam (``adamw``), how PEFT adapters are trained.

The verdict is for a fixed learning rate (or η ∝ r^P with ``--lr-scaling P``) and always comes
with the learning-rate rule that keeps the update Θ(1): under AdamW a stock rsLoRA adapter reads
"blow-up at a fixed learning rate — rank-stabilized with η ∝ r^-1/2", never a bare "unstable".

Exit code: 0 when every module is rank-stabilized under the stated learning rate and every weight
shape agrees with the config (and is one a PEFT layer saves), 1 otherwise, 2 for bad input (a folder
without ``adapter_model.safetensors`` included: the message says so and how to check its config).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rsstab.commands._args import add_optimizer
from rsstab.vocab import STABLE

HELP = "report r, alpha, PEFT's scaling and the rank-stabilization verdict per module of a LoRA adapter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``rsstab peft``."""
    parser.add_argument(
        "path",
        metavar="PATH",
        help="directory written by PEFT's save_pretrained (adapter_config.json + adapter_model.safetensors) "
        "or a bare adapter_config.json",
    )
    add_optimizer(
        parser,
        default="adamw",
        help="optimizer regime of the verdict (default: adamw, how PEFT adapters are trained; "
        "sgd: the paper's theorem)",
    )
    parser.add_argument(
        "--lr-scaling",
        dest="lr_scaling",
        default=None,
        metavar="P",
        help="the verdict for a learning rate scaled as η ∝ r^P across ranks (default: a fixed learning rate)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of a table")


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _table(rows: list[dict[str, Any]], lr: str = "fixed") -> str:
    verdict = "verdict (fixed η)" if lr == "fixed" else f"verdict ({lr})"
    cols = [
        ("module", "name"),
        ("kind", "kind"),
        ("r", "r"),
        ("r(A,B)", "r_weights"),
        ("lora_alpha", "lora_alpha"),
        ("scaling", "scaling"),
        ("set by", "set_by"),
        (verdict, "label"),
    ]
    cells = []
    for row in rows:
        w = "-" if row["r_weight"] is None else f"{row['r_weight']},{row['r_weight_b']}"
        if row["r_mismatch"]:
            w += " MISMATCH"
        set_by = ", ".join(
            f"{what}[{row[k]!r}]"
            for what, k in (("rank_pattern", "rank_pattern_key"), ("alpha_pattern", "alpha_pattern_key"))
            if row[k] is not None
        )
        cells.append(
            {
                "name": row["name"],
                "kind": row["kind"],
                "r": str(row["r"]),
                "r_weights": w,
                "lora_alpha": _fmt(row["lora_alpha"]),
                "scaling": _fmt(row["scaling"]),
                "set_by": set_by or "default",
                "label": row["label"],
            }
        )
    widths = {k: max(len(h), *(len(c[k]) for c in cells)) for h, k in cols}
    lines = ["  ".join(h.ljust(widths[k]) for h, k in cols).rstrip()]
    lines += ["  ".join(c[k].ljust(widths[k]) for _, k in cols).rstrip() for c in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the per-module report; return 0 (all stable, shapes agree) or 1."""
    from rsstab.peft_files import read_adapter
    from rsstab.peft_files.hypotheses import assess

    report = read_adapter(args.path)
    cfg = report.config
    assessment = assess(report, args.optimizer, args.lr_scaling)  # init and variants checked against the theorem
    verdict = assessment.verdict
    rows = [dict(m.to_dict(), **assessment.row(m)) for m in report.modules]
    ok = assessment.label == STABLE and not report.mismatches and not report.malformed
    lr = verdict.lr if verdict is not None else "fixed"
    headline = verdict.headline if verdict is not None and verdict.label == assessment.label else assessment.label
    for w in report.warnings:
        print(f"rsstab: warning: {w}", file=sys.stderr)
    if args.json:
        out = {
            "path": report.path,
            "source": "weights" if report.from_weights else "config",
            "use_rslora": cfg.use_rslora,
            "schedule": cfg.schedule,
            "optimizer": args.optimizer,
            "defaults_used": list(cfg.defaulted),
            "label": assessment.label,
            "lr": lr,
            "lr_exponent": assessment.lr_exponent,
            "lr_rule": verdict.lr_rule if verdict is not None else None,
            "headline": headline,
            "init_lora_weights": cfg.init_lora_weights,
            "variants": list(cfg.variants),
            "caveats": list(assessment.caveats),
            "verdict": verdict.to_dict() if verdict else None,
            "modules": rows,
        }
        from rsstab.schema import dumps, envelope

        reason = verdict.reason if verdict is not None else "; ".join(assessment.caveats)
        print(dumps(envelope("peft", stable=ok, label=assessment.label, optimizer=assessment.optimizer,
                             schedule=cfg.schedule, reason=reason, notes=report.warnings, body=out)))
        return 0 if ok else 1
    src = "modules from the safetensors keys" if report.from_weights else "bare config: one row per pattern + default"
    print(f"{report.path}: use_rslora={str(cfg.use_rslora).lower()}  schedule {cfg.schedule}  ({src})")
    if cfg.defaulted:
        print(f"PEFT defaults used for missing fields: {', '.join(cfg.defaulted)}")
    print(_table(rows, lr))
    for c in assessment.caveats:
        print(f"caveat: {c}")
    if cfg.use_rslora:
        f = sorted({m.loader_factor for m in report.modules})
        print(f"loader parity: a loader that ignores use_rslora applies alpha/r, √r smaller than PEFT "
              f"(×{_fmt(f[0])}" + (f" … ×{_fmt(f[-1])})" if len(f) > 1 else ")"))
    n_mis = len(report.mismatches)
    print(
        f"{len(rows)} row(s); verdict for {cfg.schedule} under {args.optimizer}: {headline}"
        + (f"; {n_mis} rank mismatch(es) between config and weights" if n_mis else "")
    )
    if verdict is not None:
        print(f"learning-rate rule: {verdict.lr_rule}")
    return 0 if ok else 1
