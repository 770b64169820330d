"""Adam with ε > 0: where the sign regime ends, and the learning-rate rule on each side.

Standalone derivation (not yet a ``rsstab derive`` section): run ``python proofs/adam_epsilon.py``;
it prints each step and exits 0 when every asserted identity holds, 1 (the failing identity on
stderr) otherwise.

Setup: one LoRA layer at step 0, B = 0, rows a_j of A iid N(0, σ_A² I), one input x, the gradient
v = ∂L/∂(adapter output). Then g_ij = ∂L/∂B_ij = γ_r·v_i·(a_j·x): its size depends on r only
through γ_r. Adam's first step is ΔB_ij = −η·g_ij/(|g_ij| + ε).
"""

from __future__ import annotations

import sys
from fractions import Fraction

import sympy as sp

RESULT = None  # standalone: proofs/test_proofs.py runs it, `rsstab derive` does not know it yet

eta, eps, gamma, sigma, xn, alpha = sp.symbols("eta epsilon gamma sigma_A x_norm alpha", positive=True)
beta1, beta2 = sp.symbols("beta_1 beta_2", positive=True)
g, z, v = sp.symbols("g z v_i", real=True)
r, G = sp.symbols("r G", positive=True)
gexp = sp.Symbol("g_exp", negative=True)

_checked: list[str] = []


def holds(name: str, expr: sp.Expr) -> None:
    """Assert ``expr == 0`` (after simplification) and record the step."""
    if sp.simplify(expr) != 0:
        print(f"identity fails: {name}: {sp.simplify(expr)} ≠ 0", file=sys.stderr)
        raise SystemExit(1)
    _checked.append(name)
    print(f"  ✓ {name}")


def close(name: str, value: float, exact: sp.Expr, rel: float = 1e-12) -> None:
    """Assert that a float computed by rsstab equals an exact expression to ``rel``."""
    want = float(exact)
    if abs(value - want) > rel * abs(want):
        print(f"identity fails: {name}: {value!r} ≠ {want!r}", file=sys.stderr)
        raise SystemExit(1)
    _checked.append(name)
    print(f"  ✓ {name}")


