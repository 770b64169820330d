r"""Results 9 and 10: the learned change at finite rank r and width d, split into its coherent part
(the mean over A, the object of Theorem 3.2) and its incoherent part (the fluctuation over A).

Every second moment is taken by the pairing engine; the *coherent square* ‖E_A X‖² is computed as
E⟨X(A), X(A′)⟩ over two independent copies A, A′ ("replicas"), so it too comes out of pairings,
and the incoherent square is the difference. The derived coefficients are compared with
:func:`rsstab.theory.width_coefficients` (the single place that knows the laws).

>>> coherent, incoherent = sgd_forward_parts()
>>> sp.factor(incoherent)
eta**2*gamma_r**4*r*sigma_A**4*sigma_x**2*‖g‖²*(d + 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import sympy as sp

from rsstab import theory
from rsstab.derive.model import Derivation
from rsstab.derive.symbols import P, component, d, dot, eta, gamma, lhs, named, r, sigma_A, sigma_x
from rsstab.derive.wick import Factor, IndexSum, brute_force_expectation, explicit, wick_expectation
from rsstab.derive.words import (
    A0,
    TRANSPOSE,
    expect_nc,
    expect_nc_square,
    r_exponent,
    sgd_trajectory,
    transpose,
    vector,
)
from rsstab.errors import RsstabError
from rsstab.theory import law
from rsstab.vocab import Optimizer

__all__ = ["adam_finite_width", "adam_forward_parts", "arcsin_law", "finite_width", "replica",
           "sgd_backward_parts", "sgd_forward_parts", "sign_row_moments"]

#: The numbers of SGD steps whose first-order-in-η part result 9 checks exactly.
STEPS = (1, 2, 3)
#: Concrete (r, d) at which the pairing engine is checked against a brute-force expansion (r < d included).
BRUTE_SIZES = ((1, 3), (2, 2), (3, 1))

_A, _AP = "A", "A′"
#: The angle between two unit vectors, its cosine, and the uniform angle in their plane (result 10).
THETA = named("θ", r"\theta", positive=True)
RHO = named("ρ", r"\rho", real=True)
PHI = named("φ", r"\varphi", real=True)
_VAR_A = {_A: sigma_A**2, _AP: sigma_A**2}
_VAR_AX = _VAR_A | {"xp": sigma_x**2}


def replica(s: IndexSum, tensor: str = _A, copy: str = _AP) -> IndexSum:
    """``s`` with the random tensor ``tensor`` replaced by an independent copy: E[s·replica(s)] = E[s]²."""
    return IndexSum(s.coeff, tuple(Factor(copy if f.tensor == tensor else f.tensor, f.indices) for f in s.factors),
                    s.ranges)


def _summed_over(s: IndexSum, index: str, size: sp.Expr) -> IndexSum:
    """Sum a product over an index it shares (e.g. Σ_i S_i² for an output coordinate i)."""
    return IndexSum(s.coeff, s.factors, (*s.ranges, (index, size)))


def _forward_row() -> IndexSum:
    """One output coordinate of the learned change after one SGD step, for data-gradient row g:
    ``−η γ_r² gᵀ AᵀA x′ = −η γ_r² Σ_j Σ_k Σ_l g_k A_jk A_jl x′_l``."""
    return IndexSum(-eta * gamma**2, (Factor("g", ("k",)), Factor(_A, ("j", "k")), Factor(_A, ("j", "l")),
                                      Factor("xp", ("l",))), (("j", r), ("k", d), ("l", d)))


def _backward_entry() -> IndexSum:
    """Entry i of the backward signal ``−η γ_r² AᵀA w`` (w = Gᵀu, u the fixed output gradient)."""
    return IndexSum(-eta * gamma**2, (Factor(_A, ("j", "i")), Factor(_A, ("j", "k")), Factor("w", ("k",))),
                    (("j", r), ("k", d)))


@cache
def sgd_forward_parts(isotropic: bool = True) -> tuple[sp.Expr, sp.Expr]:
    """(coherent, incoherent) square of one output coordinate of the SGD learned change, by pairings.

    ``isotropic``: the probe x′ ~ N(0, σ_x² I_d) is averaged too; else it is a given vector.
    """
    s = _forward_row()
    var = _VAR_AX if isotropic else _VAR_A
    total = wick_expectation(s.power(2), var)
    coherent = wick_expectation(s.times(replica(s)), var)
    return sp.expand(coherent), sp.expand(total - coherent)


@cache
def sgd_backward_parts() -> tuple[sp.Expr, sp.Expr]:
    """(coherent, incoherent) square of the whole backward signal −η γ_r² AᵀA w, summed over its d entries."""
    s = _backward_entry()
    total = wick_expectation(_summed_over(s.times(s), "i", d), _VAR_A)
    coherent = wick_expectation(_summed_over(s.times(replica(s)), "i", d), _VAR_A)
    return sp.expand(coherent), sp.expand(total - coherent)


def _eta_part(expr: sp.Expr, power: int) -> sp.Expr:
    """The terms of a (matrix) polynomial that carry exactly η^power."""
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        c, _ = term.args_cnc()
        coeff = sp.Mul(*c)
        if (sp.Poly(coeff, eta).degree() if coeff.has(eta) else 0) == power:
            out += term
    return out


def _check_theory(D: Derivation, quantity: str, optimizer: Optimizer, coherent: sp.Expr, incoherent: sp.Expr,
                  scale: sp.Expr, d_eff: sp.Expr, where: str) -> None:
    """Tie derived coherent/incoherent squares to rsstab.theory's finite-width coefficients, exactly."""
    coh, inc = theory.width_coefficients(quantity, optimizer, d_eff, pi=sp.pi)
    k = int(law(quantity, optimizer).gamma_power)
    D.check(f"{quantity} ({optimizer}, {where}): coherent square = scale·γ_r^{2 * k}·c_coh·r² with rsstab.theory's "
            f"c_coh = {sp.sstr(coh)}", coherent, scale * gamma ** (2 * k) * coh * r**2)
    D.check(f"{quantity} ({optimizer}, {where}): incoherent square = scale·γ_r^{2 * k}·c_inc·r with rsstab.theory's "
            f"c_inc = {sp.sstr(inc)}", incoherent, scale * gamma ** (2 * k) * inc * r)
    D.check(f"{quantity} ({optimizer}): the coherent square's r-exponent under γ_r = r^p is twice rsstab.theory's "
            f"r → ∞ law {law(quantity, optimizer).text}", r_exponent(coherent, P),
            2 * (sp.Rational(law(quantity, optimizer).gamma_power) * P + sp.Rational(law(quantity, optimizer).rank_power)))


