"""Beyond first order in η: the exact finite-η solution of the simulator's depth-1 task under SGD.

On one linear layer (depth 1) the simulator's task is a linear teacher–student problem: inputs
x ~ N(0, I_d), loss ½‖(W + M − W − D)x‖², M = γ·B·A the learned change, D the teacher's planted
rank-k perturbation (d×d). Over the population (Σ = E[xxᵀ] = I) SGD with B₀ = 0 is, exactly
(result 14, ``rsstab derive finite-eta``), a closed recursion of three d×d matrices — the learned
change M and the kernels K_A = γ²·AᵀA, K_B = γ²·B·Bᵀ — with E = D − M the residual:

    M'   = M   + η_B·E·K_A + η_A·K_B·E + η_A·η_B·γ²·E·Mᵀ·E
    K_A' = K_A + η_A·γ²·(MᵀE + EᵀM) + η_A²·γ²·Eᵀ·K_B·E
    K_B' = K_B + η_B·γ²·(E·Mᵀ + M·Eᵀ) + η_B²·γ²·E·K_A·Eᵀ

from M = 0, K_B = 0 and K_A = γ²·A₀ᵀA₀: the rank r enters once, through K_A's Wishart law
(γ²σ_A²·Wishart_d(r)). B's columns stay in D's column space, so M and E have k non-zero rows and
K_B is k×k (with D = U·S·Vᵀ rotated to diag(S), which K_A's rotation-invariant law allows): a step
costs O(k·d²). The first-order law is the linear term, M¹_n = n·η_B·D·K_A; the saturation of B
(E shrinking) and A's own learning (K_A, K_B growing together) are all of the rest.

Its expectation over A is evaluated over **reference draws** (K_A from its Wishart law, the
Bartlett factor for r ≥ d; D's singular values from the teacher's Gaussian factors, scaled to the
run's residual), drawn from their own generator — never the simulator's. What rsstab uses is the
ratio of the finite-η solution to its own first order, for the coherent part (the mean over A)
and for the incoherent part (the fluctuation), with the same draws on both sides so their
sampling error largely cancels: :func:`sgd_finite_eta` returns these **correction factors**, which
:mod:`rsstab.measure.predict` applies to the exact first-order law made from the run's data.

**Its range.** The recursion is the population's: the batch's covariance Σ_t = XᵀX/b is I on
average, and its fluctuation — a relative size √((d + 1)/b) per step — interacts with the
nonlinearity. The same recursion with Σ_t drawn (``batch``) gives the mean square's factor with that
fluctuation; ``noise`` = |κ_batch/κ − 1| is the part the correction leaves out, and the
prediction is in range while it is ≤ :data:`rsstab.theory.EXPANSION_LIMIT`. A trajectory that
overflows is ``diverged``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from rsstab.theory import EXPANSION_LIMIT

__all__ = ["FiniteEta", "sgd_finite_eta", "population_step", "REFERENCE_TEACHERS", "REFERENCE_DRAWS"]

#: Reference draws: teachers (D's singular values), and draws of A per teacher.
REFERENCE_TEACHERS = 8
REFERENCE_DRAWS = 32


@dataclass(frozen=True)
class FiniteEta:
    """Correction factors of the first-order law (finite-η mean square over first-order mean square):
    ``coherent`` and ``incoherent``; ``noise`` the batch-noise term they leave out (relative); ``diverged``
    when the population trajectory overflows."""

    coherent: float
    incoherent: float
    noise: float
    diverged: bool = False

    @property
    def in_range(self) -> bool:
        return not self.diverged and math.isfinite(self.coherent) and math.isfinite(self.incoherent) \
            and self.noise <= EXPANSION_LIMIT


def population_step(M: np.ndarray, KA: np.ndarray, KB: np.ndarray, D: np.ndarray, *, lr_a: float, lr_b: float,
                    gamma: float, sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One SGD step of the closed recursion (module docstring), batched over a leading axis: ``M``, ``D``
    (…, k, d) — the learned change's and the teacher's non-zero rows —, ``KA`` (…, d, d), ``KB`` (…, k, k).
    ``sigma`` (…, d, d): the step's batch covariance (None: the population's, I): the gradient of M is
    then −E·Σ, and E·Σ replaces E wherever a gradient enters.

    >>> k, d = 1, 2
    >>> M, KA, KB = np.zeros((k, d)), np.eye(d) * 0.5, np.zeros((k, k))
    >>> D = np.array([[2.0, 0.0]])
    >>> M, KA, KB = population_step(M, KA, KB, D, lr_a=0.1, lr_b=0.1, gamma=1.0)
    >>> M.tolist(), KB.tolist()        # η_B·D·K_A, and η_B²γ²·D·K_A·Dᵀ
    ([[0.1, 0.0]], [[0.020000000000000004]])
    """
    E = D - M
    G = E if sigma is None else E @ sigma  # −∇_M
    Gt = np.swapaxes(G, -1, -2)
    Mt = np.swapaxes(M, -1, -2)
    g2 = gamma * gamma
    GK = G @ KA
    M_next = M + lr_b * GK + lr_a * (KB @ G) + lr_a * lr_b * g2 * (G @ Mt @ G)
    MtG = Mt @ G
    KA_next = KA + lr_a * g2 * (MtG + np.swapaxes(MtG, -1, -2)) + lr_a * lr_a * g2 * (Gt @ KB @ G)
    GMt = G @ Mt
    KB_next = KB + lr_b * g2 * (GMt + np.swapaxes(GMt, -1, -2)) + lr_b * lr_b * g2 * (GK @ Gt)
    return M_next, KA_next, KB_next


