"""The rank, alpha and scaling PEFT gives every adapted module of a saved adapter.

Module names come from the safetensors keys. Two kinds of saved module need PEFT's own naming to
resolve ``rank_pattern`` / ``alpha_pattern``:

* ``target_parameters`` (MoE expert weights): the keys name the module *holding* the parameter
  (``…mlp.experts``; a second targeted parameter of the same module is nested one
  ``.base_layer`` deeper), while PEFT matches the patterns against ``<module>.<parameter>``
  (``…mlp.experts.down_proj``). Its factors have ``r × num_experts`` rows.
* BD-LoRA (``use_bdlora``): a block-diagonal B is saved with ``r / nblocks`` columns.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.peft_files.config import CONFIG_NAME, AdapterConfig, load_config
from rsstab.peft_files.patterns import PatternIndex, pattern_time_limit
from rsstab.peft_files.weights import WEIGHTS_NAME, adapted_modules, read_safetensors_header, shape_problem

__all__ = ["AdapterReport", "ModuleScaling", "Note", "Resolver", "missing_weights", "peft_scaling", "read_adapter",
           "resolve_module"]

_BASE_LAYER = ".base_layer"


def peft_scaling(r: int, lora_alpha: float, use_rslora: bool) -> float:
    """The scaling PEFT's ``LoraLayer.update_layer`` stores: the same float operations, bit for bit.

    >>> peft_scaling(16, 32, False), peft_scaling(16, 32, True)
    (2.0, 8.0)
    """
    if use_rslora:
        return lora_alpha / math.sqrt(r)
    return lora_alpha / r


@dataclass(frozen=True)
class ModuleScaling:
    """The rank, alpha and scaling PEFT gives one adapted module (or one pattern row).

    ``name`` is the name PEFT matches the patterns against (for a targeted parameter:
    ``<module>.<parameter>``); ``rank_key`` / ``alpha_key`` name the pattern that set the value
    (``None``: the default); ``r_weight`` is the row count of the saved ``lora_A`` and
    ``r_weight_b`` the column count of ``lora_B`` (``None`` when only a config was read).
    ``experts`` is the number of experts a targeted parameter's factors stack (``None`` when the
    saved shapes are no multiple of ``r``); ``b_blocks`` the block count of a block-diagonal B.
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
    use_rslora: bool = False
    experts: int | None = 1
    b_blocks: int = 1
    weights_name: str | None = None

    @property
    def mismatch(self) -> bool:
        """True when a weight's shape disagrees with the rank the config resolves to."""
        if self.r_weight is None and self.r_weight_b is None:
            return False
        if self.experts is None:
            return True
        rows = self.r * self.experts
        cols = rows // self.b_blocks if rows % self.b_blocks == 0 else None
        if self.kind.startswith("conv") and self.r_weight_b and rows % self.r_weight_b == 0:
            cols = self.r_weight_b  # a grouped convolution's lora_B has r / groups input channels
        return (self.r_weight is not None and self.r_weight != rows) or (
            self.r_weight_b is not None and self.r_weight_b != cols
        )

    @property
    def loader_factor(self) -> float:
        """How much larger PEFT's scaling is than ``alpha / r``, which a loader that ignores
        ``use_rslora`` applies: √r with rsLoRA, else 1."""
        return math.sqrt(self.r) if self.use_rslora else 1.0

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
            "experts": self.experts,
            "b_blocks": self.b_blocks,
            "weights_name": self.weights_name,
            "loader_factor": self.loader_factor,
        }


@dataclass(frozen=True)
class Note:
    """One thing the reader warns about.

    ``kind`` is one of ``unmatched_key``, ``overlap``, ``mismatch``, ``adapter_name``,
    ``parameters`` (which nested wrapper holds which parameter), ``subfolders``, ``bare_config``,
    ``malformed`` (factor shapes no PEFT layer saves), ``no_weights`` (a folder without
    ``adapter_model.safetensors``, read with ``config_alone``);
    ``module`` names the module or pattern key concerned (``None``: the adapter as a whole).
    """

    kind: str
    module: str | None
    message: str


@dataclass(frozen=True)
class AdapterReport:
    """Everything ``rsstab peft`` knows about one adapter."""

    path: str
    config: AdapterConfig
    modules: tuple[ModuleScaling, ...]
    from_weights: bool
    notes: tuple[Note, ...] = field(default=())

    @property
    def warnings(self) -> tuple[str, ...]:
        """The notes' messages, in order."""
        return tuple(n.message for n in self.notes)

    @property
    def mismatches(self) -> tuple[ModuleScaling, ...]:
        """Modules whose weight shapes disagree with the resolved rank."""
        return tuple(m for m in self.modules if m.mismatch)

    @property
    def malformed(self) -> tuple[Note, ...]:
        """Notes about LoRA factors whose shapes no PEFT layer saves."""
        return tuple(n for n in self.notes if n.kind == "malformed")