def _check_crossover_and_slope(D: Derivation, optimizer: Optimizer, coherent: sp.Expr, incoherent: sp.Expr) -> None:
    """r* from coherent = incoherent, and the RMS local slope for γ_r = r^p, against rsstab.theory."""
    x = sp.Symbol("x", positive=True)  # r itself is an integer symbol; the crossover need not be an integer
    roots = sp.solve(sp.Eq(coherent, incoherent).subs(r, x), x)
    rstar = theory.crossover_rank("forward", optimizer, d, pi=sp.pi)
    D.step("computation", "The crossover rank: the coherent and incoherent squares are equal.", lhs("r⋆", "r^{*}"),
           roots[0] if len(roots) == 1 else sp.Tuple(*roots))
    D.check(f"the crossover rank r* solving coherent = incoherent is rsstab.theory's {sp.sstr(rstar)}",
            sp.Tuple(*roots), sp.Tuple(rstar))
    ms = (coherent + incoherent).subs(gamma, r**P)
    slope = sp.simplify(r * sp.diff(sp.log(ms) / 2, r))
    D.step("computation", r"The local slope of the RMS in $\log r$ for $\gamma_r = r^p$.",
           lhs("d log RMS / d log r", r"\frac{d \log \mathrm{RMS}}{d \log r}"), sp.factor(slope))
    D.check("the RMS local slope equals rsstab.theory.rms_local_slope", slope,
            theory.rms_local_slope("forward", optimizer, r, d, P, pi=sp.pi))
    k = sp.Rational(law("forward", optimizer).gamma_power)
    D.check("r ≫ d: the RMS slope tends to the r → ∞ law's exponent k·p + 1", sp.limit(slope, r, sp.oo), k * P + 1)
    D.check("r ≪ d: the RMS slope tends to k·p + 1/2 (the incoherent part, γ_r^k·√r)", sp.limit(slope, r, 0),
            k * P + sp.Rational(1, 2))


# --------------------------------------------------------------------------------------------------
# Result 9: SGD
# --------------------------------------------------------------------------------------------------


def _brute_checks(D: Derivation, s: IndexSum, var: Mapping[str, sp.Expr], what: str, summed: str | None = None) -> None:
    for rr, dd in BRUTE_SIZES:
        sizes = {r: rr, d: dd}
        for name, prod in (("second moment", s.times(s)), ("replica product", s.times(replica(s)))):
            prod = _summed_over(prod, summed, d) if summed else prod
            D.check(f"pairing engine = brute-force expansion for the {what} {name} at r={rr}, d={dd}",
                    explicit(wick_expectation(prod, var), prod, sizes), brute_force_expectation(prod, var, sizes))


