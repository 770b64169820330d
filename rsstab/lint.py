"""Findings about LoRA adapters, one per line, with stable codes (``rsstab lint``).

Every finding is ``path:module: CODE message`` (ruff-style), ``path:line:module: CODE message``
where the finding has a line (the line of its key in ``adapter_config.json``): ``path`` is the
adapter's ``adapter_config.json`` (or the file at fault), ``module`` a module name, a pattern key,
``*`` (every module) or ``-`` (the config as a whole). The codes never change meaning; :data:`CODES`
(defined in :mod:`rsstab.lint_codes`) lists them with their severity and :data:`RULES` explains
them (``rsstab lint --explain CODE``). ``error`` and ``warning`` findings fail a run (exit 1),
``info`` findings are printed only; an unreadable or non-LoRA adapter is a finding too (``RS001``,
exit 1). Exit code 2 is for usage errors only (bad flags, a bad ``[tool.rsstab.lint]`` value),
raised before any adapter is read.

Settings come from the command line and from ``[tool.rsstab.lint]`` in the nearest
``pyproject.toml`` that has one, at or above the current directory (:func:`find_settings`, as
ruff finds ``[tool.ruff]``); a flag overrides its key.

>>> sorted(CODES)[:3]
['RS001', 'RS101', 'RS102']
>>> Finding("a/adapter_config.json", "*", "RS304", "x").render()
'a/adapter_config.json:*: RS304 x'
>>> Finding("a/adapter_config.json", "-", "RS302", "x", line=7).render()
'a/adapter_config.json:7:-: RS302 x'
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.lint_codes import CODES
from rsstab.vocab import OPTIMIZER_NAMES, OPTIMIZERS, STABLE, canonical_optimizer, normalize_optimizer

__all__ = ["CODES", "FORMATS", "RULES", "SETTINGS", "Finding", "Rule", "code_prefixes", "exit_code", "explain",
           "find_settings", "format_findings", "is_selected", "lint_paths", "lint_report", "parse_settings"]


@dataclass(frozen=True)
class Rule:
    """What ``rsstab lint --explain CODE`` prints: a name, what is checked, why, how to fix."""

    name: str
    checks: str
    why: str
    fix: str


#: code → its explanation (``rsstab lint --explain CODE``).
RULES: dict[str, Rule] = {
    "RS001": Rule(
        "unreadable-adapter",
        "that every path names a readable PEFT LoRA adapter: an adapter folder, adapter_config.json, "
        "adapter_model.safetensors or a .json config with peft_type 'LORA'.",
        "a missing, malformed or foreign file (an mlx-lm config, a config without peft_type, another "
        "peft_type) cannot be checked, and PEFT refuses it too. It is reported like any other finding, so one "
        "bad adapter does not hide the findings about the others; it cannot be ignored.",
        "fix the path or the file the message names; remove files that are no PEFT LoRA adapters from "
        "the paths given to rsstab lint."),
    "RS101": Rule(
        "peft-defaults-used",
        "which of r, lora_alpha and use_rslora are missing from the config.",
        "PEFT fills them with its defaults (r=8, lora_alpha=8, use_rslora=false), which may not be what "
        "the adapter was trained with. Info only.",
        "write the three fields into adapter_config.json."),
    "RS102": Rule(
        "unmatched-pattern-key",
        "that every rank_pattern / alpha_pattern key matches some adapted module (PEFT's rule: the key "
        "matches a module name or a dotted suffix of it, as a regular expression).",
        "PEFT silently ignores a key that matches nothing, so a typo leaves those modules at the default "
        "rank or alpha.",
        "correct the key (compare with the module names `rsstab peft ADAPTER` lists) or delete it."),
    "RS103": Rule(
        "overlapping-pattern-keys",
        "modules matched by several pattern keys with different values.",
        "PEFT takes the first matching key in file order, and save_pretrained writes the keys sorted, so "
        "the adapter reloaded from disk can get another rank or alpha than the one it was trained with.",
        "make the keys disjoint (anchor them, e.g. 'layers\\.1\\.v_proj'), or give overlapping keys "
        "the same value."),
    "RS104": Rule(
        "bare-config",
        "a config read without its weights that has rank_pattern or alpha_pattern.",
        "the module names live in the weights, so patterns that match nothing cannot be detected. Info only.",
        "lint the adapter folder (config and adapter_model.safetensors) instead of the config alone."),
    "RS201": Rule(
        "rank-mismatch",
        "that the rank in the saved lora_A / lora_B shapes is the rank the config resolves for that module.",
        "PEFT builds the layers from the config and fails to load weights of another shape.",
        "fix r or the rank_pattern entry in the config (the weights are what was trained), or re-save the "
        "adapter."),
    "RS202": Rule(
        "adapter-name-in-keys",
        "weight keys that carry an adapter name (.lora_A.default.weight).",
        "save_pretrained removes the name; PEFT loads such keys only under that adapter name and silently "
        "skips them under another one, leaving the adapter at its initial value.",
        "save with save_pretrained, or load with adapter_name set to the name in the keys."),
    "RS203": Rule(
        "ambiguous-target-parameters",
        "modules holding several targeted parameters (target_parameters) whose nested wrappers the saved "
        "adapter does not tell apart.",
        "which wrapper holds which parameter is not recorded, so their ranks and alphas are a guess.",
        "give those parameters the same rank and alpha, or target one parameter per module."),
    "RS204": Rule(
        "missing-weights",
        "that an adapter folder holds adapter_model.safetensors next to adapter_config.json.",
        "without the weights PEFT cannot load the adapter from the folder (an adapter_model.bin is a pickle "
        "rsstab never opens); only the config's findings are reported. `rsstab peft FOLDER` refuses such a "
        "folder with the same message.",
        "save with save_pretrained(..., safe_serialization=True), or lint the config file itself when it is "
        "meant to be read alone."),
    "RS205": Rule(
        "malformed-factor-shape",
        "that each module's LoRA factors have shapes a PEFT layer saves: lora_A and lora_B both 2-D (linear, "
        "embedding) or both 3- to 5-D (convolutions, whose lora_B is a 1×…×1 kernel), neither missing.",
        "PEFT cannot load such a factor into its layer (or leaves a missing one at its initial value): the "
        "file is corrupt or was not written by PEFT.",
        "re-save the adapter with PEFT's save_pretrained."),
    "RS301": Rule(
        "not-rank-stabilized",
        "that the adapter's scaling (alpha/r, or alpha/sqrt(r) with use_rslora) is rank-stabilized in the "
        "optimizer regime (--optimizer, default AdamW) at the learning rate given by --lr-scaling (default: "
        "fixed across ranks).",
        "otherwise the learned update grows or vanishes as r grows, so a learning rate tuned at one rank "
        "does not carry over to another. Under Adam(W), alpha/r is rank-stabilized at a fixed learning "
        "rate and alpha/sqrt(r) needs η ∝ r^-1/2; under SGD, alpha/sqrt(r) is (the rsLoRA theorem).",
        "follow the learning-rate rule in the message and say so with --lr-scaling P (or lr-scaling in "
        "[tool.rsstab.lint]), e.g. --lr-scaling -1/2 for rsLoRA under AdamW; or change use_rslora."),
    "RS302": Rule(
        "init-outside-hypothesis",
        "init_lora_weights against the theorem's hypothesis (B = 0, A iid with a rank-free variance).",
        "'gaussian' draws A with σ = 1/r, so the adapter behaves like the scaling γ_r/r and is judged as "
        "such; data-driven inits (PiSSA, OLoRA, LoftQ, EVA, CorDA, …) break the hypothesis and get no rank "
        "verdict.",
        "use the default init (init_lora_weights=true) for a rank-stabilization guarantee, or ignore RS302 "
        "knowingly."),
    "RS303": Rule(
        "unmodelled-variant",
        "LoRA variants the verdict does not model (DoRA, BD-LoRA, KaSA, VeLoRA, …).",
        "the scaling PEFT applies is reported as is, but the variant changes the update the laws describe.",
        "nothing to fix in the file; ignore RS303 if the caveat is known."),
    "RS304": Rule(
        "loader-parity",
        "use_rslora adapters: the factor by which a loader that ignores use_rslora would scale them wrongly.",
        "such a loader applies alpha/r, √r times smaller than PEFT's alpha/sqrt(r). Info only.",
        "load the adapter with PEFT, or with a loader that honours use_rslora."),
}

_NOTE_CODES = {
    "unmatched_key": "RS102",
    "overlap": "RS103",
    "bare_config": "RS104",
    "mismatch": "RS201",
    "adapter_name": "RS202",
    "parameters": "RS203",
    "no_weights": "RS204",
    "malformed": "RS205",
}

FORMATS = ("text", "json", "github")


@dataclass(frozen=True)
class Finding:
    """One finding: where (``line``: of its key in ``adapter_config.json``, when known), which
    code, what."""

    path: str
    module: str
    code: str
    message: str
    line: int | None = None

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or ``info`` (from :data:`CODES`)."""
        return CODES[self.code][0]

    def render(self) -> str:
        """The plain text ``rsstab lint`` prints: ``path:module: CODE message``, or
        ``path:line:module: CODE message``."""
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}:{self.module}: {self.code} {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (one entry of ``rsstab lint --format json``'s ``findings``): the fields and the severity."""
        return {**asdict(self), "severity": self.severity}


def explain(code: str) -> str:
    """What ``rsstab lint --explain CODE`` prints; an unknown code is a one-line error.

    >>> print(explain("rs104").splitlines()[0])
    RS104 bare-config (info): bare config: module names unknown, patterns cannot be checked
    """
    key = code.strip().upper()
    if key not in RULES:
        raise RsstabError(f"unknown code {code!r}: the codes are {', '.join(CODES)}")
    rule, (severity, meaning) = RULES[key], CODES[key]
    return "\n".join([f"{key} {rule.name} ({severity}): {meaning}", "", f"What it checks: {rule.checks}",
                      f"Why: {rule.why}", f"How to fix: {rule.fix}"])


def code_prefixes(values: Iterable[str], source: str = "") -> tuple[str, ...]:
    """Codes or code prefixes (``RS3``, ``RS30``, ``RS301``; ``ALL``: every code), upper-cased;
    a prefix of no code is a one-line error.

    >>> code_prefixes(["rs3", "RS101", " ALL "])
    ('RS3', 'RS101', 'RS')
    """
    out = []
    for value in values:
        v = value.strip().upper()
        v = "RS" if v == "ALL" else v
        if not v or not any(c.startswith(v) for c in CODES):
            where = f"{source}: " if source else ""
            raise RsstabError(f"{where}unknown code or prefix {value.strip()!r}: codes are {', '.join(CODES)} "
                              "(a prefix such as RS3 selects RS301-RS304)")
        out.append(v)
    return tuple(out)


def is_selected(code: str, select: Sequence[str] = ("RS",), ignore: Sequence[str] = ()) -> bool:
    """Whether ``code`` is reported: the longest prefix naming it decides, ``ignore`` winning a tie
    (ruff's rule); ``RS001`` (unreadable input) is always reported.

    >>> [is_selected(c, ["RS3"], ["RS304"]) for c in ("RS301", "RS304", "RS101")]
    [True, False, False]
    >>> is_selected("RS301", ["RS"], ["RS3"]), is_selected("RS301", ["RS301"], ["RS3"])
    (False, True)
    """
    if code == "RS001":
        return True
    best_select = max((len(p) for p in select if code.startswith(p)), default=-1)
    best_ignore = max((len(p) for p in ignore if code.startswith(p)), default=-1)
    return best_select > best_ignore


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _grouped(names: list[str], total: int) -> str:
    """The module column for a finding about ``names`` out of ``total`` modules."""
    return "*" if len(names) == total and total > 1 else names[0]


def _more(names: list[str], total: int) -> str:
    if len(names) == total or len(names) == 1:
        return ""
    return f" (and {len(names) - 1} more module(s))"


def _lr_phrase(p: float | None, scaling: float = 0.0, exact: str | None = None) -> str:
    """The learning-rate rule η ∝ r^p (``exact``: p as a fraction); the update grows like
    r^(scaling - p) at η ∝ r^scaling.

    >>> _lr_phrase(-0.5, 0.0, "-1/2")
    '; at a fixed learning rate the update grows like r^0.5: scale η as r^-0.5 (then --lr-scaling -1/2 says so)'
    >>> _lr_phrase(0.0, -1.0, "0")
    '; with η ∝ r^-1 the update shrinks like r^-1: keep η fixed across ranks'
    """
    if p is None or p == scaling:
        return ""
    d = scaling - p
    at = "at a fixed learning rate" if scaling == 0 else f"with η ∝ r^{_fmt(scaling)}"
    rule = ("keep η fixed across ranks" if p == 0 else
            f"scale η as r^{_fmt(p)} (then --lr-scaling {exact or _fmt(p)} says so)")
    return f"; {at} the update {'grows' if d > 0 else 'shrinks'} like r^{_fmt(d)}: {rule}"


def _note_line(note: Any, report: Any, lines: Mapping[tuple[str, ...], int]) -> int | None:
    """The line of the config key a reader's note is about."""
    attr = "alpha_pattern" if note.message.startswith("alpha_pattern") or " alpha_pattern keys " in note.message \
        else "rank_pattern"
    if note.kind == "unmatched_key":
        return lines.get((attr, note.module))
    if note.kind == "overlap":
        return lines.get((attr,))
    if note.kind == "bare_config":
        return lines.get(("rank_pattern",)) or lines.get(("alpha_pattern",))
    if note.kind == "parameters":
        return lines.get(("target_parameters",))
    if note.kind == "mismatch":
        m = next((m for m in report.modules if m.name == note.module), None)
        if m is not None:
            return lines.get(("rank_pattern", m.rank_key) if m.rank_key is not None else ("r",))
    return None


def lint_report(report: Any, optimizer: str = "adam", path: str | None = None,
                lr_scaling: str | float | None = None,
                lines: Mapping[tuple[str, ...], int] | None = None) -> list[Finding]:
    """The findings about one :class:`~rsstab.peft_files.AdapterReport` under one optimizer, at a learning
    rate ``η ∝ r^lr_scaling`` (default: fixed); ``lines``: the config's key lines
    (:func:`~rsstab.peft_files.config.key_lines`), for the findings' line numbers."""
    from rsstab.peft_files.hypotheses import assess

    opt = normalize_optimizer(optimizer)
    cfg = report.config
    where = path or report.path
    lines = lines or {}
    out: list[Finding] = []
    if cfg.defaulted:
        out.append(Finding(where, "-", "RS101", f"PEFT defaults used for missing fields: {', '.join(cfg.defaulted)}"))
    for note in report.notes:
        code = _NOTE_CODES.get(note.kind)
        if code:
            out.append(Finding(where, note.module or "-", code, note.message, _note_line(note, report, lines)))
    assessment = assess(report, opt, lr_scaling)  # the classifier's own lr-scaling logic (rsstab check's)
    total = len(report.modules)
    groups: dict[tuple[str, str | None], list[str]] = {}
    for m in report.modules:
        row = assessment.row(m)
        groups.setdefault((row["label"], row["judged_schedule"]), []).append(m.name)
    rslora_line = lines.get(("use_rslora",))
    for (label, judged), names in groups.items():
        if label == STABLE or judged is None:
            continue  # judged None: no verdict claimed (RS302 says why)
        v = assessment.verdicts[judged]
        fixed = v.lr == "fixed"
        fix = (" (alpha/r is Adam's rank-stabilized scaling: use_rslora=false)" if opt == "adam"
               else " (use_rslora=true gives alpha/sqrt(r), SGD's rank-stabilized scaling)")
        shown = cfg.schedule if judged == cfg.schedule else f"{cfg.schedule} (judged as {judged})"
        regime = opt if fixed else f"{opt} with {v.lr}"
        out.append(Finding(where, _grouped(names, total), "RS301",
                           f"{shown} under {regime}: {label}, {v.stability_law} ∈ {v.stability_order}"
                           f"{_lr_phrase(v.lr_exponent, v.lr_scaling, v.lr_exponent_exact)}"
                           f"{fix if judged == cfg.schedule and fixed else ''}{_more(names, total)}", rslora_line))
    variants = iter(cfg.variants)
    for caveat in assessment.caveats:
        if caveat.startswith("LoRA variant"):
            out.append(Finding(where, "-", "RS303", caveat, lines.get((next(variants, ""),))))
        else:
            out.append(Finding(where, "-", "RS302", caveat, lines.get(("init_lora_weights",))))
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
                               f"instead of PEFT's {_fmt(m.scaling)}, √r = {_fmt(m.loader_factor)}× too small{more}",
                               rslora_line))
    return out


