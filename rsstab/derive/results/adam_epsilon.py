r"""Result 11: Adam with ε > 0 — where the sign phase ends, and the learning-rate rule on each side.

One LoRA layer at step 0 (B = 0, rows a_j of A iid N(0, σ_A² I), one input x, v = ∂L/∂y): the gradient
g_ij = γ_r v_i (a_j·x) depends on r only through γ_r, and Adam's first step is −η g/(|g| + ε). It is sign
descent while ρ = E|g_ij|/ε ≫ 1 and SGD with rate η/ε while ρ ≪ 1; with γ_r = α r^g (g < 0) the crossover
rank is r_ε = (ε/(α G))^(1/g). The exact update factor F(ρ) between the two laws, its bounds, the
regime thresholds and the learning-rate exponents are compared with :mod:`rsstab.theory`.

>>> D = adam_epsilon()
>>> D.number, len(D.checks)
(11, 41)
"""

from __future__ import annotations

from fractions import Fraction

import sympy as sp

from rsstab import theory
from rsstab.derive.model import Derivation
from rsstab.derive.symbols import eta, gamma, lhs, named, sigma_A

__all__ = ["adam_epsilon"]


def _close(D: Derivation, statement: str, value: float, exact: sp.Expr, rel: float) -> None:
    """A float computed by rsstab equals ``exact`` to relative tolerance ``rel``: the excess over it is 0."""
    want = float(exact)
    D.check(statement, sp.Max(0, sp.Float(abs(value - want) - rel * abs(want))), 0)


