"""Order of growth of a positive expression in r as r → ∞.

The answer is a :class:`Growth`: lower and upper bounds on the scale of f(r) in the hierarchy
``r^a0 · (log r)^a1 · (log log r)^a2``, i.e. eventually ``c·lo(r) ≤ f(r) ≤ C·hi(r)``. Equal
bounds mean f ∈ Θ(scale). Three engines are tried in order:

1. a structural analysis that propagates bounds through the expression tree — this is what
   handles bounded oscillating factors (``2 + sin r``), ``Min``/``Max``, ``floor``/``ceil``,
   nested logs and r-dependent exponents such as ``r**(-1/2 + 1/log r)``, exactly;
2. ``sympy.limit`` (Gruntz) for cancellations such as ``sqrt(r+1) - sqrt(r)``;
3. a numeric fallback: high-precision evaluation at r = 2^k up to r = 2^4096, whose answer is
   marked ``method="numeric"``.

Every symbolic step runs under a time limit (on the main thread; elsewhere ``sympy.limit`` is
skipped), so nothing hangs.

>>> from rsstab.schedule import parse
>>> str(growth(parse("(2 + sin(r))/sqrt(r)").expr))
'Θ(r^-1/2)'
>>> str(growth(parse("r**(-1/2 + 1/log(r))").expr))
'Θ(r^-1/2)'
>>> str(growth(parse("log(r)**2/r").expr))
'Θ(r^-1 · log(r)^2)'
"""

from __future__ import annotations

import functools

import sympy

from rsstab.asymptotics.limits import by_limits
from rsstab.asymptotics.numeric import FLOAT_KS, MP_KS, log_value_float, log_value_mp, numeric
from rsstab.asymptotics.scales import LOG, LOGLOG, ZERO, Growth, Scale
from rsstab.asymptotics.structural import structural
from rsstab.errors import ScheduleError
from rsstab.schedule import R, Schedule
from rsstab.timelimit import Timeout, can_time
from rsstab.timelimit import time_limit as time_limit_

__all__ = ["Scale", "Growth", "growth", "growth_of", "TIME_LIMIT", "ZERO", "LOG", "LOGLOG"]

TIME_LIMIT = 4.0  # seconds for all symbolic work on one expression


def growth(expr: sympy.Expr, constants: dict[str, float] | None = None,
           time_limit: float = TIME_LIMIT) -> Growth:
    """Order of growth of a positive expression in :data:`rsstab.schedule.R` as r → ∞.

    Raises ScheduleError when the expression is not real and positive for large r.

    >>> from rsstab.schedule import parse
    >>> str(growth(parse("max(1/r, 1/sqrt(r))").expr))
    'Θ(r^-1/2)'
    >>> str(growth(parse("sqrt(r + 1) - sqrt(r)").expr))
    'Θ(r^-1/2)'
    """
    return _growth(expr, tuple(sorted((constants or {}).items())), time_limit)


@functools.lru_cache(maxsize=512)
def _growth(expr: sympy.Expr, constants: tuple[tuple[str, float], ...], time_limit: float) -> Growth:
    values = {name: 1.0 for name in (s.name for s in expr.free_symbols if s != R)}
    values.update(dict(constants))
    reasons: list[str] = []
    if can_time():
        try:
            with time_limit_(time_limit, "symbolic analysis"):
                found = _symbolic(expr, values, reasons, use_limits=True)
        except Timeout as exc:
            reasons.append(str(exc))
            found = None
    else:  # no timer off the main thread: only the (bounded) structural engine runs
        found = _symbolic(expr, values, reasons, use_limits=False)
        reasons.append("Gruntz limits skipped off the main thread")
    if found is not None:
        return found
    note = "symbolic analysis undecided (" + "; ".join(r for r in reasons if r) + ")"
    if values:
        note += f"; constants set to {', '.join(f'{k}={v:g}' for k, v in sorted(values.items()))}"
    oscillating = expr.has(sympy.sin, sympy.cos, sympy.tan)
    return numeric(lambda k: log_value_mp(expr, k, values), MP_KS, note, tol=1e-3, oscillating=oscillating)


def _symbolic(expr: sympy.Expr, values: dict[str, float], reasons: list[str],
              use_limits: bool) -> Growth | None:
    """Structural engine, then Gruntz limits; None when neither decides. sympy can fail in
    arbitrary ways on odd input, so every exception but a user error becomes a reason."""
    try:
        return structural(expr)
    except ScheduleError:
        raise
    except Exception as exc:  # noqa: BLE001 - any internal failure means "undecided"
        reasons.append(_short(exc))
    if not use_limits:
        return None
    try:
        found = by_limits(expr)
    except ScheduleError:
        raise
    except Exception as exc:  # noqa: BLE001
        reasons.append(_short(exc))
        return None
    for k in (8, 64, 512):  # limits assume a real positive function: make sure it is one
        log_value_mp(expr, k, values)  # raises when not real or not positive; NaN: overflow
    return found


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def growth_of(schedule: Schedule) -> Growth:
    """Growth of a :class:`Schedule` (symbolic when it has an expression, numeric for callables)."""
    if schedule.expr is not None:
        return growth(schedule.expr, dict(schedule.values))
    return numeric(lambda k: log_value_float(schedule, k), FLOAT_KS,
                    "numeric: a Python callable evaluated at r = 2^3 … 2^60", tol=2e-2)


