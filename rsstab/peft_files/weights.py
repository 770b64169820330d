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

__all__ = ["MODEL_PREFIX", "WEIGHTS_NAME", "TensorInfo", "adapted_modules", "read_safetensors_header", "shape_problem"]

WEIGHTS_NAME = "adapter_model.safetensors"
#: Prefix PEFT's ``save_pretrained`` puts in front of every module name.
MODEL_PREFIX = "base_model.model."

# The safetensors format caps its header at 100 MB; anything larger is not a safetensors file.
_MAX_HEADER_BYTES = 100_000_000

# LoRA factor keys. save_pretrained removes the adapter name (``x.lora_A.weight``); a state dict
# saved another way keeps it (``x.lora_A.default.weight``), and PEFT loads such keys only under
# that adapter name. Linear-like layers (Linear, transformers' Conv1D, ParamWrapper) store A as
# (r, in) and B as (out, r); PEFT's Conv1d/Conv2d/Conv3d layers store A as (r, in, *kernel) and B
# as (out, r, 1, …) with as many dimensions; embeddings store A as (r, vocab) and B as (dim, r),
# without ``.weight``.
_FACTOR_KEYS = (
    (re.compile(r"(?P<module>.+)\.lora_(?P<factor>[AB])(?:\.(?P<adapter>[^.]+))?\.weight"), "linear"),
    (re.compile(r"(?P<module>.+)\.lora_embedding_(?P<factor>[AB])(?:\.(?P<adapter>[^.]+))?"), "embedding"),
)

#: The kind of a ``lora_A.weight`` / ``lora_B.weight`` pair by its number of dimensions.
_KIND_BY_NDIM = {2: "linear", 3: "conv1d", 4: "conv2d", 5: "conv3d"}


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
    for entry in mods.values():
        if entry["kind"] == "linear":  # Linear or Conv1d/2d/3d: the dimensions say which
            a, b = entry["A"], entry["B"]
            kinds = {_KIND_BY_NDIM.get(len(s), "malformed") for s in (a, b) if s is not None}
            entry["kind"] = kinds.pop() if len(kinds) == 1 else "malformed"
        elif shape_problem(entry):
            entry["kind"] = "malformed"
    return {k: mods[k] for k in sorted(mods)}


def shape_problem(entry: Mapping[str, Any]) -> str | None:
    """Why one module's saved LoRA factors are no shapes a PEFT layer saves (``None``: they are).

    A and B must both be there, with the same number of dimensions: 2 for a linear layer or an
    embedding, 3 to 5 for a convolution, whose B is a 1×…×1 kernel.

    >>> shape_problem({"kind": "linear", "A": (4, 10), "B": (3, 4)}) is None
    True
    >>> shape_problem({"kind": "conv2d", "A": (4, 3, 3, 3), "B": (8, 4, 1, 1)}) is None
    True
    >>> shape_problem({"kind": "malformed", "A": (4, 10, 2), "B": (3, 4)})
    'lora_A has shape (4, 10, 2) and lora_B (3, 4): PEFT saves both with 2 dimensions (linear) or both with 3 to 5 (convolution)'
    """
    a, b = entry.get("A"), entry.get("B")
    emb = entry.get("kind") == "embedding"
    fa, fb = ("lora_embedding_A", "lora_embedding_B") if emb else ("lora_A", "lora_B")
    if a is None or b is None:
        have, miss = (fa, fb) if b is None else (fb, fa)
        return f"{have} without {miss}: PEFT leaves the missing factor at its initial value (the update is lost)"
    if emb:
        if len(a) != 2 or len(b) != 2:
            return f"{fa} has shape {tuple(a)} and {fb} {tuple(b)}: an embedding's factors are 2-dimensional"
        return None
    if len(a) != len(b) or len(a) not in _KIND_BY_NDIM:
        return (f"{fa} has shape {tuple(a)} and {fb} {tuple(b)}: PEFT saves both with 2 dimensions (linear) "
                "or both with 3 to 5 (convolution)")
    if len(b) > 2 and any(k != 1 for k in b[2:]):
        return f"{fb} has shape {tuple(b)}: PEFT saves a convolution's lora_B with a 1×…×1 kernel"
    return None