def adam_epsilon() -> Derivation:
    """Result 11 (``adam-epsilon``): Adam's first step with ε > 0, between sign descent and SGD with rate η/ε."""
    D = Derivation("adam-epsilon", 11, "Adam with positive ε: where the sign regime ends",
                   r"With $\epsilon > 0$ Adam's first step is sign descent (learned change $\propto \eta\gamma_r r$) "
                   r"while $\rho = \mathbb{E}|g_{ij}|/\epsilon \gg 1$ and SGD with rate $\eta/\epsilon$ (learned "
                   r"change $\propto (\eta/\epsilon)\gamma_r^2 r$) while $\rho \ll 1$; for $\gamma_r = \alpha r^g$ "
                   r"($g < 0$) the sign regime ends at the rank $r_\epsilon = (\epsilon/(\alpha G))^{1/g}$, and the "
                   r"learning-rate rule $\eta \propto r^{-(kg+1)}$ has $k = 1$ below it and $k = 2$ beyond it.")
    eps = sp.Symbol("epsilon", positive=True)
    alpha = named("α", r"\alpha", positive=True)
    xn = named("‖x‖", r"\lVert x\rVert", positive=True)
    beta1, beta2 = sp.symbols("beta_1 beta_2", positive=True)
    g, z = sp.symbols("g z", real=True)
    v = named("v_i", "v_i", real=True)
    r, G = sp.symbols("r G", positive=True)
    gexp = sp.Symbol("g", negative=True)  # the exponent of γ_r = α r^g

    # 1. Adam's first step: the bias corrections cancel, the step is −η·g/(|g|+ε).
    m1, v1 = (1 - beta1) * g, (1 - beta2) * g**2
    step = -eta * (m1 / (1 - beta1)) / (sp.sqrt(v1 / (1 - beta2)) + eps)
    D.step("assumption", r"One LoRA layer at step 0: $B = 0$, rows $a_j$ of $A$ iid $N(0, \sigma_A^2 I)$, one input "
           r"$x$, $v = \partial{}L/\partial{}y$. Then $g_{ij} = \partial{}L/\partial{}B_{ij} = \gamma_r v_i (a_j\cdot{}x)$: "
           r"its size depends on $r$ only through $\gamma_r$. Adam from zero moments ($m_1 = (1-\beta_1) g$, "
           r"$v_1 = (1-\beta_2) g^2$, bias-corrected) with $\epsilon > 0$:",
           lhs("ΔB_ij", r"\Delta{}B_{ij}"), sp.simplify(step))
    D.check("first step ΔB = −η·g/(|g|+ε) for any β1, β2", step, -eta * g / (sp.Abs(g) + eps))

    # 2. The two limits: sign descent (ε → 0) and SGD with rate η/ε (|g| ≪ ε).
    gp = sp.Symbol("g", positive=True)
    phi = gp / (gp + eps)
    D.step("computation", r"Two limits: $\epsilon \to 0$ gives sign descent $-\eta\,\mathrm{sign}(g)$; $|g| \ll \epsilon$ "
           r"gives $-(\eta/\epsilon) g$, SGD with rate $\eta/\epsilon$.")
    D.check("ε → 0: g/(|g|+ε) → sign(g) = 1 (g > 0)", sp.limit(phi, eps, 0), 1)
    D.check("ε → 0: g/(|g|+ε) → sign(g) = −1 (g < 0)", sp.limit(-gp / (gp + eps), eps, 0), -1)
    D.check("|g| ≪ ε: g/(|g|+ε) ≈ g/ε (ratio → 1)", sp.limit(phi / (gp / eps), gp, 0), 1)

    # 3. Gaussian moments of a_j·x ~ N(0, s²), s = σ_A‖x‖.
    s = sigma_A * xn
    pdf = sp.exp(-z**2 / (2 * s**2)) / (s * sp.sqrt(2 * sp.pi))
    mean_abs = sp.integrate(sp.Abs(z) * pdf, (z, -sp.oo, sp.oo))
    second = sp.integrate(z**2 * pdf, (z, -sp.oo, sp.oo))
    D.step("computation", r"$a_j\cdot{}x \sim N(0, \sigma_A^2\lVert{}x\rVert^2)$; its moments, integrated by sympy:",
           lhs("E|a·x|", r"\mathbb{E}|a\cdot x|"), mean_abs)
    D.step("computation", "", lhs("E(a·x)²", r"\mathbb{E}(a\cdot x)^2"), second)
    D.check("E|a·x| = σ_A‖x‖·√(2/π)", mean_abs, s * sp.sqrt(2 / sp.pi))
    D.check("E(a·x)² = σ_A²‖x‖²", second, s**2)

    # 4. The per-entry gradient of B: E|g_ij| = γ·|v_i|·σ_A‖x‖·√(2/π) =: γ·G, whatever r is.
    mean_grad = gamma * sp.Abs(v) * mean_abs
    g_scale = sp.Abs(v) * s * sp.sqrt(2 / sp.pi)
    D.step("computation", r"So $\mathbb{E}|g_{ij}| = \gamma_r G$ with $G = |v_i|\sigma_A\lVert{}x\rVert\sqrt{2/\pi}$ "
           r"(no $r$); in units of $\epsilon$ it is $\rho = \gamma_r G/\epsilon$.",
           lhs("E|g_ij|", r"\mathbb{E}|g_{ij}|"), mean_grad)
    D.check("E|g_ij| = γ_r·G with G = |v_i|·σ_A·‖x‖·√(2/π) (no r)", mean_grad, gamma * g_scale)
    rho = mean_grad / eps

    # 5. Sign phase: ΔB_ij = −η·sign(g_ij), so Δy_i = γ Σ_j ΔB_ij (a_j·x) = −η γ sign(v_i) Σ_j |a_j·x|.
    zp, vp = sp.symbols("z_pos v_pos", positive=True)
    for zz, vv in ((zp, vp), (-zp, vp), (zp, -vp), (-zp, -vp)):
        D.check(f"sign(γ·v·z)·z = sign(v)·|z| at v = {vv}, z = {zz}",
                sp.sign(gamma * vv * zz) * zz, sp.sign(vv) * sp.Abs(zz))
    sign_size = eta * gamma * r * mean_abs  # E|Δy_i| over r rows
    D.step("computation", r"Sign regime: $\Delta{}B_{ij} = -\eta\,\mathrm{sign}(g_{ij})$, so $\Delta{}y_i = "
           r"\gamma_r \sum_j \Delta{}B_{ij}(a_j\cdot{}x) = -\eta\gamma_r\,\mathrm{sign}(v_i)\sum_j |a_j\cdot{}x|$ "
           r"(every term has the sign of $-v_i$):",
           lhs("E|Δy_i| (sign)", r"\mathbb{E}|\Delta{}y_i|_{\mathrm{sign}}"), sign_size)
    D.check("sign regime: E|Δy_i| = η·γ_r·r·σ_A‖x‖·√(2/π)", sign_size, eta * gamma * r * s * sp.sqrt(2 / sp.pi))

    # 6. SGD-like phase: ΔB_ij = −(η/ε)·g_ij, so Δy_i = −(η/ε) γ² v_i Σ_j (a_j·x)².
    sgd_size = (eta / eps) * gamma**2 * sp.Abs(v) * r * second
    D.step("computation", r"SGD-like regime: $\Delta{}B_{ij} = -(\eta/\epsilon) g_{ij}$, so $\Delta{}y_i = "
           r"-(\eta/\epsilon)\gamma_r^2 v_i \sum_j (a_j\cdot{}x)^2$:",
           lhs("E|Δy_i| (SGD-like)", r"\mathbb{E}|\Delta{}y_i|_{\mathrm{SGD}}"), sgd_size)
    D.check("SGD-like regime: E|Δy_i| = (η/ε)·γ_r²·r·|v_i|·σ_A²‖x‖²", sgd_size,
            (eta / eps) * gamma**2 * r * sp.Abs(v) * s**2)

    # 7. The two laws meet where E|g| ~ ε: their ratio is (π/2)·ρ.
    D.step("computation", r"The two laws meet where $\mathbb{E}|g_{ij}| \approx \epsilon$: their ratio is "
           r"$(\pi/2)\rho$.", lhs("SGD-like / sign", r"\mathbb{E}|\Delta{}y_i|_{\mathrm{SGD}}/"
                                  r"\mathbb{E}|\Delta{}y_i|_{\mathrm{sign}}"), sp.simplify(sgd_size / sign_size))
    D.check("SGD-like / sign = (π/2)·ρ, ρ = E|g_ij|/ε", sgd_size / sign_size, sp.pi / 2 * rho)

    # 8. The crossover rank for γ_r = α·r^g (g < 0): E|g_ij| = ε at r_ε = (ε/(α·G))^(1/g).
    rho_r = alpha * r**gexp * G / eps
    r_eps = sp.solve(sp.Eq(rho_r, 1), r)
    r_sol = r_eps[0] if len(r_eps) == 1 else sp.nan
    D.step("computation", r"With $\gamma_r = \alpha r^g$, $g < 0$, $\rho(r) = \alpha r^g G/\epsilon$ falls with $r$; "
           r"$\rho(r) = 1$ at", lhs("r_ε", r"r_\epsilon"), r_sol)
    D.check("ρ(r) = 1 has exactly one solution", sp.Integer(len(r_eps)), 1)
    D.check("ρ(r) = 1 has one solution r_ε = (ε/(α·G))^(1/g)", r_sol, (eps / (alpha * G)) ** (1 / gexp))
    D.check("d log ρ / d log r = g < 0: sign-like (ρ > 1) below r_ε, SGD-like beyond",
            sp.diff(rho_r, r) * r / rho_r, gexp)
    D.check("r_ε → ∞ as ε → 0 (γ ∝ r^-1/2): the sign regime is the ε → 0 limit taken before r → ∞",
            sp.limit(1 / r_sol.subs(gexp, sp.Rational(-1, 2)), eps, 0, "+"), 0)

    # 8b. Between the laws, exactly: with Z = a·x/(σ_A‖x‖) ~ N(0, 1) and κ = E|g|/(ε·√(2/π)) = ρ·√(π/2),
    # E|Δy_i| = (sign law)·F(ρ), F = E[κZ²/(κ|Z|+1)]/√(2/π) (every term of Σ_j has the sign of −v_i).
    q = named("ρ", r"\rho", positive=True)
    kappa = named("κ", r"\kappa", positive=True)
    zq, u = sp.symbols("z u", positive=True)
    term = kappa * zq**2 / (kappa * zq + 1)
    f_def = 2 * sp.Integral(term * sp.exp(-zq**2 / 2) / sp.sqrt(2 * sp.pi), (zq, 0, sp.oo)) / sp.sqrt(2 / sp.pi)
    D.step("computation", r"Between the laws, exactly: with $Z = a\cdot{}x/(\sigma_A\lVert{}x\rVert) \sim N(0, 1)$ and "
           r"$\kappa = \rho\sqrt{\pi/2}$, $\mathbb{E}|\Delta{}y_i|$ is the sign law times", lhs("F(ρ)", r"F(\rho)"), f_def)
    D.check("κz²/(κz+1) = z − 1/κ + 1/(κ(κz+1))", term, zq - 1 / kappa + 1 / (kappa * (kappa * zq + 1)))
    D.check("z − κz²/(κz+1) = z/(κz+1) ≥ 0, so F ≤ 1 (the sign law bounds the update)",
            zq - term, zq / (kappa * zq + 1))
    abs3 = sp.integrate(sp.Abs(z) ** 3 * pdf.subs({sigma_A: 1, xn: 1}), (z, -sp.oo, sp.oo))
    D.check("E|Z|³ = 2·√(2/π)", abs3, 2 * sp.sqrt(2 / sp.pi))
    on_rho = {kappa: q * sp.sqrt(sp.pi / 2)}
    lower_sign = ((sp.sqrt(2 / sp.pi) - 1 / kappa) / sp.sqrt(2 / sp.pi)).subs(on_rho)
    D.check("0 ≤ 1/(κ(κz+1)) ≤ 1/κ gives F ≥ 1 − 1/ρ", lower_sign, 1 - 1 / q)
    D.check("1/(1+u) − (1 − u) = u²/(1+u) ≥ 0, so κz²/(κz+1) ≥ κz² − κ²z³",
            1 / (1 + u) - (1 - u), u**2 / (1 + u))
    sgd_f = (kappa / sp.sqrt(2 / sp.pi)).subs(on_rho)  # κ·E Z²/√(2/π): the SGD-like law
    D.check("κz²/(κz+1) ≤ κz² gives F ≤ (π/2)·ρ, the SGD law with rate η/ε", sgd_f, sp.pi / 2 * q)
    lower_sgd = ((kappa - kappa**2 * abs3) / sp.sqrt(2 / sp.pi)).subs(on_rho) / sgd_f
    D.check("so F/((π/2)·ρ) ≥ 1 − 2ρ", lower_sgd, 1 - 2 * q)
    D.step("computation", r"Termwise bounds give $1 - 1/\rho \le F \le 1$ and $1 - 2\rho \le F/((\pi/2)\rho) \le 1$: "
           r"the sign law holds within 10% for $\rho \ge 10$ and the SGD-like law for $\rho \le 0.05$, "
           r"the thresholds of rsstab.theory, whose update factor is this $F$.")
    D.check("theory.ADAM_SIGN_RATIO: the sign law is within 10 %",
            1 - 1 / sp.nsimplify(theory.ADAM_SIGN_RATIO), sp.Rational(9, 10))
    D.check("theory.ADAM_SGD_RATIO: the SGD-like law is within 10 %",
            1 - 2 * sp.nsimplify(theory.ADAM_SGD_RATIO), sp.Rational(9, 10))
    f_one = f_def.subs(kappa, sp.sqrt(sp.pi / 2)).evalf(20)
    _close(D, "theory.adam_update_factor(1) = F(1) (numeric integral)", theory.adam_update_factor(1.0), f_one, 1e-10)
    _close(D, "theory.adam_grad_scale(|v| = 1/2, σ_A = 2, ‖x‖ = 3) = G", theory.adam_grad_scale(0.5, 2.0, 3.0),
           g_scale.subs({v: sp.Rational(1, 2), sigma_A: 2, xn: 3}), 1e-12)

    # 9. The learning-rate rule: the learned update ∝ η·γ_r^k·r stays Θ(1) with η ∝ r^p, p = −(k·g + 1).
    p, k = sp.Symbol("p"), sp.Symbol("k", positive=True)
    general = sp.solve(sp.Eq(sp.diff(sp.log(r**p * (r**gexp) ** k * r), r) * r, 0), p)
    regimes = ((2, "SGD", "sgd"), (1, "Adam sign regime", "adam"), (2, "Adam SGD-like (η/ε)", "sgd"))
    for kk, regime, optimizer in regimes:
        for gg in (sp.Rational(-1, 2), sp.Integer(-1), sp.Integer(0), sp.Rational(-1, 3)):
            size = r**p * (r**gg) ** kk * r
            sol = sp.solve(sp.Eq(sp.diff(sp.log(size), r) * r, 0), p)
            want = theory.lr_exponent(Fraction(int(gg.p), int(gg.q)), optimizer)
            D.check(f"{regime}, γ ∝ r^{gg}: η ∝ r^{sol[0]} (= theory.lr_exponent {want})",
                    sol[0], sp.Rational(want.numerator, want.denominator))  # type: ignore[union-attr]  # a Fraction in, a Fraction out
    D.step("result", r"The learned change $\propto \eta\gamma_r^k r$ stays $\Theta(1)$ with $\eta \propto r^p$: $k = 1$ "
           r"(sign regime, $r < r_\epsilon$) and $k = 2$ (SGD-like with rate $\eta/\epsilon$, $r > r_\epsilon$); for "
           r"rsLoRA's $g = -1/2$ that is $\eta \propto r^{-1/2}$ below $r_\epsilon$ and $\eta \propto 1$ beyond.",
           lhs("p", "p"), general[0] if len(general) == 1 else sp.nan)
    return D
