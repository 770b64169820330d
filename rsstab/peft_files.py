"""Read PEFT LoRA adapters and resolve the scaling PEFT applies to every adapted module.

Pure functions returning frozen dataclasses. Reading needs only :mod:`json`: the safetensors
header (an 8-byte little-endian length followed by a JSON table of tensor names, dtypes and
shapes) is parsed directly, so neither torch nor the ``safetensors`` package is imported.

The resolution rules are PEFT's (``peft.tuners.lora.model.LoraModel._create_and_replace`` and
``peft.utils.other.get_pattern_key``):

* ``r`` and ``lora_alpha`` default to ``8``; ``use_rslora`` defaults to ``False``;
* a module's rank is ``rank_pattern[k]`` for the **first** key ``k`` in dict (file) order with
  ``re.match(rf"(.*\\.)?({k})$", name)``, else ``r``; likewise ``alpha_pattern`` / ``lora_alpha``;
* the scaling is ``lora_alpha / math.sqrt(r)`` with ``use_rslora`` (a global switch), else
  ``lora_alpha / r``.

>>> cfg = parse_config({"r": 16, "lora_alpha": 32, "rank_pattern": {"q": 64}})
>>> m = resolve_module(cfg, "encoder.layer.0.attention.self.q")
>>> (m.r, m.lora_alpha, m.scaling, m.rank_key)
(64, 32, 0.5, 'q')
>>> resolve_module(cfg, "encoder.layer.0.attention.self.k").scaling
2.0
>>> parse_config({"use_rslora": True, "r": 64, "lora_alpha": 16}).schedule
'alpha/sqrt(r)'
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsstab.timelimit import Timeout, can_time, time_limit
from rsstab.errors import RsstabError

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_LORA_ALPHA",
    "DEFAULT_R",
    "DEFAULT_USE_RSLORA",
    "MODEL_PREFIX",
    "PATTERN_TIME_LIMIT",
    "WEIGHTS_NAME",
    "AdapterConfig",
    "AdapterReport",
    "ModuleScaling",
    "TensorInfo",
    "adapted_modules",
    "load_config",
    "match_pattern",
    "parse_config",
    "peft_scaling",
    "read_adapter",
    "read_safetensors_header",
    "resolve_module",
]

#: PEFT's defaults for fields missing from ``adapter_config.json`` (``peft.LoraConfig``).
DEFAULT_R = 8
DEFAULT_LORA_ALPHA = 8
DEFAULT_USE_RSLORA = False

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
#: Prefix PEFT's ``save_pretrained`` puts in front of every module name.
MODEL_PREFIX = "base_model.model."

# The safetensors format caps its header at 100 MB; anything larger is not a safetensors file.
_MAX_HEADER_BYTES = 100_000_000

# Largest accepted rank: every integer up to 2**53 is exact as a float, so alpha/r and
# alpha/sqrt(r) cannot overflow (a larger r is no real adapter anyway).
_MAX_RANK = 2**53

#: Seconds all pattern matching of one :func:`read_adapter` call may take (main thread only):
#: a pattern key such as ``(a+)+b`` backtracks catastrophically on some module names.
PATTERN_TIME_LIMIT = 10.0

# Tensor-name suffixes of LoRA factors: (A suffix, B suffix, layer kind).  The adapter name is
# removed from saved keys, so ``x.lora_A.weight`` is module ``x``'s A factor (shape (r, ...)) and
# ``x.lora_B.weight`` its B factor (shape (out, r, ...)); embeddings keep A as (r, vocab) and B as
# (dim, r) without the ``.weight``.
_FACTOR_SUFFIXES = (
    (".lora_A.weight", ".lora_B.weight", "linear"),
    (".lora_embedding_A", ".lora_embedding_B", "embedding"),
)


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class AdapterConfig:
    """The fields of a LoRA ``adapter_config.json`` that decide the scaling.

    ``rank_pattern`` and ``alpha_pattern`` are kept as ordered ``(key, value)`` pairs: the order is
    the file's, and PEFT's first-match rule depends on it.
    """

    r: int = DEFAULT_R
    lora_alpha: float = DEFAULT_LORA_ALPHA
    use_rslora: bool = DEFAULT_USE_RSLORA
    rank_pattern: tuple[tuple[str, int], ...] = ()
    alpha_pattern: tuple[tuple[str, float], ...] = ()
    peft_type: str | None = None
    defaulted: tuple[str, ...] = ()
    source: str = "<dict>"

    @property
    def schedule(self) -> str:
        """The γ_r family PEFT uses for every module: ``alpha/sqrt(r)`` or ``alpha/r``."""
        return "alpha/sqrt(r)" if self.use_rslora else "alpha/r"


@dataclass(frozen=True)
class ModuleScaling:
    """The rank, alpha and scaling PEFT gives one adapted module (or one pattern row).

    ``rank_key`` / ``alpha_key`` name the pattern that set the value (``None``: the default);
    ``r_weight`` is the rank read from the ``lora_A`` weight (dim 0) and ``r_weight_b`` the one
    read from ``lora_B`` (dim 1); both are ``None`` when only a config was read.
    """

    name: str
    r: int
    lora_alpha: float
    scaling: float
    rank_key: str | None = None
    alpha_key: str | None = None
    r_weight: int | None = None
    r_weight_b: int | None = None
    kind: str = "pattern"

    @property
    def mismatch(self) -> bool:
        """True when a weight's shape disagrees with the rank the config resolves to."""
        return any(w is not None and w != self.r for w in (self.r_weight, self.r_weight_b))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "name": self.name,
            "kind": self.kind,
            "r": self.r,
            "lora_alpha": self.lora_alpha,
            "scaling": self.scaling,
            "rank_pattern_key": self.rank_key,
            "alpha_pattern_key": self.alpha_key,
            "r_weight": self.r_weight,
            "r_weight_b": self.r_weight_b,
            "r_mismatch": self.mismatch,
        }