def finite_width() -> Derivation:
    """Result 9 (``finite-width``): SGD's learned change and backward signal at finite (r, d)."""
    D = Derivation("finite-width", 9, "finite width: the coherent and incoherent parts under SGD",
                   r"At finite $r$ and $d$ the learned change after $n$ SGD steps (to first order in $\eta$) has "
                   r"mean square $\eta^2\gamma_r^4\sigma_A^4\sigma_x^2\lVert G\rVert_F^2\,(r^2 + (d+1)\,r)$ over $A$ "
                   r"and isotropic probes: a coherent part $\propto \gamma_r^4 r^2$ (Theorem 3.2's mean) and an "
                   r"incoherent part $\propto \gamma_r^4 r\,(d+1)$, equal at the crossover rank $r^* = d + 1$; the "
                   r"backward signal for a fixed $u$ obeys the same law with $\lVert G^\top u\rVert^2$.")
    D.step("assumption", r"$B_0 = 0$, $A$ has iid $N(0, \sigma_A^2)$ entries (rows $a_j$), $M = A^\top A$. The data "
           r"gradient $G = \frac{1}{b}\sum_k v_k x_k^\top$ (what a full fine-tune of the weight would get) does not "
           r"depend on $A$ because $B = 0$. One SGD step: $\Delta B = -\eta\gamma_r G A^\top$, so the learned change "
           r"on a probe $x'$ is $\Delta u = \gamma_r \Delta B A x' = -\eta\gamma_r^2 G M x'$. Output coordinate $o$, "
           r"with $g$ the row $o$ of $G$:", lhs("Δu_o", r"\Delta u_o"), _forward_row().as_sympy())
    D.step("assumption", r"Coherent part: the mean over $A$ (what Theorem 3.2 is about); incoherent part: the rest. "
           r"The coherent square $\lVert\mathbb{E}_A X\rVert^2 = \mathbb{E}\langle X(A), X(A')\rangle$ for an "
           r"independent copy $A'$, so it is a pairing sum too; incoherent square = second moment − coherent square.")
    s = _forward_row()
    mean = wick_expectation(s, _VAR_A)
    D.step("computation", r"Pairing the two $A$ entries ties the row indices: the $r$ rows add coherently.",
           lhs("E_A[Δu_o]", r"\mathbb{E}_A[\Delta u_o]"), mean)
    D.check("E_A[Δu_o] = −η γ_r² r σ_A² (g·x′)", mean, -eta * gamma**2 * r * sigma_A**2 * dot("g", "xp"))
    coh1, inc1 = sgd_forward_parts(isotropic=False)
    D.step("computation", r"Four $A$ entries, three pairings: for a given probe $x'$ (coherent square, then incoherent).",
           lhs("‖E_A Δu_o‖²", r"\lVert\mathbb{E}_A \Delta u_o\rVert^2"), sp.factor(coh1))
    D.step("computation", "", lhs("Var_A(Δu_o)", r"\mathrm{Var}_A(\Delta u_o)"), sp.factor(inc1))
    D.check("coherent square = η² γ_r⁴ σ_A⁴ r² (g·x′)²", coh1, eta**2 * gamma**4 * sigma_A**4 * r**2 * dot("g", "xp")**2)
    D.check("incoherent square = η² γ_r⁴ σ_A⁴ r ((g·x′)² + ‖g‖²‖x′‖²)", inc1,
            eta**2 * gamma**4 * sigma_A**4 * r * (dot("g", "xp")**2 + dot("g", "g") * dot("xp", "xp")))
    D.step("computation", r"As a quadratic form in $x'$ this is $\mathbb{E}[M g g^\top M] = \sigma_A^4((r^2+r)\,g g^\top "
           r"+ r\lVert g\rVert^2 I)$; summing the rows, $\mathbb{E}[M C M] = \sigma_A^4((r^2 + r) C + r\,\mathrm{tr}(C) I)$ "
           r"for $C = G^\top G$: coherent $\propto r^2\lVert Gx'\rVert^2$, incoherent $\propto r(\lVert Gx'\rVert^2 + "
           r"\lVert G\rVert_F^2\lVert x'\rVert^2)$, ratio $(1 + d_{\mathrm{eff}})/r$ with $d_{\mathrm{eff}} = "
           r"\lVert G\rVert_F^2\lVert x'\rVert^2/\lVert G x'\rVert^2$.")
    coh, inc = sgd_forward_parts(isotropic=True)
    D.step("computation", r"Isotropic probes $x' \sim N(0, \sigma_x^2 I_d)$ (the simulator's data at the first layer), "
           r"averaged by pairing the two $x'$ entries as well.", lhs("E‖E_A Δu_o‖²", r"\mathbb{E}\lVert\mathbb{E}_A \Delta u_o\rVert^2"),
           sp.factor(coh))
    D.step("computation", "", lhs("E Var_A(Δu_o)", r"\mathbb{E}\,\mathrm{Var}_A(\Delta u_o)"), sp.factor(inc))
    scale = eta**2 * sigma_A**4 * sigma_x**2 * dot("g", "g")
    _check_theory(D, "forward", "sgd", coh, inc, scale, d, "isotropic probes, d_eff = d")
    # Deeper layers: probes with a covariance Σ_h, at a concrete size with symbolic entries.
    Gm = sp.Matrix(2, 3, lambda a, b: sp.Symbol(f"G_{a}{b}", real=True))
    Sig = sp.Matrix(3, 3, lambda a, b: sp.Symbol(f"S_{min(a, b)}{max(a, b)}", real=True))
    C = Gm.T * Gm
    via_mcm = (Sig * ((r**2 + r) * C + r * C.trace() * sp.eye(3))).trace()
    coh_s, g_f2 = (Gm * Sig * Gm.T).trace(), (Gm.T * Gm).trace()
    D.check("deeper layers (probe covariance Σ_h, checked at d = 3, d_out = 2): E_x′ x′ᵀE[MCM]x′/σ_A⁴ = "
            "(r² + r) tr(GΣ_hGᵀ) + r ‖G‖_F² tr Σ_h, so d_eff = tr(Σ_h)‖G‖_F²/tr(GΣ_hGᵀ)",
            via_mcm, coh_s * (r**2 + r + r * g_f2 * Sig.trace() / coh_s))
    D.check("Σ_h = σ_x² I gives d_eff = tr(Σ_h)‖G‖_F²/tr(GΣ_hGᵀ) = d (d = 3)",
            sp.simplify((Sig.trace() * g_f2 / coh_s).subs({s_: (sigma_x**2 if s_.name[2] == s_.name[3] else 0)
                                                             for s_ in Sig.free_symbols})), 3)
    D.step("result", r"Summing the $d_{out}$ rows ($\sum_o\lVert g_o\rVert^2 = \lVert G\rVert_F^2$): over isotropic probes "
           r"$d_{\mathrm{eff}} = d$ exactly, whatever $G$. At deeper layers, with hidden probes of covariance $\Sigma_h$, "
           r"$d_{\mathrm{eff}} = \mathrm{tr}(\Sigma_h)\lVert G\rVert_F^2/\mathrm{tr}(G\Sigma_h G^\top)$.",
           lhs("E‖Δu‖²", r"\mathbb{E}\lVert\Delta u\rVert^2"),
           sp.factor((coh + inc).subs(dot("g", "g"), named("‖G‖_F²", r"\lVert G\rVert_F^{2}", positive=True))))
    _check_crossover_and_slope(D, "sgd", coh, inc)
    _brute_checks(D, s, _VAR_A, "forward row (given probe)")
    _brute_checks(D, s, _VAR_AX, "forward row (isotropic probe)")
    # n steps, to first order in η: G → Σ_t G_t.
    D.step("computation", r"$n$ SGD steps (exact recursion of result 3): the $\eta^1$ part of $\gamma_r B_n A_n x'$ is "
           r"$-\eta\gamma_r^2 \sum_t v_t x_t^\top A^\top A x'$, i.e. $G \to \sum_t G_t$; per output coordinate $i$ "
           r"the row is $g_i = \sum_t v_t[i]\, x_t$.")
    for n in STEPS:
        A_n, B_n = sgd_trajectory(n)
        lin = _eta_part(sp.expand(gamma * B_n * A_n * vector("xp")), 1)
        G_sum = sp.Add(*[vector(f"v{t}") * TRANSPOSE[vector(f"x{t}")] for t in range(n)])
        D.check(f"n={n}: η¹ part of γ_r B_n A_n x′ = −η γ_r² (Σ_t v_t x_tᵀ) AᵀA x′",
                sp.expand(lin - (-eta * gamma**2 * G_sum * TRANSPOSE[A0] * A0 * vector("xp"))), 0)
        gx = sp.Add(*[component(f"v{t}") * dot(f"x{t}", "xp") for t in range(n)])
        g2 = sp.Add(*[component(f"v{t}") * component(f"v{q}") * dot(f"x{t}", f"x{q}") for t in range(n) for q in range(n)])
        m2 = expect_nc_square(lin)
        D.check(f"n={n}: E_A[(η¹ part)_i²] = η²γ_r⁴σ_A⁴((r² + r)(g_i·x′)² + r‖g_i‖²‖x′‖²), g_i = Σ_t v_t[i] x_t",
                m2, eta**2 * gamma**4 * sigma_A**4 * ((r**2 + r) * gx**2 + r * g2 * dot("xp", "xp")))
        D.check(f"n={n}: its coherent square is η²γ_r⁴σ_A⁴ r² (g_i·x′)²", expect_nc(lin) ** 2,
                eta**2 * gamma**4 * sigma_A**4 * r**2 * gx**2)
        lin_b = _eta_part(sp.expand(transpose(gamma * B_n * A_n) * vector("u")), 1)
        D.check(f"n={n}: η¹ part of (γ_r B_n A_n)ᵀu = −η γ_r² AᵀA (Σ_t v_t x_tᵀ)ᵀ u (backward: w = Gᵀu)",
                sp.expand(lin_b - (-eta * gamma**2 * TRANSPOSE[A0] * A0 * transpose(G_sum) * vector("u"))), 0)
        if n == 2:
            D.step("computation", f"For n = {n}, per output coordinate i.", lhs(f"E_A[(Δu_{n})_i²]", rf"\mathbb{{E}}_A[(\Delta u_{n})_i^2]"),
                   sp.factor_terms(sp.collect(m2, [r**2, r], sp.factor)))
    # Backward, fixed u.
    sb = _backward_entry()
    D.step("computation", r"Backward with a fixed output gradient $u$ (Definition 3.1): "
           r"$(\gamma_r \Delta B A)^\top u = -\eta\gamma_r^2 M w$ with $w = G^\top u$; entry $i$:",
           lhs("(Δ_back)_i", r"(\Delta_{\mathrm{back}})_i"), sb.as_sympy())
    cb, ib = sgd_backward_parts()
    D.step("computation", r"Summed over the $d$ entries $i$ (pairings; the replica for the coherent square).",
           lhs("‖E_A Δ_back‖²", r"\lVert\mathbb{E}_A\Delta_{\mathrm{back}}\rVert^2"), sp.factor(cb))
    D.step("computation", "", lhs("E_A‖Δ_back − E_A Δ_back‖²", r"\mathbb{E}_A\lVert\Delta_{\mathrm{back}} - "
                                  r"\mathbb{E}_A\Delta_{\mathrm{back}}\rVert^2"), sp.factor(ib))
    _check_theory(D, "backward", "sgd", cb, ib, eta**2 * sigma_A**4 * dot("w", "w"), d, "fixed u, d_eff = d for every G")
    _brute_checks(D, sb, _VAR_A, "backward signal", summed="i")
    D.step("result", r"Coherent $\propto \gamma_r^4 r^2$, incoherent $\propto \gamma_r^4 r (d + 1)$ for the forward change "
           r"(isotropic probes) and the backward signal (any fixed $u$): the RMS follows Theorem 3.2's $\gamma_r^2 r$ only "
           r"for $r \gg d$; for $r \ll d$ it is $\propto \gamma_r^2\sqrt{rd}$, so rsLoRA's RMS shrinks like $r^{-1/2}$ "
           r"there while its coherent part stays $\Theta(1)$.")
    return D


