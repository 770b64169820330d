"""Findings about LoRA adapters, one per line, with stable codes (``rsstab lint``).

Every finding is ``path:module: CODE message`` (ruff-style): ``path`` is the adapter's
``adapter_config.json``, ``module`` a module name, a pattern key, ``*`` (every module) or ``-``
(the config as a whole). The codes never change meaning; :data:`CODES` lists them with their
severity. ``error`` and ``warning`` findings fail a run (exit 1), ``info`` findings are printed
only; unreadable input is ``RS001`` and exits 2.

>>> sorted(CODES)[:3]
['RS001', 'RS101', 'RS102']
>>> Finding("a/adapter_config.json", "*", "RS304", "x").text()
'a/adapter_config.json:*: RS304 x'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rsstab.errors import RsstabError
from rsstab.vocab import STABLE, normalize_optimizer

__all__ = ["CODES", "FORMATS", "Finding", "exit_code", "format_findings", "lint_paths", "lint_report"]

#: code → (severity, what it means). Stable: a code is never reused for something else.
CODES: dict[str, tuple[str, str]] = {
    "RS001": ("error", "unreadable input: not a PEFT LoRA adapter, malformed, or missing"),
    "RS101": ("info", "PEFT defaults used for fields missing from the config"),
    "RS102": ("warning", "rank_pattern / alpha_pattern key matches no adapted module (PEFT ignores it)"),
    "RS103": ("warning", "module matched by pattern keys with different values: file order decides"),
    "RS104": ("info", "bare config: module names unknown, patterns cannot be checked"),
    "RS201": ("error", "rank in the weights disagrees with the config: PEFT fails to load the adapter"),
    "RS202": ("warning", "weight keys carry an adapter name: PEFT loads them only under that name"),
    "RS203": ("warning", "targeted parameters whose nested wrappers the adapter does not tell apart"),
    "RS301": ("warning", "scaling not rank-stabilized in the optimizer regime"),
    "RS302": ("warning", "initialisation outside Theorem 3.2's hypothesis (B = 0, A iid with rank-free variance)"),
    "RS303": ("warning", "LoRA variant the verdict does not model"),
    "RS304": ("info", "loader parity: a loader ignoring use_rslora scales these modules √r too small"),
}

_NOTE_CODES = {
    "unmatched_key": "RS102",
    "overlap": "RS103",
    "bare_config": "RS104",
    "mismatch": "RS201",
    "adapter_name": "RS202",
    "parameters": "RS203",
}

FORMATS = ("text", "json", "github")


@dataclass(frozen=True)
class Finding:
    """One finding: where, which code, what."""

    path: str
    module: str
    code: str
    message: str

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``info`` (from :data:`CODES`)."""
        return CODES[self.code][0]

    def text(self) -> str:
        """``path:module: CODE message``."""
        return f"{self.path}:{self.module}: {self.code} {self.message}"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _grouped(names: list[str], total: int) -> str:
    """The module column for a finding about ``names`` out of ``total`` modules."""
    return "*" if len(names) == total and total > 1 else names[0]


def _more(names: list[str], total: int) -> str:
    if len(names) == total or len(names) == 1:
        return ""
    return f" (and {len(names) - 1} more module(s))"


def _lr_phrase(p: float | None) -> str:
    """The learning-rate rule η ∝ r^p, the update growing like r^-p at a fixed η."""
    if p is None or p == 0:
        return ""
    grows = "grows" if p < 0 else "shrinks"
    return f"; at a fixed learning rate the update {grows} like r^{_fmt(-p)}: scale η as r^{_fmt(p)}"


