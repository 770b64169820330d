"""Order of growth of a positive expression in r as r → ∞.

The answer is a :class:`Growth`: lower and upper bounds on the scale of f(r) in the hierarchy
``r^a0 · (log r)^a1 · (log log r)^a2``, i.e. eventually ``c·lo(r) ≤ f(r) ≤ C·hi(r)``. Equal
bounds mean f ∈ Θ(scale). Three engines are tried in order:

1. a structural analysis that propagates bounds through the expression tree (:mod:`.structural`)
   — this is what handles bounded oscillating factors (``2 + sin r``), ``Min``/``Max``,
   ``floor``/``ceil``, nested logs and r-dependent exponents such as ``r**(-1/2 + 1/log r)``,
   exactly; it is tried again with products multiplied out;
2. ``sympy.limit`` (Gruntz, :mod:`.limits`) for cancellations such as ``sqrt(r+1) - sqrt(r)``:
   lim γ first; orders from log-ratio limits only when direct limits or the numbers confirm them
   and nothing contradicts them; the answer is then checked to be positive at large r;
3. a numeric fallback (:mod:`.numeric`): γ at r = 2^8 … 2^4096, whose answer is marked
   ``method="numeric"``.

Numbers come from interval log-magnitude arithmetic (:mod:`.magnitude`): sign and bounds on
log|γ|, so towers neither overflow nor underflow, and a value that cannot be resolved is
undecided (the answer "undecided", whose label is indeterminate) rather than an error. Every step
runs under a time limit on the main thread (about :data:`TIME_LIMIT` + :data:`NUMERIC_TIME_LIMIT`
seconds in all); elsewhere only the bounded steps run, so nothing hangs.

Orders with free parameters (exponents linear in real parameters, cut into exact regions) are
:mod:`.parametric`; this package does not import it (it calls :func:`growth` from here).

>>> from rsstab.schedule import parse
>>> str(growth(parse("(2 + sin(r))/sqrt(r)").expr))
'Θ(r^-1/2)'
>>> str(growth(parse("r**(-1/2 + 1/log(r))").expr))
'Θ(r^-1/2)'
>>> str(growth(parse("log(r)**2/r").expr))
'Θ(r^-1 · log(r)^2)'
>>> str(growth(parse("((1 + r)/(1 + 2*r))**(r**2)").expr))  # e^(-r²·log 2) at r = 2^64: still a number
'Θ(faster decay than any power of r)'
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import sympy

from rsstab.asymptotics.limits import by_limits, weak
from rsstab.asymptotics.numeric import (MP_KS, Samples, agrees_with_limit, callable_growth, cross_check,
                                        log_value_float, numeric_growth, positivity)
from rsstab.asymptotics.scales import LOG, LOGLOG, ZERO, Growth, Scale
from rsstab.asymptotics.structural import structural
from rsstab.errors import ScheduleError
from rsstab.schedule import R, Schedule
from rsstab.timelimit import Timeout, can_time
from rsstab.timelimit import time_limit as time_limit_

__all__ = ["Scale", "Growth", "growth", "growth_of", "TIME_LIMIT", "NUMERIC_TIME_LIMIT", "ZERO", "LOG",
           "LOGLOG"]

TIME_LIMIT = 4.0  # seconds for all symbolic work on one expression (cross-checks included)
NUMERIC_TIME_LIMIT = 1.0  # seconds for sampling γ in the numeric fallback

T = TypeVar("T")


def growth(expr: sympy.Expr, constants: dict[str, float] | None = None,
           time_limit: float | None = None) -> Growth:
    """Order of growth of a positive expression in :data:`rsstab.schedule.R` as r → ∞, within
    ``time_limit`` seconds of symbolic work (default :data:`TIME_LIMIT`, read at call time).

    Raises ScheduleError when the expression is not real and positive for large r.

    >>> from rsstab.schedule import parse
    >>> str(growth(parse("max(1/r, 1/sqrt(r))").expr))
    'Θ(r^-1/2)'
    >>> str(growth(parse("sqrt(r + 1) - sqrt(r)").expr))
    'Θ(r^-1/2)'
    """
    limit = TIME_LIMIT if time_limit is None else time_limit
    return _growth(expr, tuple(sorted((constants or {}).items())), limit)


@functools.lru_cache(maxsize=512)
def _growth(expr: sympy.Expr, constants: tuple[tuple[str, float], ...], time_limit: float) -> Growth:
    values = {name: 1.0 for name in (s.name for s in expr.free_symbols if s != R)}
    values.update(dict(constants))
    samples = Samples(expr, values)
    reasons: list[str] = []
    facts: dict[str, sympy.Expr] = {}
    budget = _Budget(time_limit)
    found = _symbolic(expr, samples, reasons, facts, budget)
    if not budget.timed:  # no timer off the main thread: only the (bounded) structural engine runs
        reasons.append("Gruntz limits skipped off the main thread")
    if found is not None:
        if "limit" in facts:  # limits assume a real positive γ: check it where the numbers can tell
            try:
                with _Budget(NUMERIC_TIME_LIMIT).slice(1.0, "positivity check"):
                    checked = positivity(samples)
            except Timeout as exc:
                checked = f"positivity for large r not checked numerically ({exc})"
            if checked:
                found = Growth(found.lower, found.upper, found.method,
                               "; ".join(x for x in (found.note, checked) if x), found.strict)
        return found
    note = "symbolic analysis undecided (" + "; ".join(r for r in reasons if r) + ")"
    if values:
        note += f"; constants set to {', '.join(f'{k}={v:g}' for k, v in sorted(values.items()))}"
    try:
        with _Budget(NUMERIC_TIME_LIMIT).slice(1.0, "numeric sampling"):
            samples.fill(MP_KS)
    except Timeout as exc:
        note += f"; {exc}: later samples left out"
    g = numeric_growth(samples, note, oscillating=expr.has(sympy.sin, sympy.cos, sympy.tan))
    limit = facts.get("limit")
    if limit is not None and not agrees_with_limit(g, limit):
        g = weak(limit, f"{note}; the numeric estimate {g} contradicts lim γ_r = {limit}")
    return g


class _Budget:
    """Consecutive time slices out of one budget (SIGALRM limits cannot nest). Off the main
    thread there is no timer, and :attr:`timed` is False."""

    def __init__(self, seconds: float) -> None:
        self.timed = can_time()
        self.deadline = time.monotonic() + seconds

    @contextlib.contextmanager
    def slice(self, fraction: float, what: str) -> Iterator[None]:
        """Run the block under ``fraction`` of the time left; Timeout when it is (or was) spent."""
        if not self.timed:
            yield
            return
        seconds = (self.deadline - time.monotonic()) * fraction
        if seconds < 0.01:
            raise Timeout(f"{what} skipped: time limit spent")
        with time_limit_(seconds, what):
            yield


def _symbolic(expr: sympy.Expr, samples: Samples, reasons: list[str], facts: dict[str, sympy.Expr],
              budget: _Budget) -> Growth | None:
    """Structural engine on γ and on γ with products expanded, then Gruntz limits on both
    (cross-checked against the samples); None when none decides. sympy can fail in arbitrary ways
    on odd input, so every exception but a user error becomes a reason."""

    def attempt(what: str, fraction: float, step: Callable[[], T]) -> T | None:
        try:
            with budget.slice(fraction, what):
                return step()
        except ScheduleError:
            raise
        except Timeout as exc:
            reasons.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - any internal failure means "undecided"
            reasons.append(_short(exc))
        return None

    bounds = attempt("structural analysis", 1.0, lambda: structural(expr))
    if (bounds is not None and bounds.exact) or not budget.timed:
        return bounds
    if bounds is not None and expr.has(sympy.sin, sympy.cos, sympy.tan):
        return bounds  # oscillation: the bounds are what there is (Gruntz cannot do better)
    expanded = attempt("expanding products", 0.2, lambda: _expanded(expr))
    if expanded is not None and bounds is None:
        bounds = attempt("structural analysis of the expanded form", 1.0, lambda: structural(expanded))
        if bounds is not None and bounds.exact:
            return bounds

    def check(g: Growth) -> tuple[str, str]:
        return cross_check(g, samples)

    found = None
    if expanded is not None:
        found = attempt("Gruntz limits of the expanded form", 0.5, lambda: by_limits(expanded, check, facts))
    if found is None:
        found = attempt("Gruntz limits", 1.0, lambda: by_limits(expr, check, facts))
    if found is None or bounds is None:
        return found or bounds
    if found.exact and _within(found.upper, bounds):  # Gruntz sharpens the structural bounds
        return found
    facts.pop("limit", None)  # the answer is the structural one, which needs no positivity check
    return Growth(bounds.lower, bounds.upper, bounds.method,
                  "; ".join(x for x in (bounds.note, f"Gruntz limits give {found}") if x), bounds.strict)


def _within(s: Scale, bounds: Growth) -> bool:
    return (bounds.lower is None or bounds.lower <= s) and s <= bounds.upper


def _expanded(expr: sympy.Expr) -> sympy.Expr | None:
    """γ with products of sums multiplied out, everywhere (so that ``2**r*(2 + (r - 2*2**r)/2**r)``
    becomes ``r + 2``); None when that changes nothing or blows the expression up."""
    new = sympy.expand(expr, deep=True, mul=True, multinomial=False, power_exp=False, power_base=False,
                       log=False)
    if new == expr or sympy.count_ops(new) > 4 * sympy.count_ops(expr) + 40:
        return None
    return new


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def growth_of(schedule: Schedule) -> Growth:
    """Growth of a :class:`Schedule` (symbolic when it has an expression, numeric for callables)."""
    if schedule.expr is not None:
        return growth(schedule.expr, dict(schedule.values))
    return callable_growth(lambda k: log_value_float(schedule, k),
                           "numeric: a Python callable evaluated at r = 2^3 … 2^60")