@dataclass(frozen=True)
class AdapterReport:
    """Everything ``rsstab peft`` knows about one adapter."""

    path: str
    config: AdapterConfig
    modules: tuple[ModuleScaling, ...]
    from_weights: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def mismatches(self) -> tuple[ModuleScaling, ...]:
        """Modules whose weight shapes disagree with the resolved rank."""
        return tuple(m for m in self.modules if m.mismatch)


def peft_scaling(r: int, lora_alpha: float, use_rslora: bool) -> float:
    """The scaling PEFT's ``LoraLayer.update_layer`` stores: the same float operations, bit for bit.

    >>> peft_scaling(16, 32, False), peft_scaling(16, 32, True)
    (2.0, 8.0)
    """
    if use_rslora:
        return lora_alpha / math.sqrt(r)
    return lora_alpha / r


def _pattern_regex(key: str) -> str:
    return rf"(.*\.)?({key})$"


# The (key, name) being matched on this thread, for the message when the time limit fires.
_matching = threading.local()


def _matches(key: str, name: str) -> bool:
    _matching.current = (key, name)
    return re.match(_pattern_regex(key), name) is not None


@contextmanager
def _pattern_time_limit() -> Iterator[None]:
    """Bound pattern matching by :data:`PATTERN_TIME_LIMIT` (SIGALRM: main thread only, else no limit)."""
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


def match_pattern(keys: Iterable[str], name: str) -> str | None:
    """The pattern key PEFT's ``get_pattern_key`` picks for ``name``, or ``None`` for the default.

    The first key in iteration order whose ``re.match(rf"(.*\\.)?({key})$", name)`` succeeds wins;
    PEFT then looks the result up in the pattern dict, so with no match a key equal to ``name``
    itself still applies.

    >>> match_pattern(["attn", "layer.0.attn"], "model.layer.0.attn")
    'attn'
    >>> match_pattern(["layer.0.attn", "attn"], "model.layer.0.attn")
    'layer.0.attn'
    >>> match_pattern(["q"], "model.seq") is None  # a key matches whole dotted components only
    True
    """
    keys = list(keys)
    for key in keys:
        if _matches(key, name):
            return key
    return name if name in keys else None


