"""PEFT's ``rank_pattern`` / ``alpha_pattern`` lookup, exact and fast.

PEFT (``peft.utils.other.get_pattern_key``) gives a module the value of the **first** key ``k``, in
dict (file) order, with ``re.match(rf"(.*\\.)?({k})$", name)``; with no match it looks the name
itself up. PEFT runs that regex for every (module, key) pair, and Python's ``re`` cache holds 512
patterns, so an EVA adapter with one full-name key per module (560 on Llama-70B all-linear, 896
on Mixtral) recompiles a pattern on almost every call.

:class:`PatternIndex` gives the same answer without a regex for the keys EVA writes. A key made of
ASCII word characters, ``-`` and ``.`` only is *simple*: in it ``.`` is the one metacharacter (any
character but a newline), so it matches a name without a newline exactly when the name's last
``len(k)`` characters agree with ``k`` outside ``k``'s dots and are the whole name or follow a
literal ``.``. Simple keys are grouped by (length, dot positions); one dictionary look-up per group
and candidate suffix finds every simple key that matches. Other keys are real regular expressions:
they are compiled once and matched in file order, under :data:`PATTERN_TIME_LIMIT` seconds in all
(a key such as ``(a+)+b`` backtracks catastrophically on some names).

>>> idx = PatternIndex(["layers.1.q", "q", r"mlp\\.\\d"])
>>> idx.first("model.layers.1.q"), idx.first("model.layers.0.q"), idx.first("mlp.3"), idx.first("k")
('layers.1.q', 'q', 'mlp\\\\.\\\\d', None)
>>> idx.matching("model.layers.1.q")
['layers.1.q', 'q']
>>> PatternIndex(["a.b"]).first("aXb")  # '.' is a regex wildcard, as in PEFT
'a.b'
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from rsstab.errors import RsstabError
from rsstab.timelimit import Timeout, can_time, time_limit

__all__ = ["PATTERN_TIME_LIMIT", "PatternIndex", "match_pattern", "pattern_regex", "pattern_time_limit"]

#: Seconds all regex matching of one :func:`~rsstab.peft_files.read_adapter` call may take (main
#: thread only): a pattern key such as ``(a+)+b`` backtracks catastrophically on some names.
PATTERN_TIME_LIMIT = 10.0

_SIMPLE = re.compile(r"[A-Za-z0-9_.\-]*")


def pattern_regex(key: str) -> str:
    """The regular expression PEFT matches a pattern key with."""
    return rf"(.*\.)?({key})$"


# The (key, name) being matched on this thread, for the message when the time limit fires.
_matching = threading.local()


@contextmanager
def pattern_time_limit() -> Iterator[None]:
    """Bound regex matching by :data:`PATTERN_TIME_LIMIT` (SIGALRM: main thread only, else no limit)."""
    if not can_time():
        yield
        return
    _matching.current = None
    try:
        with time_limit(PATTERN_TIME_LIMIT, "pattern matching"):
            yield
    except Timeout:
        where = getattr(_matching, "current", None)
        what = f"pattern key {where[0]!r} on module name {where[1]!r}" if where else "pattern matching"
        raise RsstabError(
            f"{what} exceeded the {PATTERN_TIME_LIMIT:g} s limit for pattern matching "
            "(a regular expression that backtracks catastrophically?)"
        ) from None


class PatternIndex:
    """The keys of one pattern dict, in file order, ready for PEFT's first-match rule.

    Keys that do not compile raise :class:`re.error` (configs are validated before this).
    """

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys: list[str] = list(dict.fromkeys(keys))
        self._position = {k: i for i, k in enumerate(self.keys)}
        # length -> [(dot positions, {key: index})]
        self._groups: dict[int, list[tuple[tuple[int, ...], dict[str, int]]]] = {}
        self._regexes: list[tuple[int, str, re.Pattern[str]]] = []
        by_shape: dict[tuple[int, tuple[int, ...]], dict[str, int]] = {}
        for i, key in enumerate(self.keys):
            if _SIMPLE.fullmatch(key):
                dots = tuple(j for j, c in enumerate(key) if c == ".")
                by_shape.setdefault((len(key), dots), {})[key] = i
            else:
                self._regexes.append((i, key, re.compile(pattern_regex(key))))
        for (length, dots), table in by_shape.items():
            self._groups.setdefault(length, []).append((dots, table))

    def __len__(self) -> int:
        return len(self.keys)

    def _simple_hits(self, name: str) -> list[int]:
        """Indices of the simple keys that match ``name`` (no newline in it)."""
        hits = []
        n = len(name)
        starts = [0] + [j + 1 for j, c in enumerate(name) if c == "."]
        for start in starts:
            groups = self._groups.get(n - start)
            if not groups:
                continue
            suffix = name[start:]
            for dots, table in groups:
                if dots:
                    chars = list(suffix)
                    for j in dots:
                        chars[j] = "."
                    probe = "".join(chars)
                else:
                    probe = suffix
                i = table.get(probe)
                if i is not None:
                    hits.append(i)
        return hits

    def _regex_matches(self, i: int, key: str, rx: re.Pattern[str], name: str) -> bool:
        _matching.current = (key, name)
        return rx.match(name) is not None

    def first(self, name: str) -> str | None:
        """The key PEFT's ``get_pattern_key`` picks for ``name``, or ``None`` for the default."""
        if not self.keys:
            return None
        if "\n" in name:  # '$' and '.' treat newlines specially: let re decide every key
            for key in self.keys:
                _matching.current = (key, name)
                if re.match(pattern_regex(key), name):
                    return key
            return name if name in self._position else None
        hits = self._simple_hits(name)
        best = min(hits) if hits else len(self.keys)
        for i, key, rx in self._regexes:
            if i >= best:
                break
            if self._regex_matches(i, key, rx, name):
                return key
        if hits:
            return self.keys[best]
        return name if name in self._position else None

    def matching(self, name: str) -> list[str]:
        """Every key whose regex matches ``name``, in file order."""
        if "\n" in name:
            return [k for k in self.keys if re.match(pattern_regex(k), name)]
        hits = set(self._simple_hits(name))
        hits.update(i for i, key, rx in self._regexes if self._regex_matches(i, key, rx, name))
        return [self.keys[i] for i in sorted(hits)]


def match_pattern(keys: Iterable[str], name: str) -> str | None:
    """The pattern key PEFT's ``get_pattern_key`` picks for ``name``, or ``None`` for the default.

    The first key in iteration order whose ``re.match(rf"(.*\\.)?({key})$", name)`` succeeds wins;
    PEFT then looks the result up in the pattern dict, so with no match a key equal to ``name``
    itself still applies. For many names, build one :class:`PatternIndex` instead.

    >>> match_pattern(["attn", "layer.0.attn"], "model.layer.0.attn")
    'attn'
    >>> match_pattern(["layer.0.attn", "attn"], "model.layer.0.attn")
    'layer.0.attn'
    >>> match_pattern(["q"], "model.seq") is None  # a key matches whole dotted components only
    True
    """
    return PatternIndex(keys).first(name)