_JSON_LINE = re.compile(r"\(line (\d+), column \d+\)$")


def _unreadable(message: str, config_file: Path) -> Finding:
    """``RS001`` for an adapter that cannot be read, pointing at the file at fault, whose path the
    message then does not repeat."""
    weights = config_file.with_name("adapter_model.safetensors")
    for f in (weights, config_file, config_file.parent):
        s = str(f)
        if message.startswith(s + ": "):
            message, path = message[len(s) + 2:], s
            break
        if message.startswith(("no such file: ", "cannot read ")) and s in message:
            message, path = message.replace(f": {s}", "").replace(f" {s}:", ":"), s
            break
    else:
        path = str(config_file)
    m = _JSON_LINE.search(message)
    return Finding(path, "-", "RS001", message, int(m.group(1)) if m else None)


def lint_paths(args: Sequence[str], optimizer: str = "adam",
               lr_scaling: str | float | None = None) -> tuple[list[Finding], int]:
    """Read every adapter ``args`` name (paths, folders, globs); findings and the adapter count.

    An unreadable or non-LoRA adapter is an ``RS001`` finding; the others are still linted.
    """
    from rsstab.peft_files import read_adapter
    from rsstab.peft_files.config import key_lines
    from rsstab.peft_files.discover import find_adapters

    targets, errors = find_adapters(args)
    out = [Finding(arg, "-", "RS001", why) for arg, why in errors]
    for t in targets:
        config_file = t.config_file
        try:
            report = read_adapter(t.path, config_alone=True)
        except RsstabError as exc:
            out.append(_unreadable(str(exc), config_file))
            continue
        try:
            lines = key_lines(config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # pragma: no cover - read_adapter has just read it
            lines = {}
        out.extend(lint_report(report, optimizer, str(config_file), lr_scaling, lines))
    return out, len(targets)


def exit_code(findings: Iterable[Finding]) -> int:
    """1 with an error or warning finding (unreadable input, ``RS001``, included), else 0.

    Exit code 2 (usage errors) never comes from findings.
    """
    return 1 if any(f.severity != "info" for f in findings) else 0


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def format_findings(findings: Sequence[Finding], fmt: str = "text", **extra: Any) -> str:
    """Findings as ``text`` lines, one ``json`` object, or ``github`` workflow commands.

    >>> print(format_findings([Finding("a.json", "q", "RS201", "bad: 1,2", line=3)], "github"))
    ::error file=a.json,line=3,title=RS201::q: bad: 1,2
    >>> print(format_findings([Finding("a.json", "-", "RS303", "DoRA")], "github"))
    ::warning file=a.json,title=RS303::DoRA
    """
    if fmt == "text":
        return "\n".join(f.render() for f in findings)
    if fmt == "json":
        from rsstab.schema import SCHEMA_VERSION, dumps

        return dumps({"schema_version": SCHEMA_VERSION, "command": "lint", **extra,
                      "findings": [f.as_dict() for f in findings],
                      "codes": {c: {"severity": s, "meaning": m} for c, (s, m) in CODES.items()}})
    if fmt == "github":
        level = {"error": "error", "warning": "warning", "info": "notice"}
        return "\n".join(
            f"::{level[f.severity]} file={_escape_property(f.path)}"
            f"{'' if f.line is None else f',line={f.line}'},title={_escape_property(f.code)}::"
            f"{_escape_data(f.message if f.module == '-' else f.module + ': ' + f.message)}"
            for f in findings
        )
    raise RsstabError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- [tool.rsstab.lint]

#: The keys of ``[tool.rsstab.lint]``, named as the flags they stand for.
SETTINGS = ("select", "ignore", "optimizer", "lr-scaling", "format")

_TABLE = re.compile(r"^\s*\[\s*tool\s*\.\s*rsstab\s*\.\s*lint\s*\]", re.M)


def _toml() -> Any:
    """tomllib (Python ≥ 3.11), else tomli when installed, else ``None``."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef, unused-ignore]  # a redefinition when mypy targets 3.11
        except ImportError:
            return None
    return tomllib


def find_settings(start: str | Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """``(pyproject.toml, its [tool.rsstab.lint] table)``: the nearest pyproject.toml at or above
    ``start`` (default: the current directory) that has the table, as ruff finds ``[tool.ruff]``.

    Without a TOML reader (Python 3.10 without tomli) a pyproject.toml with the table is skipped
    with a one-line warning on stderr. A pyproject.toml that is no valid TOML and mentions
    ``tool.rsstab`` is a one-line error.
    """
    try:
        here = Path.cwd() if start is None else Path(start)
    except OSError:  # the current directory was removed
        return None
    for folder in (here, *here.resolve().parents):
        f = folder / "pyproject.toml"
        if not f.is_file():
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RsstabError(f"{f}: cannot read it ({exc.__class__.__name__})") from None
        toml = _toml()
        if toml is None:
            if _TABLE.search(text):
                print(f"rsstab: warning: {f}: [tool.rsstab.lint] not read: reading TOML needs Python ≥ 3.11 or "
                      "'pip install tomli'; using the defaults and flags", file=sys.stderr)
                return None
            continue
        try:
            data = toml.loads(text)
        except toml.TOMLDecodeError as exc:
            if "tool.rsstab" not in text and not re.search(r"^\s*\[\s*tool\s*\]", text, re.M):
                continue
            raise RsstabError(f"{f}: not valid TOML ({str(exc).splitlines()[0]})") from None
        table = data.get("tool", {}).get("rsstab", {}) if isinstance(data.get("tool"), dict) else {}
        if isinstance(table, dict) and "lint" in table:
            lint = table["lint"]
            if not isinstance(lint, dict):
                raise RsstabError(f"{f}: [tool.rsstab] lint must be a table, got {type(lint).__name__}")
            return f, lint
    return None


def parse_settings(table: Mapping[str, Any], source: str = "[tool.rsstab.lint]") -> dict[str, Any]:
    """The validated values of a ``[tool.rsstab.lint]`` table, keyed by :data:`SETTINGS`; a bad key
    or value is a one-line error naming ``source`` and the key.

    >>> parse_settings({"select": ["rs3"], "optimizer": "AdamW", "lr-scaling": "-1/2"})
    {'select': ('RS3',), 'optimizer': 'adam', 'lr-scaling': '-1/2'}
    >>> parse_settings({"lr_scaling": -0.5})
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: [tool.rsstab.lint]: unknown key 'lr_scaling' (did you mean 'lr-scaling'?); the keys are select, ignore, optimizer, lr-scaling, format
    """
    from rsstab.verdict.classify import _as_lr_scaling  # rsstab check's own parsing of P

    out: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{source}: {key}"
        if key not in SETTINGS:
            near = key.replace("_", "-")
            hint = f" (did you mean {near!r}?)" if near in SETTINGS else ""
            raise RsstabError(f"{source}: unknown key {key!r}{hint}; the keys are {', '.join(SETTINGS)}")
        if key in ("select", "ignore"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RsstabError(f"{where} must be a list of codes such as [\"RS3\", \"RS101\"], got {value!r}"[:300])
            out[key] = code_prefixes(value, where)
        elif key == "optimizer":
            if not isinstance(value, str) or canonical_optimizer(value) not in OPTIMIZERS:
                raise RsstabError(f"{where} must be one of {', '.join(OPTIMIZER_NAMES)}, got {value!r}"[:300])
            out[key] = canonical_optimizer(value)
        elif key == "lr-scaling":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise RsstabError(f"{where} must be a number such as \"-1/2\" or -0.5, got {value!r}"[:300])
            try:
                _as_lr_scaling(value)
            except RsstabError as exc:
                raise RsstabError(f"{where}: {exc}") from None
            out[key] = value
        else:
            if value not in FORMATS:
                raise RsstabError(f"{where} must be one of {', '.join(FORMATS)}, got {value!r}"[:300])
            out[key] = value
    return out