def _wishart(rng: np.random.Generator, n: int, d: int, r: int) -> np.ndarray:
    """n draws of A₀ᵀA₀ (d×d) for an r×d matrix of iid N(0, 1): explicit for r < d, else RᵀR with the
    Bartlett factor R (χ²(r − i) diagonal, N(0, 1) above), exact in distribution whatever r."""
    if r < d:
        A = rng.standard_normal((n, r, d))
        return np.swapaxes(A, 1, 2) @ A
    R = np.triu(rng.standard_normal((n, d, d)), 1)
    idx = np.arange(d)
    R[:, idx, idx] = np.sqrt(rng.chisquare(float(r) - idx, size=(n, d)))
    return np.swapaxes(R, 1, 2) @ R


def _split(X: np.ndarray) -> tuple[float, float]:
    """(coherent², incoherent²) of draws X (draws, …): the U-statistic of the mean's square and the
    sample variance, summed over entries (as :func:`rsstab.sim.finite.seed_split`, in numpy)."""
    S = X.shape[0]
    X = X.reshape(S, -1)
    t1 = X.sum(0)
    m11, m2 = float((t1 * t1).sum()), float((X * X).sum())
    return (m11 - m2) / (S * (S - 1)), (m2 - m11 / S) / (S - 1)


def _factors(rng: np.random.Generator, *, r: int, d: int, k: int, gamma: float, lr_a: float, lr_b: float, n: int,
             sigma_a2: float, residual2: float, batch: int | None, teachers: int,
             draws: int) -> tuple[float, float, float]:
    """(κ_coh, κ_inc, κ) over reference draws — κ the mean square's (coherent² + incoherent²); with
    ``batch``, each teacher's run draws its Σ_t (shared by its A draws: the coherent part is over A at
    fixed data, as the simulator measures it)."""
    num = np.zeros(2)
    den = np.zeros(2)
    for _ in range(teachers):
        U, V = rng.standard_normal((d, k)), rng.standard_normal((d, k))
        s = np.linalg.svd(U @ V.T, compute_uv=False)[:k]
        s *= math.sqrt(residual2 / float((s * s).sum()))
        D = np.zeros((k, d))
        D[np.arange(k), np.arange(k)] = s
        KA0 = gamma * gamma * sigma_a2 * _wishart(rng, draws, d, r)
        M, KA, KB = np.zeros((draws, k, d)), KA0, np.zeros((draws, k, k))
        sig_sum = np.zeros((d, d))
        with np.errstate(all="ignore"):
            for _t in range(n):
                sigma = None
                if batch is not None:
                    X = rng.standard_normal((batch, d))
                    sigma = X.T @ X / batch
                    sig_sum += sigma
                M, KA, KB = population_step(M, KA, KB, D, lr_a=lr_a, lr_b=lr_b, gamma=gamma, sigma=sigma)
            first = lr_b * (D @ sig_sum) @ KA0 if batch is not None else n * lr_b * D @ KA0  # M¹_n
        if not np.all(np.isfinite(M)):
            return math.inf, math.inf, math.inf
        num += _split(M)
        den += _split(first)
    coh = num[0] / den[0] if den[0] > 0 else 1.0
    inc = num[1] / den[1] if den[1] > 0 else 1.0
    return float(coh), float(inc), float(num.sum() / den.sum())


@lru_cache(maxsize=512)
def _cached(r: int, d: int, k: int, gamma: float, lr_a: float, lr_b: float, n: int, sigma_a2: float,
            residual2: float, batch: int, teachers: int, draws: int, seed: int) -> FiniteEta:
    kw: dict[str, Any] = dict(r=r, d=d, k=k, gamma=gamma, lr_a=lr_a, lr_b=lr_b, n=n, sigma_a2=sigma_a2,
                              residual2=residual2, teachers=teachers, draws=draws)
    coh, inc, total = _factors(np.random.default_rng([seed, 0]), batch=None, **kw)
    if not (math.isfinite(coh) and math.isfinite(inc)):
        return FiniteEta(math.nan, math.nan, math.inf, diverged=True)
    *_, batch_total = _factors(np.random.default_rng([seed, 1]), batch=batch, **kw)
    # the batch-noise term: how much drawing Σ_t moves the mean square's correction
    noise = abs(batch_total / total - 1) if math.isfinite(batch_total) and total > 0 else math.inf
    return FiniteEta(coh, inc, noise)


def sgd_finite_eta(*, rank: int, width: int, teacher_rank: int, gamma: float, lr_a: float, lr_b: float, steps: int,
                   sigma_a2: float, residual2: float, batch: int, teachers: int = REFERENCE_TEACHERS,
                   draws: int = REFERENCE_DRAWS, seed: int = 0) -> FiniteEta:
    """The finite-η correction factors of SGD's first-order law on the depth-1 task (module docstring):
    ``residual2`` = ‖D‖_F² (the teacher's perturbation, per the run's data), ``sigma_a2`` = σ_A², the
    reference draws from ``seed``. Cached: a rank's cells share one evaluation.

    >>> f = sgd_finite_eta(rank=256, width=16, teacher_rank=2, gamma=1 / 16, lr_a=1e-6, lr_b=1e-6, steps=10,
    ...                    sigma_a2=1 / 16, residual2=4.0, batch=64)
    >>> round(f.coherent, 4), round(f.incoherent, 4), f.in_range        # η → 0: the first order itself
    (1.0, 1.0, True)
    """
    r, d, k = int(rank), int(width), min(int(teacher_rank), int(width))
    return _cached(r, d, k, float(gamma), float(lr_a), float(lr_b), int(steps), float(sigma_a2), float(residual2),
                   int(batch), int(teachers), int(draws), int(seed))
