"""The JSON codec of the sweep store: plain values, bit-exact floats, canonical text.

Floats round-trip bit for bit: JSON ``repr`` with ``NaN``/``±Infinity`` allowed, and a NaN other
than the canonical one (a sign bit or a payload) is written as ``{"$f64": "<hex bits>"}``.

>>> nan = struct.unpack("<d", struct.pack("<Q", 0xFFF8000000000000))[0]  # NaN with its sign bit
>>> dump([1.0, nan, -0.0])
'[1.0,{"$f64":"fff8000000000000"},-0.0]'
>>> struct.pack("<d", load(dump([nan]))[0]) == struct.pack("<d", nan)
True
>>> canonical({"b": 1, "a": float("inf")})
'{"a":Infinity,"b":1}'
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from typing import Any

from rsstab.errors import RsstabError

__all__ = ["canonical", "dump", "load", "normalize_config", "one_line", "plain", "rows_text"]

Config = dict[str, Any]

_SCALARS = (str, int, float, bool, type(None))
_EXACT = frozenset(_SCALARS)  # exactly these types are plain already
_CANONICAL_NAN = struct.pack("<d", float("nan"))
_F64 = "$f64"


def plain(value: Any, where: str, *, scalars_only: bool = False) -> Any:
    """Return ``value`` as plain JSON types (numpy/torch scalars → Python), or raise ``TypeError``
    naming ``where`` it sits; with ``scalars_only`` no list or dict is accepted."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy / torch scalar
        item = value.item()
        if isinstance(item, _SCALARS):
            return plain(item, where)
    if not scalars_only:
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"{where} has a non-string key {k!r}")
                out[k] = plain(v, f"{where}[{k!r}]")
            return out
        if isinstance(value, (list, tuple)):
            return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    kind = "a scalar" if scalars_only else "JSON-serializable"
    raise TypeError(f"{where} is not {kind}: {type(value).__name__} {value!r:.60}")


def _tag(obj: Any) -> Any:
    """Replace NaNs other than the canonical one by ``{"$f64": hex bits}``."""
    if isinstance(obj, float):
        if math.isnan(obj) and struct.pack("<d", obj) != _CANONICAL_NAN:
            return {_F64: struct.pack(">d", obj).hex()}
        return obj
    if isinstance(obj, dict):
        return {k: _tag(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_tag(v) for v in obj]
    return obj


def _untag(obj: dict[str, Any]) -> Any:
    """The inverse of :func:`_tag` for one decoded JSON object."""
    if len(obj) == 1 and isinstance(obj.get(_F64), str):
        try:
            return struct.unpack(">d", bytes.fromhex(obj[_F64]))[0]
        except (ValueError, struct.error):
            raise ValueError(f"bad {_F64} value {obj[_F64]!r}") from None
    return obj


def canonical(obj: Any) -> str:
    """Canonical JSON used for hashing: sorted keys, no spaces, ASCII, NaN/Infinity allowed."""
    return json.dumps(
        _tag(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True
    )


def dump(obj: Any) -> str:
    """Compact JSON in insertion order (stable under a :func:`load`/:func:`dump` round trip)."""
    return _compact(_tag(obj))


def _compact(tagged: Any) -> str:
    """The text of :func:`dump` for values whose NaNs are tagged already (:func:`_tag`)."""
    return json.dumps(tagged, separators=(",", ":"), ensure_ascii=True, allow_nan=True)


def load(text: str) -> Any:
    """Parse JSON written by :func:`dump` or :func:`canonical`, NaN bits included."""
    return json.loads(text, object_hook=_untag)


def normalize_config(config: Any, index: int) -> Config:
    """Configuration number ``index`` as plain JSON types (what its key and record hold).

    Raises:
        RsstabError: (``parameter="configs"``) it is not a dict of JSON-serializable values.
    """
    if not isinstance(config, Mapping):
        raise RsstabError(
            f"config #{index} is a {type(config).__name__}, not a dict", parameter="configs"
        )
    try:
        value = plain(config, f"config #{index}")
    except TypeError as exc:
        raise RsstabError(str(exc), parameter="configs") from None
    return load(dump(value))


def rows_text(rows: Any) -> str:
    """Validate a task's return value and serialize it; raise ``TypeError`` if it is not tidy
    (a list of dicts of scalars with string column names)."""
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"task must return a list of dicts, got {type(rows).__name__}")
    out_rows = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}, not a dict")
        out = {}
        for k, v in row.items():
            if not isinstance(k, str):
                raise TypeError(f"row {i} has a non-string column {k!r}")
            if type(v) not in _EXACT:  # numpy/torch scalars, subclasses: converted and checked
                v = plain(v, f"row {i} column {k!r}", scalars_only=True)
            out[k] = _tag(v) if v != v else v  # a NaN: tagged unless canonical (as dump does)
        out_rows.append(out)
    return _compact(out_rows)  # tagged above: dump's text without a second walk


def one_line(exc: BaseException) -> str:
    """``"ExcType: message"`` on one line, as failures and error messages report an exception.

    >>> one_line(ValueError("two\\nlines"))
    'ValueError: two lines'
    """
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