class Resolver:
    """One config's patterns, indexed once, resolving module after module as PEFT does."""

    def __init__(self, config: AdapterConfig) -> None:
        self.config = config
        self.ranks = dict(config.rank_pattern)
        self.alphas = dict(config.alpha_pattern)
        self.rank_index = PatternIndex(self.ranks)
        self.alpha_index = PatternIndex(self.alphas)

    def resolve(self, name: str, **extra: Any) -> ModuleScaling:
        """The rank, alpha and scaling PEFT gives the module called ``name``."""
        cfg = self.config
        rkey = self.rank_index.first(name) if self.ranks else None
        akey = self.alpha_index.first(name) if self.alphas else None
        r = self.ranks[rkey] if rkey is not None else cfg.r
        alpha = self.alphas[akey] if akey is not None else cfg.lora_alpha
        return ModuleScaling(
            name=name,
            r=r,
            lora_alpha=alpha,
            scaling=peft_scaling(r, alpha, cfg.use_rslora),
            rank_key=rkey,
            alpha_key=akey,
            use_rslora=cfg.use_rslora,
            **extra,
        )

    def pattern_notes(self, names: Sequence[str]) -> list[Note]:
        """Names matched by keys of different values, and keys matching no name."""
        out: list[Note] = []
        for attr, values, index in (
            ("rank_pattern", self.ranks, self.rank_index),
            ("alpha_pattern", self.alphas, self.alpha_index),
        ):
            if not values:
                continue
            used: set[str] = set()
            for n in names:
                hits = index.matching(n)
                used.update(hits)
                if n in values:
                    used.add(n)
                if len({values[k] for k in hits}) > 1:
                    out.append(Note("overlap", n,
                        f"module {n!r} matches {attr} keys {hits} with different values; PEFT takes the first in "
                        f"file order ({hits[0]!r}), and save_pretrained writes keys sorted, so the order used "
                        "in training may have differed"
                    ))
            for key in values:
                if key not in used:
                    out.append(Note("unmatched_key", key,
                                    f"{attr} key {key!r} matches no adapted module and is ignored by PEFT (a typo?)"))
        return out


def resolve_module(
    config: AdapterConfig,
    name: str,
    *,
    r_weight: int | None = None,
    r_weight_b: int | None = None,
    kind: str = "linear",
) -> ModuleScaling:
    """The rank, alpha and scaling PEFT gives the module called ``name`` (PEFT's rules exactly).

    For many modules, build one :class:`Resolver` and call :meth:`Resolver.resolve`.
    """
    return Resolver(config).resolve(name, r_weight=r_weight, r_weight_b=r_weight_b, kind=kind)


def _pattern_rows(resolver: Resolver) -> tuple[ModuleScaling, ...]:
    """With a bare config: one row per distinct pattern key, then the default row.

    Each row is what PEFT gives a module named like the key: both pattern dicts are matched
    against it, so ``alpha_pattern`` key ``attn.q`` also takes its rank from ``rank_pattern`` key
    ``q`` (``rank_key`` / ``alpha_key`` say which keys set the values).
    """
    config = resolver.config
    keys = dict.fromkeys([k for k, _ in config.rank_pattern] + [k for k, _ in config.alpha_pattern])
    rows = [resolver.resolve(key, kind="pattern") for key in keys]
    rows.append(
        ModuleScaling(
            name="<default>",
            r=config.r,
            lora_alpha=config.lora_alpha,
            scaling=peft_scaling(config.r, config.lora_alpha, config.use_rslora),
            use_rslora=config.use_rslora,
        )
    )
    return tuple(rows)


def _holder(name: str) -> tuple[str, int]:
    """(module holding a parameter, nesting depth): ``x.base_layer.base_layer`` → (``x``, 2)."""
    depth = 0
    while name.endswith(_BASE_LAYER):
        name = name[: -len(_BASE_LAYER)]
        depth += 1
    return name, depth


def _targeted_parameters(targets: Sequence[str], holder: str) -> list[str]:
    """Parameter names of ``holder`` that ``target_parameters`` selects (PEFT's suffix rule)."""
    found: dict[str, None] = {}
    for t in targets:
        param = t.rpartition(".")[2]
        key = f"{holder}.{param}"
        if key == t or key.endswith("." + t):
            found[param] = None
    return list(found)


