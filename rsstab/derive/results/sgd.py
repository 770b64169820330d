"""Results 2-4 under SGD: the first step (the coherent sum over the rank), the n-step trajectory to
leading order in γ_r (Appendix A's induction), and the backward pass through the trained adapter."""

from __future__ import annotations

from functools import cache

import sympy as sp

from rsstab.derive.model import Derivation, check_law
from rsstab.derive.symbols import INIT_VARIANCES, component, d, d_out, dot, eta, gamma, lhs, r, sigma_A
from rsstab.derive.wick import IndexSum, brute_force_expectation, explicit
from rsstab.derive.words import (
    A0,
    TRANSPOSE,
    by_gamma_power,
    chain_sum,
    expect_nc,
    expect_nc_square,
    matrix,
    r_degree,
    sgd_trajectory,
    terms,
    transpose,
    vector,
)

__all__ = ["TRAJECTORY_STEPS", "backward", "first_step", "gradient_check", "sgd_stability_factor", "trajectory"]

#: The numbers of steps whose exact recursion result 3 checks.
TRAJECTORY_STEPS = (1, 2, 3)


def gradient_check(D: Derivation, sizes: tuple[int, int, int] = (2, 3, 2)) -> None:
    """Chain rule at a concrete size: with v = ∂L/∂h and h = γ B A x, L ≈ Σ_i v_i h_i locally."""
    n_out, n_r, n_in = sizes
    B = sp.Matrix(n_out, n_r, lambda a, b: sp.Symbol(f"B_{a}{b}"))
    A = sp.Matrix(n_r, n_in, lambda a, b: sp.Symbol(f"A_{a}{b}"))
    x = sp.Matrix(n_in, 1, lambda a, _: sp.Symbol(f"x_{a}"))
    v = sp.Matrix(n_out, 1, lambda a, _: sp.Symbol(f"v_{a}"))
    h = gamma * B * A * x
    loss = (v.T * h)[0, 0]
    grad_B = sp.Matrix(n_out, n_r, lambda a, b: sp.diff(loss, B[a, b]))
    grad_A = sp.Matrix(n_r, n_in, lambda a, b: sp.diff(loss, A[a, b]))
    D.check(f"∇_B L = γ_r v (A x)ᵀ entry by entry (sympy diff, sizes {sizes})", grad_B, gamma * v * (A * x).T)
    D.check(f"∇_A L = γ_r Bᵀ v xᵀ entry by entry (sympy diff, sizes {sizes})", grad_A, gamma * B.T * v * x.T)


def _xp() -> sp.Symbol:
    return vector("xp")


@cache
def _one_step() -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """(γ B₁ A₁ x′, its exact mean, its exact variance) for entry i."""
    A1, B1 = sgd_trajectory(1)
    out = sp.expand(gamma * B1 * A1 * _xp())
    mean = expect_nc(out)
    var = sp.expand(expect_nc_square(out) - mean**2)
    return out, mean, var


def sgd_stability_factor() -> sp.Expr:
    """γ_r² r, *derived*: the exact mean of the learned output after one SGD step divided by −η σ_A² (x₀·x′) v₀[i].

    >>> sgd_stability_factor()
    gamma_r**2*r
    """
    _, mean, _ = _one_step()
    return sp.simplify(mean / (-eta * sigma_A**2 * dot("x0", "xp") * component("v0")))


