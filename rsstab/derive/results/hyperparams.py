"""Result 12: the whole hyperparameter tuple (γ_r, η_A, η_B, σ_A) — orders of the B-driven and
A-driven parts of the learned change, and the exponent bookkeeping behind ``rsstab check --lr
--lr-ratio --init-std``."""

from __future__ import annotations

import sympy as sp

from rsstab import theory
from rsstab.derive.model import Derivation
from rsstab.derive.symbols import gamma, lhs, named, r, sigma_A

__all__ = ["hyperparameter_tuple", "sgd_two_learning_rates", "sign_descent_terms", "coherent_gram"]

eta_A = named("eta_A", r"\eta_A", positive=True)
eta_B = named("eta_B", r"\eta_B", positive=True)
_SIZES = (2, 2, 3)  # d_out, r, d of the symbolic SGD check


def _mat(name: str, rows: int, cols: int) -> sp.Matrix:
    return sp.Matrix(rows, cols, lambda a, b: sp.Symbol(f"{name}_{a}{b}", real=True))


def sgd_two_learning_rates(steps: int, sizes: tuple[int, int, int] = _SIZES) -> dict[str, sp.Matrix]:
    """SGD with rates η_A, η_B on y = W x + γ B A x with B_0 = 0 and a linear loss (constant data
    gradient G = ∂L/∂W, any d_out × d matrix), exactly, on symbolic matrices: A_0, G, x′ and the
    trajectory's B_t, A_t after ``steps`` steps."""
    n_out, n_r, n_in = sizes
    A0, G = _mat("A", n_r, n_in), _mat("G", n_out, n_in)
    xp = _mat("xp", n_in, 1)
    A, B = A0, sp.zeros(n_out, n_r)
    for _ in range(steps):
        grad_B, grad_A = gamma * G * A.T, gamma * B.T * G  # ∂L/∂B, ∂L/∂A for L = ⟨G, γBA⟩ (+ W's part)
        A, B = A - eta_A * grad_A, B - eta_B * grad_B
    return {"A0": A0, "G": G, "xp": xp, "A": A.applyfunc(sp.expand), "B": B.applyfunc(sp.expand)}


def _coefficient(M: sp.Matrix, monomial: sp.Expr) -> sp.Matrix:
    return M.applyfunc(lambda e: sp.Poly(sp.expand(e), eta_A, eta_B).coeff_monomial(monomial))


def coherent_gram(n_r: int, n_in: int) -> sp.Matrix:
    """E[A_0ᵀA_0] for A_0 with independent N(0, σ_A²) entries, by expanding the index sum at this
    (r, d) and taking E[A_jk A_jl] = σ_A² δ_kl term by term."""
    A0 = _mat("A", n_r, n_in)
    gram = (A0.T * A0).applyfunc(sp.expand)

    def expect(e: sp.Expr) -> sp.Expr:
        out = sp.Integer(0)
        for term in sp.Add.make_args(e):
            c, rest = term.as_coeff_Mul()
            powers = rest.as_powers_dict()
            if len(powers) == 1 and list(powers.values())[0] == 2:
                out += c * sigma_A**2
        return out

    return gram.applyfunc(expect)


def sign_descent_terms(n_r: int, steps: int = 3) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    """Adam at ε → 0 from zero moments with β₁ = β₂ = 0 is sign descent (result 7). Run it exactly
    (rationals) with rates η_A = 1/1000, η_B = 1/100, γ = 1/3, one example (G = v xᵀ) and a
    deterministic A_0 of rank ``n_r``; return (the A-driven term γB_t(A_t − A_0)x′ at output 0,
    the closed form −γ t(t−1) η_A η_B r sign(v_0)(sign(x)·x′), B_t's closed form's residual)."""
    n_out, n_in = 2, 3
    ea, eb, g = sp.Rational(1, 1000), sp.Rational(1, 100), sp.Rational(1, 3)
    v = sp.Matrix([3, -2])
    x = sp.Matrix([1, -2, sp.Rational(1, 2)])
    xp = sp.Matrix([2, 1, -3])
    # rows a_j with a_j·x ≠ 0 and of both signs (a deterministic stand-in for a Gaussian draw)
    A0 = sp.Matrix(n_r, n_in, lambda j, k: [(-1) ** j * (j + 1), 1, j][k])  # a_j·x = ±(j+1) − 2 + j/2 ≠ 0
    assert all(e != 0 for e in A0 * x)
    G = v * x.T
    sgn = lambda M: M.applyfunc(sp.sign)  # noqa: E731
    A, B = A0, sp.zeros(n_out, n_r)
    for _ in range(steps):
        grad_B, grad_A = g * G * A.T, g * B.T * G
        A, B = A - ea * sgn(grad_A), B - eb * sgn(grad_B)
    delta_a = (g * B * (A - A0) * xp)[0]
    closed = -g * steps * (steps - 1) * ea * eb * n_r * sp.sign(v[0]) * (sgn(x).T * xp)[0]
    b_residual = sp.Matrix(B + steps * eb * sgn(v) * sgn(A0 * x).T).norm(1)
    return delta_a, closed, b_residual


