"""The inputs of one verdict, validated and parsed once: :class:`CheckRequest`.

:func:`rsstab.verdict.classify.check` takes its inputs as text and numbers; :meth:`CheckRequest.build`
checks them all, in a fixed order (so the same error wins when several apply), and parses each
expression once — γ_r with its constants applied, and each factor of the hyperparameter tuple given
as an expression in r (:class:`Factor`: η, σ_A, η_B/η_A, d). The engines
(:func:`rsstab.verdict.classify._exact_verdict`, :func:`rsstab.verdict.parametric.parametric_check`)
take the request and nothing else.

>>> req = CheckRequest.build("alpha/sqrt(r)", "adamw", lr="eta/sqrt(r)", init_std="gaussian")
>>> req.optimizer, req.is_tuple, req.lr.expr, req.init_std.text, req.init_std.expr
('adam', True, eta/sqrt(r), 'gaussian', 1/r)
>>> req.lr_text
'η = eta/sqrt(r)'
>>> CheckRequest.build("alpha/r**beta", lr_scaling="-1/2").params, CheckRequest.build("alpha", lr_scaling=1).lr_text
(('beta',), 'η ∝ r^1')
>>> CheckRequest.build("alpha/sqrt(r)", lr="eta", lr_scaling=1)
Traceback (most recent call last):
...
rsstab.errors.RsstabError: give the learning rate either as an expression in r or as a scaling exponent, not both
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import sympy

from rsstab.errors import RsstabError, ScheduleError
from rsstab.schedule import R, Schedule, as_schedule, parameters_of
from rsstab.validate import check_ranks, check_width
from rsstab.verdict.model import INIT_NAMES, LR_FIXED
from rsstab.vocab import Optimizer, check_optimizer

__all__ = ["CheckRequest", "Factor"]

#: What each factor of the tuple is called in messages (the parser's messages say γ_r).
_FACTOR_NAMES = {"lr": "η", "init_std": "σ_A", "lr_ratio": "η_B/η_A", "lr_a": "η_A", "lr_b": "η_B", "width_expr": "d"}

#: The keywords of :func:`~rsstab.verdict.classify.check` that are factors, in the order they are parsed.
FACTOR_PARAMETERS = ("lr", "init_std", "lr_ratio", "width_expr")


@dataclass(frozen=True)
class Factor:
    """One factor of the hyperparameter tuple given as an expression in r.

    Attributes:
        parameter: the keyword it was given as (``"lr"``, ``"init_std"``, ``"lr_ratio"``, ``"width_expr"``;
            ``"lr_a"``/``"lr_b"`` for the CLI's ``--lr-a``/``--lr-b``): it names the factor in messages.
        text: the text as given (an init name stays a name: ``"gaussian"``).
        expr: the parsed expression in r (PEFT init names replaced by their σ_A, given constants
            substituted), positive for large r.
    """

    parameter: str
    text: str
    expr: sympy.Expr

    @classmethod
    def parse(cls, text: object, parameter: str,
              constants: Mapping[str, float | Fraction] | None = None) -> Factor | None:
        """``text`` parsed as the factor ``parameter`` (``None`` when not given), or a one-line
        :class:`RsstabError` with ``parameter=parameter`` (the schedule parser: nothing is evaluated).

        >>> Factor.parse("eta*r**c", "lr_a").expr
        eta*r**c
        >>> Factor.parse("-r", "lr_b")
        Traceback (most recent call last):
        ...
        rsstab.errors.RsstabError: lr_b: must be positive for large r: η_B = -r is not positive at r = 2^512
        """
        return _parse_factor(text, parameter, constants, as_schedule)

    @property
    def symbol(self) -> str:
        """The factor's name in messages (``η``, ``σ_A``, ``η_B/η_A``, ``d``)."""
        return _FACTOR_NAMES.get(self.parameter, self.parameter)


def _parse_factor(text: object, parameter: str, constants: Mapping[str, float | Fraction] | None,
                  parse: Callable[[str], Schedule]) -> Factor | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise RsstabError(f"{parameter} must be text, an expression in r", parameter=parameter)
    source = INIT_NAMES.get(text.strip().lower(), text) if parameter == "init_std" else text
    try:
        f = parse(source)
        given = {k: v for k, v in (constants or {}).items() if k in f.constants}
        if given:
            f = f.with_values(given)
    except RsstabError as exc:
        raise RsstabError(f"{parameter}: {_renamed(exc, parameter)}", parameter=parameter) from None
    from rsstab.asymptotics.numeric import Samples, positivity

    try:  # a learning rate, scale or ratio must be positive for large r (every name at 1)
        positivity(Samples(f.expr, {**{name: 1.0 for name in f.constants}, **dict(f.values)}))
    except RsstabError as exc:
        raise RsstabError(f"{parameter}: must be positive for large r: {_renamed(exc, parameter)}",
                          parameter=parameter) from None
    assert f.expr is not None  # parsed from text
    return Factor(parameter, text, f.expr)


def _renamed(exc: Exception, parameter: str) -> str:
    return str(exc).replace("γ_r", _FACTOR_NAMES.get(parameter, parameter))


class _Parsed:
    """:func:`as_schedule` on a text at most once (the constant-name check and the factor share it);
    a parse error is kept and raised again where the factor is parsed."""

    def __init__(self) -> None:
        self._seen: dict[str, Schedule | RsstabError] = {}

    def __call__(self, text: str) -> Schedule:
        if text not in self._seen:
            try:
                self._seen[text] = as_schedule(text)
            except RsstabError as exc:
                self._seen[text] = exc
        out = self._seen[text]
        if isinstance(out, RsstabError):
            raise out
        return out

    def names(self, text: object) -> set[str]:
        """The constants ``text`` names (none when it is not text or does not parse)."""
        try:
            return set(self(text).constants) if isinstance(text, str) else set()
        except RsstabError:
            return set()


def _fmt_power(p: Fraction | float) -> str:
    """``-1/2``, ``1``, ``0`` for fractions; four significant digits for floats."""
    if isinstance(p, Fraction):
        return str(p)
    return f"{p:.4g}"


def _as_lr_scaling(value: object) -> Fraction:
    """The exponent P of ``η ∝ r^P`` as an exact fraction (``"-1/2"``, ``-0.5``, ``0``)."""
    try:
        if isinstance(value, str):
            p = Fraction(value.strip().replace("−", "-"))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError
            p = Fraction(repr(value))
        elif isinstance(value, (int, Fraction)) and not isinstance(value, bool):
            p = Fraction(value)
        else:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        raise RsstabError(f"lr_scaling must be a number such as -1/2 or -0.5, got {value!r}",
                          parameter="lr_scaling") from None
    if abs(p) > 100:
        raise RsstabError(f"lr_scaling must lie in [-100, 100], got {value!r}", parameter="lr_scaling")
    return p


#: Names that look like the rank: a schedule that uses one but not ``r`` almost surely misnames it.
_RANK_LIKE = re.compile(r"(?i)(r+|r_?\d+|rk|rnk|ranks?|lora_r|lora_rank|rank_\w*|\w*_rank)")


def _refuse_misnamed_rank(sched: Schedule) -> None:
    """An r-free schedule naming a rank-like constant (``rank``, ``R``, ``rr``…) is refused with a
    "did you mean r?" — it would otherwise be classified as a constant γ (blow-up). Schedules with
    no rank-like name (``alpha``, ``16``: the naive γ = α) stay valid.

    >>> _refuse_misnamed_rank(as_schedule("alpha"))
    >>> _refuse_misnamed_rank(as_schedule("alpha/rank**0.5"))
    Traceback (most recent call last):
    ...
    rsstab.errors.ScheduleError: γ_r does not depend on r, but it names 'rank': did you mean r? (r is the rank; every other name is a constant)
    """
    if sched.expr is None or R in sched.expr.free_symbols:
        return
    for name in sched.constants:
        if _RANK_LIKE.fullmatch(name):
            raise ScheduleError(f"γ_r does not depend on r, but it names {name!r}: did you mean r? "
                                "(r is the rank; every other name is a constant)")


def _refuse_non_positive(sched: Schedule, params: Sequence[str]) -> None:
    """A schedule with free parameters must still be real and positive for large r: checked
    numerically with every parameter and constant at 1 (e.g. a negative base to a parametric power
    is not real), before any region is derived."""
    from rsstab.asymptotics.numeric import Samples, positivity

    values = {name: 1.0 for name in (*sched.constants, *params)}
    values.update(dict(sched.values))
    positivity(Samples(sched.expr, values))


@dataclass(frozen=True)
class CheckRequest:
    """What :func:`~rsstab.verdict.classify.check` classifies, validated and parsed: build it with
    :meth:`build` (its fields are only what :meth:`build` makes of the inputs).

    Attributes:
        schedule: γ_r, its given constants substituted.
        optimizer: the optimizer's regime (``"adamw"`` is ``"adam"``).
        lr_scaling: P of ``η ∝ r^P`` (0: a fixed learning rate).
        params: the real parameters (names in an exponent of r) of γ_r and of the factors, sorted
            when there are factors.
        assumptions: linear (in)equalities on the parameters, as given.
        lr, init_std, lr_ratio, width_expr: the factors given as expressions in r (η, σ_A,
            η_B/η_A, d), or ``None``.
        width: the input width d for the width table, or ``None``.
        ranks: the ranks of the width table (validated: distinct, sorted), or ``None`` (its default).
        constants_given: whether ``constants`` gave values.
    """

    schedule: Schedule
    optimizer: Optimizer
    lr_scaling: Fraction = Fraction(0)
    params: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    lr: Factor | None = None
    init_std: Factor | None = None
    lr_ratio: Factor | None = None
    width_expr: Factor | None = None
    width: int | None = None
    ranks: tuple[int, ...] | None = None
    constants_given: bool = False

    @classmethod
    def build(cls, schedule: str | Callable[[float], float] | Schedule, optimizer: str = "sgd",
              constants: Mapping[str, float | Fraction] | None = None,
              lr_scaling: str | float | Fraction | None = None, width: int | None = None,
              ranks: Sequence[int] | None = None, assume: str | Sequence[str] | None = None,
              lr: str | None = None, init_std: str | None = None, lr_ratio: str | None = None,
              width_expr: str | None = None) -> CheckRequest:
        """Validate and parse :func:`~rsstab.verdict.classify.check`'s arguments (same names, same
        meaning), or raise its one-line :class:`RsstabError`. The order is fixed: optimizer, ranks
        and width, lr_scaling, the schedule, constants, each factor (lr, init_std, lr_ratio,
        width_expr), then how they combine."""
        opt = check_optimizer(optimizer)  # validates; "adamw" is Adam's regime
        if ranks is not None and width is None:
            raise RsstabError("ranks are only used with a width (the ranks of the finite-width table)",
                              parameter="ranks")
        width_n: int | None = None
        ranks_t: tuple[int, ...] | None = None
        if width is not None:  # fail fast, before the symbolic work
            width_n = check_width(width)
            if ranks is not None:
                ranks_t = check_ranks(ranks)
        scaling = _as_lr_scaling(0 if lr_scaling is None else lr_scaling)
        sched = as_schedule(schedule)
        _refuse_misnamed_rank(sched)
        assumptions = (assume,) if isinstance(assume, str) else tuple(assume or ())
        parsed = _Parsed()
        texts = (lr, init_std, lr_ratio, width_expr)
        if constants:
            own = dict(constants)
            if any(o is not None for o in texts) and sched.expr is not None:
                own = {k: v for k, v in own.items() if k in sched.constants}  # the others may name lr/init constants
                unknown = sorted(set(constants) - set(own) - set().union(*(parsed.names(o) for o in texts)))
                if unknown:
                    raise ScheduleError(f"a value is given for a constant the schedule does not have: {unknown[0]!r}",
                                        parameter="constants")
            if own:
                sched = sched.with_values(own)
        params = parameters_of(sched.expr) if sched.expr is not None else ()
        lr_f, sigma, ratio, d_expr = (_parse_factor(t, p, constants, parsed) for t, p in zip(texts, FACTOR_PARAMETERS))
        if d_expr is not None and width is not None:
            raise RsstabError("give the width either as a number or as an expression in r, not both",
                              parameter="width_expr")
        if lr_f is not None and scaling != 0:
            raise RsstabError("give the learning rate either as an expression in r or as a scaling exponent, "
                              "not both", parameter="lr")
        factors = (lr_f, sigma, ratio, d_expr)
        if any(f is not None for f in factors):
            if sched.expr is None:
                raise RsstabError("a learning rate or init scale in r needs γ_r as an expression", parameter="schedule")
            if width is not None:
                raise RsstabError("the width table is for the schedule alone (drop the learning rate / init scale)",
                                  parameter="width")
            params = tuple(sorted(set(params).union(*(parameters_of(f.expr) for f in factors if f is not None))))
        elif params:
            _refuse_non_positive(sched, params)
            if width is not None:
                raise RsstabError(f"{{width}} needs values for the parameters {', '.join(params)} "
                                  "({constants} NAME=VALUE)", parameter="width", names=("width", "constants"))
        elif assumptions:
            raise RsstabError("assumptions are about parameters (names in an exponent of r), and this schedule "
                              "has none" + (" left ({constants} gave them values)" if constants else ""),
                              parameter="assume", names=("constants",))
        return cls(schedule=sched, optimizer=opt, lr_scaling=scaling, params=params, assumptions=assumptions,
                   lr=lr_f, init_std=sigma, lr_ratio=ratio, width_expr=d_expr, width=width_n, ranks=ranks_t,
                   constants_given=bool(constants))

    @property
    def factors(self) -> tuple[Factor, ...]:
        """The factors given as expressions in r, in the order lr, init_std, lr_ratio, width_expr."""
        return tuple(f for f in (self.lr, self.init_std, self.lr_ratio, self.width_expr) if f is not None)

    @property
    def is_tuple(self) -> bool:
        """Whether a factor of the tuple is given: the verdict is the tuple's (one term per condition)."""
        return bool(self.factors)

    @property
    def is_parametric(self) -> bool:
        """Whether the parametric engine gives the verdict (a tuple, or parameters in γ_r)."""
        return self.is_tuple or bool(self.params)

    @property
    def lr_scaling_text(self) -> str:
        """The learning rate of a verdict without factors: ``"fixed"`` or ``"η ∝ r^P"``."""
        return LR_FIXED if self.lr_scaling == 0 else f"η ∝ r^{_fmt_power(self.lr_scaling)}"

    @functools.cached_property
    def lr_text(self) -> str:
        """The learning rate a verdict names (``Verdict.lr``): :attr:`lr_scaling_text`, or with
        factors ``"η = …"`` / ``"η_A = …, η_B = …"`` (a ratio names both rates: η_B = η_A·ratio)."""
        if not self.is_tuple:
            return self.lr_scaling_text
        lr_expr = None if self.lr is None else self.lr.expr
        text = LR_FIXED if self.lr is None else f"η = {self.lr.text.strip()}"
        if self.lr_ratio is not None:
            ratio = self.lr_ratio.expr
            eta_b = "η_A" if sympy.simplify(ratio - 1) == 0 else f"η_A·({ratio})"
            if lr_expr is not None:
                eta_b = str(sympy.simplify(lr_expr * ratio))
            text = f"{'η_A fixed' if self.lr is None else 'η_A = ' + self.lr.text.strip()}, η_B = {eta_b}"
        return text
