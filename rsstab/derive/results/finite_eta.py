r"""Result 14: beyond first order in η — the exact finite-η recursion of SGD on the depth-1 task.

On one linear layer with loss ½‖(M − D)x‖² (M = γ·B·A the learned change, D the teacher's perturbation),
SGD on B and A is, exactly, a closed recursion of M, K_A = γ²AᵀA and K_B = γ²BBᵀ — checked here as a
polynomial identity in generic matrices, with the batch covariance Σ and with the population's Σ = I. From
B₀ = 0, B's columns stay in D's column space. Along one singular pair (size s, K_A = λ on it) the
recursion's expansion in η reproduces result 13's two next terms: B's saturation −(n − 1)·ηλ/2 and A's own
learning γ²s²(n − 1)(2n − 1)/3·η² — so result 13 is this recursion's first correction, and
:mod:`rsstab.finite_eta` evaluates the recursion itself (checked here against it at a point).

>>> D = finite_eta()
>>> D.number, len(D.failures())
(14, 0)
"""

from __future__ import annotations

import sympy as sp

from rsstab.derive.model import Derivation
from rsstab.derive.symbols import lhs

__all__ = ["finite_eta"]


def _generic(rows: int, cols: int, name: str) -> sp.Matrix:
    return sp.Matrix(rows, cols, sp.symbols(f"{name}0:{rows * cols}", real=True))


def _recursion(M: sp.Matrix, KA: sp.Matrix, KB: sp.Matrix, G: sp.Matrix, ea: sp.Expr, eb: sp.Expr,
               g: sp.Expr) -> tuple[sp.Matrix, sp.Matrix, sp.Matrix]:
    """The closed recursion with G = −∇_M (= E·Σ)."""
    return (M + eb * G * KA + ea * KB * G + ea * eb * g**2 * G * M.T * G,
            KA + ea * g**2 * (M.T * G + G.T * M) + ea**2 * g**2 * G.T * KB * G,
            KB + eb * g**2 * (G * M.T + M * G.T) + eb**2 * g**2 * G * KA * G.T)


def _truncate(x: sp.Expr, eta: sp.Symbol, order: int) -> sp.Expr:
    """The polynomial ``x`` in ``eta`` without its terms above ``eta**order``."""
    p = sp.Poly(sp.expand(x), eta)
    return sum((c * eta**k for (k,), c in p.terms() if k <= order), sp.Integer(0))


