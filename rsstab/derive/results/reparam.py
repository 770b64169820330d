"""Result 8: under SGD, γ_r is a B-versus-A learning-rate ratio (the bridge to LoRA+)."""

from __future__ import annotations

import random

import sympy as sp

from rsstab.derive.model import Derivation
from rsstab.derive.results.sgd import gradient_check
from rsstab.derive.symbols import eta, gamma, lhs, named

__all__ = ["reparam", "reparametrised_trajectories"]


def _matmul(X: list[list[float]], Y: list[list[float]]) -> list[list[float]]:
    return [[sum(a * b for a, b in zip(row, col)) for col in zip(*Y)] for row in X]


def _tr(X: list[list[float]]) -> list[list[float]]:
    return [list(c) for c in zip(*X)]


def _axpy(X: list[list[float]], Y: list[list[float]], c: float) -> list[list[float]]:
    return [[a + c * b for a, b in zip(rx, ry)] for rx, ry in zip(X, Y)]


def reparametrised_trajectories(gamma_value: float = 0.37, eta_value: float = 0.05, steps: int = 25,
                                seed: int = 0, eta_b_scale: float | None = None) -> float:
    """Max |Δ| between (A, γB) trained with (γ, η) and (A, B̃) trained with γ′ = 1, η_A = η, η_B̃ = η γ².

    Plain-Python float64 SGD on a mean-squared loss with fixed random data (no numpy needed).
    ``eta_b_scale`` overrides the factor γ² (a negative control uses 1.0).

    >>> reparametrised_trajectories() < 1e-12
    True
    """
    rng = random.Random(seed)
    n_out, n_r, n_in, n_data = 3, 4, 5, 6
    A_init = [[rng.gauss(0, 1) for _ in range(n_in)] for _ in range(n_r)]
    data = [([[rng.gauss(0, 1)] for _ in range(n_in)], [[rng.gauss(0, 1)] for _ in range(n_out)]) for _ in range(n_data)]
    scale = gamma_value**2 if eta_b_scale is None else eta_b_scale

    def train(g: float, eta_a: float, eta_b: float) -> list[tuple[list[list[float]], list[list[float]]]]:
        A = [row[:] for row in A_init]
        B = [[0.0] * n_r for _ in range(n_out)]
        path = []
        for t in range(steps):
            x, target = data[t % n_data]
            Ax = _matmul(A, x)
            h = [[g * e[0]] for e in _matmul(B, Ax)]
            v = [[a[0] - b[0]] for a, b in zip(h, target)]            # ∂(½‖h − target‖²)/∂h
            grad_B = [[g * e for e in row] for row in _matmul(v, _tr(Ax))]
            grad_A = [[g * e for e in row] for row in _matmul(_matmul(_tr(B), v), _tr(x))]
            A, B = _axpy(A, grad_A, -eta_a), _axpy(B, grad_B, -eta_b)
            path.append((A, [[g * e for e in row] for row in B]))   # (A, B̃ = γ B)
        return path

    one = train(gamma_value, eta_value, eta_value)
    two = train(1.0, eta_value, eta_value * scale)
    return max(abs(a - b) for (A1, B1), (A2, B2) in zip(one, two)
               for M1, M2 in ((A1, A2), (B1, B2)) for r1, r2 in zip(M1, M2) for a, b in zip(r1, r2))


def reparam() -> Derivation:
    """Result 8 (``reparam``): SGD on (A, B) with (γ_r, η) is SGD on (A, γ_r B) with γ = 1, η_B̃ = η γ_r²."""
    D = Derivation("reparam", 8, "SGD reparametrisation: γ_r is a B-vs-A learning-rate ratio",
                   r"With $\tilde B = \gamma_r B$, SGD on $(A, B)$ with $(\gamma_r, \eta)$ is SGD on $(A, \tilde B)$ "
                   r"with $\gamma = 1$, $\eta_A = \eta$, $\eta_{\tilde B} = \eta\gamma_r^2$ — the bridge to LoRA+.")
    n_out, n_r, n_in = 2, 2, 3
    A = sp.Matrix(n_r, n_in, lambda a, b: sp.Symbol(f"A_{a}{b}"))
    Bt = sp.Matrix(n_out, n_r, lambda a, b: sp.Symbol(f"Bt_{a}{b}"))
    x = sp.Matrix(n_in, 1, lambda a, _: sp.Symbol(f"x_{a}"))
    v = sp.Matrix(n_out, 1, lambda a, _: sp.Symbol(f"v_{a}"))
    B = Bt / gamma
    D.step("assumption", r"SGD on $(A, B)$ with scale $\gamma_r$; write $\tilde B = \gamma_r B$. The output "
           r"$h = \gamma_r B A x = \tilde B A x$ and hence $v = \partial L/\partial h$ do not involve $\gamma_r$ "
           r"given $(A, \tilde B)$. Checked on explicit $2\times 2$, $2\times 3$ symbolic matrices.")
    gradient_check(D, (n_out, n_r, n_in))
    A_next = A - eta * gamma * B.T * v * x.T
    Bt_next = gamma * (B - eta * gamma * v * x.T * A.T)
    D.check("h = γ_r B A x equals B̃ A x (γ_r-free)", (gamma * B * A * x).diff(gamma), sp.zeros(n_out, 1))
    D.check("A′ = A − η B̃ᵀ v xᵀ: no γ_r left", A_next.diff(gamma), sp.zeros(n_r, n_in))
    eta_b = sp.Symbol("eta_Bt", positive=True)
    D.check("B̃′ = B̃ − (η γ_r²) v xᵀ Aᵀ: with η γ_r² = η_B̃ no γ_r is left",
            Bt_next.subs(eta, eta_b / gamma**2).diff(gamma), sp.zeros(n_out, n_r))
    D.check("B̃′ = B̃ − η γ_r² v xᵀ Aᵀ", Bt_next, Bt - eta * gamma**2 * v * x.T * A.T)
    D.step("computation", r"The updates in the new variables.", lhs("A′", "A'"),
           named("A − η·B̃ᵀ·v·xᵀ", r"A - \eta\,\tilde B^\top v x^\top"))
    D.step("computation", "", lhs("B̃′", r"\tilde B'"), named("B̃ − η·γ_r²·v·xᵀ·Aᵀ", r"\tilde B - \eta\gamma_r^2\, v x^\top A^\top"))
    diff = reparametrised_trajectories()
    control = reparametrised_trajectories(eta_b_scale=1.0)
    D.step("computation", "Numerical check (float64, 25 SGD steps on a squared loss, γ_r = 0.37, η = 0.05): max |Δ| "
           "between the two trajectories, and for a control run that ignores the γ_r² factor.",
           lhs("max|Δ| (matched, control)", r"\max|\Delta|\ (\text{matched}, \text{control})"),
           sp.Tuple(sp.Float(diff, 3), sp.Float(control, 3)))
    D.check("the matched trajectories agree to 1e-12", sp.Integer(diff < 1e-12), 1)
    D.check("the control trajectories differ (> 1e-6)", sp.Integer(control > 1e-6), 1)
    D.step("result", r"Under SGD, $\gamma_r$ only sets the learning rate of $\tilde B$ relative to $A$: "
           r"$\eta_{\tilde B}/\eta_A = \gamma_r^2$. rsLoRA ($\gamma_r = \alpha/\sqrt r$) is $\eta_{\tilde B}/\eta_A = "
           r"\alpha^2/r$, LoRA is $\alpha^2/r^2$ — a LoRA+-style ratio, here dictated by the rank.")
    return D
