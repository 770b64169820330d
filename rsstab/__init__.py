"""rsstab: derive, classify and measure the rank stabilization of LoRA scaling factors."""

from rsstab.errors import RsstabError, ScheduleError

__all__ = ["RsstabError", "ScheduleError"]
__version__ = "0.1.0"