def _saved_ranks(entry: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(rows of the saved A, columns of the saved B): the rank as the weights store it."""
    a, b = entry["A"], entry["B"]
    return (a[0] if a else None), (b[1] if b and len(b) > 1 else None)


def _experts(row_a: int | None, row_b: int | None, r: int) -> int | None:
    if row_a is None or row_a % r or (row_b is not None and row_b != row_a):
        return None
    return row_a // r


def _resolve_parameters(
    resolver: Resolver, holder: str, wrappers: dict[int, tuple[str, Mapping[str, Any]]], params: list[str]
) -> tuple[list[ModuleScaling], list[Note]]:
    """Rows for the ParamWrappers saved under ``holder`` (depth → (weights name, shapes)).

    PEFT nests one wrapper per targeted parameter, the first created deepest. The saved keys do
    not say which parameter each wrapper holds; creation order is the holder's registration order,
    guessed here as ``target_parameters`` order. Where the patterns give the parameters different
    ranks, the saved shapes decide (every wrapper of one holder stacks the same number of experts).
    """
    depths = sorted(wrappers)
    n = len(depths)
    notes: list[Note] = []

    def rows_for(assign: Sequence[str]) -> list[ModuleScaling]:
        out = []
        for depth, param in zip(depths, assign):
            wname, entry = wrappers[depth]
            ra, rb = _saved_ranks(entry)
            base = resolver.resolve(f"{holder}.{param}")
            out.append(replace(base, r_weight=ra, r_weight_b=rb, kind="parameter",
                               experts=_experts(ra, rb, base.r), weights_name=wname))
        return out

    if n > len(params):
        rows = []
        for depth in depths:
            wname, entry = wrappers[depth]
            ra, rb = _saved_ranks(entry)
            rows.append(resolver.resolve(wname, r_weight=ra, r_weight_b=rb, kind="parameter", experts=None,
                                         weights_name=wname))
        notes.append(Note("parameters", holder,
                          f"module {holder!r} holds {n} adapted parameters but target_parameters selects "
                          f"{len(params)} of its names: their ranks cannot be resolved"))
        return rows, notes
    guess = list(reversed(params[:n]))  # depth 0 (outermost) was created last
    options = [guess] + [list(p) for p in itertools.permutations(params, n) if list(p) != guess]
    results = [rows_for(o) for o in options]

    def consistent(rows: list[ModuleScaling]) -> bool:
        e = {m.experts for m in rows}
        return None not in e and len(e) == 1 and not any(m.mismatch for m in rows)

    values = {tuple((m.r, m.lora_alpha) for m in rows) for rows in results}
    if len(values) == 1:
        return results[0], notes
    good = [rows for rows in results if consistent(rows)]
    chosen = good[0] if good else results[0]
    if len({tuple((m.r, m.lora_alpha) for m in rows) for rows in good}) > 1:
        notes.append(Note("parameters", holder,
            f"module {holder!r}: which nested wrapper holds which of {params} is not recorded in the "
            "adapter and the shapes allow several readings; assumed registration order "
            f"{', '.join(reversed([m.name.rpartition('.')[2] for m in chosen]))}"
        ))
    return chosen, notes


def _resolve_weights(resolver: Resolver, mods: Mapping[str, Mapping[str, Any]]) -> tuple[list[ModuleScaling], list[Note]]:
    config = resolver.config
    rows: list[ModuleScaling] = []
    notes: list[Note] = []
    holders: dict[str, tuple[list[str], dict[int, tuple[str, Mapping[str, Any]]]]] = {}
    for name, entry in mods.items():
        if config.target_parameters and entry["kind"] == "linear":
            holder, depth = _holder(name)
            params = _targeted_parameters(config.target_parameters, holder)
            # A module target_modules selects is an ordinary LoRA layer (PEFT refuses both on one module).
            if params and (depth or not config.targets_module(holder)):
                holders.setdefault(holder, (params, {}))[1][depth] = (name, entry)
                continue
        ra, rb = _saved_ranks(entry)
        bd = config.bdlora.factor(name) if config.bdlora else None
        rows.append(
            resolver.resolve(
                name,
                r_weight=ra,
                r_weight_b=rb,
                kind=entry["kind"],
                b_blocks=config.bdlora.nblocks if (bd == "B" and config.bdlora) else 1,
            )
        )
    for holder, (params, wrappers) in holders.items():
        more, why = _resolve_parameters(resolver, holder, wrappers, params)
        rows.extend(more)
        notes.extend(why)
    rows.sort(key=lambda m: m.name)
    return rows, notes


def _subfolder_adapters(p: Path) -> list[str]:
    try:
        return sorted(d.name for d in p.iterdir() if d.is_dir() and (d / CONFIG_NAME).is_file())
    except OSError:
        return []


def missing_weights(folder: Path) -> str:
    """Why a folder holding ``adapter_config.json`` but no ``adapter_model.safetensors`` cannot be
    read as a whole adapter (the one message ``rsstab peft`` and ``rsstab lint`` give)."""
    legacy = next((n for n in ("adapter_model.bin", "adapter_model.pt") if (folder / n).is_file()), None)
    if legacy:
        return (f"no {WEIGHTS_NAME} in this folder: its weights are {legacy}, a pickle rsstab never opens "
                "(save with safe_serialization=True)")
    return f"no {WEIGHTS_NAME} in this folder: PEFT cannot load an adapter from it"


def read_adapter(path: str | os.PathLike[str], *, config_alone: bool = False) -> AdapterReport:
    """Read a PEFT adapter directory or a bare ``adapter_config.json`` and resolve every module.

    A directory (or its ``adapter_model.safetensors``) must hold ``adapter_config.json`` and
    ``adapter_model.safetensors``; module names come from the safetensors keys, and the rank in
    the weight shapes is checked against the config. A bare config gives one row per pattern key
    plus ``<default>``. A directory without the weights is refused (:func:`missing_weights` says
    why), or with ``config_alone`` read as its bare config with a ``no_weights`` note.
    """
    p = Path(path)
    rows: Sequence[ModuleScaling]  # a list from the weights, a tuple from a bare config
    if p.is_file() and p.name == WEIGHTS_NAME:
        p = p.parent  # the weights file itself: read the folder it belongs to
    if p.is_dir():
        cfg_path, weights = p / CONFIG_NAME, p / WEIGHTS_NAME
        subs = _subfolder_adapters(p)
        if not cfg_path.is_file():
            # save_pretrained writes non-default adapters into subfolders named after them.
            hint = (
                f"; adapters found in subfolders: {', '.join(subs)}" if subs else " (not a PEFT save_pretrained folder)"
            )
            raise RsstabError(f"{p}: no {CONFIG_NAME} in this directory{hint}")
        if not weights.is_file():
            why = missing_weights(p)
            if not config_alone:
                raise RsstabError(f"{p}: {why}; pass {cfg_path} to check the config alone")
            bare = read_adapter(cfg_path)
            note = Note("no_weights", None, f"{why}; the config was checked alone")
            return replace(bare, notes=(note, *bare.notes))
        config = load_config(cfg_path)
        mods = adapted_modules(read_safetensors_header(weights))
        if not mods:
            raise RsstabError(f"{weights}: no LoRA weights (no '*.lora_A.weight' tensors)")
        warnings: list[Note] = []
        if subs:
            warnings.append(Note("subfolders", None,
                                 f"this folder also holds named adapters in subfolders ({', '.join(subs)}): "
                                 "read each subfolder (rsstab lint reads them all)"))
        names = sorted({str(e["adapter"]) for e in mods.values() if e["adapter"] is not None})
        if len({e["adapter"] for e in mods.values()}) > 1:
            raise RsstabError(f"{weights}: the LoRA keys belong to several adapters "
                              f"({', '.join(names + ['<unnamed>'] * any(e['adapter'] is None for e in mods.values()))})")
        if names:
            warnings.append(Note("adapter_name", None,
                                 f"the weight keys carry the adapter name {names[0]!r} (.lora_A.{names[0]}.weight): "
                                 f"PEFT loads them only as adapter_name={names[0]!r} and silently skips them under "
                                 "another name"))
        resolver = Resolver(config)
        with pattern_time_limit():
            rows, notes = _resolve_weights(resolver, mods)
            more = resolver.pattern_notes([m.name for m in rows])
        warnings += notes + more
        for name, entry in mods.items():
            problem = shape_problem(entry)
            if problem:
                warnings.append(Note("malformed", name, f"module {name!r}: {problem}"))
        for m in rows:
            if m.mismatch and m.kind != "parameter" and m.b_blocks == 1:
                warnings.append(Note("mismatch", m.name,
                    f"module {m.name!r}: config resolves r={m.r} but the weights have rank "
                    f"{m.r_weight if m.r_weight != m.r else m.r_weight_b}: PEFT would fail to load this adapter"
                ))
            elif m.mismatch:
                got = f"A has {m.r_weight} rows, B {m.r_weight_b} columns"
                want = "a multiple of r (one block per expert)" if m.kind == "parameter" else (
                    f"r={m.r}" + (f" (B: r/{m.b_blocks})" if m.b_blocks > 1 else ""))
                warnings.append(Note("mismatch", m.name,
                                     f"module {m.name!r}: config resolves r={m.r} but the weights do not fit ({got}; "
                                     f"expected {want}): PEFT would fail to load this adapter"))
        return AdapterReport(str(p), config, tuple(rows), True, tuple(warnings))
    if p.is_file():
        config = load_config(p)
        warnings = []
        if config.rank_pattern or config.alpha_pattern:
            warnings.append(Note("bare_config", None,
                                 "bare config: module names unknown, so patterns matching nothing cannot be detected"))
        with pattern_time_limit():
            rows = _pattern_rows(Resolver(config))
        return AdapterReport(str(p), config, rows, False, tuple(warnings))
    raise RsstabError(f"no such file or directory: {p}")
