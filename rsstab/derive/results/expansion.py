r"""Result 13: the range of the first-order laws — the expansion parameter and the next term.

The finite-(r, d) laws are first order in η. On the simulator's task (loss ½‖f(x) − y‖², B₀ = 0, Gaussian
A) the next term has two parts, each derived here and compared with :mod:`rsstab.theory`:

* **B-driven**: with A fixed, B does gradient descent on a quadratic; along a curvature eigenvalue λ the
  exact n-step change is the first-order one times [1 − (1 − ηλ)ⁿ]/(nηλ) = 1 − (n − 1)ηλ/2 + O(η²), and
  over Gaussian A the mean curvature is γ²σ_A²·w(r, d), w = E tr(AᵀA)³ / (σ_A² E tr(AᵀA)²)
  = (r² + d² + 3rd + 3r + 3d + 4)/(r + d + 1).
* **A-driven**: A moves once B ≠ 0; along a singular pair of the data gradient (size s) A and B grow
  together, and the learned change is n·c·s·(1 + c²s²·(n − 1)(2n − 1)/3 + O(c⁴)), c = η·γ.
* **Adam**: the drift and A-step coefficients κ_n, α_n of bias-corrected Adam, exactly.

>>> D = expansion_range()
>>> D.number, len(D.failures())
(13, 0)
"""

from __future__ import annotations

import sympy as sp

from rsstab import theory
from rsstab.derive.model import Derivation
from rsstab.derive.symbols import eta, gamma, lhs, sigma_A

__all__ = ["expansion_range"]


def _gaussian_mean(poly: sp.Expr, zs: list[sp.Symbol]) -> sp.Expr:
    """E over independent N(0, 1) variables ``zs`` of a polynomial: E z^k = (k − 1)!! for even k."""
    total = sp.Integer(0)
    for monom, coeff in sp.Poly(sp.expand(poly), *zs).terms():
        term = coeff
        for k in monom:
            term *= 0 if k % 2 else sp.factorial2(k - 1)
        total += term
    return total


def _wishart_trace(r: int, d: int, k: int) -> sp.Expr:
    """E tr((AᵀA)^k) for an r×d matrix of iid N(0, 1) entries, exactly (expanded and integrated)."""
    zs = sp.symbols(f"z0:{r * d}", real=True)
    A = sp.Matrix(r, d, zs)
    return _gaussian_mean(((A.T * A) ** k).trace(), list(zs))