def lint_report(report: Any, optimizer: str = "adam", path: str | None = None) -> list[Finding]:
    """The findings about one :class:`~rsstab.peft_files.AdapterReport` in one regime."""
    from rsstab.peft_files.hypotheses import assess

    opt = normalize_optimizer(optimizer)
    cfg = report.config
    where = path or report.path
    out: list[Finding] = []
    if cfg.defaulted:
        out.append(Finding(where, "-", "RS101", f"PEFT defaults used for missing fields: {', '.join(cfg.defaulted)}"))
    for note in report.notes:
        code = _NOTE_CODES.get(note.kind)
        if code:
            out.append(Finding(where, note.module or "-", code, note.message))
    assessment = assess(report, opt)
    total = len(report.modules)
    groups: dict[tuple[str, str | None], list[str]] = {}
    for m in report.modules:
        row = assessment.row(m)
        groups.setdefault((row["label"], row["judged_schedule"]), []).append(m.name)
    for (label, judged), names in groups.items():
        if label == STABLE or judged is None:
            continue  # judged None: no verdict claimed (RS302 says why)
        v = assessment.verdicts[judged]
        fix = (" (alpha/r is Adam's rank-stabilized scaling: use_rslora=false)" if opt == "adam"
               else " (use_rslora=true gives alpha/sqrt(r), SGD's rank-stabilized scaling)")
        shown = cfg.schedule if judged == cfg.schedule else f"{cfg.schedule} (judged as {judged})"
        out.append(Finding(where, _grouped(names, total), "RS301",
                           f"{shown} under {opt}: {label}, {v.stability_law} ∈ {v.stability_order}"
                           f"{_lr_phrase(v.lr_exponent)}{fix if judged == cfg.schedule else ''}{_more(names, total)}"))
    for caveat in assessment.caveats:
        code = "RS303" if caveat.startswith("LoRA variant") else "RS302"
        out.append(Finding(where, "-", code, caveat))
    if cfg.use_rslora:
        by_r: dict[int, list[Any]] = {}
        for m in report.modules:
            by_r.setdefault(m.r, []).append(m)
        for r, mods in sorted(by_r.items()):
            m = mods[0]
            module = "*" if len(by_r) == 1 and total > 1 else m.name
            more = f" (and {len(mods) - 1} more module(s) with r={r})" if module != "*" and len(mods) > 1 else ""
            out.append(Finding(where, module, "RS304",
                               f"r={r}: a loader that ignores use_rslora applies alpha/r = {_fmt(m.lora_alpha / r)} "
                               f"instead of PEFT's {_fmt(m.scaling)}, √r = {_fmt(m.loader_factor)}× too small{more}"))
    return out


def lint_paths(args: Sequence[str], optimizer: str = "adam") -> tuple[list[Finding], int]:
    """Read every adapter ``args`` name (paths, folders, globs); findings and the adapter count."""
    from rsstab.peft_files import read_adapter
    from rsstab.peft_files.discover import find_adapters

    targets, errors = find_adapters(args)
    out = [Finding(arg, "-", "RS001", why) for arg, why in errors]
    for t in targets:
        where = str(t.config_file)
        try:
            report = read_adapter(t.path)
        except RsstabError as exc:
            out.append(Finding(where, "-", "RS001", str(exc)))
            continue
        out.extend(lint_report(report, optimizer, where))
    return out, len(targets)


def exit_code(findings: Iterable[Finding]) -> int:
    """2 with unreadable input, else 1 with an error or warning, else 0."""
    findings = list(findings)
    if any(f.code == "RS001" for f in findings):
        return 2
    return 1 if any(f.severity != "info" for f in findings) else 0


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def format_findings(findings: Sequence[Finding], fmt: str = "text", **extra: Any) -> str:
    """Findings as ``text`` lines, one ``json`` object, or ``github`` workflow commands.

    >>> print(format_findings([Finding("a.json", "q", "RS201", "bad: 1,2")], "github"))
    ::error file=a.json,title=RS201::q: bad: 1,2
    """
    if fmt == "text":
        return "\n".join(f.text() for f in findings)
    if fmt == "json":
        return json.dumps(
            {**extra, "findings": [{**asdict(f), "severity": f.severity} for f in findings],
             "codes": {c: {"severity": s, "meaning": m} for c, (s, m) in CODES.items()}},
            indent=2, ensure_ascii=False)
    if fmt == "github":
        level = {"error": "error", "warning": "warning", "info": "notice"}
        return "\n".join(
            f"::{level[f.severity]} file={_escape_property(f.path)},title={_escape_property(f.code)}::"
            f"{_escape_data(f.module + ': ' + f.message)}"
            for f in findings
        )
    raise RsstabError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
