"""The one error class users catch."""

from __future__ import annotations

__all__ = ["RsstabError", "ScheduleError"]


class RsstabError(ValueError):
    """Invalid input to rsstab: the message is one line that names the problem.

    The command line prints it as ``rsstab: error: <message>`` and exits with code 2.
    """


class ScheduleError(RsstabError):
    """A γ_r schedule that cannot be parsed or is not real and positive for large r."""