def _matching_keys(keys: Iterable[str], name: str) -> list[str]:
    return [k for k in keys if _matches(k, name)]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _check_rank(value: object, what: str, source: str) -> int:
    if not _is_int(value):
        raise RsstabError(f"{source}: {what} must be a positive integer, got {value!r}")
    if value <= 0:  # PEFT raises ValueError for r <= 0
        raise RsstabError(f"{source}: {what} must be a positive integer, got {value}")
    if value > _MAX_RANK:
        raise RsstabError(f"{source}: {what} must be at most 2**53, got a {value.bit_length()}-bit integer")
    return int(value)


def _check_alpha(value: object, what: str, source: str) -> float:
    if not _is_real(value):
        got = f"a {value.bit_length()}-bit integer" if _is_int(value) else repr(value)  # type: ignore[union-attr]
        raise RsstabError(f"{source}: {what} must be a finite number, got {got}")
    return value  # type: ignore[return-value]


def _check_pattern(value: object, attr: str, source: str, check: Any) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise RsstabError(f"{source}: {attr} must be a JSON object, got {type(value).__name__}")
    pairs = []
    for key, val in value.items():
        try:
            re.compile(_pattern_regex(key))
        except re.error as exc:
            raise RsstabError(f"{source}: {attr} key {key!r} is not a valid regular expression ({exc})") from None
        pairs.append((key, check(val, f"{attr}[{key!r}]", source)))
    return tuple(pairs)


def parse_config(data: Mapping[str, Any], source: str = "<dict>") -> AdapterConfig:
    """Validate the scaling-relevant fields of a parsed ``adapter_config.json``.

    Missing fields take PEFT's defaults (``r=8``, ``lora_alpha=8``, ``use_rslora=False``); they are
    listed in ``defaulted``. Wrong types (``null`` included, which PEFT cannot use either) raise
    :class:`~rsstab.errors.RsstabError`; ``null`` patterns count as empty.

    >>> parse_config({}).defaulted
    ('r', 'lora_alpha', 'use_rslora')
    >>> parse_config({"r": "8"})
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: <dict>: r must be a positive integer, got '8'
    """
    if not isinstance(data, Mapping):
        raise RsstabError(f"{source}: expected a JSON object, got {type(data).__name__}")
    peft_type = data.get("peft_type")
    if peft_type is not None and peft_type != "LORA":
        raise RsstabError(f"{source}: peft_type is {peft_type!r}; rsstab peft reads LoRA adapters (peft_type 'LORA')")
    defaulted = tuple(k for k in ("r", "lora_alpha", "use_rslora") if k not in data)
    r = _check_rank(data.get("r", DEFAULT_R), "r", source)
    alpha = _check_alpha(data.get("lora_alpha", DEFAULT_LORA_ALPHA), "lora_alpha", source)
    rslora = data.get("use_rslora", DEFAULT_USE_RSLORA)
    if not isinstance(rslora, bool):
        raise RsstabError(f"{source}: use_rslora must be true or false, got {rslora!r}")
    return AdapterConfig(
        r=r,
        lora_alpha=alpha,
        use_rslora=rslora,
        rank_pattern=_check_pattern(data.get("rank_pattern"), "rank_pattern", source, _check_rank),
        alpha_pattern=_check_pattern(data.get("alpha_pattern"), "alpha_pattern", source, _check_alpha),
        peft_type=peft_type,
        defaulted=defaulted,
        source=source,
    )


