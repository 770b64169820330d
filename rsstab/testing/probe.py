"""Black-box probes of a LoRA-style module: train it briefly on a synthetic task and measure it.

This is the torch half of :mod:`rsstab.testing` (imported only when a check runs). It knows
nothing about the module's internals: it sees a ``torch.nn.Module`` mapping ``(batch, d_in)`` to
``(batch, d_out)`` whose trainable parameters are its adapters, and measures, like a mup
coordinate check, three quantities per (rank, seed):

* ``grad_init`` — ``‖∇_θ L‖`` over all trainable parameters θ at step 0 (with LoRA's ``B = 0``
  the gradient of A vanishes there, so this is ``‖∇_B L‖_F``);
* ``forward`` — RMS over held-out inputs and output coordinates of the learned change
  ``f(x) − f_0(x)``, where ``f_0`` is the same module with its trainable parameters at their
  initial values (for LoRA ``f_0`` is the frozen base, since the initial adapter contribution is
  zero), to first order in the parameter change (see :class:`_Probe`);
* ``backward`` — RMS of the gradient into the input through the learned change only,
  ``∂/∂x Σ_i ⟨v_i, f(x_i) − f_0(x_i)⟩`` with ``v_i = f_0(x_i) − y_i`` the per-example held-out
  loss gradient (no gradient flows into ``v``), taken to first order in the parameter change (see
  :class:`_Probe`; the trained loss gradient would differ by the learned change, a term of second
  order).

The task: inputs ``x ~ N(0, I)``; targets ``y = f_0(x) + x Tᵀ`` with ``T`` a fixed Gaussian
matrix of entries ``N(0, 1/d_in)``, so the initial residual is Θ(1) per entry whatever the base;
loss ``½‖f(x) − y‖²`` averaged over the batch; a fresh batch every step; plain
``torch.optim.SGD`` or ``torch.optim.Adam``. A small learning rate keeps training in the
small-η range, where the linearised (first-order) laws the theory describes hold. The learned
change and the backward tangent are forward-mode derivatives along the learned parameter step (no
difference of two nearly equal outputs), so float32, the default, measures them even when the
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    #: With ``keep=True`` at draw 0: the module's frozen parameters and buffers, which later draws
    #: of the same seed copy (``measure(frozen=…)``) instead of rebuilding draw 0.
    frozen: dict[str, torch.Tensor] | None = None
    #: With ``first_order=True``: the relative distance of the learned change from its first order
    #: in η (see :func:`first_order_step`), ``RMS(J·(δ − δ¹)) / RMS(J·δ¹)`` on the held-out inputs —
    #: the size of every higher-order term at once, measured; ``nan`` when not measured.
    first_order_gap: float = math.nan


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
    return _checked(module(x), x, rank, d_out)


def _checked(out: object, x: torch.Tensor, rank: int, d_out: int | None = None) -> torch.Tensor:
    """``out``, the module's output on ``x``, if it is a (batch, d_out) tensor; else a one-line error."""
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
    dtype: str = "float32",
    base_seed: int = 0,
    draw: int = 0,
    keep: bool = False,
    coherent_probes: int | None = None,
    frozen: dict[str, torch.Tensor] | None = None,
    first_order: bool = False,
) -> Measurement:
    """Build ``factory(rank)``, train it ``steps`` steps on the synthetic task, and probe it.

    Training moves a displacement ``δ`` (zero at the start) and evaluates the module at
    ``θ_0 + δ`` (``torch.func.functional_call``), so the learned parameter change is ``δ`` itself,
    exact in any dtype, not a difference ``θ − θ_0`` that float32 would round away. The learned
    change of the output and the backward tangent are forward-mode derivatives along ``δ``
    (``torch.func.jvp``): first order in ``δ``, the order of the theory, with no difference of two
    nearly equal outputs — which is why float32 (the default) measures them as well as float64
    did (relative error ~1e-6 at the default learning rate; the second-order term is
    ``O(|δ_A|/|A|)`` ≈ 1e-5 there). A module torch.func cannot trace falls back to differences in
    float64 (``backward_method == "difference"``).

    ``draw`` > 0 re-draws the module (its adapters) with another torch seed and then copies every
    frozen parameter and buffer from draw 0's module (``frozen``: that module's frozen state, when
    the caller kept it; else draw 0 is rebuilt), so draws 0, 1, … of one ``seed`` share the base
    and the data and differ only in the adapters' random initialisation (the A of LoRA).
    ``keep`` returns the learned change and the backward tangent as tensors (see
    :class:`Measurement`), on ``max(probe_batch, coherent_probes)`` held-out inputs (default
    ``coherent_probes``: the input width): the first ``probe_batch`` are those of the RMS values,
    the others are drawn after the task, so the task and the RMS values do not depend on
    ``coherent_probes``. The coherent part is estimated from products of draws whose incoherent
    squares, at r ≪ width, are ~width/r times the coherent one; averaging them over fewer held-out
    inputs than the width leaves an error larger than that of the draws themselves (see
    :func:`rsstab.testing.stability.check_rank_stability`).
    ``first_order`` also measures how far the trained step ``δ`` is from its first order in the
    learning rate, ``δ¹`` (:func:`first_order_step`): ``first_order_gap``.

    Raises:
        RsstabError: the factory does not return a module, the module has no trainable
            parameters, its input width cannot be inferred, or its output is not
            ``(batch, d_out)``.
    """
    dt = DTYPES[dtype]
    stream = (int(base_seed) * _SEED_MULT + int(seed)) % (2**62)
    module = _build(factory, rank, 12345 + stream, dt)
    if draw:
        if frozen is None:
            frozen = frozen_state(_build(factory, rank, 12345 + stream, dt))
        module = _build(factory, rank, 12345 + stream + 7919 * int(draw) * _SEED_MULT % (2**61), dt)
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
    kept_frozen = frozen_state(module) if keep and not draw else None
    delta = {n: torch.zeros_like(p, requires_grad=True) for n, p in named}
    for p in module.parameters():  # the module stays at θ_0; training moves δ
        p.requires_grad_(False)

    def at(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The module at trainable parameters ``params``."""
        return _checked(torch.func.functional_call(module, params, (x,), strict=False), x, rank, d_out)

    def f(x: torch.Tensor) -> torch.Tensor:
        return at({n: initial[n] + delta[n] for n in initial}, x)

    device = initial[named[0][0]].device
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
        chunk = max(batch, 512)  # f_0 in a few large calls: the same numbers, fewer passes
        y_train = torch.cat([_call(module, x_train[i : i + chunk], rank, d_out) for i in range(0, len(x_train), chunk)])
        y_train = y_train + x_train @ teacher.T
        n_keep = max(probe_batch, width if coherent_probes is None else int(coherent_probes))
        x_keep = x_test
        if keep and n_keep > probe_batch:
            x_more = torch.randn(n_keep - probe_batch, width, generator=gen, dtype=torch.float64).to(device, dt)
            x_keep = torch.cat([x_test, x_more])

    params = list(delta.values())
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr)
    else:
        opt = torch.optim.Adam(params, lr=lr)
    values = {"grad_init": math.nan, "forward": math.nan, "backward": math.nan}
    diverged = -1
    gap = math.nan
    for t in range(steps):
        xb, yb = x_train[t * batch : (t + 1) * batch], y_train[t * batch : (t + 1) * batch]
        opt.zero_grad(set_to_none=False)
        loss = 0.5 * (f(xb) - yb).pow(2).sum() / batch
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
        probe = _Probe(module, initial, {n: d.detach() for n, d in delta.items()})
        # v₀ = f_0(x) − y = −x Tᵀ: the held-out loss gradient at θ_0, known without a forward pass
        # (the trained one differs by the learned change: a second-order term in the tangent)
        change, tangent, method = probe.change_and_tangent(x_keep, -(x_keep @ teacher.T))
        if torch.isfinite(change).all() and torch.isfinite(tangent).all():
            values["forward"] = float(change[:probe_batch].pow(2).mean().sqrt())
            values["backward"] = float(tangent[:probe_batch].pow(2).mean().sqrt())
            if keep:
                change_kept, tangent_kept = change, tangent
            if first_order:
                gap = _first_order_gap(probe, change[:probe_batch], x_test[:probe_batch], lambda: first_order_step(
                    at, initial, x_train, teacher, optimizer=optimizer, steps=steps, batch=batch, lr=lr))
        else:
            diverged = steps
    return Measurement(rank=int(rank), seed=int(seed), values=values, diverged_step=diverged,
                       d_in=int(width), backward_method=method, change=change_kept, tangent=tangent_kept,
                       frozen=kept_frozen, first_order_gap=gap)


def first_order_step(
    at: Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor],
    initial: dict[str, torch.Tensor],
    x_train: torch.Tensor,
    teacher: torch.Tensor,
    *,
    optimizer: str,
    steps: int,
    batch: int,
    lr: float,
) -> dict[str, torch.Tensor]:
    """The parameter step to first order in the learning rate, ``δ¹``: the optimizer's steps taken
    with every gradient evaluated at ``θ_0`` (the sum the finite-(r, d) laws take). On the task of
    :func:`measure` the residual at ``θ_0`` is exactly ``−x·Tᵀ``, so step t's gradient at ``θ_0``
    is one vector–Jacobian product, ``−J_tᵀ·x_t·Tᵀ / batch``. Under SGD ``δ¹ = −η·Σ_t ∇L_t(θ_0)``,
    one product over all the steps' inputs; under Adam, ``torch.optim.Adam`` on a displacement
    fed those gradients (Adam's normalisation is part of the first order, not a next term).

    ``at(params, x)`` is the module at trainable parameters ``params`` (name → tensor)."""

    def grads_at_theta0(x: torch.Tensor) -> dict[str, torch.Tensor]:
        pull = torch.func.vjp(lambda p: at(p, x), initial)[1]
        grads: dict[str, torch.Tensor] = pull(-(x @ teacher.T) / batch)[0]
        return grads

    if optimizer == "sgd":
        return {n: -lr * g.detach() for n, g in grads_at_theta0(x_train[: steps * batch]).items()}
    step = {n: torch.zeros_like(t, requires_grad=True) for n, t in initial.items()}
    opt = torch.optim.Adam(list(step.values()), lr=lr)
    for t in range(steps):
        for n, g in grads_at_theta0(x_train[t * batch : (t + 1) * batch]).items():
            step[n].grad = g.detach()
        opt.step()
    return {n: p.detach() for n, p in step.items()}


def _first_order_gap(
    probe: _Probe,
    change: torch.Tensor,
    x: torch.Tensor,
    first_order: Callable[[], dict[str, torch.Tensor]],
) -> float:
    """``RMS(J·δ − J·δ¹) / RMS(J·δ¹)`` on the held-out inputs ``x``, where ``change`` = J·δ is the
    measured learned change there and ``first_order()`` forms δ¹ (:func:`first_order_step`); nan where
    it cannot be formed (a module torch.func cannot trace, or a first-order change of 0)."""
    try:
        c1 = probe.change_along(x, first_order())
    except (RuntimeError, NotImplementedError, TypeError):
        return math.nan
    den = float(c1.pow(2).mean().sqrt())
    num = float((change.double() - c1).pow(2).mean().sqrt())
    return num / den if den > 0 and math.isfinite(num) else math.nan


def frozen_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The frozen parameters and buffers of ``module`` (what draws > 0 copy from draw 0)."""
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    return {k: v for k, v in module.state_dict().items() if k not in trainable}


@contextmanager
def _forward_mode() -> Iterator[None]:
    """Around ``torch.func.jvp``: torch's forward-mode AD scripts its decompositions on first use,
    which warns (DeprecationWarning) in recent releases: not the user's concern, and fatal under
    -W error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
        yield


class _Probe:
    """First-order probes of the learned change along the parameter step ``δ``.

    Preferred (``"jvp"``): forward-mode derivatives at ``θ_0`` along ``δ`` — of the output (the
    learned change ``J_θ f · δ``) and of the input gradient ``J_x f(x; θ)ᵀ v`` (a ``torch.func.jvp``
    of a ``torch.func.vjp``), both in one pass. Exact for LoRA up to O(δ²) and, unlike a difference
    of input gradients, not spoiled in piecewise-linear networks by the rare examples whose ReLU
    pattern flips during training (each would contribute a Θ(1) jump). Fallback
    (``"difference"``), for modules torch.func cannot trace: ``f(θ_0 + δ) − f(θ_0)`` and
    ``J_f(x)ᵀ v − J_{f_0}(x)ᵀ v`` in float64 (the module is converted once). Results are float64.
    """

    def __init__(self, module: torch.nn.Module, initial: dict[str, torch.Tensor], step: dict[str, torch.Tensor]) -> None:
        self.module, self.initial, self.step = module, initial, step

    def _call(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.module, params, (x,), strict=False)

    def change_along(self, x: torch.Tensor, step: dict[str, torch.Tensor]) -> torch.Tensor:
        """The learned change on ``x`` along another parameter step, ``J_θ f · step`` at ``θ_0``
        (forward mode; float64)."""
        with _forward_mode():
            change = torch.func.jvp(lambda p: self._call(p, x), (self.initial,), (step,))[1]
        return change.detach().double()

    def change_and_tangent(self, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, str]:
        """The learned change on ``x`` and the backward tangent for the output gradient ``v``."""

        def both(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            # (output, vjp_fn) without has_aux; torch's annotation allows the has_aux triple too
            out, pull = torch.func.vjp(lambda inp: self._call(params, inp), x)  # type: ignore[misc]
            return out, pull(v)[0]

        try:
            with _forward_mode():
                _, (change, tangent) = torch.func.jvp(both, (self.initial,), (self.step,))  # type: ignore[misc]  # as vjp
            return change.detach().double(), tangent.detach().double(), "jvp"
        except (RuntimeError, NotImplementedError, TypeError):
            pass
        return self._difference_change(x), self._difference_tangent(x, v), "difference"

    def _double(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        self.module.double()  # frozen parameters and buffers; a no-op once done
        theta0 = {n: t.double() for n, t in self.initial.items()}
        return theta0, {n: theta0[n] + self.step[n].double() for n in theta0}

    def _difference_change(self, x: torch.Tensor) -> torch.Tensor:
        theta0, theta = self._double()
        with torch.no_grad():
            return (self._call(theta, x.double()) - self._call(theta0, x.double())).detach()

    def _difference_tangent(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        theta0, theta = self._double()
        xg = x.double().clone().requires_grad_(True)
        change = self._call(theta, xg) - self._call(theta0, xg)
        (gx,) = torch.autograd.grad((change * v.double()).sum(), xg, allow_unused=True)
        return torch.zeros_like(xg) if gx is None else gx.detach()