def first_step() -> Derivation:
    """Result 2 (``first-step``): E[γ_r B₁ A x′] = −η γ_r² r σ_A² (x·x′) v, with O(√r) fluctuation."""
    D = Derivation("first-step", 2, "first SGD step: the coherent sum",
                   r"From $B_0 = 0$: $\mathbb{E}[\gamma_r B_1 A x'] = -\eta\gamma_r^2 r\sigma_A^2 (x\cdot x') v$ "
                   r"exactly; its fluctuation is $O(\sqrt r)$ against a $\Theta(r)$ mean.")
    D.step("assumption", r"$h = \gamma_r B A x$ with $B_0 = 0$, $A_0$ iid $N(0, \sigma_A^2)$ (variance independent of $r$); "
           r"the loss gradient at the output is a given vector $v_0 = \partial L/\partial h$ for the input $x_0$; "
           r"plain SGD with learning rate $\eta$.")
    gradient_check(D)
    D.step("computation", r"Chain rule (checked entry by entry): $\nabla_B L = \gamma_r v x^\top A^\top$, "
           r"$\nabla_A L = \gamma_r B^\top v x^\top$; at $B_0 = 0$ only $B$ moves.")
    A1, B1 = sgd_trajectory(1)
    D.step("computation", "One SGD step.", lhs("B₁", "B_{1}"), B1)
    D.check("A₁ = A₀ (the A-gradient vanishes at B = 0)", A1 - A0, 0)
    out, mean, var = _one_step()
    D.step("computation", r"The learned adapter applied to a new input $x'$.",
           lhs("γ_r B₁ A₁ x′", r"\gamma_r B_1 A_1 x'"), out)
    D.step("computation", r"$x_0^\top A^\top A x' = \sum_{j=1}^{r} (a_j\cdot x_0)(a_j\cdot x')$ over the $r$ rows $a_j$; "
           r"pairing the two $A$ entries ties the row indices, so the $r$ terms add coherently.",
           lhs("E[(γ_r B₁ A x′)_i]", r"\mathbb{E}[(\gamma_r B_1 A x')_i]"), mean)
    D.check("E[γ_r B₁ A x′] = −η γ_r² r σ_A² (x₀·x′) v₀ (entry i)", mean,
            -eta * gamma**2 * r * sigma_A**2 * dot("x0", "xp") * component("v0"))
    D.step("computation", r"Second moment by pairing four $A$ entries (3 pairings), minus the squared mean.",
           lhs("Var((γ_r B₁ A x′)_i)", r"\mathrm{Var}((\gamma_r B_1 A x')_i)"), sp.factor(var))
    D.check("Var = η² γ_r⁴ r σ_A⁴ v₀[i]² (‖x₀‖²‖x′‖² + (x₀·x′)²)", var,
            eta**2 * gamma**4 * r * sigma_A**4 * component("v0") ** 2
            * (dot("x0", "x0") * dot("xp", "xp") + dot("x0", "xp") ** 2))
    s1 = chain_sum(terms(out)[0][1])
    for sizes in ({r: 3, d: 2, d_out: 1}, {r: 2, d: 3, d_out: 1}):
        D.check(f"pairing engine = brute-force expansion for the mean at r={sizes[r]}, d={sizes[d]}",
                explicit(mean, s1, sizes), explicit(brute_force_expectation(
                    IndexSum(terms(out)[0][0], s1.factors, s1.ranges), INIT_VARIANCES, sizes), s1, sizes))
        s2 = s1.times(s1)
        D.check(f"pairing engine = brute-force expansion for the second moment at r={sizes[r]}, d={sizes[d]}",
                explicit(sp.expand(var + mean**2), s2, sizes),
                brute_force_expectation(IndexSum((eta * gamma**2) ** 2, s2.factors, s2.ranges), INIT_VARIANCES, sizes))
    D.check("the mean is Θ(r): degree 1 in r", sp.sympify(r_degree(mean)), 1)
    D.check("the variance is Θ(r) (standard deviation Θ(√r)): degree 1 in r", sp.sympify(r_degree(var)), 1)
    rel = sp.simplify(var / mean**2)
    D.step("result", r"Relative fluctuation: the $r$ row terms are independent, so their sum has mean $\Theta(r)$ and "
           r"standard deviation $\Theta(\sqrt r)$ (incoherent sums would give only $\sqrt r$). The learned "
           r"adapter is $\Theta(\eta\gamma_r^2 r)$: stable iff $\gamma_r^2 r = \Theta(1)$.",
           lhs("Var/mean²", r"\mathrm{Var}/\mathrm{mean}^2"), sp.factor(rel))
    D.check("Var/mean² → 0 as r → ∞", sp.limit(rel, r, sp.oo), 0)
    D.check("r · Var/mean² = (‖x₀‖²‖x′‖² + (x₀·x′)²)/(x₀·x′)², independent of r: relative fluctuation exactly Θ(1/√r)",
            rel * r, (dot("x0", "x0") * dot("xp", "xp") + dot("x0", "xp") ** 2) / dot("x0", "xp") ** 2)
    D.step("result", "The stability factor, read off the derived mean.", lhs("S_SGD", r"S_{\mathrm{SGD}}"),
           sgd_stability_factor())
    check_law(D, "forward", "sgd", mean)
    return D


