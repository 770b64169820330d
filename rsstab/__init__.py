"""rsstab: derive, classify and measure the rank stabilization of LoRA scaling factors.

The package root is lazy: ``import rsstab`` loads neither sympy nor torch; the names below are
imported on first use.

>>> import rsstab
>>> rsstab.check("alpha/sqrt(r)").label
'rank-stabilized'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rsstab.errors import RsstabError, ScheduleError

if TYPE_CHECKING:  # pragma: no cover
    from rsstab.classify import Verdict, check
    from rsstab.schedule import Schedule, as_schedule, parse

__all__ = ["check", "Verdict", "Schedule", "parse", "as_schedule", "RsstabError", "ScheduleError"]
__version__ = "0.1.0"

_LAZY = {"check": "rsstab.classify", "Verdict": "rsstab.classify",
         "Schedule": "rsstab.schedule", "parse": "rsstab.schedule", "as_schedule": "rsstab.schedule"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rsstab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