def main() -> int:
    print("Adam with ε: sign-like or SGD-like, and the learning-rate rule (first step, B = 0)")

    # 1. Adam's first step: the bias corrections cancel, the step is −η·g/(|g|+ε).
    m1, v1 = (1 - beta1) * g, (1 - beta2) * g**2
    step = -eta * (m1 / (1 - beta1)) / (sp.sqrt(v1 / (1 - beta2)) + eps)
    holds("first step ΔB = −η·g/(|g|+ε) for any β1, β2", step + eta * g / (sp.Abs(g) + eps))

    # 2. The two limits: sign descent (ε → 0) and SGD with rate η/ε (|g| ≪ ε).
    gp = sp.Symbol("g_pos", positive=True)
    phi = gp / (gp + eps)
    holds("ε → 0: g/(|g|+ε) → sign(g) = 1 (g > 0)", sp.limit(phi, eps, 0) - 1)
    holds("ε → 0: g/(|g|+ε) → sign(g) = −1 (g < 0)", sp.limit(-gp / (gp + eps), eps, 0) + 1)
    holds("|g| ≪ ε: g/(|g|+ε) ≈ g/ε (ratio → 1)", sp.limit(phi / (gp / eps), gp, 0) - 1)

    # 3. Gaussian moments of a_j·x ~ N(0, s²), s = σ_A‖x‖.
    s = sigma * xn
    pdf = sp.exp(-z**2 / (2 * s**2)) / (s * sp.sqrt(2 * sp.pi))
    mean_abs = sp.integrate(sp.Abs(z) * pdf, (z, -sp.oo, sp.oo))
    holds("E|a·x| = σ_A‖x‖·√(2/π)", mean_abs - s * sp.sqrt(2 / sp.pi))
    second = sp.integrate(z**2 * pdf, (z, -sp.oo, sp.oo))
    holds("E(a·x)² = σ_A²‖x‖²", second - s**2)

    # 4. The per-entry gradient of B: E|g_ij| = γ·|v_i|·σ_A‖x‖·√(2/π) =: γ·G, whatever r is.
    mean_grad = gamma * sp.Abs(v) * mean_abs
    g_scale = sp.Abs(v) * s * sp.sqrt(2 / sp.pi)
    holds("E|g_ij| = γ_r·G with G = |v_i|·σ_A·‖x‖·√(2/π) (no r)", mean_grad - gamma * g_scale)
    rho = mean_grad / eps

    # 5. Sign regime: ΔB_ij = −η·sign(g_ij), so Δy_i = γ Σ_j ΔB_ij (a_j·x) = −η γ sign(v_i) Σ_j |a_j·x|.
    zp, vp = sp.symbols("z_pos v_pos", positive=True)
    for zz, vv in ((zp, vp), (-zp, vp), (zp, -vp), (-zp, -vp)):
        holds(f"sign(γ·v·z)·z = sign(v)·|z| at v = {vv}, z = {zz}",
              sp.sign(gamma * vv * zz) * zz - sp.sign(vv) * sp.Abs(zz))
    sign_size = eta * gamma * r * mean_abs  # E|Δy_i| over r rows
    holds("sign regime: E|Δy_i| = η·γ_r·r·σ_A‖x‖·√(2/π)",
          sign_size - eta * gamma * r * s * sp.sqrt(2 / sp.pi))

    # 6. SGD-like regime: ΔB_ij = −(η/ε)·g_ij, so Δy_i = −(η/ε) γ² v_i Σ_j (a_j·x)².
    sgd_size = (eta / eps) * gamma**2 * sp.Abs(v) * r * second
    holds("SGD-like regime: E|Δy_i| = (η/ε)·γ_r²·r·|v_i|·σ_A²‖x‖²",
          sgd_size - (eta / eps) * gamma**2 * r * sp.Abs(v) * s**2)

    # 7. The two laws meet where E|g| ~ ε: their ratio is (π/2)·ρ.
    holds("SGD-like / sign = (π/2)·ρ, ρ = E|g_ij|/ε", sgd_size / sign_size - sp.pi / 2 * rho)

    # 8. The crossover rank for γ_r = α·r^g (g < 0): E|g_ij| = ε at r_ε = (ε/(α·G))^(1/g).
    rho_r = alpha * r**gexp * G / eps
    r_eps = sp.solve(sp.Eq(rho_r, 1), r)
    if len(r_eps) != 1:
        print(f"identity fails: ρ(r) = 1 has {len(r_eps)} solutions, not one", file=sys.stderr)
        raise SystemExit(1)
    holds("ρ(r) = 1 has one solution r_ε = (ε/(α·G))^(1/g)", r_eps[0] - (eps / (alpha * G)) ** (1 / gexp))
    holds("d log ρ / d log r = g < 0: sign-like (ρ > 1) below r_ε, SGD-like beyond",
          sp.diff(rho_r, r) * r / rho_r - gexp)
    holds("r_ε → ∞ as ε → 0 (γ ∝ r^-1/2): the sign regime is the ε → 0 limit taken before r → ∞",
          sp.limit(1 / r_eps[0].subs(gexp, sp.Rational(-1, 2)), eps, 0, "+"))

    # 8b. Between the laws, exactly: with Z = a·x/(σ_A‖x‖) ~ N(0, 1) and κ = E|g|/(ε·√(2/π)) = ρ·√(π/2),
    # E|Δy_i| = (sign law)·F(ρ), F = E[κZ²/(κ|Z|+1)]/√(2/π) (every term of Σ_j has the sign of −v_i).
    from rsstab import theory

    q = sp.Symbol("rho", positive=True)
    kappa, zq, u = sp.symbols("kappa z u", positive=True)
    term = kappa * zq**2 / (kappa * zq + 1)
    holds("κz²/(κz+1) = z − 1/κ + 1/(κ(κz+1))", term - (zq - 1 / kappa + 1 / (kappa * (kappa * zq + 1))))
    holds("z − κz²/(κz+1) = z/(κz+1) ≥ 0, so F ≤ 1 (the sign law bounds the update)",
          zq - term - zq / (kappa * zq + 1))
    abs3 = sp.integrate(sp.Abs(z) ** 3 * pdf.subs({sigma: 1, xn: 1}), (z, -sp.oo, sp.oo))
    holds("E|Z|³ = 2·√(2/π)", abs3 - 2 * sp.sqrt(2 / sp.pi))
    on_rho = {kappa: q * sp.sqrt(sp.pi / 2)}
    lower_sign = ((sp.sqrt(2 / sp.pi) - 1 / kappa) / sp.sqrt(2 / sp.pi)).subs(on_rho)
    holds("0 ≤ 1/(κ(κz+1)) ≤ 1/κ gives F ≥ 1 − 1/ρ", lower_sign - (1 - 1 / q))
    holds("1/(1+u) − (1 − u) = u²/(1+u) ≥ 0, so κz²/(κz+1) ≥ κz² − κ²z³",
          1 / (1 + u) - (1 - u) - u**2 / (1 + u))
    sgd_f = (kappa / sp.sqrt(2 / sp.pi)).subs(on_rho)  # κ·E Z²/√(2/π): the SGD-like law
    holds("κz²/(κz+1) ≤ κz² gives F ≤ (π/2)·ρ, the SGD law with rate η/ε", sgd_f - sp.pi / 2 * q)
    lower_sgd = ((kappa - kappa**2 * abs3) / sp.sqrt(2 / sp.pi)).subs(on_rho) / sgd_f
    holds("so F/((π/2)·ρ) ≥ 1 − 2ρ", lower_sgd - (1 - 2 * q))
    holds("theory.ADAM_SIGN_RATIO: the sign law is within 10 %",
          1 - 1 / sp.nsimplify(theory.ADAM_SIGN_RATIO) - sp.Rational(9, 10))
    holds("theory.ADAM_SGD_RATIO: the SGD-like law is within 10 %",
          1 - 2 * sp.nsimplify(theory.ADAM_SGD_RATIO) - sp.Rational(9, 10))
    f_one = (2 * sp.Integral(term.subs(kappa, sp.sqrt(sp.pi / 2)) * sp.exp(-zq**2 / 2) / sp.sqrt(2 * sp.pi),
                             (zq, 0, sp.oo)) / sp.sqrt(2 / sp.pi)).evalf(20)
    close("theory.adam_update_factor(1) = F(1) (numeric integral)", theory.adam_update_factor(1.0), f_one, 1e-10)
    close("theory.adam_grad_scale(|v| = 1/2, σ_A = 2, ‖x‖ = 3) = G",
          theory.adam_grad_scale(0.5, 2.0, 3.0), g_scale.subs({v: sp.Rational(1, 2), sigma: 2, xn: 3}))

    # 9. The learning-rate rule: the learned update ∝ η·γ_r^k·r stays Θ(1) with η ∝ r^p, p = −(k·g + 1).
    p = sp.Symbol("p")
    regimes = ((2, "SGD", "sgd"), (1, "Adam sign regime", "adam"), (2, "Adam SGD-like (η/ε)", "sgd"))
    for k, regime, optimizer in regimes:
        for gg in (sp.Rational(-1, 2), sp.Integer(-1), sp.Integer(0), sp.Rational(-1, 3)):
            size = r**p * (r**gg) ** k * r
            sol = sp.solve(sp.Eq(sp.diff(sp.log(size), r) * r, 0), p)
            want = theory.lr_exponent(Fraction(int(gg.p), int(gg.q)), optimizer)
            holds(f"{regime}, γ ∝ r^{gg}: η ∝ r^{sol[0]} (= theory.lr_exponent {want})",
                  sol[0] - sp.Rational(want.numerator, want.denominator))

    print(f"all {len(_checked)} identities hold")
    return 0


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(f"usage: python proofs/adam_epsilon.py [-h]\n\n{__doc__}")
        sys.exit(0)
    sys.exit(main())
