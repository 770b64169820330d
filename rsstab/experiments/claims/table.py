"""The claims table's parts: a claim, its kind, the verdict rules, the table readers, the rendering.

Two kinds of rows (``kind``):

* **reproduction** — the paper's empirical claim measured in a setting where it could be false;
  verdicts ``reproduced`` / ``partly reproduced`` / ``not reproduced`` / ``refuted``;
* **consistency check** — an exact identity, the gradient algebra at initialisation, or a setting
  where nothing is learned: it confirms the derivation and the simulator, it cannot refute the
  paper; verdicts ``consistent`` / ``partly consistent`` / ``inconsistent``.

A check is ``True`` (supports the claim), ``False`` (does not) or :data:`REFUTES` (the measurement
shows the opposite of the claim).

>>> verdict_of([True, True]), verdict_of([True, False]), verdict_of([False])
('reproduced', 'partly reproduced', 'not reproduced')
>>> verdict_of([REFUTES, False]), verdict_of([True, REFUTES])
('refuted', 'partly reproduced')
>>> verdict_of([True, True], kind=CONSISTENCY)
'consistent'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsstab.experiments.compare import theory_exponent
from rsstab.experiments.figures import SCHEDULE_NAMES
from rsstab.measure.fit import interval_agrees
from rsstab.io import read_table  # the claims read their tables with it (in __all__)
from rsstab.vocab import FLAT_BAND

__all__ = ["Claim", "REPRODUCTION", "CONSISTENCY", "REFUTES", "NOT_RUN", "VERDICTS", "verdict_of", "read_table",
           "pick", "slope_text", "agrees", "exponent", "fig", "render", "LORA", "RSLORA", "NAMES", "TOL"]

LORA, RSLORA = "alpha/r", "alpha/sqrt(r)"
NAMES = SCHEDULE_NAMES
TOL = FLAT_BAND  # a slope agrees when its interval meets [prediction ± TOL]
REPRODUCTION, CONSISTENCY = "reproduction", "consistency check"
#: A check whose measurement shows the opposite of the claim.
REFUTES = "refutes"
NOT_RUN = "not run"
VERDICTS = {
    REPRODUCTION: ("reproduced", "partly reproduced", "not reproduced", "refuted"),
    CONSISTENCY: ("consistent", "partly consistent", "inconsistent", "inconsistent"),
}


@dataclass(frozen=True)
class Claim:
    """One row of the claims table; ``kind`` is :data:`REPRODUCTION` or :data:`CONSISTENCY` and
    ``why`` says in one phrase why the row is of that kind."""

    claim: str
    predicted: str
    measured: str
    verdict: str
    figure: str
    command: str
    kind: str = REPRODUCTION
    why: str = ""


def verdict_of(checks: Iterable[bool | str], kind: str = REPRODUCTION) -> str:
    """All checks pass → reproduced (consistent); some → partly; none → not reproduced
    (inconsistent); none passes and one shows the opposite → refuted."""
    c = list(checks)
    full, partly, none, refuted = VERDICTS[kind]
    passed = [x is True for x in c]
    if c and all(passed):
        return full
    if any(passed):
        return partly
    return refuted if REFUTES in c else none


def pick(rows: Sequence[Mapping[str, Any]], **match: Any) -> Mapping[str, Any]:
    """The one row matching every ``key=value`` (LookupError otherwise)."""
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    if len(found) != 1:
        raise LookupError(f"expected one row matching {match}, found {len(found)}")
    return found[0]


def slope_text(rec: Mapping[str, Any]) -> str:
    """``+0.500 [+0.480, +0.520]``."""
    return f"{rec['slope']:+.3f} [{rec['ci_low']:+.3f}, {rec['ci_high']:+.3f}]"


def agrees(rec: Mapping[str, Any], expected: float) -> bool:
    """The report's rule: the row's interval meets [expected ± TOL] (:func:`rsstab.measure.fit.interval_agrees`)."""
    return (rec.get("slope") is not None and math.isfinite(rec["slope"])
            and interval_agrees((rec["ci_low"], rec["ci_high"]), expected, TOL))


def exponent(schedule: str, optimizer: str, quantity: str) -> float:
    """The theory's r-exponent of a quantity (LookupError when it is not a pure power)."""
    e = theory_exponent(schedule, optimizer, quantity)
    if e is None:
        raise LookupError(f"no pure power law for {quantity} of {schedule} under {optimizer}")
    return e


def fig(path: str) -> str:
    """A markdown link to a figure or table under the report folder."""
    return f"[{Path(path).name}]({path})"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _counts(cs: Sequence[Claim], kind: str) -> str:
    words = (*dict.fromkeys(VERDICTS[kind]), NOT_RUN)
    n = {w: sum(c.kind == kind and c.verdict == w for c in cs) for w in words}
    return ", ".join(f"{k} {w}" for w, k in n.items() if k) or "none"


def render(cs: Sequence[Claim], *, header: str = "", appendix: Sequence[tuple[str, str]] = (),
           sections: Sequence[str] = ()) -> str:
    """REPORT.md: the claims table, extra sections (e.g. the disagreements), the linked summaries."""
    lines = [
        "# rsstab reproduction report",
        "",
        "Generated by `python simulations/make_report.py` (`make report`); do not edit by hand.",
        "",
        header,
        "",
        f"**Reproductions** (the paper's empirical claim, measured where it could be false): {_counts(cs, REPRODUCTION)}.  ",
        f"**Consistency checks** (exact identities, the gradient algebra at initialisation, learning rates at "
        f"which nothing is learned — they confirm the derivations and the simulator and cannot refute the "
        f"paper): {_counts(cs, CONSISTENCY)}.",
        "",
        "Intervals are 95% t-intervals over seeds unless a row says otherwise; a slope agrees with a prediction "
        f"when its interval meets [prediction ± {TOL:g}].",
        "",
        "| # | claim | kind | predicted | measured | verdict | figure | regenerate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(cs, 1):
        cmd = f"`{c.command}`" if c.command else ""
        kind = c.kind + (f" — {c.why}" if c.why else "")
        lines.append(f"| {i} | {_md(c.claim)} | {_md(kind)} | {_md(c.predicted)} | {_md(c.measured)} | "
                     f"**{c.verdict}** | {c.figure} | {cmd} |")
    lines.append("")
    for section in sections:
        lines += [section, ""]
    for title, link in appendix:
        lines.append(f"- {title}: {link}")
    lines.append("")
    return "\n".join(lines)
