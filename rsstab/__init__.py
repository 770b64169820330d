"""rsstab: derive, classify and measure the rank stabilization of LoRA scaling factors.

>>> import rsstab
>>> rsstab.check("alpha/sqrt(r)").label
'rank-stabilized'
"""

from rsstab.classify import Verdict, check
from rsstab.errors import RsstabError, ScheduleError
from rsstab.schedule import Schedule, as_schedule, parse

__all__ = ["check", "Verdict", "Schedule", "parse", "as_schedule", "RsstabError", "ScheduleError"]
__version__ = "0.1.0"
