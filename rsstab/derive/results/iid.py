"""Result 1: the iid forward variance and the higher moments of the adapter output."""

from __future__ import annotations

import sympy as sp

from rsstab.derive.model import Derivation, check_law
from rsstab.derive.symbols import IID_VARIANCES, d, gamma, lhs, r, sigma_A, sigma_B, sigma_x
from rsstab.derive.wick import brute_force_expectation, explicit, forward_sum, wick_expectation
from rsstab.derive.words import r_degree

__all__ = ["iid_forward"]


def _chi2_moment(n: sp.Expr, q: int) -> sp.Expr:
    """E[(χ²_n)^q] = 2^q Γ(n/2 + q) / Γ(n/2), simplified to a polynomial in n.

    >>> _chi2_moment(r, 2)
    r**2 + 2*r
    """
    return sp.expand(sp.gammasimp(2**q * sp.gamma(n / 2 + q) / sp.gamma(n / 2)))


def iid_forward() -> Derivation:
    """Result 1 (``iid``): Var(y_i) = γ_r² r d σ_A² σ_B² σ_x² exactly; E[y_i^m] = Θ((γ_r² r)^(m/2))."""
    D = Derivation("iid", 1, "iid forward variance and moments",
                   r"With independent entries, $\mathrm{Var}((\gamma_r B A x)_i) = \gamma_r^2\, r\, d\, "
                   r"\sigma_A^2\sigma_B^2\sigma_x^2$ exactly, and $\mathbb{E}[y_i^m] = \Theta((\gamma_r^2 r)^{m/2})$.")
    y = forward_sum()
    D.step("assumption", r"$B\in\mathbb{R}^{d_{out}\times r}$, $A\in\mathbb{R}^{r\times d}$ and $x\in\mathbb{R}^d$ "
           r"have independent zero-mean Gaussian entries with variances $\sigma_B^2, \sigma_A^2, \sigma_x^2$ "
           r"(the heuristic route: B treated as independent of A).")
    D.step("computation", r"Entry $i$ of the adapter output is a double index sum.", lhs("y_i", "y_{i}"), y.as_sympy())
    m2 = wick_expectation(y.power(2), IID_VARIANCES)
    D.step("computation", r"Isserlis: $\mathbb{E}[B_{ij}B_{ij'}] = \sigma_B^2\delta_{jj'}$, "
           r"$\mathbb{E}[A_{jk}A_{j'k'}] = \sigma_A^2\delta_{jj'}\delta_{kk'}$, $\mathbb{E}[x_k x_{k'}] = "
           r"\sigma_x^2\delta_{kk'}$; the deltas leave one free $j$ (r values) and one free $k$ (d values).",
           lhs("E[y_i²]", r"\mathbb{E}[y_i^2]"), m2)
    claim = gamma**2 * r * d * sigma_A**2 * sigma_B**2 * sigma_x**2
    D.check("Var(y_i) = γ_r² r d σ_A² σ_B² σ_x² (mean 0)", m2, claim)
    D.check("E[y_i] = 0", wick_expectation(y, IID_VARIANCES), 0)
    moments = {}
    for m in (2, 4, 6):
        moments[m] = wick_expectation(y.power(m), IID_VARIANCES)
        # Independent route: given A and x, y is N(0, γ²σ_B²‖Ax‖²); ‖Ax‖² = σ_A²‖x‖² χ²_r; ‖x‖² = σ_x² χ²_d.
        route2 = (sp.factorial2(m - 1) * gamma**m * sigma_B**m * sigma_A**m * sigma_x**m
                  * _chi2_moment(r, m // 2) * _chi2_moment(d, m // 2))
        D.check(f"E[y_i^{m}] by pairings = (m−1)!! γ^m σ^m E[(χ²_r)^{m // 2}] E[(χ²_d)^{m // 2}] (conditional-Gaussian route)",
                moments[m], route2)
    D.step("computation", r"Fourth moment: 3 pairings of the four $B$ entries × 3 of the $A$ entries × 3 of the $x$ "
           r"entries; each pairing contributes a product of sizes.", lhs("E[y_i⁴]", r"\mathbb{E}[y_i^4]"),
           sp.factor(moments[4]))
    D.step("computation", "Sixth moment (15³ pairings).", lhs("E[y_i⁶]", r"\mathbb{E}[y_i^6]"), sp.factor(moments[6]))
    kurt = sp.simplify(moments[4] / moments[2] ** 2)
    D.step("result", r"The kurtosis tends to 3 (Gaussian) as $r, d \to \infty$ but is exact at every finite size.",
           lhs("E[y_i⁴]/E[y_i²]²", r"\mathbb{E}[y_i^4]/\mathbb{E}[y_i^2]^2"), sp.factor(kurt))
    for m, mom in moments.items():
        lead = sp.limit(mom / (gamma**2 * r) ** sp.Rational(m, 2), r, sp.oo)
        D.check(f"E[y_i^{m}] has degree m/2 = {m // 2} in r", sp.sympify(r_degree(mom)), sp.Integer(m // 2))
        D.check(f"E[y_i^{m}] / (γ_r² r)^{m // 2} has a finite non-zero limit as r → ∞",
                sp.Integer(int(lead.is_positive and lead.is_finite)), 1)
    D.step("result", r"Every even moment is a polynomial of degree $m/2$ in $r$ times $\gamma_r^m$: "
           r"$\mathbb{E}[y_i^m] = \Theta((\gamma_r^2 r)^{m/2})$, so the moments stay $\Theta(1)$ iff "
           r"$\gamma_r^2 r = \Theta(1)$.")
    # Brute-force cross-check at concrete sizes (every entry its own symbol).
    for m, sizes in ((2, {r: 3, d: 2}), (2, {r: 2, d: 3}), (4, {r: 2, d: 2}), (4, {r: 3, d: 1})):
        s = y.power(m)
        D.check(f"pairing engine = brute-force expansion for E[y_i^{m}] at r={sizes[r]}, d={sizes[d]}",
                explicit(moments[m], s, sizes), brute_force_expectation(s, IID_VARIANCES, sizes))
    check_law(D, "iid_variance", "sgd", m2)
    return D