# --------------------------------------------------------------------------------------------------
# Result 10: Adam
# --------------------------------------------------------------------------------------------------


def _dot_sum(u: str, w: str) -> IndexSum:
    """Σ_k u_k w_k over the width d as an index sum (either vector may be random in the expectation)."""
    return IndexSum(sp.Integer(1), (Factor(u, ("k",)), Factor(w, ("k",))), (("k", d),))


@cache
def sign_row_moments() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(β, E[sign(U) W], E[W²]) for U = g·a, W = a·x′, a ~ N(0, σ_A² I_d), by regression and pairings.

    W = βU + Z with β = Cov(U, W)/Var(U) and Z independent of U, so E[sign(U) W] = β E|U|.
    """
    U, W = _dot_sum("g", "a"), _dot_sum("a", "xp")
    var = {"a": sigma_A**2}
    beta = wick_expectation(U.times(W), var) / wick_expectation(U.power(2), var)
    s_u = sp.sqrt(wick_expectation(U.power(2), var))
    z = sp.Symbol("z", real=True)
    abs_mean = sp.integrate(sp.Abs(z) * sp.exp(-z**2 / (2 * s_u**2)) / sp.sqrt(2 * sp.pi * s_u**2), (z, -sp.oo, sp.oo))
    return sp.simplify(beta), sp.simplify(beta * abs_mean), wick_expectation(W.power(2), var)


def arcsin_law() -> tuple[sp.Expr, sp.Expr]:
    """(E[sign(ĝ·a) sign(ĝ′·a)] as a function of the angle θ between ĝ, ĝ′, and the same at cos θ = ρ).

    In the plane of ĝ, ĝ′ the projection of a is isotropic, so its angle φ is uniform on [−π/2, 3π/2);
    sign(cos φ) and sign(cos(φ − θ)) differ on two wedges of width θ.
    """
    th, phi, rho = THETA, PHI, RHO
    h = sp.pi / 2
    pieces = ((-h, th - h, -1), (th - h, h, 1), (h, th + h, -1), (th + h, 3 * h, 1))
    e_theta = sp.simplify(sp.Add(*[sgn * sp.integrate(1, (phi, a, b)) for a, b, sgn in pieces]) / (2 * sp.pi))
    return e_theta, sp.expand(e_theta.subs(th, sp.acos(rho)).rewrite(sp.asin))


@cache
def adam_forward_parts() -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """(coherent, incoherent) square of one output coordinate after Adam's first step, for a given probe,
    then averaged over isotropic probes: (coh, inc, coh_iso, inc_iso)."""
    _, mean, second = sign_row_moments()
    coh = sp.expand((eta * gamma * r * mean) ** 2)
    inc = sp.expand(eta**2 * gamma**2 * r * (second - mean**2))
    probe = {"xp": sigma_x**2}
    gx2 = wick_expectation(_dot_sum("g", "xp").power(2), probe)     # E[(g·x′)²] = σ_x²‖g‖²
    x2 = wick_expectation(_dot_sum("xp", "xp"), probe)              # E‖x′‖² = d σ_x²
    return coh, inc, _average(coh, gx2, x2), _average(inc, gx2, x2)


def _average(expr: sp.Expr, gx2: sp.Expr, x2: sp.Expr) -> sp.Expr:
    """Average a polynomial that is linear in (g·x′)² and ‖x′‖² over the probe (the only x′-dependence)."""
    a, b = sp.Symbol("_gx2"), sp.Symbol("_x2")
    lin = sp.expand(expr.subs(dot("g", "xp") ** 2, a).subs(dot("xp", "xp"), b))
    if lin.has(dot("g", "xp")) or sp.Poly(lin, a, b).total_degree() > 1:
        raise RsstabError("probe average: expected a polynomial linear in (g·x′)² and ‖x′‖²")
    return sp.expand(lin.subs({a: gx2, b: x2}))


def adam_finite_width() -> Derivation:
    """Result 10 (``adam-finite-width``): Adam's first step at finite (r, d), forward and backward."""
    c = 2 / sp.pi
    D = Derivation("adam-finite-width", 10, "finite width: the coherent and incoherent parts under Adam",
                   r"After Adam's first step (sign descent) the learned change has, per output coordinate and over "
                   r"isotropic probes, a coherent square $\propto \frac{2}{\pi}\gamma_r^2 r^2$ and an incoherent square "
                   r"$\propto \gamma_r^2 r\,(d - \frac{2}{\pi})$: crossover $r^* = \pi d/2 - 1$. The backward signal for a "
                   r"fixed $u$ has coherent $\frac{2}{\pi} r^2\lVert\hat G^\top u\rVert^2$ and incoherent "
                   r"$r(dQ - \frac{2}{\pi}\lVert\hat G^\top u\rVert^2)$, $Q = u^\top\frac{2}{\pi}\arcsin(\hat G\hat G^\top)u$ "
                   r"(times $\eta^2\gamma_r^2\sigma_A^2$); $n$ steps with a constant gradient are $n$ first steps.")
    D.step("assumption", r"As in result 9, and Adam with $\epsilon \to 0$ (result 7): $\Delta B = -\eta\,\mathrm{sign}"
           r"(\nabla_B L) = -\eta\,\mathrm{sign}(G A^\top)$ ($\gamma_r > 0$ drops out of the sign). Output coordinate "
           r"$o$ with data-gradient row $g$: $\Delta u_o = -\eta\gamma_r\sum_{j=1}^r \mathrm{sign}(g\cdot a_j)(a_j\cdot x')$, "
           r"a sum of $r$ iid terms, so coherent square $= \eta^2\gamma_r^2 r^2\,\mathbb{E}[X]^2$ and incoherent "
           r"$= \eta^2\gamma_r^2 r\,\mathrm{Var}(X)$ for $X = \mathrm{sign}(U)W$, $U = g\cdot a$, $W = a\cdot x'$.")
    beta, mean, second = sign_row_moments()
    D.step("computation", r"Regression: $U, W$ are jointly Gaussian, $W = \beta U + Z$ with $\beta = \mathrm{Cov}(U, W)/"
           r"\mathrm{Var}(U)$ (pairings) and $Z \perp U$, hence independent of $U$.", lhs("β", r"\beta"), beta)
    D.check("β = (g·x′)/‖g‖² from the pairings E[UW] = σ_A²(g·x′), E[U²] = σ_A²‖g‖²", beta, dot("g", "xp") / dot("g", "g"))
    U, W = _dot_sum("g", "a"), _dot_sum("a", "xp")
    D.check("Cov(Z, U) = E[UW] − β E[U²] = 0 (pairings)",
            wick_expectation(U.times(W), {"a": sigma_A**2}) - beta * wick_expectation(U.power(2), {"a": sigma_A**2}), 0)
    D.step("computation", r"$\mathbb{E}[\mathrm{sign}(U)W] = \beta\,\mathbb{E}|U|$, the half-normal mean integrated by sympy.",
           lhs("E[sign(U) W]", r"\mathbb{E}[\mathrm{sign}(U)W]"), mean)
    D.check("E[sign(g·a)(a·x′)] = σ_A √(2/π) (ĝ·x′)", mean, sigma_A * sp.sqrt(c) * dot("g", "xp") / sp.sqrt(dot("g", "g")))
    D.step("computation", r"$\mathrm{sign}(U)^2 = 1$ almost surely, so $\mathbb{E}[X^2] = \mathbb{E}[W^2]$ (pairings).",
           lhs("E[X²]", r"\mathbb{E}[X^2]"), second)
    coh1, inc1, coh, inc = adam_forward_parts()
    D.step("computation", "For a given probe x′: coherent and incoherent squares of Δu_o.",
           lhs("‖E_A Δu_o‖²", r"\lVert\mathbb{E}_A \Delta u_o\rVert^2"), sp.factor(coh1))
    D.step("computation", "", lhs("Var_A(Δu_o)", r"\mathrm{Var}_A(\Delta u_o)"), sp.factor(inc1))
    D.check("incoherent square = η²γ_r²σ_A² r (‖x′‖² − (2/π)(ĝ·x′)²)", inc1,
            eta**2 * gamma**2 * sigma_A**2 * r * (dot("xp", "xp") - c * dot("g", "xp") ** 2 / dot("g", "g")))
    D.step("computation", r"Isotropic probes: $\mathbb{E}(g\cdot x')^2 = \sigma_x^2\lVert g\rVert^2$ and "
           r"$\mathbb{E}\lVert x'\rVert^2 = d\sigma_x^2$ (pairings of the $x'$ entries).",
           lhs("E‖E_A Δu_o‖²", r"\mathbb{E}\lVert\mathbb{E}_A \Delta u_o\rVert^2"), sp.factor(coh))
    D.step("computation", "", lhs("E Var_A(Δu_o)", r"\mathbb{E}\,\mathrm{Var}_A(\Delta u_o)"), sp.factor(inc))
    _check_theory(D, "forward", "adam", coh, inc, eta**2 * sigma_A**2 * sigma_x**2, d, "isotropic probes, d_eff = d")
    _check_crossover_and_slope(D, "adam", coh, inc)
    # Backward.
    e_theta, e_rho = arcsin_law()
    rho = RHO
    D.step("computation", r"Backward with a fixed $u$: $(\gamma_r\Delta B A)^\top u = -\eta\gamma_r\sum_j a_j s_j$, "
           r"$s_j = \sum_o u_o\,\mathrm{sign}(g_o\cdot a_j)$. Mean: the row identity for every $x'$ gives "
           r"$\mathbb{E}[a\,\mathrm{sign}(g_o\cdot a)] = \sigma_A\sqrt{2/\pi}\,\hat g_o$, so $\mathbb{E}[a s] = "
           r"\sigma_A\sqrt{2/\pi}\,\hat G^\top u$. Second moment: the radius $\lVert a\rVert$ of an isotropic Gaussian "
           r"is independent of its direction, on which the signs depend, so $\mathbb{E}[\lVert a\rVert^2 s^2] = "
           r"\sigma_A^2 d\,\mathbb{E}[s^2]$; for two unit vectors at angle $\theta$ the signs agree except on two "
           r"wedges of width $\theta$ of the uniform angle in their plane.",
           lhs("E[sign(ĝ·a) sign(ĝ′·a)]", r"\mathbb{E}[\mathrm{sign}(\hat g\cdot a)\,\mathrm{sign}(\hat g'\cdot a)]"), e_theta)
    D.check("with cos θ = ρ: E[sign(ĝ·a) sign(ĝ′·a)] = (2/π) arcsin ρ (Sheppard)", e_rho, c * sp.asin(rho))
    R_, dd = sp.Symbol("R", positive=True), sp.Symbol("n", positive=True, integer=True)
    radial = sp.gammasimp(sp.integrate(R_**(dd + 1) * sp.exp(-R_**2 / (2 * sigma_A**2)), (R_, 0, sp.oo))
                          / sp.integrate(R_**(dd - 1) * sp.exp(-R_**2 / (2 * sigma_A**2)), (R_, 0, sp.oo)))
    D.check("E‖a‖² from the radial density ∝ ρ^(d−1) e^(−ρ²/2σ_A²) (polar decomposition) = σ_A² d", radial.subs(dd, d),
            wick_expectation(_dot_sum("a", "a"), {"a": sigma_A**2}))
    Wn, Q = named("‖Ĝᵀu‖²", r"\lVert\hat G^{\top} u\rVert^{2}", positive=True), sp.Symbol("Q", positive=True)
    m_b, s_b = c * sigma_A**2 * Wn, sigma_A**2 * d * Q
    coh_b, inc_b = sp.expand(eta**2 * gamma**2 * r**2 * m_b), sp.expand(eta**2 * gamma**2 * r * (s_b - m_b))
    D.step("computation", r"$r$ iid terms: $\mathbb{E}\lVert\sum_j X_j\rVert^2 = r\,\mathbb{E}\lVert X\rVert^2 + "
           r"r(r-1)\lVert\mathbb{E}X\rVert^2$: coherent $r^2\lVert\mathbb{E}X\rVert^2$, incoherent "
           r"$r(\mathbb{E}\lVert X\rVert^2 - \lVert\mathbb{E}X\rVert^2)$, with $Q = \mathbb{E}[s^2] = "
           r"\sum_{o,o'} u_o u_{o'}\frac{2}{\pi}\arcsin(\hat g_o\cdot\hat g_{o'})$.",
           lhs("E_A‖Δ_back − E_A Δ_back‖²", r"\mathbb{E}_A\lVert\Delta_{\mathrm{back}} - \mathbb{E}_A\Delta_{\mathrm{back}}\rVert^2"),
           sp.factor(inc_b))
    D.check("r iid terms: r m₂ + r(r − 1) μ² = coherent r² μ² + incoherent r (m₂ − μ²)",
            r * s_b + r * (r - 1) * m_b, r**2 * m_b + r * (s_b - m_b))
    _check_theory(D, "backward", "adam", coh_b, inc_b, eta**2 * sigma_A**2 * Wn, d * Q / Wn,
                  "fixed u, d_eff = d·Q/‖Ĝᵀu‖²")
    u1, u2 = sp.symbols("u_1 u_2", real=True)
    for rho_v, what in ((1, "parallel"), (0, "orthogonal"), (-1, "opposite")):
        q2 = u1**2 + u2**2 + 2 * u1 * u2 * e_rho.subs(rho, rho_v)
        w2 = u1**2 + u2**2 + 2 * u1 * u2 * rho_v
        D.check(f"two outputs with {what} rows (ĝ₁·ĝ₂ = {rho_v}): Q = ‖Ĝᵀu‖², so d_eff = d", q2, w2)
    # n steps with a constant gradient.
    b1, b2, g_, t = sp.Symbol("beta_1", positive=True), sp.Symbol("beta_2", positive=True), sp.Symbol("g", positive=True), \
        sp.Symbol("t", positive=True, integer=True)
    m_t, v_t = (1 - b1**t) * g_, (1 - b2**t) * g_**2
    D.check("constant gradient g: m_t = (1 − β₁^t) g solves m_t = β₁ m_{t−1} + (1 − β₁) g",
            m_t - (b1 * m_t.subs(t, t - 1) + (1 - b1) * g_), 0)
    D.check("constant gradient g: v_t = (1 − β₂^t) g² solves v_t = β₂ v_{t−1} + (1 − β₂) g²",
            v_t - (b2 * v_t.subs(t, t - 1) + (1 - b2) * g_**2), 0)
    D.check("bias-corrected step m̂_t/√v̂_t = sign(g) at every t (ε → 0; g > 0 shown)",
            sp.simplify((m_t / (1 - b1**t)) / sp.sqrt(v_t / (1 - b2**t))), 1)
    D.step("result", r"With a constant gradient (to first order in $\eta$: $A$ moves only at $O(\eta^2)$ in the output) "
           r"each step is $-\eta\,\mathrm{sign}(GA^\top)$, so $\Delta B_n = n\,\Delta B_1$: both parts scale by $n^2$ "
           r"and the crossover $r^* = \pi d/2 - 1$ is the same. For $r \ll d$ Adam's RMS is "
           r"$\propto \gamma_r\sqrt{rd}$: flat under $\alpha/\sqrt r$, shrinking like $r^{-1/2}$ under $\alpha/r$.")
    # n steps with fresh batches: a different G_t each step.
    z1, z2, lam = sp.Symbol("z_1", positive=True), sp.Symbol("z_2", real=True), sp.Symbol("lambda", positive=True)
    m2 = b1 * (1 - b1) * z1 + (1 - b1) * z2
    v2 = b2 * (1 - b2) * z1**2 + (1 - b2) * z2**2
    step2 = (m2 / (1 - b1**2)) / sp.sqrt(v2 / (1 - b2**2))
    D.check("fresh batches: the bias-corrected step m̂₂/√v̂₂ of gradients z₁, z₂ is homogeneous of degree 0 "
            "(z → λz leaves it unchanged: γ_r and σ_A drop out of Ψ)",
            sp.simplify(step2.subs({z1: lam * z1, z2: lam * z2}, simultaneous=True) - step2), 0)
    D.step("result", r"With fresh batches, step $t$'s gradient on $B$'s entry $(o, i)$ is $\gamma_r\,g_{t,o}\cdot a_i$ "
           r"($g_{t,o}$: row $o$ of $G_t$), so to first order in $\eta$ the entry moves by $-\eta\,\Psi_o(a_i)$, "
           r"$\Psi_o(a) = \sum_t \hat m_t/\sqrt{\hat v_t}$ of the sequence $z_t = g_{t,o}\cdot a$: a function of one "
           r"column, homogeneous of degree 0. The $r$ columns are iid, so the split above holds unchanged, "
           r"coherent $r^2\lVert\mathbb{E}X\rVert^2$ and incoherent $r(\mathbb{E}\lVert X\rVert^2 - "
           r"\lVert\mathbb{E}X\rVert^2)$ with $X = \Psi_o(a)(a\cdot x')$ (forward) or $a\sum_o u_o\Psi_o(a)$ "
           r"(backward): exact in $r$ and $d$; the two one-column moments are Gaussian integrals over the $n$ "
           r"projections with no closed form for mixed signs, which rsstab evaluates numerically "
           r"(\texttt{rsstab.sim.finite}, reference columns). With a constant gradient they are the closed forms above.")
    return D