def load_config(path: str | os.PathLike[str]) -> AdapterConfig:
    """Read and validate an ``adapter_config.json`` file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RsstabError(f"no such file: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RsstabError(f"cannot read {p}: {exc.__class__.__name__}: {exc}".splitlines()[0]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RsstabError(f"{p}: malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except ValueError as exc:  # e.g. an integer literal over sys.get_int_max_str_digits() digits
        detail = str(exc).splitlines()[0].split(";")[0]  # drop the sys.set_int_max_str_digits() hint
        raise RsstabError(f"{p}: malformed JSON: {detail}") from None
    except RecursionError:
        raise RsstabError(f"{p}: malformed JSON: nested too deeply") from None
    return parse_config(data, str(p))


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, TensorInfo]:
    """Tensor names, dtypes and shapes of a ``.safetensors`` file, read with :mod:`json` alone.

    The ``__metadata__`` entry is skipped. Raises :class:`~rsstab.errors.RsstabError` for anything
    that is not a well-formed safetensors header.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise RsstabError(f"{p}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER_BYTES or 8 + n > size:
                raise RsstabError(f"{p}: not a safetensors file (header length {n} for a {size}-byte file)")
            raw = fh.read(n)
    except FileNotFoundError:
        raise RsstabError(f"no such file: {p}") from None
    except OSError as exc:
        raise RsstabError(f"cannot read {p}: {exc.__class__.__name__}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError, huge ints, deep nesting
        raise RsstabError(f"{p}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise RsstabError(f"{p}: not a safetensors file (header is not a JSON object)")
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(_is_int(s) and s >= 0 for s in shape) or not isinstance(dtype, str):
            raise RsstabError(f"{p}: malformed safetensors entry for tensor {name!r}")
        out[name] = TensorInfo(dtype, tuple(shape))
    return out


def adapted_modules(tensors: Mapping[str, TensorInfo]) -> dict[str, dict[str, Any]]:
    """Group LoRA factor tensors by module name (``base_model.model.`` removed).

    Returns ``{name: {"kind", "A", "B"}}`` with the A and B shapes (``None`` if absent), names
    sorted. Other tensors (DoRA magnitudes, ``modules_to_save`` copies) are not LoRA factors and
    are skipped.

    >>> t = {"base_model.model.l1.lora_A.weight": TensorInfo("F32", (4, 10)),
    ...      "base_model.model.l1.lora_B.weight": TensorInfo("F32", (3, 4))}
    >>> adapted_modules(t)
    {'l1': {'kind': 'linear', 'A': (4, 10), 'B': (3, 4)}}
    """
    mods: dict[str, dict[str, Any]] = {}
    for key, info in tensors.items():
        for a_suffix, b_suffix, kind in _FACTOR_SUFFIXES:
            for factor, suffix in (("A", a_suffix), ("B", b_suffix)):
                if key.endswith(suffix):
                    name = key[: -len(suffix)].removeprefix(MODEL_PREFIX)
                    entry = mods.setdefault(name, {"kind": kind, "A": None, "B": None})
                    entry[factor] = info.shape
    return {k: mods[k] for k in sorted(mods)}


def resolve_module(
    config: AdapterConfig,
    name: str,
    *,
    r_weight: int | None = None,
    r_weight_b: int | None = None,
    kind: str = "linear",
) -> ModuleScaling:
    """The rank, alpha and scaling PEFT gives the module called ``name`` (PEFT's rules exactly)."""
    ranks = dict(config.rank_pattern)
    alphas = dict(config.alpha_pattern)
    rkey = match_pattern(ranks, name) if ranks else None
    akey = match_pattern(alphas, name) if alphas else None
    r = ranks[rkey] if rkey is not None else config.r
    alpha = alphas[akey] if akey is not None else config.lora_alpha
    return ModuleScaling(
        name=name,
        r=r,
        lora_alpha=alpha,
        scaling=peft_scaling(r, alpha, config.use_rslora),
        rank_key=rkey,
        alpha_key=akey,
        r_weight=r_weight,
        r_weight_b=r_weight_b,
        kind=kind,
    )


def _pattern_rows(config: AdapterConfig) -> tuple[ModuleScaling, ...]:
    """With a bare config: one row per distinct pattern key, then the default row.

    Each row is what PEFT gives a module named like the key: both pattern dicts are matched
    against it, so ``alpha_pattern`` key ``attn.q`` also takes its rank from ``rank_pattern`` key
    ``q`` (``rank_key`` / ``alpha_key`` say which keys set the values).
    """
    keys = dict.fromkeys([k for k, _ in config.rank_pattern] + [k for k, _ in config.alpha_pattern])
    rows = [resolve_module(config, key, kind="pattern") for key in keys]
    rows.append(
        ModuleScaling(
            name="<default>",
            r=config.r,
            lora_alpha=config.lora_alpha,
            scaling=peft_scaling(config.r, config.lora_alpha, config.use_rslora),
        )
    )
    return tuple(rows)


def _pattern_warnings(config: AdapterConfig, names: Sequence[str]) -> list[str]:
    out = []
    for attr, pairs in (("rank_pattern", config.rank_pattern), ("alpha_pattern", config.alpha_pattern)):
        values = dict(pairs)
        for key in values:
            if not any(match_pattern([key], n) is not None for n in names):
                out.append(f"{attr} key {key!r} matches no adapted module and is ignored by PEFT (a typo?)")
        for n in names:
            hits = _matching_keys(values, n)
            if len({values[k] for k in hits}) > 1:
                out.append(
                    f"module {n!r} matches {attr} keys {hits} with different values; PEFT takes the first in "
                    f"file order ({hits[0]!r}), and save_pretrained writes keys sorted, so the order used "
                    "in training may have differed"
                )
    return out


def read_adapter(path: str | os.PathLike[str]) -> AdapterReport:
    """Read a PEFT adapter directory or a bare ``adapter_config.json`` and resolve every module.

    A directory (or its ``adapter_model.safetensors``) must hold ``adapter_config.json`` and
    ``adapter_model.safetensors``; module names come from the safetensors keys, and the rank in
    the weight shapes is checked against the config. A bare config gives one row per pattern key
    plus ``<default>``.
    """
    p = Path(path)
    if p.is_file() and p.name == WEIGHTS_NAME:
        p = p.parent  # the weights file itself: read the folder it belongs to
    if p.is_dir():
        cfg_path, weights = p / CONFIG_NAME, p / WEIGHTS_NAME
        if not cfg_path.is_file():
            # save_pretrained writes non-default adapters into subfolders named after them.
            subs = sorted(d.name for d in p.iterdir() if (d / CONFIG_NAME).is_file())
            hint = (
                f"; adapters found in subfolders: {', '.join(subs)}" if subs else " (not a PEFT save_pretrained folder)"
            )
            raise RsstabError(f"{p}: no {CONFIG_NAME} in this directory{hint}")
        if not weights.is_file():
            raise RsstabError(f"{p}: no {WEIGHTS_NAME} in this directory (pass {cfg_path} to read the config alone)")
        config = load_config(cfg_path)
        mods = adapted_modules(read_safetensors_header(weights))
        if not mods:
            raise RsstabError(f"{weights}: no LoRA weights (no '*.lora_A.weight' tensors)")
        rows = []
        with _pattern_time_limit():
            for name, entry in mods.items():
                a, b = entry["A"], entry["B"]
                rows.append(
                    resolve_module(
                        config,
                        name,
                        r_weight=a[0] if a else None,
                        r_weight_b=b[1] if b and len(b) > 1 else None,
                        kind=entry["kind"],
                    )
                )
            warnings = _pattern_warnings(config, list(mods))
        for m in rows:
            if m.mismatch:
                warnings.append(
                    f"module {m.name!r}: config resolves r={m.r} but the weights have rank "
                    f"{m.r_weight if m.r_weight != m.r else m.r_weight_b}: PEFT would fail to load this adapter"
                )
        return AdapterReport(str(p), config, tuple(rows), True, tuple(warnings))
    if p.is_file():
        config = load_config(p)
        warnings = []
        if config.rank_pattern or config.alpha_pattern:
            warnings.append("bare config: module names unknown, so patterns matching nothing cannot be detected")
        with _pattern_time_limit():
            rows = _pattern_rows(config)
        return AdapterReport(str(p), config, tuple(rows), False, tuple(warnings))
    raise RsstabError(f"no such file or directory: {p}")