def finite_eta() -> Derivation:
    """Result 14 (``finite-eta``): SGD's exact finite-η recursion on the depth-1 task."""
    D = Derivation("finite-eta", 14, "Beyond first order in η: the exact finite-η recursion (SGD, depth 1)",
                   r"On one linear layer SGD is a closed recursion of the learned change $M = \gamma BA$ and the kernels "
                   r"$K_A = \gamma^2 A^{\top}A$, $K_B = \gamma^2 BB^{\top}$; the rank enters once, through $K_A$'s "
                   r"Wishart law. Its first order is the finite-$(r,d)$ law, its next terms result 13's; rsstab evaluates "
                   r"it over reference draws of $A$ and multiplies the first-order law by its ratio to its own first order.")
    ea, eb, g = sp.symbols("eta_A eta_B gamma", positive=True)
    d, r = 2, 2
    B, A, Dm = _generic(d, r, "b"), _generic(r, d, "a"), _generic(d, d, "D")
    s11, s12, s22 = sp.symbols("Sigma11 Sigma12 Sigma22", real=True)
    Sig = sp.Matrix([[s11, s12], [s12, s22]])

    # 1. The closed recursion, as a polynomial identity in generic 2×2 matrices.
    D.step("assumption", r"Loss $\tfrac12\|(M - D)x\|^2$ averaged over a batch with covariance $\Sigma$; $E = D - M$ the "
           r"residual, $-\nabla_M = E\Sigma$; SGD on the factors: $B \leftarrow B + \eta_B\gamma\,E\Sigma A^{\top}$, "
           r"$A \leftarrow A + \eta_A\gamma\,B^{\top}E\Sigma$. Then, with $G = E\Sigma$,",
           lhs("M'", "M'"), sp.Symbol("M") + sp.Symbol("eta_B") * sp.Symbol("G") * sp.Symbol("K_A")
           + sp.Symbol("eta_A") * sp.Symbol("K_B") * sp.Symbol("G")
           + sp.Symbol("eta_A") * sp.Symbol("eta_B") * g**2 * sp.Symbol("G") * sp.Symbol("M^T") * sp.Symbol("G"))
    for name, sigma in (("Σ (a batch)", Sig), ("Σ = I (the population)", sp.eye(d))):
        M = g * B * A
        G = (Dm - M) * sigma
        B2, A2 = B + eb * g * G * A.T, A + ea * g * B.T * G
        Mn, KAn, KBn = _recursion(M, g**2 * A.T * A, g**2 * B * B.T, G, ea, eb, g)
        D.check(f"γ·B'·A' is the recursion's M' ({name}; generic 2×2 B, A, D)", sp.expand(g * B2 * A2 - Mn),
                sp.zeros(d, d))
        D.check(f"γ²·A'ᵀA' is the recursion's K_A' ({name})", sp.expand(g**2 * A2.T * A2 - KAn), sp.zeros(d, d))
        D.check(f"γ²·B'B'ᵀ is the recursion's K_B' ({name})", sp.expand(g**2 * B2 * B2.T - KBn), sp.zeros(d, d))
    D.step("computation", r"and $K_A' = K_A + \eta_A\gamma^2(M^{\top}G + G^{\top}M) + \eta_A^2\gamma^2 G^{\top}K_B G$, "
           r"$K_B' = K_B + \eta_B\gamma^2(GM^{\top} + MG^{\top}) + \eta_B^2\gamma^2 G K_A G^{\top}$: closed in "
           r"$(M, K_A, K_B)$, from $M = 0$, $K_B = 0$, $K_A = \gamma^2 A_0^{\top}A_0$ — $r$ enters only through $K_A$.",
           lhs("K_A(0)", r"K_A^{(0)}"), sp.Symbol("gamma")**2 * sp.Symbol("sigma_A")**2 * sp.Symbol("Wishart_d(r)"))

    # 2. B's columns stay in D's column space (D = u·vᵀ, two steps from B = 0, population).
    u1, u2, v1, v2 = sp.symbols("u1 u2 v1 v2", real=True)
    Dr = sp.Matrix([u1, u2]) * sp.Matrix([[v1, v2]])
    Bt, At = sp.zeros(d, r), A
    for _ in range(2):
        E = Dr - g * Bt * At
        Bt, At = Bt + eb * g * E * At.T, At + ea * g * Bt.T * E
    D.check("from B₀ = 0, B stays in D's column space: (u⊥)ᵀ·B₂ = 0 for D = u·vᵀ (two steps)",
            sp.expand(sp.Matrix([[-u2, u1]]) * Bt), sp.zeros(1, r))
    D.step("computation", r"From $B_0 = 0$, $B$'s columns stay in $D$'s column space, so $M$ and $E$ have $k = "
           r"\mathrm{rank}\,D$ non-zero rows and $K_B$ is $k\times k$ (rotate $D$ to $\mathrm{diag}(S)$: $K_A$'s law is "
           r"rotation-invariant): a step costs $O(k d^2)$.", lhs("rank B", r"\mathrm{rank}\,B"), sp.Symbol("k"))

    # 3. Along one singular pair (K_A = λ there): the expansion in η is result 13's.
    eta, s, lam = sp.symbols("eta s lambda", positive=True)
    n = 5
    m, a, b = sp.Integer(0), lam, sp.Integer(0)
    for _ in range(n):
        e = s - m
        m, a, b = (_truncate(m + eta * e * a + eta * b * e + eta**2 * g**2 * e * m * e, eta, 3),
                   _truncate(a + 2 * eta * g**2 * m * e + eta**2 * g**2 * e * b * e, eta, 3),
                   _truncate(b + 2 * eta * g**2 * e * m + eta**2 * g**2 * e * a * e, eta, 3))
    rel = sp.expand(m / (n * eta * s * lam))
    c1, c2 = rel.coeff(eta, 1), rel.coeff(eta, 2)
    D.step("computation", rf"Along a singular pair of $D$ (size $s$, $K_A = \lambda$ on it, $\eta_A = \eta_B = \eta$), "
           rf"the learned $m_n$ relative to its first order, to $\eta^2$, at $n = {n}$:",
           lhs("m_n/m_n¹", r"m_n/m^{(1)}_n"), sp.expand(1 + c1 * eta + c2 * eta**2))
    D.check(f"order η: B's saturation −(n − 1)λ/2 (result 13's B-driven term, n = {n})", c1, -(n - 1) * lam / 2)
    D.check(f"order η²: A's own learning γ²s²(n − 1)(2n − 1)/3 (result 13's A-driven term) plus the saturation's "
            f"(n − 1)(n − 2)λ²/6 (n = {n})", c2,
            g**2 * s**2 * sp.Rational((n - 1) * (2 * n - 1), 3) + lam**2 * sp.Rational((n - 1) * (n - 2), 6))

    # 4. rsstab.finite_eta.population_step is the recursion (a rational point, k = 1, d = 2).
    import numpy as np  # here: `rsstab derive` runs without the sim extra

    from rsstab.finite_eta import population_step

    vals = {ea: sp.Rational(1, 10), eb: sp.Rational(1, 5), g: sp.Rational(1, 2)}
    Ms, KAs, KBs = sp.zeros(1, 2), sp.Matrix([[1, sp.Rational(1, 3)], [sp.Rational(1, 3), 2]]), sp.zeros(1, 1)
    Ds = sp.Matrix([[2, 0]])
    Mn_, KA_, KB_ = Ms, KAs, KBs
    Mnum, KAnum, KBnum = np.zeros((1, 2)), np.array(KAs.tolist(), dtype=float), np.zeros((1, 1))
    for _ in range(3):
        Mn_, KA_, KB_ = (x.subs(vals) for x in _recursion(Mn_, KA_, KB_, Ds - Mn_, ea, eb, g))
        Mnum, KAnum, KBnum = population_step(Mnum, KAnum, KBnum, np.array([[2.0, 0.0]]), lr_a=0.1, lr_b=0.2, gamma=0.5)
    err = max(abs(float(x) - y) for x, y in zip(list(Mn_) + list(KA_) + list(KB_),
                                                  list(Mnum.ravel()) + list(KAnum.ravel()) + list(KBnum.ravel())))
    D.check("rsstab.finite_eta.population_step is the recursion (3 steps at a rational point)",
            sp.Float(err, 20) < sp.Float(1e-12), sp.true)
    D.step("result", r"rsstab evaluates the recursion's mean over $A$ on reference draws and multiplies the first-order "
           r"law by its ratio to its own first order (coherent and incoherent parts); the same recursion with $\Sigma_t$ "
           r"drawn gives the batch noise it leaves out, and the prediction is in range while that is at most 0.1.",
           lhs("prediction", r"\hat Q"), sp.Symbol("kappa") * sp.Symbol("Q^(1)"))
    return D
