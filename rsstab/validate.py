"""Rank and width validation, defined once: the rules for a rank, a width (or another size) and a list
of ranks given to the library, each caller keeping its own wording of the error; and the readers of
command-line text for them (:func:`parse_integer`: one rank or width, :func:`parse_ranks`: comma-separated
ranks), which the commands, the pytest plugin and the experiments' scripts share.

Imports nothing from rsstab but :mod:`rsstab.errors`, so the simulator (:mod:`rsstab.sim`), the
testing plugin (:mod:`rsstab.testing`) and the verdicts (:mod:`rsstab.verdict.regimes`, :mod:`rsstab.verdict.transfer`)
all take their checks from here.

>>> check_width(512), check_ranks([32, 8, 8])
(512, (8, 32))
>>> integer_at_least(0, "from_rank")
Traceback (most recent call last):
...
rsstab.errors.RsstabError: from_rank must be an integer ≥ 1, got 0
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, SupportsInt, cast

from rsstab.errors import RsstabError

__all__ = ["MAX_SIZE", "integer_at_least", "positive_integer", "check_width", "check_ranks", "slope_ranks",
           "parse_integer", "parse_ranks"]

#: The largest rank or width a verdict takes: every integer up to it is exact in a float64.
MAX_SIZE = 2**53


def integer_at_least(value: object, name: str, minimum: int = 1, *, parameter: str | None = None,
                     python_int: bool = False) -> int:
    """``value`` as an ``int`` ≥ ``minimum``, or ``"{name} must be an integer ≥ {minimum}, got …"``.

    A bool is refused; any :class:`numbers.Integral` (numpy integers too) is taken unless
    ``python_int``, which takes only a Python ``int``.
    """
    kind = int if python_int else Integral
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        raise RsstabError(f"{name} must be an integer ≥ {minimum}, got {value!r}", parameter=parameter)
    return int(cast(SupportsInt, value))


def positive_integer(value: object, what: str, *, parameter: str | None = None, whole_floats: bool = False,
                     at_most_max_size: bool = False) -> int:
    """``value`` as a positive ``int`` (any :class:`numbers.Integral`), or
    ``"{what} must be a positive integer, got …"``.

    ``whole_floats`` also takes a float such as ``512.0``; ``at_most_max_size`` refuses a value above
    :data:`MAX_SIZE` (and a non-positive one) with ``"… must be a positive integer ≤ 2^53, got …"``.
    A bool is refused (it is an Integral, but ``True`` is not a size).
    """
    integral = isinstance(value, Integral) or (whole_floats and isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not integral:
        raise RsstabError(f"{what} must be a positive integer, got {value!r}", parameter=parameter)
    if not at_most_max_size:
        if value < 1:  # type: ignore[operator]
            raise RsstabError(f"{what} must be a positive integer, got {value!r}", parameter=parameter)
        return int(cast(SupportsInt, value))
    n = int(cast(SupportsInt, value))  # numpy integers and whole floats too (checked above)
    if not 1 <= n <= MAX_SIZE:
        raise RsstabError(f"{what} must be a positive integer ≤ 2^53, got {n!r}", parameter=parameter)
    return n


def check_width(width: object) -> int:
    """``width`` as a positive integer (the input width d of the adapted layer), or a one-line error.

    >>> check_width(0)
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: the width d must be a positive integer ≤ 2^53, got 0
    """
    return positive_integer(width, "the width d", parameter="width", whole_floats=True, at_most_max_size=True)


def check_ranks(ranks: Sequence[object]) -> tuple[int, ...]:
    """Distinct positive integer ranks, sorted (repeats dropped).

    >>> check_ranks([32, 8, 8])
    (8, 32)
    """
    if isinstance(ranks, (str, bytes)) or not isinstance(ranks, Sequence) or not ranks:
        raise RsstabError(f"ranks must be a non-empty sequence of positive integers, got {ranks!r}", parameter="ranks")
    return tuple(sorted({positive_integer(r, "every rank", parameter="ranks", whole_floats=True, at_most_max_size=True)
                         for r in ranks}))


def slope_ranks(ranks: Any) -> tuple[int, ...]:
    """At least two distinct Python ``int`` ranks ≥ 1 to fit a slope across, sorted (repeats refused).

    >>> slope_ranks([64, 16])
    (16, 64)
    """
    try:
        out = tuple(ranks)
    except TypeError:
        raise RsstabError(f"ranks must be a sequence of positive integers, got {ranks!r}") from None
    if len(out) < 2:
        raise RsstabError("give at least two ranks to fit a slope")
    for r in out:
        integer_at_least(r, "every rank", python_int=True)
    if len(set(out)) != len(out):
        raise RsstabError(f"ranks must be distinct, got {out!r}")
    return tuple(sorted(out))


# -- command-line text ------------------------------------------------------------------------------
# Each reader raises RsstabError with the caller's wording: ``f"{wanted}, got {text!r}"``. A command
# whose flag is an argparse ``type`` turns it into an ``argparse.ArgumentTypeError`` with the same text.
# Python's ``int`` reads each item ("+4", "1_000", full-width digits); there are no powers or ranges.


def parse_integer(text: str, wanted: str, *, minimum: int = 1, strip: bool = False) -> int:
    """One integer ≥ ``minimum`` written on the command line (a rank, a width, a count), or
    ``RsstabError(f"{wanted}, got {text!r}")``.

    ``strip`` removes whitespace with :meth:`str.strip` before reading (which also drops the
    separators U+001C–U+001F that ``int`` itself refuses), as ``rsstab check``'s flags do.

    >>> parse_integer(" 64 ", "--width: expected a positive integer")
    64
    >>> parse_integer("0", "expected an integer rank ≥ 1")
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: expected an integer rank ≥ 1, got '0'
    """
    try:
        value = int(text.strip() if strip else text)
    except ValueError:
        raise RsstabError(f"{wanted}, got {text!r}") from None
    if value < minimum:
        raise RsstabError(f"{wanted}, got {text!r}")
    return value


def parse_ranks(text: str, wanted: str, *, each: bool = False, join_spaces: bool = False, count: int = 1,
                invalid: str | None = None, positive: bool = True, distinct: bool = False) -> list[int]:
    """The ranks of a comma-separated command-line value such as ``"8, 32,128"``, in the order given.

    ``each`` (``rsstab check --ranks``): every item between two commas is one rank, read alone by
    :func:`parse_integer` (stripped, ≥ 1); the first empty, non-integer or non-positive item is the
    error, ``f"{wanted}, got {item!r}"``.

    Otherwise blank items are skipped and an item that is not an integer is
    ``f"{wanted}, got {text!r}"`` (the whole value). ``join_spaces`` removes every space first (so
    ``"1 2"`` reads as 12 and a tab-only item is refused), as ``rsstab simulate`` and the experiments'
    scripts do; without it each item is read with its surrounding whitespace (the pytest plugin).
    Then fewer than ``count`` ranks, a rank < 1 (when ``positive``) or a repeated rank (when
    ``distinct``) is ``f"{invalid or wanted}, got {text!r}"``.

    >>> parse_ranks("64, 256,1024", "--rsstab-ranks must be comma-separated integers")
    [64, 256, 1024]
    >>> parse_ranks("8,,32", "--ranks: expected comma-separated positive integers", each=True)
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: --ranks: expected comma-separated positive integers, got ''
    """
    if each:
        return [parse_integer(item, wanted, strip=True) for item in text.split(",")]
    items = [t for t in text.replace(" ", "").split(",") if t] if join_spaces else \
        [t for t in text.split(",") if t.strip()]
    try:
        ranks = [int(t) for t in items]
    except ValueError:
        raise RsstabError(f"{wanted}, got {text!r}") from None
    if len(ranks) < count or (positive and any(r < 1 for r in ranks)) or (distinct and len(set(ranks)) != len(ranks)):
        raise RsstabError(f"{invalid or wanted}, got {text!r}")
    return ranks
