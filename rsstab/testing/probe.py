"""Black-box probes of a LoRA-style module: train it briefly on a synthetic task and measure it.

This is the torch half of :mod:`rsstab.testing` (imported only when a check runs). It knows
nothing about the module's internals: it sees a ``torch.nn.Module`` mapping ``(batch, d_in)`` to
``(batch, d_out)`` whose trainable parameters are its adapters, and measures, like a mup
coordinate check, three quantities per (rank, seed):

* ``grad_init`` — ``‖∇_θ L‖`` over all trainable parameters θ at step 0 (with LoRA's ``B = 0``
  the gradient of A vanishes there, so this is ``‖∇_B L‖_F``);
* ``forward`` — RMS over held-out inputs and output coordinates of the learned change
  ``f(x) − f_0(x)``, where ``f_0`` is the same module with its trainable parameters reset to their
  initial values (``torch.func.functional_call``; for LoRA ``f_0`` is the frozen base, since the
  initial adapter contribution is zero);
* ``backward`` — RMS of the gradient into the input through the learned change only,
  ``∂/∂x Σ_i ⟨v_i, f(x_i) − f_0(x_i)⟩`` with ``v_i = f(x_i) − y_i`` the per-example held-out loss
  gradient (no gradient flows into ``v``), taken to first order in the parameter change (see
  :func:`_backward`).

The task: inputs ``x ~ N(0, I)``; targets ``y = f_0(x) + x Tᵀ`` with ``T`` a fixed Gaussian
matrix of entries ``N(0, 1/d_in)``, so the initial residual is Θ(1) per entry whatever the base;
loss ``½‖f(x) − y‖²`` averaged over the batch; a fresh batch every step; plain
``torch.optim.SGD`` or ``torch.optim.Adam``. A small learning rate keeps training in the
linearised regime the theory describes, and float64 keeps ``f − f_0`` accurate when the learned
change is many orders of magnitude below the base output.

Randomness: for seed ``s`` the global torch RNG is seeded with a value that depends on ``s`` only
(not on the rank) just before ``factory(r)`` is called, inside :func:`torch.random.fork_rng` so
the caller's RNG state is untouched; the data come from a separate generator with the same
property. Ranks therefore share the base weights (when the factory draws them first) and the data:
common random numbers that make slopes across ranks less noisy. Same arguments → same numbers.

>>> import torch
>>> class Doubler(torch.nn.Module):          # learned change = (w − 1)·x, w trainable
...     def __init__(self) -> None:
...         super().__init__()
...         self.w = torch.nn.Parameter(torch.ones(()))
...     def forward(self, x: torch.Tensor) -> torch.Tensor:
...         return self.w * x
>>> m = measure(lambda r: Doubler(), rank=1, seed=0, optimizer="sgd", steps=2, batch=4,
...             probe_batch=8, lr=1e-3, d_in=3)
>>> sorted(m.values), m.diverged_step
(['backward', 'forward', 'grad_init'], -1)
>>> all(v > 0 for v in m.values.values())
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rsstab.errors import RsstabError

__all__ = ["Measurement", "measure", "infer_d_in", "DTYPES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}

_SEED_MULT = 1_000_003


@dataclass(frozen=True)
class Measurement:
    """The probes of one (rank, seed): ``values[q]`` for q in grad_init, forward, backward
    (``nan`` for a run whose training loss became non-finite), the step at which the loss
    became non-finite (``-1`` if it never did), the input width used, and how ``backward`` was
    computed (``"jvp"``, ``"difference"``, or ``""`` when it was not)."""

    rank: int
    seed: int
    values: dict[str, float]
    diverged_step: int
    d_in: int
    backward_method: str = ""
    #: With ``keep=True``: the learned change on the held-out inputs and the backward tangent for the
    #: A-independent output gradient ``v₀ = f_0(x) − y`` (tensors; for the coherent split).
    change: torch.Tensor | None = None
    tangent: torch.Tensor | None = None


def infer_d_in(module: torch.nn.Module) -> int | None:
    """The input width of the first submodule that declares ``in_features`` (``nn.Linear``, PEFT's
    LoRA layers, most adapter layers), or ``None``.

    >>> infer_d_in(torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.ReLU()))
    5
    >>> infer_d_in(torch.nn.ReLU()) is None
    True
    """
    for sub in module.modules():
        width = getattr(sub, "in_features", None)
        if isinstance(width, int) and width > 0:
            return width
    return None


def _build(factory: Callable[[int], object], rank: int, torch_seed: int, dtype: torch.dtype) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        module = factory(rank)
    if not isinstance(module, torch.nn.Module):
        raise RsstabError(f"factory({rank}) returned {type(module).__name__}, expected a torch.nn.Module")
    return module.to(dtype).eval()


def _call(module: torch.nn.Module, x: torch.Tensor, rank: int, d_out: int | None = None) -> torch.Tensor:
    out = module(x)
    if not isinstance(out, torch.Tensor):
        raise RsstabError(
            f"the module built for rank {rank} returned {type(out).__name__}: it must map a (batch, d_in) "
            "tensor to a (batch, d_out) tensor"
        )
    if out.ndim != 2 or out.shape[0] != x.shape[0] or (d_out is not None and out.shape[1] != d_out):
        raise RsstabError(
            f"the module built for rank {rank} mapped an input of shape {tuple(x.shape)} to shape "
            f"{tuple(out.shape)}: expected (batch, d_out)"
        )
    return out


def measure(
    factory: Callable[[int], object],
    *,
    rank: int,
    seed: int,
    optimizer: str,
    steps: int,
    batch: int,
    probe_batch: int,
    lr: float,
    d_in: int | None = None,
    dtype: str = "float64",
    base_seed: int = 0,
    draw: int = 0,
    keep: bool = False,
    coherent_probes: int | None = None,
) -> Measurement:
    """Build ``factory(rank)``, train it ``steps`` steps on the synthetic task, and probe it.

    ``draw`` > 0 re-draws the module (its adapters) with another torch seed and then copies every
    frozen parameter and buffer from draw 0's module, so draws 0, 1, … of one ``seed`` share the
    base and the data and differ only in the adapters' random initialisation (the A of LoRA).
    ``keep`` returns the learned change and the backward tangent as tensors (see
    :class:`Measurement`), on ``max(probe_batch, coherent_probes)`` held-out inputs (default
    ``coherent_probes``: the input width): the first ``probe_batch`` are those of the RMS values,
    the others are drawn after the task, so the task and the RMS values do not depend on
    ``coherent_probes``. The coherent part is estimated from products of draws whose incoherent
    squares, at r ≪ width, are ~width/r times the coherent one; averaging them over fewer held-out
    inputs than the width leaves an error larger than that of the draws themselves (see
    :func:`rsstab.testing.stability.check_rank_stability`).

    Raises:
        RsstabError: the factory does not return a module, the module has no trainable
            parameters, its input width cannot be inferred, or its output is not
            ``(batch, d_out)``.
    """
    dt = DTYPES[dtype]
    stream = (int(base_seed) * _SEED_MULT + int(seed)) % (2**62)
    module = _build(factory, rank, 12345 + stream, dt)
    if draw:
        reference = module
        module = _build(factory, rank, 12345 + stream + 7919 * int(draw) * _SEED_MULT % (2**61), dt)
        trainable = {n for n, p in module.named_parameters() if p.requires_grad}
        frozen = {k: v for k, v in reference.state_dict().items() if k not in trainable}
        module.load_state_dict(frozen, strict=False)
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        raise RsstabError(
            f"the module built for rank {rank} has no trainable parameters: leave the adapters "
            "trainable (requires_grad=True) and freeze everything else"
        )
    width = d_in if d_in is not None else infer_d_in(module)
    if width is None:
        raise RsstabError(f"cannot infer the input width of the module built for rank {rank}: pass d_in=")
    initial = {n: p.detach().clone() for n, p in named}
    params = [p for _, p in named]

    def f0(x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(module, initial, (x,), strict=False)

    device = params[0].device
    gen = torch.Generator().manual_seed(777 + stream)  # drawn on the CPU: same numbers on any device
    x_train = torch.randn(steps * batch, width, generator=gen, dtype=torch.float64).to(device, dt)
    x_test = torch.randn(probe_batch, width, generator=gen, dtype=torch.float64).to(device, dt)
    with torch.no_grad():
        try:
            out0 = _call(module, x_test, rank)
        except RsstabError:
            raise
        except Exception as exc:  # the usual cause: a wrong input width
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise RsstabError(
                f"the module built for rank {rank} failed on inputs of shape {tuple(x_test.shape)} "
                f"(is d_in={width} right?): {first}"
            ) from exc
        d_out = int(out0.shape[1])
        teacher = (torch.randn(d_out, width, generator=gen, dtype=torch.float64) / math.sqrt(width)).to(device, dt)
        y_train = torch.cat([_call(module, x_train[i : i + batch], rank, d_out) for i in range(0, len(x_train), batch)])
        y_train = y_train + x_train @ teacher.T
        y_test = out0 + x_test @ teacher.T
        n_keep = max(probe_batch, width if coherent_probes is None else int(coherent_probes))
        if keep and n_keep > probe_batch:
            x_more = torch.randn(n_keep - probe_batch, width, generator=gen, dtype=torch.float64).to(device, dt)
            out0_more = _call(module, x_more, rank, d_out)
            x_keep = torch.cat([x_test, x_more])
            out0_keep = torch.cat([out0, out0_more])
            y_keep = torch.cat([y_test, out0_more + x_more @ teacher.T])
        else:
            x_keep, out0_keep, y_keep = x_test, out0, y_test

    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr)
    else:
        opt = torch.optim.Adam(params, lr=lr)
    values = {"grad_init": math.nan, "forward": math.nan, "backward": math.nan}
    diverged = -1
    for t in range(steps):
        xb, yb = x_train[t * batch : (t + 1) * batch], y_train[t * batch : (t + 1) * batch]
        opt.zero_grad(set_to_none=False)
        loss = 0.5 * (_call(module, xb, rank, d_out) - yb).pow(2).sum() / batch
        if not torch.isfinite(loss):
            diverged = t
            break
        loss.backward()
        if t == 0:
            total = sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None)
            values["grad_init"] = math.sqrt(total)
        opt.step()

    method = ""
    change_kept = tangent_kept = None
    if diverged < 0:
        with torch.no_grad():
            out = _call(module, x_test, rank, d_out)
            change = out - f0(x_test)
        if torch.isfinite(change).all():
            v = out - y_test
            delta = {n: p.detach() - initial[n] for n, p in named}
            values["forward"] = float(change.double().pow(2).mean().sqrt())
            backward, method = _backward(module, f0, initial, delta, x_test, v)
            values["backward"] = backward
            if keep:
                if x_keep is x_test:
                    change_kept = change.detach().double()
                else:
                    with torch.no_grad():
                        change_kept = (_call(module, x_keep, rank, d_out) - f0(x_keep)).double()
                tangent_kept = _backward(module, f0, initial, delta, x_keep, out0_keep - y_keep, tensor=True)[0]
        else:
            diverged = steps
    for p in params:
        p.grad = None
    return Measurement(rank=int(rank), seed=int(seed), values=values, diverged_step=diverged,
                       d_in=int(width), backward_method=method, change=change_kept, tangent=tangent_kept)


def _backward(
    module: torch.nn.Module,
    f0: Callable[[torch.Tensor], torch.Tensor],
    initial: dict[str, torch.Tensor],
    delta: dict[str, torch.Tensor],
    x: torch.Tensor,
    v: torch.Tensor,
    tensor: bool = False,
) -> tuple[Any, str]:
    """RMS of the gradient into the input through the learned change.

    Preferred (``"jvp"``): the first-order change of the input gradient ``J_f(x; θ)ᵀ v`` along the
    learned parameter change ``Δθ = θ − θ_0``, a forward-mode derivative of a reverse-mode one
    (``torch.func.jvp`` of ``torch.func.vjp``). It is exact for LoRA up to O(Δθ²) and, unlike
    a difference of input gradients, is not spoiled in piecewise-linear networks by the rare
    examples whose ReLU pattern flips during training (each contributes a Θ(1) jump). Fallback
    (``"difference"``), for modules torch.func cannot trace: ``J_f(x)ᵀ v − J_{f_0}(x)ᵀ v``.
    ``tensor=True`` returns the gradient itself (float64) instead of its RMS.
    """

    def input_grad(params: dict[str, torch.Tensor]) -> torch.Tensor:
        def out(inp: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(module, params, (inp,), strict=False)

        _, pull = torch.func.vjp(out, x)
        return pull(v)[0]

    try:
        with warnings.catch_warnings():
            # torch's forward-mode AD scripts its decompositions on first use, which warns
            # (DeprecationWarning) in recent releases: not the user's concern, and fatal under -W error.
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
            _, tangent = torch.func.jvp(input_grad, (initial,), (delta,))
        t = tangent.detach().double()
        return (t if tensor else float(t.pow(2).mean().sqrt())), "jvp"
    except (RuntimeError, NotImplementedError, TypeError):
        pass
    xg = x.clone().requires_grad_(True)
    change = module(xg) - f0(xg)
    (gx,) = torch.autograd.grad((change * v).sum(), xg, allow_unused=True)
    g = torch.zeros_like(x, dtype=torch.float64) if gx is None else gx.detach().double()
    return (g if tensor else float(g.pow(2).mean().sqrt())), "difference"
