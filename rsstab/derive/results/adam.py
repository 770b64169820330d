"""Result 7: Adam's first step is sign descent, and its stable scaling is Θ(1/r)."""

from __future__ import annotations

from functools import cache

import sympy as sp

from rsstab.derive.model import Derivation, check_law
from rsstab.derive.symbols import dot, eta, gamma, lhs, r, sigma_A
from rsstab.derive.words import r_degree

__all__ = ["adam_sign_descent", "adam_stability_factor", "sign_step_moments"]


@cache
def sign_step_moments() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(per-row E[sign(U) W], per-row Var, E[Σ_j sign(U_j) W_j]) for U = a·x, W = a·x′, a ~ N(0, σ_A² I).

    The learned output after Adam's first step is −η γ_r sign(v_i) Σ_j sign(U_j) W_j.
    """
    nx2, nxp2, dxx = dot("x", "x"), dot("xp", "xp"), dot("x", "xp")
    s_u = sigma_A * sp.sqrt(nx2)                       # sd of U
    z = sp.Symbol("z", real=True)
    abs_mean = sp.integrate(sp.Abs(z) * sp.exp(-z**2 / (2 * s_u**2)) / sp.sqrt(2 * sp.pi * s_u**2), (z, -sp.oo, sp.oo))
    beta = dxx / nx2                                   # regression coefficient of W on U: Cov/Var
    row_mean = sp.simplify(beta * abs_mean)            # E[sign(U)(βU + Z)] = β E|U|, Z ⟂ U
    row_second = sigma_A**2 * nxp2                     # E[sign(U)² W²] = E[W²]
    row_var = sp.simplify(row_second - row_mean**2)
    j = sp.Symbol("j", integer=True, positive=True)
    total = sp.Sum(row_mean, (j, 1, r)).doit()
    return row_mean, row_var, total


def adam_stability_factor() -> sp.Expr:
    """γ_r r, *derived*: the mean learned output after one Adam step over −η √(2/π) σ_A (x·x′)/‖x‖ sign(v_i).

    >>> adam_stability_factor()
    gamma_r*r
    """
    _, _, total = sign_step_moments()
    mean = -eta * gamma * total * sp.Symbol("s_v")
    return sp.simplify(mean / (-eta * sp.sqrt(2 / sp.pi) * sigma_A * dot("x", "xp") / sp.sqrt(dot("x", "x"))
                              * sp.Symbol("s_v")))


def adam_sign_descent() -> Derivation:
    """Result 7 (``adam``): the first Adam step is sign descent; the learned output is Θ(η γ_r r)."""
    D = Derivation("adam", 7, "Adam / sign descent: the stable scaling is Θ(1/r)",
                   r"Adam's first step is sign descent; the learned output is $\Theta(\eta\gamma_r r)$, "
                   r"so update-stability needs $\gamma_r \in \Theta(1/r)$ (beyond the paper's SGD theorem).")
    g = sp.Symbol("g", real=True, nonzero=True)
    b1, b2, eps = sp.symbols("beta_1 beta_2 epsilon", positive=True)
    m_hat = ((1 - b1) * g) / (1 - b1)
    v_hat = ((1 - b2) * g**2) / (1 - b2)
    step = m_hat / (sp.sqrt(v_hat) + eps)
    D.step("assumption", r"Adam from zero moments: $m_1 = (1-\beta_1) g$, $v_1 = (1-\beta_2) g^2$, bias-corrected, "
           r"update $-\eta\,\hat m/(\sqrt{\hat v} + \epsilon)$; the adapter and data are as in result 2.",
           lhs("Δ/(−η)", r"\Delta/(-\eta)"), step)
    gp, gn = sp.Symbol("g", positive=True), sp.Symbol("g", negative=True)
    D.check("with ε → 0 the first Adam step is −η sign(g) (g > 0)", sp.limit(step, eps, 0).subs(g, gp), 1)
    D.check("with ε → 0 the first Adam step is −η sign(g) (g < 0)", sp.limit(step, eps, 0).subs(g, gn), -1)
    D.step("computation", r"$\nabla_B L = \gamma_r v (Ax)^\top$ and $\gamma_r > 0$, so $\Delta B = -\eta\,"
           r"\mathrm{sign}(v)\,\mathrm{sign}(Ax)^\top$: entries $\pm\eta$ whatever $\gamma_r$ is; then "
           r"$\gamma_r \Delta B A x' = -\eta\gamma_r\,\mathrm{sign}(v)\sum_{j=1}^r \mathrm{sign}(a_j\cdot x)(a_j\cdot x')$.")
    row_mean, row_var, total = sign_step_moments()
    D.step("computation", r"Per row, $U = a\cdot x$ and $W = a\cdot x'$ are jointly Gaussian; $W = \beta U + Z$ with "
           r"$\beta = (x\cdot x')/\lVert x\rVert^2$ and $Z$ independent of $U$, so "
           r"$\mathbb{E}[\mathrm{sign}(U) W] = \beta\,\mathbb{E}|U|$ (integrated by sympy).",
           lhs("E[sign(U) W]", r"\mathbb{E}[\mathrm{sign}(U)W]"), row_mean)
    D.check("E[sign(U)W] = √(2/π) σ_A (x·x′)/‖x‖", row_mean,
            sp.sqrt(2 / sp.pi) * sigma_A * dot("x", "xp") / sp.sqrt(dot("x", "x")))
    D.step("computation", r"Summing the $r$ identically distributed rows.",
           lhs("E[Σ_j sign(U_j) W_j]", r"\mathbb{E}[\textstyle\sum_j \mathrm{sign}(U_j)W_j]"), total)
    D.step("computation", "The rows are independent, so the variance also adds r times.",
           lhs("Var(Σ_j sign(U_j) W_j)", r"\mathrm{Var}(\textstyle\sum_j \mathrm{sign}(U_j)W_j)"), sp.expand(r * row_var))
    D.check("the summed mean has degree 1 in r", sp.sympify(r_degree(total)), 1)
    mean = -eta * gamma * total
    check_law(D, "forward", "adam", mean)
    D.step("result", r"The learned output after one Adam step is $\Theta(\eta\gamma_r r)$ with $\Theta(\sqrt r)$ "
           r"fluctuations: stable iff $\gamma_r r = \Theta(1)$, i.e. LoRA's $\alpha/r$.",
           lhs("S_Adam", r"S_{\mathrm{Adam}}"), adam_stability_factor())
    return D
