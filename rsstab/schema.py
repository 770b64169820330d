"""One JSON schema for every result rsstab prints with ``--json`` (``check``, ``simulate``,
``peft``, ``lint`` summaries, ``transfer``).

Every object starts with the same keys, named the same way everywhere:

=================  =================================================================
``schema_version``  this schema's version (an integer; bumped on incompatible changes)
``command``         the command that produced it (``"check"``, ``"simulate"``, …)
``stable``          ``true`` when the verdict is rank-stabilized in its regime
``label``           ``rank-stabilized`` / ``collapse`` / ``blow-up`` / ``indeterminate``
``optimizer``       the regime the label is for (``sgd`` or ``adam``)
``schedule``        γ_r as given
``reason``          why, in one sentence (the symbolic argument, or the measured slopes)
``notes``           a list of caveats and warnings (possibly empty)
=================  =================================================================

then the command's own fields. The other optimizer regime, where a command gives it, is
``other_regime`` (``{"optimizer", "label", "lr_exponent"}``); a simulation's symbolic
counterpart is ``symbolic``. Non-finite numbers are the strings ``"inf"``, ``"-inf"``,
``"nan"`` (strict JSON); text is UTF-8, not escaped. Errors are never JSON: one line on stderr
and exit code 2, with nothing on stdout.

>>> head = envelope("check", stable=True, label="rank-stabilized", optimizer="sgd",
...                 schedule="alpha/sqrt(r)", reason="γ_r²·r ∈ Θ(1)", notes=[], body={"x": 1})
>>> list(head)[:3], head["x"]
(['schema_version', 'command', 'stable'], 1)
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["SCHEMA_VERSION", "COMMON_KEYS", "envelope", "dumps", "json_safe"]

SCHEMA_VERSION = 1
COMMON_KEYS = ("schema_version", "command", "stable", "label", "optimizer", "schedule", "reason", "notes")


def json_safe(x: object) -> object:
    """Replace non-finite floats by the strings "inf", "-inf", "nan" (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "inf" if x > 0 else "-inf" if x < 0 else "nan"
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def envelope(command: str, *, stable: bool | None, label: str | None, optimizer: str | None,
             schedule: str | None, reason: str, notes: Iterable[str], body: Mapping[str, Any]) -> dict[str, Any]:
    """The common keys first, then ``body`` (whose own copies of common keys are dropped)."""
    head: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "command": command, "stable": stable,
                            "label": label, "optimizer": optimizer, "schedule": schedule, "reason": reason,
                            "notes": list(notes)}
    return {**head, **{k: v for k, v in body.items() if k not in head}}


def dumps(obj: Mapping[str, Any]) -> str:
    """The one way results are printed: strict JSON, UTF-8 text unescaped, indented."""
    return json.dumps(json_safe(dict(obj)), ensure_ascii=False, indent=2, default=str)
