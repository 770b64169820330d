"""``adapter_config.json``: validated into the fields that decide PEFT's scaling and the theory's
hypotheses, with PEFT's defaults. Configs that PEFT itself would not load as LoRA are refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from rsstab.errors import RsstabError
from rsstab.peft_files.patterns import pattern_regex

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_LORA_ALPHA",
    "DEFAULT_R",
    "DEFAULT_USE_RSLORA",
    "VARIANTS",
    "AdapterConfig",
    "BdLora",
    "key_lines",
    "load_config",
    "parse_config",
]

#: PEFT's defaults for fields missing from ``adapter_config.json`` (``peft.LoraConfig``).
DEFAULT_R = 8
DEFAULT_LORA_ALPHA = 8
DEFAULT_USE_RSLORA = False

CONFIG_NAME = "adapter_config.json"

# Largest accepted rank: every integer up to 2**53 is exact as a float, so alpha/r and
# alpha/sqrt(r) cannot overflow (a larger r is no real adapter anyway).
_MAX_RANK = 2**53

#: LoRA variants PEFT switches on with a truthy config field (``is_lora_variant`` in
#: ``peft.LoraConfig``), with what the verdict leaves out when one is on.
VARIANTS: dict[str, str] = {
    "use_dora": "DoRA: W + γ·B·A is renormalised column-wise and rescaled by a learned magnitude",
    "use_bdlora": "BD-LoRA: A or B is block-diagonal",
    "kasa_config": "KaSA: a learned diagonal of singular values sits between A and B",
    "velora_config": "VeLoRA: compressed activations in the backward pass",
    "arrow_config": "Arrow: tokens are routed among several LoRA experts",
    "alora_invocation_tokens": "aLoRA: the adapter acts only from its invocation tokens on",
    "monteclora_config": "MonteCLoRA: sampled (stochastic) adapter factors",
    "use_qalora": "QA-LoRA: group-pooled inputs for quantisation-aware training",
}


@dataclass(frozen=True)
class BdLora:
    """``use_bdlora``: which modules have a block-diagonal A or B, and in how many blocks.

    A module is block-diagonal in A (B) when one of ``bd_a`` (``bd_b``) is a **substring** of its
    full name (PEFT's rule). A block-diagonal B is saved as ``(out, r / nblocks)``.
    """

    bd_a: tuple[str, ...] = ()
    bd_b: tuple[str, ...] = ()
    nblocks: int = 1

    def factor(self, name: str) -> str | None:
        """``"A"``, ``"B"`` or ``None``: which factor of module ``name`` is block-diagonal."""
        if any(p in name for p in self.bd_a):
            return "A"
        if any(p in name for p in self.bd_b):
            return "B"
        return None


@dataclass(frozen=True)
class AdapterConfig:
    """The fields of a LoRA ``adapter_config.json`` that decide the scaling and the verdict.

    ``rank_pattern`` and ``alpha_pattern`` are kept as ordered ``(key, value)`` pairs: the order is
    the file's, and PEFT's first-match rule depends on it. ``variants`` lists the active variant
    fields (keys of :data:`VARIANTS`), ``init_lora_weights`` is kept as written.
    """

    r: int = DEFAULT_R
    lora_alpha: float = DEFAULT_LORA_ALPHA
    use_rslora: bool = DEFAULT_USE_RSLORA
    rank_pattern: tuple[tuple[str, int], ...] = ()
    alpha_pattern: tuple[tuple[str, float], ...] = ()
    peft_type: str | None = "LORA"
    defaulted: tuple[str, ...] = ()
    source: str = "<dict>"
    init_lora_weights: bool | str = True
    variants: tuple[str, ...] = ()
    target_parameters: tuple[str, ...] = ()
    bdlora: BdLora | None = None
    target_modules: tuple[str, ...] | str | None = None

    @property
    def schedule(self) -> str:
        """The γ_r family PEFT uses for every module: ``alpha/sqrt(r)`` or ``alpha/r``."""
        return "alpha/sqrt(r)" if self.use_rslora else "alpha/r"

    def targets_module(self, name: str) -> bool | None:
        """Whether ``target_modules`` selects ``name`` (PEFT's ``check_target_module_exists``: a
        list matches a name or a dotted suffix, a string is a full regex match); ``None``: unknown
        (``all-linear``, or a string that is no valid regex)."""
        t = self.target_modules
        if t is None:
            return False
        if isinstance(t, str):
            if t == "all-linear":
                return None
            try:
                return re.fullmatch(t, name) is not None
            except re.error:
                return None
        return name in t or any(name.endswith("." + k) for k in t)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> TypeGuard[int | float]:
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
        got = f"a {value.bit_length()}-bit integer" if _is_int(value) else repr(value)
        raise RsstabError(f"{source}: {what} must be a finite number, got {got}")
    return value


def _check_pattern(value: object, attr: str, source: str, check: Any) -> tuple[tuple[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise RsstabError(f"{source}: {attr} must be a JSON object, got {type(value).__name__}")
    pairs = []
    for key, val in value.items():
        try:
            re.compile(pattern_regex(key))
        except re.error as exc:
            raise RsstabError(f"{source}: {attr} key {key!r} is not a valid regular expression ({exc})") from None
        pairs.append((key, check(val, f"{attr}[{key!r}]", source)))
    return tuple(pairs)


def _check_names(value: object, attr: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RsstabError(f"{source}: {attr} must be a list of strings, got {value!r}"[:300])
    return tuple(value)


def _check_targets(value: object, source: str) -> tuple[str, ...] | str | None:
    if value is None or isinstance(value, str):
        return value
    return _check_names(value, "target_modules", source)


def _check_bdlora(value: object, source: str) -> BdLora | None:
    if not value:
        return None
    if not isinstance(value, dict):
        raise RsstabError(f"{source}: use_bdlora must be a JSON object (a BdLoraConfig), got {value!r}"[:300])
    nblocks = value.get("nblocks", 1)
    if not _is_int(nblocks) or nblocks <= 0:
        raise RsstabError(f"{source}: use_bdlora.nblocks must be a positive integer, got {nblocks!r}")
    return BdLora(
        _check_names(value.get("target_modules_bd_a"), "use_bdlora.target_modules_bd_a", source),
        _check_names(value.get("target_modules_bd_b"), "use_bdlora.target_modules_bd_b", source),
        int(nblocks),
    )


def _refuse_foreign(data: Mapping[str, Any], source: str) -> None:
    """One-line refusal of configs PEFT would not load as a LoRA adapter."""
    if "lora_parameters" in data or "fine_tune_type" in data:
        params = data.get("lora_parameters")
        scale = params.get("scale") if isinstance(params, dict) else None
        extra = f" (its update is scaled by lora_parameters.scale = {scale!r}, not alpha/r)" if scale is not None else ""
        raise RsstabError(f"{source}: an mlx-lm adapter config, not a PEFT one{extra}; rsstab reads PEFT adapters")
    if "peft_type" not in data:
        raise RsstabError(f"{source}: no peft_type: not a PEFT adapter config (PEFT refuses to load it too)")
    peft_type = data["peft_type"]
    if peft_type is None:
        raise RsstabError(f"{source}: peft_type is null: not a loadable PEFT adapter config")
    if peft_type != "LORA":
        raise RsstabError(f"{source}: peft_type is {peft_type!r}; rsstab reads LoRA adapters (peft_type 'LORA')")


def parse_config(data: Mapping[str, Any], source: str = "<dict>") -> AdapterConfig:
    """Validate the scaling-relevant fields of a parsed ``adapter_config.json``.

    ``peft_type`` must be ``"LORA"`` (a config without it, or an mlx-lm config, is refused: PEFT
    cannot load it and its defaults would give a confident, wrong answer). Other missing fields
    take PEFT's defaults (``r=8``, ``lora_alpha=8``, ``use_rslora=False``); they are listed in
    ``defaulted``. Wrong types (``null`` included, which PEFT cannot use either) raise
    :class:`~rsstab.errors.RsstabError`; ``null`` patterns count as empty.

    >>> parse_config({"peft_type": "LORA"}).defaulted
    ('r', 'lora_alpha', 'use_rslora')
    >>> parse_config({"peft_type": "LORA", "r": "8"})
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: <dict>: r must be a positive integer, got '8'
    >>> parse_config({"r": 8})
    Traceback (most recent call last):
    ...
    rsstab.errors.RsstabError: <dict>: no peft_type: not a PEFT adapter config (PEFT refuses to load it too)
    """
    if not isinstance(data, Mapping):
        raise RsstabError(f"{source}: expected a JSON object, got {type(data).__name__}")
    _refuse_foreign(data, source)
    defaulted = tuple(k for k in ("r", "lora_alpha", "use_rslora") if k not in data)
    r = _check_rank(data.get("r", DEFAULT_R), "r", source)
    alpha = _check_alpha(data.get("lora_alpha", DEFAULT_LORA_ALPHA), "lora_alpha", source)
    rslora = data.get("use_rslora", DEFAULT_USE_RSLORA)
    if not isinstance(rslora, bool):
        raise RsstabError(f"{source}: use_rslora must be true or false, got {rslora!r}")
    init = data.get("init_lora_weights", True)
    if not isinstance(init, (bool, str)):
        raise RsstabError(f"{source}: init_lora_weights must be true, false or a string, got {init!r}"[:300])
    return AdapterConfig(
        r=r,
        lora_alpha=alpha,
        use_rslora=rslora,
        rank_pattern=_check_pattern(data.get("rank_pattern"), "rank_pattern", source, _check_rank),
        alpha_pattern=_check_pattern(data.get("alpha_pattern"), "alpha_pattern", source, _check_alpha),
        peft_type=data["peft_type"],
        defaulted=defaulted,
        source=source,
        init_lora_weights=init,
        variants=tuple(k for k in VARIANTS if data.get(k)),
        target_parameters=_check_names(data.get("target_parameters"), "target_parameters", source),
        bdlora=_check_bdlora(data.get("use_bdlora"), source),
        target_modules=_check_targets(data.get("target_modules"), source),
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


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    r"""The 1-based line of every object key in a JSON text, by its path of keys (the last one of a
    duplicated key, as :func:`json.loads` keeps it); list items count as one anonymous level.

    >>> key_lines('{\n  "r": 8,\n  "rank_pattern": {\n    "q\u0070": 4}, "x": [{"y": 1}]}')
    {('r',): 2, ('rank_pattern',): 3, ('rank_pattern', 'qp'): 4, ('x',): 4, ('x', '', 'y'): 4}
    >>> key_lines("not json")
    {}
    """
    out: dict[tuple[str, ...], int] = {}
    stack: list[str | None] = []  # per open container: the key being read (objects) or None (lists)
    is_object: list[bool] = []
    expect_key = False
    line, i, n = 1, 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if expect_key:
                try:
                    key = json.loads(text[i:j + 1])
                except ValueError:
                    return out
                stack[-1] = key
                path = tuple("" if k is None else k for k in stack)
                out[path] = line
                expect_key = False
            line += text.count("\n", i, j)
            i = j
        elif c in "{[":
            is_object.append(c == "{")
            stack.append(None)
            expect_key = c == "{"
        elif c in "}]":
            if stack:
                stack.pop()
                is_object.pop()
            expect_key = False
        elif c == "," and is_object and is_object[-1]:
            expect_key = True
        i += 1
    return out