def _remainder_orders(expr: sp.Expr) -> list[tuple[int, int]]:
    """(γ-power a, r-degree s) of each non-zero expected term beyond γ_r²; each is γ^(a−2s)·(γ²r)^s."""
    out = []
    for a, part in sorted(by_gamma_power(expr).items()):
        if a <= 2:
            continue
        e = expect_nc(part)
        if e != 0:
            out.append((a, r_degree(e)))
    return out


def trajectory() -> Derivation:
    """Result 3 (``trajectory``): B_n and the learned output to leading order in γ_r, by induction."""
    D = Derivation("trajectory", 3, "n-step SGD trajectory to leading order in γ_r",
                   r"$B_n = -\eta\gamma_r\sum_{k<n} v_k x_k^\top A_0^\top + O(\gamma_r^3)$, $A_n = A_0 + O(\gamma_r^2)$, and "
                   r"$\mathbb{E}[\gamma_r B_n A_n x'] = -\eta\gamma_r^2 r\sigma_A^2\sum_k (x_k\cdot x') v_k + "
                   r"\sum_{s} O(\gamma_r^{2}(\gamma_r^2 r)^s)$: the remainder vanishes only if $\gamma_r \to 0$.")
    D.step("assumption", r"SGD from $(A_0, B_0 = 0)$ with output gradients $v_t$ and inputs $x_t$ given "
           r"($\Theta(1)$, $r$-independent) at each step; both updates use the parameters before the step.")
    Pm = matrix("P", r, d, "P")
    Qm = matrix("Q", d_out, r, "Q")
    v, x = vector("v"), vector("x")
    A_t, B_t = A0 + gamma**2 * Pm, gamma * Qm
    A_n = sp.expand(A_t - eta * gamma * transpose(B_t) * v * TRANSPOSE[x])
    B_n = sp.expand(B_t - eta * gamma * v * TRANSPOSE[x] * transpose(A_t))
    D.step("assumption", r"Induction hypothesis: $A_t = A_0 + \gamma_r^2 P_t$, $B_t = \gamma_r Q_t$ with $P_t, Q_t$ "
           r"polynomials in $\gamma_r$ (true at $t = 0$ with $P_0 = Q_0 = 0$).")
    D.step("computation", "One SGD step applied to the hypothesis.", lhs("A_{t+1}", "A_{t+1}"), A_n)
    D.step("computation", "", lhs("B_{t+1}", "B_{t+1}"), B_n)
    D.check("induction: A_{t+1} − A₀ has only γ_r^≥2 terms",
            sp.Integer(min(by_gamma_power(A_n - A0))), 2)
    bB = by_gamma_power(B_n)
    D.check("induction: B_{t+1} has only odd γ_r powers ≥ 1", sp.Integer(all(k % 2 == 1 for k in bB)), 1)
    D.check("induction: γ_r¹ part of B_{t+1} = γ_r (Q_t − η v xᵀ A₀ᵀ)", bB[1],
            gamma * (Qm - eta * v * TRANSPOSE[x] * TRANSPOSE[A0]))
    Mm, Nm = matrix("M", d, d, "M"), matrix("N", d_out, d, "N")
    A_s = sp.expand(A0 * Mm - eta * gamma * transpose(Nm * TRANSPOSE[A0]) * v * TRANSPOSE[x])
    B_s = sp.expand(Nm * TRANSPOSE[A0] - eta * gamma * v * TRANSPOSE[x] * transpose(A0 * Mm))
    D.check("induction: A_t = A₀ M_t ⇒ every word of A_{t+1} starts with A₀ (and contains no other A₀)",
            sp.Tuple(*sorted({(w[0] == A0, sum(l in (A0, TRANSPOSE[A0]) for l in w)) for _, w in terms(A_s)})),
            sp.Tuple((True, 1)))
    D.check("induction: B_t = N_t A₀ᵀ ⇒ every word of B_{t+1} ends with A₀ᵀ (and contains no other A₀)",
            sp.Tuple(*sorted({(w[-1] == TRANSPOSE[A0], sum(l in (A0, TRANSPOSE[A0]) for l in w)) for _, w in terms(B_s)})),
            sp.Tuple((True, 1)))
    D.step("result", r"So $Q_n = -\eta\sum_{k<n} v_k x_k^\top A_0^\top + O(\gamma_r^2)$ by induction: the leading "
           r"order of $B_n$ only ever sees $A_0$.")
    for n in TRAJECTORY_STEPS:
        A_n, B_n = sgd_trajectory(n)
        lead_B = -eta * gamma * sp.Add(*[vector(f"v{k}") * TRANSPOSE[vector(f"x{k}")] for k in range(n)]) * TRANSPOSE[A0]
        D.check(f"n={n}: γ_r¹ part of B_n = −η γ_r Σ_k v_k x_kᵀ A₀ᵀ (exact recursion)", by_gamma_power(B_n)[1],
                sp.expand(lead_B))
        D.check(f"n={n}: B_n − leading has no γ_r² term and starts at γ_r³ or later",
                sp.Integer(min([k for k in by_gamma_power(B_n) if k > 1], default=3) >= 3), 1)
        out = sp.expand(gamma * B_n * A_n * _xp())
        a_counts = {sum(1 for x in w if x in (A0, TRANSPOSE[A0])) for _, w in terms(out)}
        D.check(f"n={n}: every word of γ_r B_n A_n x′ contains A₀ exactly twice (A_n = A₀ M_n, B_n = N_n A₀ᵀ), "
                "so no expected term grows faster than r", sp.Tuple(*sorted(a_counts)), sp.Tuple(2))
        parts = by_gamma_power(out)
        lead = expect_nc(parts[2])
        D.check(f"n={n}: E[γ_r² part of γ_r B_n A_n x′] = −η γ_r² r σ_A² Σ_k (x_k·x′) v_k[i]", lead,
                -eta * gamma**2 * r * sigma_A**2 * sp.Add(*[dot(f"x{k}", "xp") * component(f"v{k}") for k in range(n)]))
        orders = _remainder_orders(out)
        D.check(f"n={n}: every remainder term γ_r^a r^s has a − 2s ≥ 2, i.e. is O(γ_r² (γ_r² r)^s)",
                sp.Integer(all(a - 2 * s >= 2 for a, s in orders)), 1)
        if n == max(TRAJECTORY_STEPS):
            D.step("computation", f"Exact recursion for n = {n}: expected learned output, leading part.",
                   lhs(f"E[γ_r B_{n} A_{n} x′]_lead", rf"\mathbb{{E}}[\gamma_r B_{n} A_{n} x']_{{\gamma_r^2}}"), lead)
            D.step("computation", f"Orders (a, s) of the expected remainder terms γ_r^a r^s for n = {n}.",
                   lhs("(a, s)", "(a, s)"), sp.Tuple(*[sp.Tuple(a, s) for a, s in orders]))
            D.check(f"n={n}: the remainder is non-zero (so γ_r → 0 is really needed)", sp.Integer(len(orders) > 0), 1)
    D.step("computation", r"Structure (induction step checked with opaque $M_t, N_t$): $A_n = A_0 M_n$ and $B_n = N_n A_0^\top$ "
           r"($M_n, N_n$ free of $A_0$), so every word of $\gamma_r B_n A_n x'$ holds exactly one $A_0^\top A_0$ "
           r"and its expectation is at most linear in $r$ ($s = 1$).")
    D.step("result", r"The remainder terms are $\gamma_r^{a-2s}(\gamma_r^2 r)^s$ with $a - 2s \ge 2$: when "
           r"$\gamma_r^2 r = \Theta(1)$ they are $O(\gamma_r^2)$ and vanish only because $\gamma_r \to 0$ "
           r"(the theorem's hypothesis). The learned adapter is $\Theta(\eta\gamma_r^2 r)$ at every step.")
    return D


