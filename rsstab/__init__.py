"""rsstab: derive, classify and measure the rank stabilization of LoRA scaling factors.

The package root is lazy: ``import rsstab`` loads neither sympy nor torch; the names below are
imported on first use.

>>> import rsstab
>>> rsstab.check("alpha/sqrt(r)").label
'rank-stabilized'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rsstab._lazy import lazy_attributes

from rsstab.errors import RsstabError, ScheduleError

if TYPE_CHECKING:  # pragma: no cover
    from rsstab.verdict.classify import Verdict, check
    from rsstab.schedule import Schedule, as_schedule, parse

__all__ = ["check", "Verdict", "Schedule", "parse", "as_schedule", "RsstabError", "ScheduleError"]
__version__ = "0.1.0"

_LAZY = {"check": "rsstab.verdict.classify", "Verdict": "rsstab.verdict.classify",
         "Schedule": "rsstab.schedule", "parse": "rsstab.schedule", "as_schedule": "rsstab.schedule"}


__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)