def _exponent(monomial: sp.Expr, subs: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    e = sp.powsimp(sp.expand_power_base(monomial.subs(subs), force=True), force=True)
    base, exp = e.as_base_exp()
    return sp.expand(exp) if base == r else sp.Integer(0) if e == 1 else sp.nan


def hyperparameter_tuple() -> Derivation:
    """Result 12 (``hyperparameter-tuple``): with η_A, η_B and σ_A as powers of r, the B-driven term
    of the learned change is Θ(η_B γ_r² r σ_A²) (SGD) / Θ(η_B γ_r r σ_A) (Adam), the A-driven term
    Θ(η_A η_B² γ_r⁴ r σ_A²) / Θ(η_A η_B γ_r r); the r-exponents are sums of the factors' exponents."""
    D = Derivation("hyperparameter-tuple", 12, "the hyperparameter tuple: learning rates of A and B, init, rank",
                   r"With separate rates $\eta_A, \eta_B$ and $B_0 = 0$, the learned change splits exactly as "
                   r"$\gamma_r B_t A_t = \gamma_r B_t A_0 + \gamma_r B_t (A_t - A_0)$: the B-driven term is "
                   r"$\Theta(\eta_B\gamma_r^2 r\sigma_A^2)$ under SGD and $\Theta(\eta_B\gamma_r r\sigma_A)$ under "
                   r"Adam; the A-driven term is $\Theta(\eta_A\eta_B^2\gamma_r^4 r\sigma_A^2)$ and "
                   r"$\Theta(\eta_A\eta_B\gamma_r r)$. With every factor a power of r, each order is a sum of "
                   r"exponents.")
    D.step("assumption", r"$y = Wx + \gamma_r B A x$, $B_0 = 0$, $A_0$ with independent $N(0, \sigma_A^2)$ "
           r"entries; SGD with rate $\eta_A$ on A and $\eta_B$ on B (LoRA+'s ratio is $\eta_B/\eta_A$); "
           r"a linear loss, so the data gradient $G = \partial L/\partial W$ is constant (any batch); "
           r"$t$ steps with $t$ fixed as r grows. Checked exactly on symbolic $2\times 2$, $2\times 3$ matrices.")
    two, three = sgd_two_learning_rates(2), sgd_two_learning_rates(3)
    A0, G, xp = two["A0"], two["G"], two["xp"]
    D.check("A_1 = A_0: at B_0 = 0 the gradient of A vanishes, so A's learning starts at step 2",
            sgd_two_learning_rates(1)["A"], A0)
    D.check("B_2 = −2 η_B γ_r G A_0ᵀ exactly (A_1 = A_0)", two["B"], -2 * eta_B * gamma * G * A0.T)
    D.check("A_2 − A_0 = η_A η_B γ_r² A_0 GᵀG exactly", two["A"] - A0, eta_A * eta_B * gamma**2 * A0 * G.T * G)
    D.step("computation", r"The trajectory: $B_t = -t\,\eta_B\gamma_r G A_0^\top + \cdots$ and "
           r"$A_t - A_0 = (t(t-1)/2)\,\eta_A\eta_B\gamma_r^2 A_0 G^\top G + \cdots$ (higher orders in the "
           r"rates), so the two terms on a probe $x'$ are, at leading order,",
           lhs("γ_r B_t A_0 x′", r"\gamma_r B_t A_0 x'"),
           named("−t·η_B·γ_r²·G·A_0ᵀA_0·x′", r"-t\,\eta_B\gamma_r^2\, G A_0^\top A_0 x'"))
    D.step("computation", "", lhs("γ_r B_t (A_t − A_0) x′", r"\gamma_r B_t (A_t - A_0) x'"),
           named("−(t²(t−1)/2)·η_A·η_B²·γ_r⁴·G·A_0ᵀA_0·GᵀG·x′",
                 r"-(t^2(t-1)/2)\,\eta_A\eta_B^2\gamma_r^4\, G A_0^\top A_0 G^\top G x'"))
    delta_b3 = (gamma * three["B"] * A0 * xp).applyfunc(sp.expand)
    delta_a3 = (gamma * three["B"] * (three["A"] - A0) * xp).applyfunc(sp.expand)
    D.check("t = 3: the η_B part of γ B_t A_0 x′ is −3 η_B γ_r² G A_0ᵀA_0 x′",
            _coefficient(delta_b3, eta_B), (-3 * gamma**2 * G * A0.T * A0 * xp).applyfunc(sp.expand))
    D.check("t = 3: the η_A η_B² part of γ B_t (A_t − A_0) x′ is −9 γ_r⁴ G A_0ᵀA_0 GᵀG x′ (t²(t−1)/2 = 9)",
            _coefficient(delta_a3, eta_A * eta_B**2),
            (-9 * gamma**4 * G * A0.T * A0 * G.T * G * xp).applyfunc(sp.expand))
    D.check("t = 3: γ B_t (A_t − A_0) x′ has no term of lower order than η_A η_B²",
            sp.Tuple(*[sp.Poly(e, eta_A, eta_B).coeff_monomial(eta_A * eta_B) for e in delta_a3]),
            sp.Tuple(*[0] * delta_a3.rows))
    D.step("computation", r"The coherent part (mean over $A_0$): $\mathbb{E}[A_0^\top A_0] = r\sigma_A^2 I$ "
           r"(the index sum over the r rows, expanded at r = 2, 3, 4).",
           lhs("E[A_0ᵀA_0]", r"\mathbb{E}[A_0^\top A_0]"), named("r·σ_A²·I", r"r\sigma_A^2 I"))
    for n_r in (2, 3, 4):
        D.check(f"E[A_0ᵀA_0] = r σ_A² I at r = {n_r}, d = 3", coherent_gram(n_r, 3), n_r * sigma_A**2 * sp.eye(3))
    D.step("computation", r"Adam at $\epsilon \to 0$ is sign descent (result 7): $\Delta B$ has entries "
           r"$\pm\eta_B$ whatever $\gamma_r$ is, and $\Delta A$ entries $\pm\eta_A$ from step 2 on. For one "
           r"example ($G = v x^\top$), $B_t = -t\,\eta_B\,\mathrm{sign}(v)\,\mathrm{sign}(A_0 x)^\top$ and "
           r"$A_t - A_0 = (t-1)\eta_A\,\mathrm{sign}(A_0 x)\,\mathrm{sign}(x)^\top$, so every row j adds "
           r"$\mathrm{sign}(a_j\cdot x)^2 = 1$: the A-driven term is exactly "
           r"$-t(t-1)\eta_A\eta_B\gamma_r r\,\mathrm{sign}(v)\,(\mathrm{sign}(x)\cdot x')$ — no $\sigma_A$, no "
           r"randomness — while the B-driven term is result 7's $\Theta(\eta_B\gamma_r r\sigma_A)$.")
    for n_r in (4, 5):
        delta_a, closed, b_res = sign_descent_terms(n_r)
        D.check(f"sign descent, r = {n_r}, 3 steps (exact rationals): B_3 = −3 η_B sign(v) sign(A_0 x)ᵀ",
                b_res, 0)
        D.check(f"sign descent, r = {n_r}: γ B_3 (A_3 − A_0) x′ = −6 η_A η_B γ_r r sign(v_0)(sign(x)·x′)",
                delta_a, closed)
    D.step("computation", r"Exponent bookkeeping: with $\gamma_r \propto r^g$, $\eta_A \propto r^a$, "
           r"$\eta_B \propto r^b$, $\sigma_A \propto r^s$ each term's order in r is the sum of its factors' "
           r"exponents (the checks tie them to rsstab.theory.update_term).")
    g, a, b, s = sp.symbols("g a b s", real=True)
    subs = {gamma: r**g, eta_A: r**a, eta_B: r**b, sigma_A: r**s}
    derived = {("b_driven", "sgd"): eta_B * gamma**2 * r * sigma_A**2,
               ("a_driven", "sgd"): eta_A * eta_B**2 * gamma**4 * r * sigma_A**2,
               ("b_driven", "adam"): eta_B * gamma * r * sigma_A,
               ("a_driven", "adam"): eta_A * eta_B * gamma * r}
    for (term, opt), mono in derived.items():
        e = _exponent(mono, subs)
        D.step("computation", f"{term.replace('_', '-')} term, {opt}:", lhs(f"order ({term}, {opt})",
               rf"\mathrm{{order}}_{{\mathrm{{{term.replace('_', '-')}}}, \mathrm{{{opt}}}}}"), e)
        D.check(f"the {term} term's r-exponent under {opt} equals rsstab.theory.update_term's "
                f"{theory.update_term(term, opt).text}",
                e, theory.update_term(term, opt).exponent(g, lr_a=a, lr_b=b, sigma_a=s))
    for opt in ("sgd", "adam"):
        L = theory.law("forward", opt)
        D.check(f"the B-driven term is the forward law {L.text} with η = η_B ({opt})",
                _exponent(derived[("b_driven", opt)], subs),
                L.lr_power * b + L.gamma_power * g + L.rank_power + L.sigma_a_power * s)
    beta, c, k = sp.symbols("beta c k", real=True)
    sgd_b = _exponent(derived[("b_driven", "sgd")], subs)
    adam_b = _exponent(derived[("b_driven", "adam")], subs)
    D.check("SGD, γ_r = α/√r, σ_A = 1/r (PEFT's gaussian init), fixed η: the update is Θ(r^-2) (collapse)",
            sgd_b.subs({g: -sp.Rational(1, 2), s: -1, b: 0}), -2)
    D.check("Adam, γ_r = α/√r, η = η_0/√r: the update is Θ(1) (rank-stabilized)",
            adam_b.subs({g: -sp.Rational(1, 2), s: 0, b: -sp.Rational(1, 2)}), 0)
    D.check("SGD, γ_r = α/r^β, η = η_0 r^c: Θ(1) exactly on the line c = 2β − 1",
            sp.Tuple(*sp.solve(sgd_b.subs({g: -beta, s: 0, b: c}), c)), sp.Tuple(2 * beta - 1))
    sgd_a = _exponent(derived[("a_driven", "sgd")], subs)
    D.check("on that line the A-driven term is Θ(r^(2β − 2)): A learns Θ(1) only at β = 1 (LoRA, η ∝ r)",
            sgd_a.subs({g: -beta, s: 0, a: c, b: c}).subs(c, 2 * beta - 1).expand(), 2 * beta - 2)
    D.check("held-out family, SGD: γ_r = α/r^β, σ_A = r^-k, fixed η: order 1 − 2β − 2k",
            sgd_b.subs({g: -beta, s: -k, b: 0}), 1 - 2 * beta - 2 * k)
    D.check("held-out family, Adam: order 1 − β − k", adam_b.subs({g: -beta, s: -k, b: 0}), 1 - beta - k)
    both_sgd = sp.solve([sgd_b.subs({g: -sp.Rational(1, 2), s: 0}), sgd_a.subs({g: -sp.Rational(1, 2), s: 0})],
                        [a, b], dict=True)
    D.check("rsLoRA under SGD: both terms Θ(1) needs η_B fixed and η_A ∝ r (η_B/η_A ∝ 1/r)",
            sp.Tuple(both_sgd[0][a], both_sgd[0][b]), sp.Tuple(1, 0))
    adam_a = _exponent(derived[("a_driven", "adam")], subs)
    both_adam = sp.solve([adam_b.subs({g: -1, s: 0}), adam_a.subs({g: -1, s: 0})], [a, b], dict=True)
    D.check("LoRA (γ_r = α/r) under Adam: both terms Θ(1) with η_A and η_B both fixed",
            sp.Tuple(both_adam[0][a], both_adam[0][b]), sp.Tuple(0, 0))
    D.step("computation", r"When the width d grows too (the convention of $\mu$P and LoRA+: inputs with "
           r"$\Theta(1)$ entries, so $\lVert x\rVert^2 \propto d$; $\sigma_A$ in units of Kaiming's $1/\sqrt d$; the "
           r"change measured on the training input $x' = x$): the B-driven terms carry $\sigma_A^2\lVert x\rVert^2$ "
           r"(SGD) and $\sigma_A\lVert x\rVert$ (Adam), width-free; SGD's A-driven term carries "
           r"$G G^\top G = \lVert v\rVert^2\lVert x\rVert^2 G$ and Adam's $\mathrm{sign}(x)\cdot x = \lVert x\rVert_1 "
           r"\propto d$: one more power of d each.")
    vv, xx = _mat("v", 2, 1), _mat("x", 3, 1)
    Gv = vv * xx.T
    D.check("one example: G GᵀG = ‖v‖²‖x‖² G (SGD's A-driven term carries ‖x‖² ∝ d)",
            (Gv * Gv.T * Gv).applyfunc(sp.expand), ((vv.T * vv)[0] * (xx.T * xx)[0] * Gv).applyfunc(sp.expand))
    dd, unit, sc = sp.symbols("d u s", positive=True)  # ‖x‖² = d u², σ_A = s/√d
    D.check("SGD's B-driven σ_A²‖x‖² is width-free with σ_A = s/√d and ‖x‖² = d u²",
            (sc / sp.sqrt(dd)) ** 2 * dd * unit**2, sc**2 * unit**2)
    D.check("Adam's B-driven σ_A (x·x)/‖x‖ = σ_A‖x‖ is width-free", (sc / sp.sqrt(dd)) * sp.sqrt(dd * unit**2), sc * unit)
    k_ = sp.Symbol("k", integer=True, positive=True)
    D.check("Adam's A-driven sign(x)·x = ‖x‖₁ = d u for entries ±u", sp.Sum(unit, (k_, 1, dd)).doit(), dd * unit)
    w = sp.Symbol("w", real=True)
    for opt, ratio_mono in (("sgd", eta_A * eta_B * gamma**2 * dd), ("adam", eta_A * dd / sigma_A)):
        T_a, T_b = theory.update_term("a_driven", opt), theory.update_term("b_driven", opt)
        D.check(f"{opt}: the ratio A/B with d ∝ r^w has exponent equal to theory's (A-driven − B-driven) with width",
                _exponent(ratio_mono, {**subs, dd: r**w}),
                T_a.exponent(g, lr_a=a, lr_b=b, sigma_a=s, width=w) - T_b.exponent(g, lr_a=a, lr_b=b, sigma_a=s, width=w))
    lora_plus = sp.solve([theory.update_term("b_driven", "adam").exponent(0, lr_a=a, lr_b=b, width=w) - 1,
                          theory.update_term("a_driven", "adam").exponent(0, lr_a=a, lr_b=b, width=w) - 1], [a, b],
                         dict=True)
    D.check("LoRA+ (Adam, width growing at a fixed rank): both terms Θ(1) needs η_B fixed and η_A ∝ 1/d",
            sp.Tuple(lora_plus[0][a], lora_plus[0][b]), sp.Tuple(-w, 0))
    for opt, limit in (("sgd", 1), ("adam", sp.pi / 2)):
        D.check(f"{opt}: the crossover rank r* = c_inc/c_coh of results 9–10 is Θ(d) (r*/d → {limit})",
                sp.limit(theory.crossover_rank("forward", opt, dd, pi=sp.pi) / dd, dd, sp.oo), limit)
    D.step("result", r"At fixed width, the order in r of each condition is the sum of the exponents of "
           r"$\eta_B$, $\gamma_r$ (twice under SGD), $\sigma_A$ (twice under SGD) and $r$; A's own learning adds a "
           r"term whose ratio to B's is $\Theta(\eta_A\eta_B\gamma_r^2)$ under SGD and "
           r"$\Theta(\eta_A/\sigma_A)$ under Adam. Under SGD, rsLoRA at a fixed rate learns through B alone "
           r"(the ratio is $\Theta(1/r)$); under Adam, LoRA's $\alpha/r$ with fixed rates keeps both terms "
           r"$\Theta(1)$ in r — LoRA+'s growing ratio $\eta_B/\eta_A$ is a statement about width, not rank: with d "
           r"growing, the A-driven term gains a power of d and $\eta_A \propto 1/d$ (at fixed $\eta_B$) restores it. "
           r"The incoherent share of the RMS over A is $r^*/r$ with $r^* \in \Theta(d)$.")
    return D