def backward() -> Derivation:
    """Result 4 (``backward``): the gradient into the adapter input after n SGD steps is Θ(η γ_r² r)."""
    D = Derivation("backward", 4, "backward pass after training",
                   r"The gradient into the adapter input after $n$ SGD steps is "
                   r"$\mathbb{E}[\gamma_r A_n^\top B_n^\top u] = -\eta\gamma_r^2 r\sigma_A^2\sum_k (v_k\cdot u)\, x_k + "
                   r"O(\gamma_r^2(\gamma_r^2 r)^s)$: $\Theta(\eta\gamma_r^2 r)$.")
    D.step("assumption", r"As in result 3; a later loss sends a $\Theta(1)$ gradient $u$ to the adapter output. The "
           r"gradient with respect to the adapter's input $x$ is $(\gamma_r B_n A_n)^\top u$.")
    u = vector("u")
    for n in (1, 2):
        A_n, B_n = sgd_trajectory(n)
        g = sp.expand(transpose(gamma * B_n * A_n) * u)
        parts = by_gamma_power(g)
        lead = expect_nc(parts[2])
        D.check(f"n={n}: E[γ_r² part of (γ_r B_n A_n)ᵀ u] = −η γ_r² r σ_A² Σ_k (v_k·u) x_k[i]", lead,
                -eta * gamma**2 * r * sigma_A**2 * sp.Add(*[dot(f"v{k}", "u") * component(f"x{k}") for k in range(n)]))
        orders = _remainder_orders(g)
        D.check(f"n={n}: every remainder term has a − 2s ≥ 2", sp.Integer(all(a - 2 * s >= 2 for a, s in orders)), 1)
        if n == 1:
            D.step("computation", "After one step (transpose of result 2's learned map).",
                   lhs("(γ_r B₁ A₁)ᵀ u", r"(\gamma_r B_1 A_1)^\top u"), g)
            var = sp.expand(expect_nc_square(g) - lead**2)
            D.step("computation", "Pairings give the exact mean and variance of entry i.",
                   lhs("E[((γ_r B₁ A₁)ᵀ u)_i]", r"\mathbb{E}[((\gamma_r B_1 A_1)^\top u)_i]"), lead)
            D.step("computation", "", lhs("Var(((γ_r B₁ A₁)ᵀ u)_i)", r"\mathrm{Var}(((\gamma_r B_1 A_1)^\top u)_i)"),
                   sp.factor(var))
            D.check("n=1: the variance has degree 1 in r (fluctuation O(√r) against the Θ(r) mean)",
                    sp.sympify(r_degree(var)), 1)
            check_law(D, "backward", "sgd", lead)
        else:
            D.step("computation", f"After {n} steps (exact recursion), leading part.",
                   lhs(f"E[(γ_r B_{n} A_{n})ᵀ u]_lead", rf"\mathbb{{E}}[(\gamma_r B_{n} A_{n})^\top u]_{{\gamma_r^2}}"),
                   lead)
    D.step("result", r"The backward signal through the adapter is $\Theta(\eta\gamma_r^2 r)$ — the same factor as the "
           r"forward pass, so condition (2) of Definition 3.1 holds iff $\gamma_r^2 r = \Theta(1)$.")
    return D
