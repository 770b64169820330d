"""``adapter_model.safetensors`` read with :mod:`json` alone, and its LoRA factors grouped by module.

The safetensors header is an 8-byte little-endian length followed by a JSON table of tensor
names, dtypes and shapes; neither torch nor the ``safetensors`` package is imported, and no
tensor data is read.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError

__all__ = ["MODEL_PREFIX", "WEIGHTS_NAME", "TensorInfo", "adapted_modules", "read_safetensors_header"]

WEIGHTS_NAME = "adapter_model.safetensors"
#: Prefix PEFT's ``save_pretrained`` puts in front of every module name.
MODEL_PREFIX = "base_model.model."

# The safetensors format caps its header at 100 MB; anything larger is not a safetensors file.
_MAX_HEADER_BYTES = 100_000_000

# LoRA factor keys. save_pretrained removes the adapter name (``x.lora_A.weight``); a state dict
# saved another way keeps it (``x.lora_A.default.weight``), and PEFT loads such keys only under
# that adapter name. Linear-like layers (Linear, Conv, Conv1D, ParamWrapper) store A as (r, ...)
# and B as (out, r, ...); embeddings store A as (r, vocab) and B as (dim, r), without ``.weight``.
_FACTOR_KEYS = (
    (re.compile(r"(?P<module>.+)\.lora_(?P<factor>[AB])(?:\.(?P<adapter>[^.]+))?\.weight"), "linear"),
    (re.compile(r"(?P<module>.+)\.lora_embedding_(?P<factor>[AB])(?:\.(?P<adapter>[^.]+))?"), "embedding"),
)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TensorInfo:
    """One entry of a safetensors header."""

    dtype: str
    shape: tuple[int, ...]


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

    Returns ``{name: {"kind", "A", "B", "adapter"}}`` with the A and B shapes (``None`` if absent)
    and the adapter name the keys carry (``None``: none, as ``save_pretrained`` writes them), names
    sorted. Other tensors (DoRA magnitudes, biases, ``modules_to_save`` copies) are skipped.

    >>> t = {"base_model.model.l1.lora_A.weight": TensorInfo("F32", (4, 10)),
    ...      "base_model.model.l1.lora_B.weight": TensorInfo("F32", (3, 4))}
    >>> adapted_modules(t)
    {'l1': {'kind': 'linear', 'A': (4, 10), 'B': (3, 4), 'adapter': None}}
    >>> adapted_modules({"l2.lora_A.default.weight": TensorInfo("F32", (2, 5))})["l2"]["adapter"]
    'default'
    """
    mods: dict[str, dict[str, Any]] = {}
    for key, info in tensors.items():
        for rx, kind in _FACTOR_KEYS:
            m = rx.fullmatch(key)
            if m is None:
                continue
            name = m["module"].removeprefix(MODEL_PREFIX)
            entry = mods.setdefault(name, {"kind": kind, "A": None, "B": None, "adapter": m["adapter"]})
            entry[m["factor"]] = info.shape
            break
    return {k: mods[k] for k in sorted(mods)}