def expansion_range() -> Derivation:
    """Result 13 (``expansion-range``): the expansion parameter of the first-order laws."""
    D = Derivation("expansion-range", 13, "The range of the first-order laws: the next term in η",
                   r"The first-order (in $\eta$) laws hold while the next term is small: SGD's B-driven next term is "
                   r"$-(n-1)\eta\gamma_r^2\sigma_A^2 w(r,d)/2$ of the first, $w = (r^2+d^2+3rd+3r+3d+4)/(r+d+1)$; A's own "
                   r"learning adds $\eta_A\eta_B\gamma_r^2 s^2 (n-1)(2n-1)/3$ along a data-gradient direction of size "
                   r"$s$ (SGD) and $\alpha_n\eta_A\sqrt{d}/\sigma_A$ of the coherent part (Adam, one example). A prediction "
                   r"is in range while their sum is at most 0.1 (the report's 10 % agreement).")
    x, c, s = sp.symbols("x c s", positive=True)
    n = sp.Symbol("n", positive=True, integer=True)
    r, d = sp.symbols("r d", positive=True, integer=True)

    # 1. Gradient descent on a quadratic, along one eigenvalue λ (x = ηλ): exact n-step factor.
    factor = (1 - (1 - x) ** n) / (n * x)
    D.step("assumption", r"With $A$ fixed and $B_0 = 0$ the learned change $M = \gamma BA$ on the loss "
           r"$\tfrac12\|(M - D)x\|^2$ obeys $M \leftarrow M - \eta\gamma^2 (M - D)\Sigma A^{\top}A$: gradient descent on a "
           r"quadratic. Along an eigenvalue $\lambda$ of $\gamma^2\Sigma A^{\top}A$ ($x = \eta\lambda$), relative to the "
           r"first-order change $n\eta\lambda D$:", lhs("M_n/M_n¹", r"M_n/M^{(1)}_n"), factor)
    series = sp.expand(sp.series(factor, x, 0, 2).removeO())
    D.check("[1 − (1 − x)ⁿ]/(n x) = 1 − (n − 1)x/2 + O(x²)", series, sp.expand(1 - (n - 1) * x / 2))
    for k in (1, 2, 3, 10):
        exact = factor.subs({n: k, x: sp.Rational(1, 37)})
        D.check(f"rsstab.theory.sgd_saturation_factor at n = {k}, x = 1/37 is the exact factor",
                sp.Abs(sp.Float(theory.sgd_saturation_factor(1 / 37, k), 20) - exact) < sp.Float(1e-12), sp.true)
    # 2. The mean curvature over Gaussian A: E tr K³ / E tr K², K = AᵀA.
    m2 = r * d * (r + d + 1)
    m3 = r * d * (r**2 + d**2 + 3 * r * d + 3 * r + 3 * d + 4)
    D.step("computation", r"The mean square's next term weighs $\lambda$ by the squared first-order change: "
           r"$\mathbb{E}\,\mathrm{tr}(C K^3)/\mathbb{E}\,\mathrm{tr}(C K^2)$, and $\mathbb{E}[K^k] \propto I$ by rotation "
           r"invariance, so the ratio is $\sigma_A^2$ times", lhs("w(r, d)", "w(r, d)"), sp.factor(m3 / m2))
    for rr, dd in ((1, 1), (2, 1), (1, 3), (2, 2), (3, 2)):
        D.check(f"E tr(AᵀA)² at r = {rr}, d = {dd} (expanded Gaussian integral)", _wishart_trace(rr, dd, 2),
                m2.subs({r: rr, d: dd}))
        D.check(f"E tr(AᵀA)³ at r = {rr}, d = {dd} (expanded Gaussian integral)", _wishart_trace(rr, dd, 3),
                m3.subs({r: rr, d: dd}))
    chi = r * (r + 2) * (r + 4)  # E (χ²_r)³: the d = 1 line, every r
    D.check("E tr(AᵀA)³ at d = 1 is E(χ²_r)³ = r(r+2)(r+4) for every r", sp.expand(m3.subs(d, 1) - chi), 0)
    D.check("E tr(AᵀA)² at d = 1 is E(χ²_r)² = r(r+2) for every r", sp.expand(m2.subs(d, 1) - r * (r + 2)), 0)
    D.check("w(r, d) is rsstab.theory.wishart_moment_ratio", sp.simplify(m3 / m2 - theory.wishart_moment_ratio(r, d)), 0)
    b_next = -(n - 1) * eta * gamma**2 * sigma_A**2 * (m3 / m2) / 2
    D.step("result", r"SGD's B-driven next term, relative to the first (RMS):", lhs("ε_B", r"\epsilon_B"), b_next)
    e = theory.sgd_expansion(rank=7, width=5, gamma=0.3, lr_a=0.0, lr_b=0.01, steps=9, sigma_a2=0.2)
    want = b_next.subs({n: 9, eta: sp.Rational(1, 100), gamma: sp.Rational(3, 10), sigma_A: sp.sqrt(sp.Rational(1, 5)),
                        r: 7, d: 5})
    D.check("rsstab.theory.sgd_expansion's B-driven term (r = 7, d = 5, n = 9)",
            sp.Abs(sp.Float(e.b_driven, 20) - want) < sp.Float(1e-12), sp.true)

    # 3. A's own learning: along a singular pair (size s) of the step's data gradient, A and B grow together.
    nn = 6
    Bt, At = sp.Integer(0), sp.Integer(1)
    first = third = None
    for _ in range(nn):
        Bt, At = Bt + c * s * At, At + c * s * Bt  # simultaneous: both from the same step's gradients
    change = sp.expand(Bt * At)
    first, third = change.coeff(c, 1), change.coeff(c, 3)
    D.step("computation", r"Along a singular pair of the data gradient (size $s$), $b \leftarrow b + c s a$, "
           r"$a \leftarrow a + c s b$ ($c = \eta\gamma$, $b_0 = 0$, $a_0 = 1$): the learned change $b_n a_n$ after "
           rf"$n = {nn}$ steps is", lhs("b_n a_n", "b_n a_n"), change)
    D.check(f"first order: n·c·s (n = {nn})", first, nn * s)
    D.check(f"third order: (n(n−1)(n−2)/6 + n²(n−1)/2)·c³s³ = n·c·s·c²s²(n−1)(2n−1)/3 (n = {nn})", third,
            s**3 * sp.Rational(nn * (nn - 1) * (2 * nn - 1), 3))
    D.step("result", r"SGD's A-driven next term relative to the first along that direction (coherent part; the "
           r"Wick pairings over A give the incoherent part's coefficient, bounded with $s^2 \le \|G_1\|_F^2$):",
           lhs("ε_A", r"\epsilon_A"), c**2 * s**2 * (n - 1) * (2 * n - 1) / 3)
    e = theory.sgd_expansion(rank=10**9, width=1, gamma=1.0, lr_a=0.1, lr_b=0.1, steps=nn, sigma_a2=0.0, step_grad2=1.0)
    D.check("rsstab.theory.sgd_expansion's A-driven term at r ≫ d equals c²s²(n−1)(2n−1)/3",
            sp.Abs(sp.Float(e.a_driven, 20) - sp.Rational(1, 100) * (nn - 1) * (2 * nn - 1) / 3) < sp.Float(1e-6), sp.true)

    # 4. Adam: κ_n and α_n exactly, with rational betas.
    b1, b2 = sp.Rational(9, 10), sp.Rational(999, 1000)
    N = 10
    kappa = sp.Integer(0)
    alpha = sp.Integer(0)
    for t in range(N):
        wm = [(1 - b1) * b1 ** (t - q) / (1 - b1 ** (t + 1)) for q in range(t + 1)]
        wv = [(1 - b2) * b2 ** (t - q) / (1 - b2 ** (t + 1)) for q in range(t + 1)]
        mu = sum(w * q for q, w in enumerate(wm))
        kappa += mu - sum(w * q for q, w in enumerate(wv))
        if t >= 1:
            alpha += mu / sp.sqrt(sum(w * q * q for q, w in enumerate(wv)))
    kappa /= N * N
    k_num, a_num = theory.adam_drift_coefficients(N, (0.9, 0.999))
    D.step("computation", r"Adam ($\epsilon \to 0$, bias-corrected): a gradient shrinking by the fraction $\rho$ over "
           r"the run moves the steps by $-\kappa_n\rho$; A's gradient grows like $t$ (as $B_t$), its steps sum to "
           r"$\alpha_n$. At $n = 10$, betas (0.9, 0.999):", lhs("(κ, α)", r"(\kappa_{10}, \alpha_{10})"),
           sp.Tuple(sp.N(kappa, 6), sp.N(alpha, 6)))
    D.check("rsstab.theory.adam_drift_coefficients(10): κ", sp.Abs(sp.Float(k_num, 20) - kappa) < sp.Float(1e-12), sp.true)
    D.check("rsstab.theory.adam_drift_coefficients(10): α", sp.Abs(sp.Float(a_num, 20) - alpha) < sp.Float(1e-9), sp.true)
    D.check("κ_10 < 0.05: m̂ and √v̂ shrink nearly together, so Adam's B-driven drift is small", kappa < sp.Rational(1, 20), sp.true)
    D.step("result", r"In range while $|\epsilon_B| + \epsilon_A \le 0.1$ (rsstab.theory.EXPANSION_LIMIT).",
           lhs("limit", r"\epsilon_{\max}"), sp.Rational(1, 10))
    D.check("rsstab.theory.EXPANSION_LIMIT is 1/10", sp.nsimplify(theory.EXPANSION_LIMIT), sp.Rational(1, 10))
    return D
