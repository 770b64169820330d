"""One simulation cell's settings: :class:`SimConfig`, the defaults and the names of the probes.

Standard library only (no torch, no numpy), so that ``rsstab simulate --help`` and anything that
only reads the defaults stays light.

>>> cfg = SimConfig(rank=8, gamma=0.5, depth=3, adapted_layers=[2, 0])
>>> cfg.adapter_layers(), cfg.learning_rate, cfg.resolved_method()
((0, 2), 1e-05, 'direct')
>>> SimConfig.from_dict(cfg.to_dict()) == cfg
True
>>> SimConfig(rank=2**30, gamma=1.0, width=16, gram="wishart").effective_rank()
16
>>> SimConfig(rank=8, gamma=0.5, share_data=True, fixed_output_grad=True).cell_quantities()[:2]
('forward_coherent', 'forward_incoherent')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from numbers import Integral, Real
from typing import Any

from rsstab.defaults import SIMULATION
from rsstab.errors import RsstabError
from rsstab.validate import positive_integer
from rsstab.vocab import OPTIMIZER_NAMES, OPTIMIZERS, canonical_optimizer

__all__ = [
    "SimConfig",
    "DEFAULTS",
    "LAYER_QUANTITIES",
    "NETWORK_QUANTITIES",
    "FIXED_GRAD_QUANTITIES",
    "DATA_QUANTITIES",
    "ADAM_DATA_QUANTITIES",
    "SPLIT_QUANTITIES",
    "AUTO_GRAM_BYTES",
]

#: Probes per adapted layer and seed, always recorded (see :mod:`rsstab.sim`).
LAYER_QUANTITIES = ("moment1", "moment2", "moment4", "forward", "backward", "grad_A", "grad_B")
#: Probes per network and seed.
NETWORK_QUANTITIES = ("loss", "test_loss")
#: Per adapted layer and seed, with ``fixed_output_grad`` (see :mod:`rsstab.sim.finite`).
FIXED_GRAD_QUANTITIES = ("backward_fixed",)
#: A-independent data statistics per adapted layer and seed, with ``data_stats``.
DATA_QUANTITIES = ("data_grad_fro2", "data_grad_probe2", "probe_input2", "data_grad_u2",
                   "sign_probe2", "sign_u2", "sign_uq")
#: Adam's per-column moments over Gaussian reference columns, with ``data_stats``, Adam and fresh
#: batches (``fixed_batch`` off; see :mod:`rsstab.sim.finite`).
ADAM_DATA_QUANTITIES = ("adam_probe_coh2", "adam_probe_m2", "adam_u_coh2", "adam_u_m2")
#: Cell-level statistics across the seeds' A draws per adapted layer (rows with seed -1), with
#: ``share_data``: for ``forward`` and, with ``fixed_output_grad`` too, for ``backward_fixed``.
SPLIT_QUANTITIES = {
    source: tuple(f"{source}_{part}{se}" for se in ("", "_se") for part in ("coherent", "incoherent"))
    for source in ("forward", "backward_fixed")
}

#: ``gram="auto"`` draws the Gram (Wishart) under SGD when A₀'s float64 draws would exceed this.
AUTO_GRAM_BYTES = 2 << 30

#: Defaults of the command line and :func:`rsstab.measure.empirical.empirical_verdict`, per optimizer
#: where they differ: :data:`rsstab.defaults.SIMULATION` (beside the rank-stability check's).
DEFAULTS: dict[str, Any] = SIMULATION


@dataclass(frozen=True)
class SimConfig:
    """One simulation cell: one rank and one γ_r, all seeds batched together."""

    rank: int
    gamma: float
    optimizer: str = "sgd"
    depth: int = DEFAULTS["depth"]
    width: int = DEFAULTS["width"]
    steps: int = DEFAULTS["steps"]
    seeds: int = DEFAULTS["seeds"]
    batch: int = DEFAULTS["batch"]
    lr: float | None = None  # None: DEFAULTS["lr"][optimizer]
    lr_ratio: float = 1.0  # η_B/η_A: B learns at lr·lr_ratio, A at lr (weight decay per factor likewise)
    seed: int = 0
    nonlinearity: str = "relu"
    teacher_rank: int = 4
    teacher_scale: float = 0.5
    probe_batch: int = 256
    probe_every: int = 0  # 0: probe at step 0 and after the last step only
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0  # decoupled, as AdamW: P ← (1 − lr·weight_decay)·P − lr·∇P (SGD too)
    dtype: str = "float32"
    # Opt-in (float32 only): the adapter products (h·Aᵀ, ·Bᵀ, g·B, ·A and the gradients) take
    # bfloat16 operands — float32 accumulation inside the kernel, bfloat16 results — where the CPU
    # multiplies bfloat16 natively (AVX512-BF16, AMX); A, B, the optimizer state, the frozen base
    # path and every reduction stay float32. Slopes agree with float32 to ≲ 0.02 (the tests and
    # benchmarks/bench_simulate.py check it); numbers are not float32's.
    bf16: bool = False
    method: str = "auto"  # "direct", "reduced" (SGD only, exact) or "auto" (the cheaper)
    divergence_factor: float = 1e6
    adapted_layers: tuple[int, ...] | None = None  # 0-based layers with an adapter; None: all
    a_init_scale: float = 1.0  # A₀ ~ N(0, a_init_scale²/d)
    # "explicit": draw A₀ (r×d). "wishart" (SGD only): for r > d draw the d×d Bartlett factor R of
    # A₀ = Q·R instead (A₀ᵀA₀ = RᵀR ~ Wishart), exact in distribution, cost free of r. "auto"
    # (default): wishart under SGD when A₀'s float64 draws would exceed AUTO_GRAM_BYTES, else
    # explicit (resolved_gram).
    gram: str = "auto"
    # Finite-width measurements (rsstab.sim.finite); all off by default, and then nothing changes.
    share_data: bool = False  # every seed: seed 0's base, teacher and data; its own A
    fixed_batch: bool = False  # the first training batch at every step
    fixed_output_grad: bool = False  # record backward_fixed (a fixed N(0,1) output gradient)
    data_stats: bool = False  # record the A-independent data statistics (DATA_QUANTITIES)

    def __post_init__(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise RsstabError(message)

        if self.adapted_layers is not None:
            layers = self.adapted_layers
            need(isinstance(layers, (list, tuple)), f"adapted_layers must be a list of layer indices or None, got {layers!r}")
            need(len(layers) > 0, "adapted_layers must name at least one layer (None: all layers)")
            need(all(isinstance(i, Integral) and not isinstance(i, bool) for i in layers),
                 f"adapted_layers must hold integer layer indices, got {list(layers)!r}")
            need(len(set(int(i) for i in layers)) == len(layers), f"adapted_layers has repeated indices: {list(layers)!r}")
            depth_ok = isinstance(self.depth, Integral) and self.depth >= 1
            need(not depth_ok or all(0 <= int(i) < self.depth for i in layers),
                 f"adapted_layers {list(layers)!r} out of range for depth {self.depth!r}: indices run 0…{int(self.depth) - 1 if depth_ok else '?'}")
            object.__setattr__(self, "adapted_layers", tuple(sorted(int(i) for i in layers)))
        s = self.a_init_scale
        need(isinstance(s, Real) and not isinstance(s, bool) and math.isfinite(float(s)) and float(s) > 0,
             f"a_init_scale must be a positive finite number, got {s!r}")
        object.__setattr__(self, "a_init_scale", float(s))

        for name in ("share_data", "fixed_batch", "fixed_output_grad", "data_stats"):
            v = getattr(self, name)
            need(isinstance(v, (bool, Integral)) and v in (0, 1), f"{name} must be true or false, got {v!r}")
            object.__setattr__(self, name, bool(v))

        for name in ("rank", "depth", "width", "seeds", "batch", "probe_batch", "teacher_rank"):
            positive_integer(getattr(self, name), name)
        need(isinstance(self.steps, Integral) and not isinstance(self.steps, bool) and self.steps >= 0,
             f"steps must be ≥ 0, got {self.steps!r}")
        need(self.probe_every >= 0, f"probe_every must be ≥ 0, got {self.probe_every!r}")
        need(isinstance(self.optimizer, str) and canonical_optimizer(self.optimizer) in OPTIMIZERS,
             f"unknown optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZER_NAMES)}")
        object.__setattr__(self, "optimizer", canonical_optimizer(self.optimizer))  # "adamw" → "adam"
        need(self.nonlinearity in ("relu", "linear"), f"nonlinearity must be relu or linear, got {self.nonlinearity!r}")
        need(self.dtype in ("float32", "float64"), f"dtype must be float32 or float64, got {self.dtype!r}")
        need(isinstance(self.bf16, (bool, Integral)) and self.bf16 in (0, 1), f"bf16 must be true or false, got {self.bf16!r}")
        object.__setattr__(self, "bf16", bool(self.bf16))
        need(not (self.bf16 and self.dtype != "float32"), "bf16 products need dtype float32 (float64 runs are for accuracy)")
        need(self.method in ("auto", "direct", "reduced"), f"method must be auto, direct or reduced, got {self.method!r}")
        need(self.gram in ("auto", "explicit", "wishart"), f"gram must be auto, explicit or wishart, got {self.gram!r}")
        need(not (self.gram == "wishart" and self.optimizer != "sgd"),
             "gram='wishart' is exact for SGD only (Adam's element-wise update is not rotation-invariant): "
             "use gram='explicit' with adam")
        need(not (self.method == "reduced" and self.optimizer != "sgd"),
             "the reduced method is exact for SGD only: use method='direct' or 'auto' with adam")
        g = float(self.gamma)
        need(math.isfinite(g) and g > 0, f"γ_r must be a positive finite number at r={self.rank}, got {self.gamma!r}")
        if self.lr is not None:
            need(math.isfinite(self.lr) and self.lr > 0, f"learning rate must be positive, got {self.lr!r}")
        q = self.lr_ratio
        need(isinstance(q, Real) and not isinstance(q, bool) and math.isfinite(float(q)) and float(q) > 0,
             f"lr_ratio (η_B/η_A) must be a positive finite number, got {q!r}")
        object.__setattr__(self, "lr_ratio", float(q))
        need(0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1, "Adam betas must lie in [0, 1)")
        need(self.eps >= 0 and self.weight_decay >= 0, "eps and weight_decay must be ≥ 0")

    @property
    def learning_rate(self) -> float:
        """η: ``lr``, or the optimizer's default when it is None."""
        return float(self.lr) if self.lr is not None else float(DEFAULTS["lr"][self.optimizer])

    @property
    def learning_rates(self) -> tuple[float, float]:
        """(η_A, η_B): A learns at :attr:`learning_rate`, B at ``learning_rate·lr_ratio``."""
        lr = self.learning_rate
        return lr, lr * self.lr_ratio

    def resolved_method(self) -> str:
        """``direct`` or ``reduced``: ``auto`` takes the reduced form for SGD when it is cheaper.
        The reduced form is the direct one at rank d after a QR of A₀ (see
        :class:`rsstab.sim.stack.ReducedStack`): per layer and seed it saves the adapter work of
        r − d ranks, 6·b·d·(r − d) multiply-adds a step and 5·n·d·(r − d) a probe (n the probe
        batch), and costs 4·r·d² once (the float64 A₀ᵀA₀ or QR, weighted ×2)."""
        if self.method != "auto":
            return self.method
        b, d, r, n = self.batch, self.width, self.effective_rank(), self.probe_batch
        saved = (r - d) * d * (6 * b * int(self.steps) + 5 * n * len(self.probe_steps()))
        cheaper = r > d and saved > 4 * r * d * d
        return "reduced" if self.optimizer == "sgd" and cheaper else "direct"

    def resolved_gram(self) -> str:
        """``explicit`` or ``wishart``: ``auto`` takes the Wishart draw (exact in distribution, SGD
        only) when r > d and the explicit A₀ — its float64 draws, seeds·depth·r·d·8 bytes — would
        exceed :data:`AUTO_GRAM_BYTES`: a fixed budget, not this machine's memory, so that a
        config means the same numbers on every machine (and in every sweep store).

        >>> SimConfig(rank=2**30, gamma=1.0, width=16).resolved_gram()
        'wishart'
        >>> SimConfig(rank=4096, gamma=1.0).resolved_gram(), SimConfig(rank=2**30, gamma=1.0, optimizer="adam").resolved_gram()
        ('explicit', 'explicit')
        """
        if self.gram != "auto":
            return self.gram
        r, d = int(self.rank), int(self.width)
        explicit = 8 * int(self.seeds) * int(self.depth) * r * d
        return "wishart" if self.optimizer == "sgd" and r > d and explicit > AUTO_GRAM_BYTES else "explicit"

    def effective_rank(self) -> int:
        """The number of rows of the drawn A₀: ``rank``, or ``min(rank, width)`` when the Gram is
        drawn (:meth:`resolved_gram` ``wishart``: the d×d Bartlett factor stands for A₀ when r > d)."""
        r = int(self.rank)
        return min(r, int(self.width)) if self.resolved_gram() == "wishart" else r

    def memory_bytes(self) -> int:
        """An estimate (upper side) of the memory a cell needs at its peak: the float64 draws
        (A₀, base, teacher, data), the stack's factors, gradients, optimizer state and cached
        activations in its dtype, and the probes' products — what :func:`rsstab.sim.cells.simulate_cell`
        compares with the memory available before it starts."""
        S, L, La, d = int(self.seeds), int(self.depth), len(self.adapter_layers()), int(self.width)
        r = self.effective_rank()
        rows = (int(self.steps) + 1) * int(self.batch) + int(self.probe_batch)
        draws = 8 * S * (L * r * d + 2 * L * d * d + 2 * rows * d)
        held = r if self.resolved_method() == "direct" else min(r, d)
        item = 8 if self.dtype == "float64" else 4
        # down, up, their two gradients; Adam: two moments each; bf16: half-size copies
        factors = item * S * La * 2 * held * d * (2 + (2 if self.optimizer == "adam" else 0) + (1 if self.bf16 else 0))
        n = max(int(self.batch), int(self.probe_batch))
        activations = item * S * L * n * (held + 3 * d)
        reduced = 8 * S * La * r * d if held < r else 0  # the float64 A₀ of the QR/Cholesky
        return int(draws + factors + activations + reduced)

    def adapter_layers(self) -> tuple[int, ...]:
        """The 0-based indices of the layers that carry an adapter, ascending."""
        return tuple(range(int(self.depth))) if self.adapted_layers is None else tuple(self.adapted_layers)

    def data_quantities(self) -> tuple[str, ...]:
        """The data statistics recorded with ``data_stats``: :data:`DATA_QUANTITIES`, and
        :data:`ADAM_DATA_QUANTITIES` for Adam with fresh batches; () without ``data_stats``."""
        if not self.data_stats:
            return ()
        fresh_adam = self.optimizer == "adam" and not self.fixed_batch
        return DATA_QUANTITIES + (ADAM_DATA_QUANTITIES if fresh_adam else ())

    def layer_quantities(self) -> tuple[str, ...]:
        """The quantities recorded per adapted layer and seed: :data:`LAYER_QUANTITIES`, then
        ``backward_fixed`` and the data statistics when their options are on."""
        return (LAYER_QUANTITIES + (FIXED_GRAD_QUANTITIES if self.fixed_output_grad else ())
                + self.data_quantities())

    def cell_quantities(self) -> tuple[str, ...]:
        """The quantities recorded per adapted layer once per cell (rows with seed -1): the
        coherent/incoherent split of ``forward`` (and of ``backward_fixed``) with ``share_data``."""
        if not self.share_data:
            return ()
        return SPLIT_QUANTITIES["forward"] + (SPLIT_QUANTITIES["backward_fixed"] if self.fixed_output_grad else ())

    def probe_steps(self) -> list[int]:
        """The steps at which the probes run: 0, every ``probe_every`` steps, and the last."""
        steps = {0, int(self.steps)}
        if self.probe_every:
            steps.update(range(0, int(self.steps) + 1, int(self.probe_every)))
        return sorted(steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples as lists); :meth:`from_dict` reads them back."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        if self.adapted_layers is not None:
            d["adapted_layers"] = list(self.adapted_layers)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SimConfig:
        """The config of :meth:`to_dict`'s output; unknown keys (e.g. ``tags``) are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        if kw.get("adapted_layers") is not None:
            kw["adapted_layers"] = tuple(kw["adapted_layers"])
        return cls(**kw)
