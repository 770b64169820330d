"""Results 5 and 6, built on the stability factors of results 2 and 7: the iff over
power-law-times-log scales γ_r = c r^p (log r)^k, and the composition of L adapted layers."""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from rsstab.verdict import classify
from rsstab.derive.model import Derivation
from rsstab.derive.results.adam import adam_stability_factor
from rsstab.derive.results.sgd import sgd_stability_factor
from rsstab.derive.symbols import P, d, gamma, lhs, r
from rsstab.derive.words import TRANSPOSE, matrix, r_exponent, terms, transpose
from rsstab.vocab import BLOW_UP, COLLAPSE, INDETERMINATE, STABLE, Label, Optimizer

__all__ = ["DEPTHS", "depth", "stability_iff"]

_GRID_P = (sp.Rational(-3, 2), -1, sp.Rational(-3, 4), sp.Rational(-1, 2), sp.Rational(-1, 4), 0, sp.Rational(1, 2))
_GRID_K = (-1, 0, 1)
#: The numbers of layers whose perturbation words result 6 counts.
DEPTHS = (1, 2, 3, 4)


def _family_exponents(factor: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
    """(log S, coefficient of log r, coefficient of log log r, c) for γ_r = c r^p (log r)^k."""
    c = sp.Symbol("c", positive=True)
    k = sp.Symbol("k", real=True)
    S = factor.subs(gamma, c * r**P * sp.log(r) ** k)
    logS = sp.expand(sp.expand_log(sp.log(S), force=True))
    return logS, sp.expand(logS.coeff(sp.log(r))), sp.expand(logS.coeff(sp.log(sp.log(r)))), c


def _exponent_label(e_r: sp.Expr, e_l: sp.Expr) -> Label:
    """The label of S = Θ(r^e_r (log r)^e_l) by the exponent rule."""
    if e_r != 0:
        return BLOW_UP if e_r > 0 else COLLAPSE
    if e_l != 0:
        return BLOW_UP if e_l > 0 else COLLAPSE
    return STABLE


def _limit_label(S: sp.Expr) -> Label:
    """The label of S by sympy's limit as r → ∞."""
    lim = sp.limit(S, r, sp.oo)
    if lim == 0:
        return COLLAPSE
    if lim in (sp.oo, sp.zoo):
        return BLOW_UP
    return STABLE if lim.is_positive and lim.is_finite else INDETERMINATE


def stability_iff() -> Derivation:
    """Result 5 (``iff``): γ_r² r = Θ(1) iff γ_r ∈ Θ(1/√r) under SGD (Θ(1/r) under Adam)."""
    D = Derivation("iff", 5, "the iff: γ_r ∈ Θ(1/√r) exactly",
                   r"Over $\gamma_r = c\,r^p(\log r)^k$, $\gamma_r^2 r = \Theta(1)$ iff $(p, k) = (-1/2, 0)$: "
                   r"$\gamma_r \in \Theta(1/\sqrt r)$; every other exponent collapses or blows up. Under Adam: $\Theta(1/r)$.")
    k = sp.Symbol("k", real=True)
    t = sp.Symbol("t", positive=True)
    optimizers: tuple[tuple[Optimizer, sp.Expr, sp.Expr], ...] = (
        ("sgd", sgd_stability_factor(), sp.Rational(-1, 2)), ("adam", adam_stability_factor(), sp.Integer(-1)))
    for opt, factor, claim in optimizers:
        logS, e_r, e_l, c = _family_exponents(factor)
        D.step("computation", f"{opt.upper()}: the derived stability factor (results 2 and 7) on the family; "
               r"with $t = \log r \to \infty$ it is $\text{const} + e_r t + e_\ell \log t$.",
               lhs(f"log S_{opt}", rf"\log S_{{\mathrm{{{opt}}}}}"), logS)
        sol = sp.solve([e_r, e_l], [P, k], dict=True)
        D.step("computation", r"Bounded iff both coefficients vanish ($t$ and $\log t$ are different scales): "
               r"solving $e_r = 0$, $e_\ell = 0$.", sp.Tuple(P, k), sp.Tuple(sol[0].get(P, P), sol[0].get(k, k)))
        D.check(f"{opt}: the exponent equations have exactly one solution", sp.Integer(len(sol)), 1)
        D.check(f"{opt}: the solution is p = {claim}", sol[0][P], claim)
        D.check(f"{opt}: the solution is k = 0 (no log factor)", sol[0][k], 0)
        e_pos = sp.Symbol("e", positive=True)
        f = sp.Symbol("f", real=True)
        D.check(f"{opt}: e_r > 0 ⇒ log S → +∞ (blow-up) whatever e_ℓ", sp.limit(e_pos * t + f * sp.log(t), t, sp.oo), sp.oo)
        D.check(f"{opt}: e_r < 0 ⇒ log S → −∞ (collapse) whatever e_ℓ", sp.limit(-e_pos * t + f * sp.log(t), t, sp.oo), -sp.oo)
        D.check(f"{opt}: e_r = 0, e_ℓ ≠ 0 ⇒ log S → ±∞ with the sign of e_ℓ", sp.limit(e_pos * sp.log(t), t, sp.oo), sp.oo)
        rows: list[tuple[sp.Expr, int, Label]] = []
        agree = True
        for pv in _GRID_P:
            for kv in _GRID_K:
                rule = _exponent_label(e_r.subs(P, pv), e_l.subs(k, kv))
                by_limit = _limit_label(factor.subs(gamma, r**pv * sp.log(r) ** kv))
                agree &= rule == by_limit
                rows.append((pv, kv, rule))
        D.check(f"{opt}: sympy limits of S on a grid of (p, k) agree with the exponent rule", sp.Integer(agree), 1)
        stable = [(pv, kv) for pv, kv, lab in rows if lab == STABLE]
        D.check(f"{opt}: on the grid only (p, k) = ({claim}, 0) is stable", sp.Tuple(*stable[0]) if len(stable) == 1
                else sp.Integer(len(stable)), sp.Tuple(claim, 0))
        D.step("result", rf"{opt.upper()}: stable iff $\gamma_r \in \Theta(r^{{{claim}}})$; collapse below, blow-up above.",
               lhs(f"γ_r ({opt})", rf"\gamma_r\ ({opt})"), c * r**claim)
        _check_classifier(D, opt, rows)
    return D


def _check_classifier(D: Derivation, optimizer: Optimizer, rows: Sequence[tuple[sp.Expr, int, Label]]) -> None:
    """Cross-check the derived labels against the asymptotic classifier, :func:`rsstab.verdict.classify.check`."""
    mismatches = 0
    for pv, kv, label in rows:
        text = f"r**({pv})" + (f"*log(r)**({kv})" if kv else "")
        mismatches += classify.check(text, optimizer).label != label
    D.check(f"{optimizer}: rsstab.check agrees with the derived regime on every grid point",
            sp.Integer(mismatches), 0)


def _depth_words(L: int, backward: bool) -> list[int]:
    """Number of adapter factors Δ in each word of Π(W_ℓ + Δ_ℓ) − Π W_ℓ (or its transpose)."""
    Ws = [matrix(f"W{l}", d, d, f"W_{{{l}}}") for l in range(1, L + 1)]
    Ds = [matrix(f"D{l}", d, d, rf"\Delta_{{{l}}}") for l in range(1, L + 1)]
    prod = sp.Integer(1)
    for W, Dm in zip(Ws, Ds):  # layer 1 acts first: h_L = (W_L + Δ_L) ⋯ (W_1 + Δ_1) x
        prod = sp.expand((W + Dm) * prod)
    pert = sp.expand(prod - sp.Mul(*reversed(Ws)))
    if backward:
        pert = transpose(pert)
    dset = set(Ds) | {TRANSPOSE[x] for x in Ds}
    return [sum(1 for x in w if x in dset) for _, w in terms(pert)]


def depth() -> Derivation:
    """Result 6 (``depth``): L layers with Θ(r^e) adapters perturb by Θ(r^(L e)) if e > 0, Θ(r^e) if e < 0, Θ(1) if e = 0."""
    D = Derivation("depth", 6, "depth: composing L adapted layers",
                   r"If each layer's learned adapter is $\Theta(r^e)$ relative to its frozen map, the output "
                   r"perturbation of $L$ layers is $\Theta(r^{L e})$ when $e > 0$, $\Theta(r^{e})$ when $e < 0$ "
                   r"and $\Theta(1)$ when $e = 0$ — forward and backward.")
    D.step("assumption", r"Model: $h_L = (W_L + \Delta_L)\cdots(W_1 + \Delta_1)x$ with frozen $W_\ell = \Theta(1)$ and "
           r"$\Delta_\ell = \gamma_r B_\ell A_\ell$. After the first SGD step from $B = 0$ every layer sees "
           r"$\Theta(1)$ inputs $W_{\ell-1}\cdots W_1 x$ and $\Theta(1)$ output gradients, so by result 2 "
           r"$\Delta_\ell = \Theta(r^e)$ with $e$ the exponent of $S$; orders multiply along a word "
           r"(no cancellation between words — generic alignment).")
    epos, eneg = sp.Symbol("e", positive=True), sp.Symbol("e", negative=True)
    table = []
    for L in DEPTHS:
        fw, bw = _depth_words(L, False), _depth_words(L, True)
        D.check(f"L={L}: forward and backward perturbations have the same Δ-counts", sp.Tuple(*sorted(fw)),
                sp.Tuple(*sorted(bw)))
        D.check(f"L={L}: the perturbation has 2^L − 1 words", sp.Integer(len(fw)), 2**L - 1)
        up = sp.Max(*[m * epos for m in fw])
        down = sp.Max(*[m * eneg for m in fw])
        zero = sp.Max(*[m * 0 for m in fw])
        D.check(f"L={L}: e > 0 ⇒ exponent L·e (blow-up compounds)", up, L * epos)
        D.check(f"L={L}: e < 0 ⇒ exponent e (the one-adapter words dominate)", down, eneg)
        D.check(f"L={L}: e = 0 ⇒ exponent 0 (stable at every depth)", zero, 0)
        table.append(fw)
    D.step("computation", r"Expanding the product gives $2^L - 1$ perturbation words; a word with $m$ adapter factors "
           r"is $\Theta(r^{m e})$, so the exponent is $\max_m m e$ over the words. Counts of $\Delta$ per word, "
           r"$L = 1..4$:", lhs("#Δ per word", r"\#\Delta\text{ per word}"),
           sp.Tuple(*[sp.Tuple(*sorted(w)) for w in table]))
    D.step("computation", r"The backward pass multiplies by $(W_\ell + \Delta_\ell)^\top$ in reverse order: the same "
           r"words transposed, hence the same exponents.")
    ps = (sp.Integer(-1), sp.Rational(-1, 2), sp.Integer(0))
    for opt, factor in (("sgd", sgd_stability_factor()), ("adam", adam_stability_factor())):
        e_opt = r_exponent(factor)
        rows = []
        for pv in ps:
            ev = e_opt.subs(P, pv)
            rows.append([max(m * ev for m in _depth_words(L, False)) for L in DEPTHS])
        D.step("result", f"{opt.upper()}: ${'e = ' + sp.latex(e_opt)}$ (exponent of S with $\\gamma_r = r^p$); exponent of "
               f"the $L$-layer perturbation for $p = {', '.join(map(str, ps))}$ (rows) and "
               f"$L = {', '.join(map(str, DEPTHS))}$ (columns).",
               lhs(f"exponent ({opt})", rf"\text{{exponent}}\ ({opt})"), sp.Matrix(rows))
        stable_p = sp.solve(e_opt, P)
        D.check(f"{opt}: the only depth-independent Θ(1) exponent is at p = {stable_p}",
                sp.Tuple(*[sp.Integer(int(all(x == 0 for x in row))) for row in rows]),
                sp.Tuple(*[sp.Integer(int(pv in stable_p)) for pv in ps]))
    D.step("result", r"Stability propagates through any depth; blow-up compounds to $r^{L e}$, while collapse stays "
           r"$r^{e}$ (the adapters' total effect vanishes, it does not compound).")
    return D
