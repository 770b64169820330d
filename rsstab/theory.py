"""The single place that knows the exponents: each measurable quantity as a power law in γ_r and r.

For every optimizer, a measurable quantity Q scales (up to r-independent factors such as
η, α, width and the data) as ``Q ∝ γ_r^k · r^m``. The derivations in :mod:`rsstab.derive` and
``proofs/`` establish these laws; the simulator never reads them (measurements stay independent of
predictions), and the comparison happens in :mod:`rsstab.verdict.classify` and the report.

>>> law("forward", "sgd").exponent(-0.5)   # rsLoRA, γ_r ∝ r^(-1/2): Θ(1)
0.0
>>> law("forward", "adam").exponent(-1.0)  # LoRA under Adam: Θ(1)
0.0
>>> stability_law("sgd").text
'γ_r²·r'

Every law is a statement **at a fixed learning rate** η: the stability quantity is
``η·γ_r^k·r^m`` with η entering linearly, so a learning rate scaled as ``η ∝ r^p`` with
``p = −(k·g + m)`` keeps the update Θ(1) for ``γ_r ∝ r^g`` (:func:`lr_exponent`):

>>> lr_exponent(Fraction(-1, 2), "adam")   # rsLoRA under Adam: η ∝ r^(-1/2)
Fraction(-1, 2)
>>> lr_exponent(-1, "sgd")                 # LoRA's α/r under SGD: η ∝ r
Fraction(1, 1)
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rsstab.errors import RsstabError
from rsstab.vocab import (ADAM_CROSSOVER, ADAM_SGD_LIKE, ADAM_SIGN, OPTIMIZERS, AdamRegime, Optimizer,
                          check_optimizer, normalize_optimizer)

__all__ = [
    "OPTIMIZERS", "QUANTITIES", "Law", "law", "quantities", "stability_law", "lr_exponent", "lr_rule",
    "ADAM_SIGN_RATIO", "ADAM_SGD_RATIO", "adam_grad_scale", "adam_gradient_ratio", "adam_regime",
    "adam_update_factor",
    "LIMIT_REGIME", "WIDTH_QUANTITIES", "WidthLaw", "crossover_rank", "finite_width_law", "rms_local_slope",
    "width_coefficients", "UPDATE_TERMS", "UpdateTerm", "update_term",
    "EXPANSION_LIMIT", "Expansion", "adam_drift_coefficients", "adam_expansion", "sgd_expansion",
    "sgd_saturation_factor", "wishart_moment_ratio",
]

#: Measurable quantities, in the order they are reported.
QUANTITIES = ("grad_init", "forward", "backward", "iid_variance")

DESCRIPTIONS = {
    "grad_init": "‖∇_B L‖_F at step 0 (paper Fig. 3 at onset)",
    "forward": "RMS of the adapter output after training",
    "backward": "RMS of the gradient into the adapter input after training",
    "iid_variance": "Var(γ_r·B·A·x) with independent Θ(1) entries",
}


@dataclass(frozen=True)
class Law:
    """``Q ∝ η^lr_power · γ_r^gamma_power · r^rank_power · σ_A^sigma_a_power`` (σ_A: std of A's
    entries; η: the learning rate, which enters the learned quantities linearly and the onset and
    initialisation quantities not at all)."""

    quantity: str
    optimizer: str
    gamma_power: Fraction
    rank_power: Fraction
    why: str
    sigma_a_power: Fraction = Fraction(0)
    lr_power: Fraction = Fraction(0)

    @property
    def text(self) -> str:
        g = {1: "γ_r", 2: "γ_r²"}.get(int(self.gamma_power), f"γ_r^{self.gamma_power}")
        if self.rank_power == 0:
            return g
        r = "r" if self.rank_power == 1 else f"r^{self.rank_power}"
        return f"{g}·{r}"

    def exponent(self, gamma_exponent: float, sigma_a_exponent: float = 0.0,
                 lr_scaling: float = 0.0) -> float:
        """r-exponent of Q when γ_r ∝ r^gamma_exponent (and σ_A ∝ r^sigma_a_exponent; LoRA and
        Theorem 3.2 keep σ_A independent of r, the paper's init-only ablation scales it; and
        η ∝ r^lr_scaling, 0 for a fixed learning rate).

        >>> law("forward", "sgd").exponent(-1.0, sigma_a_exponent=-0.5)  # α/r with A ~ 1/√r
        -2.0
        >>> law("forward", "adam").exponent(-0.5, lr_scaling=-0.5)  # rsLoRA, Adam, η ∝ r^(-1/2)
        0.0
        >>> law("grad_init", "adam").exponent(-0.5, lr_scaling=-0.5)  # onset: no η
        0.0
        """
        return (float(self.gamma_power) * gamma_exponent + float(self.rank_power)
                + float(self.sigma_a_power) * sigma_a_exponent + float(self.lr_power) * lr_scaling)


_F = Fraction
# (γ power, r power, σ_A power, why, η power)
_LAWS = {
    ("grad_init", "sgd"): (_F(1), _F(1, 2), _F(1), "∇_B L = γ_r·v·(A x)^T and ‖A x‖ ∝ √r·σ_A at B = 0", _F(0)),
    ("grad_init", "adam"): (_F(1), _F(1, 2), _F(1), "the gradient at step 0 does not depend on the optimizer", _F(0)),
    ("forward", "sgd"): (_F(2), _F(1), _F(2), "SGD learns γ_r·B·A = −η γ_r² Σ v x^T A^T A and A^T A sums r aligned terms", _F(1)),
    ("forward", "adam"): (_F(1), _F(1), _F(1), "sign-like updates make ΔB = Θ(η) whatever γ_r, and ΔB·A·x sums r aligned terms", _F(1)),
    ("backward", "sgd"): (_F(2), _F(1), _F(2), "the gradient into the input passes through (γ_r B A)^T = Θ(η γ_r² r)", _F(1)),
    ("backward", "adam"): (_F(1), _F(1), _F(1), "the gradient into the input passes through (γ_r B A)^T = Θ(η γ_r r)", _F(1)),
    ("iid_variance", "sgd"): (_F(2), _F(1), _F(2), "Var(γ_r B A x) = γ_r²·r·d·σ_A²σ_B²σ_x² sums r independent terms", _F(0)),
}


def quantities(optimizer: str) -> tuple[str, ...]:
    """The quantities that have a law under this optimizer (iid variance is an SGD/initialisation law)."""
    optimizer = normalize_optimizer(optimizer)
    return tuple(q for q in QUANTITIES if (q, optimizer) in _LAWS)


def law(quantity: str, optimizer: str) -> Law:
    """The power law of one quantity under one optimizer (``"adamw"`` is Adam's)."""
    optimizer = normalize_optimizer(optimizer)
    try:
        k, m, sa, why, lr = _LAWS[(quantity, optimizer)]
    except KeyError:
        raise RsstabError(
            f"no law for quantity {quantity!r} under {optimizer}: expected one of "
            f"{', '.join(quantities(optimizer))}"
        ) from None
    return Law(quantity, optimizer, k, m, why, sa, lr)


def stability_law(optimizer: str) -> Law:
    """The quantity whose Θ(1)-ness decides rank stabilization: γ_r²·r (SGD), γ_r·r (Adam)."""
    return law("forward", optimizer)


# --------------------------------------------------------------------------- who learns: B or A
# With B_0 = 0 the learned change splits exactly: γ(B_t A_t − B_0 A_0) = γ B_t A_0 + γ B_t (A_t − A_0),
# the B-driven term (A at its init) and the A-driven term (what A's own learning adds). With separate
# learning rates η_A, η_B (LoRA+: η_B = λ·η_A), a linear loss (constant data gradient G) and t steps
# (t fixed as r grows), the leading orders, coherent part (mean over A), are (result 12, ``proofs/
# hyperparameter_tuple.py``):
#   SGD:  B_t = −t η_B γ G A_0ᵀ,  A_t − A_0 = (t(t−1)/2) η_A η_B γ² A_0 GᵀG
#         B-driven ∝ η_B γ² r σ_A²   (the forward law with η = η_B)
#         A-driven ∝ η_A η_B² γ⁴ r σ_A²   (ratio A/B ∝ η_A η_B γ²: A's entries move by η_A η_B γ²·σ_A)
#   Adam at ε → 0 (sign descent): ΔB entries ±η_B, ΔA entries ±η_A from step 2 on
#         B-driven ∝ η_B γ r σ_A      (the forward law with η = η_B)
#         A-driven ∝ η_A η_B γ r      (exact for one example: sign(a_j·x)² = 1 makes every j aligned)

#: The two terms of the learned change, in the order they are reported.
UPDATE_TERMS = ("b_driven", "a_driven")

# (η_A power, η_B power, γ power, r power, σ_A power, why, d power)
# d power: when the width d grows too (``--width-expr``), under the convention of μP and LoRA+ —
# inputs with Θ(1) entries (‖x‖² ∝ d), σ_A in units of Kaiming's 1/√d (so σ_A²‖x‖² is width-free),
# the change measured on the training input (x′ = x), output side fixed — the B-driven terms are
# width-free and both A-driven terms gain one power of d: SGD's carries ‖x‖² (G GᵀG = ‖v‖²‖x‖² G for
# one example), Adam's sign(x)·x = ‖x‖₁ ∝ d.
_TERMS = {
    ("b_driven", "sgd"): (_F(0), _F(1), _F(2), _F(1), _F(2),
                          "γ ΔB A x′ = −t η_B γ² G A_0ᵀA_0 x′ and E[A_0ᵀA_0] = r σ_A² I", _F(0)),
    ("a_driven", "sgd"): (_F(1), _F(2), _F(4), _F(1), _F(2),
                          "γ B_t ΔA x′ = −(t²(t−1)/2) η_A η_B² γ⁴ G A_0ᵀA_0 GᵀG x′: A moves only once B ≠ 0", _F(1)),
    ("b_driven", "adam"): (_F(0), _F(1), _F(1), _F(1), _F(1),
                           "ΔB = −t η_B sign(G A_0ᵀ) and E[sign(g·a)(a·x′)] = σ_A√(2/π)(ĝ·x′) over r rows", _F(0)),
    ("a_driven", "adam"): (_F(1), _F(1), _F(1), _F(1), _F(0),
                           "ΔA = −(t−1) η_A sign(B_tᵀG): for one example every row j adds sign(a_j·x)² = 1", _F(1)),
}


@dataclass(frozen=True)
class UpdateTerm:
    """``term ∝ η_A^lr_a_power · η_B^lr_b_power · γ_r^gamma_power · r^rank_power · σ_A^sigma_a_power``:
    the order of the B-driven or the A-driven part of the learned change (leading order in η,
    coherent part over A, t steps with t fixed as r grows).

    >>> update_term("a_driven", "sgd").text
    'η_A·η_B²·γ_r⁴·r·σ_A²'
    >>> update_term("a_driven", "adam").exponent(-1, lr_a=0, lr_b=0, sigma_a=0)  # LoRA's α/r under Adam
    Fraction(0, 1)
    """

    term: str
    optimizer: str
    lr_a_power: Fraction
    lr_b_power: Fraction
    gamma_power: Fraction
    rank_power: Fraction
    sigma_a_power: Fraction
    why: str
    width_power: Fraction = Fraction(0)

    @property
    def text(self) -> str:
        sup = str.maketrans("0123456789-/", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᐟ")
        parts = []
        for name, power in (("η_A", self.lr_a_power), ("η_B", self.lr_b_power), ("γ_r", self.gamma_power),
                            ("r", self.rank_power), ("σ_A", self.sigma_a_power)):
            if power:
                parts.append(name if power == 1 else f"{name}{str(power).translate(sup)}")
        return "·".join(parts)

    def exponent(self, gamma: Any, *, lr_a: Any = 0, lr_b: Any = 0, sigma_a: Any = 0, width: Any = 0) -> Any:
        """r-exponent of the term when γ_r, η_A, η_B, σ_A, d ∝ r^gamma, r^lr_a, r^lr_b, r^sigma_a, r^width
        (generic arithmetic: Fractions, floats or sympy symbols; width 0: a fixed width)."""
        return (self.lr_a_power * lr_a + self.lr_b_power * lr_b + self.gamma_power * gamma + self.rank_power
                + self.sigma_a_power * sigma_a + self.width_power * width)


def update_term(term: str, optimizer: str) -> UpdateTerm:
    """The law of the B-driven or A-driven part of the learned change under one optimizer.

    The B-driven term is the forward law with η = η_B:

    >>> t, f = update_term("b_driven", "sgd"), law("forward", "sgd")
    >>> (t.gamma_power, t.rank_power, t.sigma_a_power, t.lr_b_power) == (f.gamma_power, f.rank_power, f.sigma_a_power, f.lr_power)
    True
    """
    optimizer = normalize_optimizer(optimizer)
    try:
        a, b, g, m, s, why, w = _TERMS[(term, optimizer)]
    except KeyError:
        raise RsstabError(f"no update term {term!r} under {optimizer}: expected one of "
                          f"{', '.join(UPDATE_TERMS)}") from None
    return UpdateTerm(term, optimizer, a, b, g, m, s, why, w)


# --------------------------------------------------------------------------- learning-rate rule


def lr_exponent(gamma_exponent: Fraction | int | float, optimizer: str) -> Fraction | float:
    """The exponent p such that ``η ∝ r^p`` keeps the learned update Θ(1) when ``γ_r ∝ r^g``.

    The stability quantity is ``η·γ_r^k·r^m`` (SGD: k = 2, Adam's sign phase: k = 1; m = 1), so
    ``p = −(k·g + m)``: SGD ``p = −(2g + 1)``, Adam ``p = −(g + 1)``. Exact (a Fraction) when g is
    an int or a Fraction, a float otherwise.

    >>> lr_exponent(Fraction(-1, 2), "sgd")   # rsLoRA under SGD: a fixed η
    Fraction(0, 1)
    >>> lr_exponent(0, "adam")                # a constant γ under Adam: η ∝ 1/r
    Fraction(-1, 1)
    >>> round(lr_exponent(-0.25, "sgd"), 12)
    -0.5
    """
    stab = stability_law(optimizer)
    k, m = stab.gamma_power / stab.lr_power, stab.rank_power / stab.lr_power
    if isinstance(gamma_exponent, (int, Fraction)) and not isinstance(gamma_exponent, bool):
        return -(k * Fraction(gamma_exponent) + m)
    return -(float(k) * float(gamma_exponent) + float(m))


def lr_rule(optimizer: str) -> str:
    """The learning-rate rule that keeps the update Θ(1), for any γ_r (powers or not).

    >>> lr_rule("sgd"), lr_rule("adam")
    ('η ∝ 1/(γ_r²·r)', 'η ∝ 1/(γ_r·r)')
    """
    return f"η ∝ 1/({stability_law(optimizer).text})"


# --------------------------------------------------------------------------- Adam's ε
# Adam's first step is ΔB_ij = −η·g_ij/(|g_ij| + ε) (bias corrections cancel; proofs/adam_epsilon.py).
# At B = 0, g_ij = γ_r·v_i·(a_j·x): its size depends on r only through γ_r. With ρ = E|g_ij|/ε,
# the learned change on x is E|Δy_i| = (sign law η·γ_r·r·σ_A‖x‖·√(2/π))·F(ρ)
# (:func:`adam_update_factor`, exact for Gaussian A and one input), with the exact bounds
#     1 − 1/ρ ≤ F(ρ) ≤ 1                 (sign-like: update ∝ η·γ_r·r)
#     1 − 2ρ ≤ F(ρ)/((π/2)·ρ) ≤ 1        (SGD-like with rate η/ε: update ∝ (η/ε)·γ_r²·r)
# so each law is within 10 % for ρ ≥ 10 and for ρ ≤ 0.05 respectively.

#: ρ = E|g|/ε at or above which Adam's first update follows the sign law within 10 %.
ADAM_SIGN_RATIO = 10.0
#: ρ at or below which it follows SGD's law with rate η/ε within 10 %.
ADAM_SGD_RATIO = 0.05


def adam_grad_scale(v_abs: float, sigma_a: float, x_norm: float) -> float:
    """``G`` with ``E|∂L/∂B_ij| = γ_r·G`` at step 0 (B = 0, Gaussian A with std σ_A, one input x,
    output gradient entry v_i): ``G = |v_i|·σ_A·‖x‖·√(2/π)`` (E|a·x| = σ_A‖x‖√(2/π)).

    >>> round(adam_grad_scale(1.0, 1.0, 1.0), 6)
    0.797885
    """
    return abs(v_abs) * sigma_a * x_norm * math.sqrt(2 / math.pi)


def adam_gradient_ratio(gamma: float, grad_scale: float, eps: float) -> float:
    """``ρ = E|g_ij|/ε = γ_r·G/ε``: the per-entry gradient of B at step 0 in units of Adam's ε.

    >>> adam_gradient_ratio(0.25, 4.0, 0.5)
    2.0
    """
    if not eps > 0:
        raise RsstabError(f"eps must be positive, got {eps!r}", parameter="eps")
    if not grad_scale > 0:
        raise RsstabError(f"grad_scale must be positive, got {grad_scale!r}", parameter="grad_scale")
    return gamma * grad_scale / eps


def adam_regime(gamma: float, grad_scale: float, eps: float) -> AdamRegime:
    """Which law Adam's first step follows at this γ_r (η does not enter: it scales the step in
    both phases; in the SGD-like one the effective SGD learning rate is η/ε).

    >>> adam_regime(1 / 16, 1.0, 1e-8), adam_regime(1 / 16, 1.0, 2.0), adam_regime(1 / 16, 1.0, 0.0625)
    ('sign', 'sgd-like', 'crossover')
    """
    rho = adam_gradient_ratio(gamma, grad_scale, eps)
    if rho >= ADAM_SIGN_RATIO:
        return ADAM_SIGN
    if rho <= ADAM_SGD_RATIO:
        return ADAM_SGD_LIKE
    return ADAM_CROSSOVER


def adam_update_factor(rho: float) -> float:
    """``F(ρ) = E|Δy_i| / (η·γ_r·r·σ_A‖x‖·√(2/π))``: Adam's first learned change relative to the
    sign law, exact for Gaussian A and one input (``F = E[κZ²/(κ|Z|+1)]/√(2/π)``, Z ~ N(0, 1),
    κ = ρ·√(π/2)). F → 1 in the sign phase and F ≈ (π/2)·ρ, SGD's law with rate η/ε, for ρ ≪ 1.

    >>> round(adam_update_factor(100.0), 3), round(adam_update_factor(1e-3) / (math.pi / 2 * 1e-3), 3)
    (0.99, 0.998)
    """
    if math.isinf(rho):
        return 1.0
    if not rho > 0:
        raise RsstabError(f"rho must be positive, got {rho!r}", parameter="rho")
    import mpmath  # light, and already a dependency of the parser

    kappa = mpmath.mpf(rho) * mpmath.sqrt(mpmath.pi / 2)
    density: Callable[[mpmath.mpf], mpmath.mpf] = lambda z: mpmath.exp(-z * z / 2) / mpmath.sqrt(2 * mpmath.pi)  # noqa: E731
    mean = 2 * mpmath.quad(lambda z: kappa * z * z / (kappa * z + 1) * density(z), [0, 1, 4, mpmath.inf])
    return float(mean / mpmath.sqrt(2 / mpmath.pi))
# --------------------------------------------------------------------------------------------------
# The width axis: exact laws at finite rank r and width d (results 9 and 10 of rsstab.derive)
# --------------------------------------------------------------------------------------------------
#
# The laws above are the r → ∞ limit at fixed width d. At finite (r, d) the learned change splits
# into a coherent part (its mean over A, the object of Theorem 3.2) and an incoherent part (its
# fluctuation over A, a random-projection error). For every quantity below the mean square over A
# (and, for the forward change, over isotropic probes) is exactly
#
#     E‖Q‖² = scale · γ_r^(2k) · (c_coh · r² + c_inc(d_eff) · r)
#
# with k = law(quantity, optimizer).gamma_power (2 for SGD, 1 for Adam): the coherent square is the
# r² term, the incoherent square (the variance over A) the r term. SGD: c_coh = 1, c_inc = d_eff + 1;
# Adam: c_coh = 2/π, c_inc = d_eff − 2/π. The crossover rank, where the two squares are equal, is
# r* = c_inc / c_coh: d + 1 (SGD) and πd/2 − 1 (Adam) at d_eff = d. The rank-free ``scale`` and the
# effective width d_eff of each case are tabulated in :func:`finite_width_law`.

#: The width side every verdict without a width refers to (the large-rank limit).
LIMIT_REGIME = "r >> d (width fixed, r → ∞)"
#: The quantities that have a finite-width law.
WIDTH_QUANTITIES = ("forward", "backward")
#: Width-side boundaries: a rank is ``r ≪ d`` when the incoherent square is at least this many times the
#: coherent one (r ≤ r*/4: the RMS is within 12 % of the incoherent part alone), ``r ≫ d`` when the
#: coherent square is (r ≥ 4 r*), else ``crossover``.
REGIME_FACTOR = 4
SMALL_RANK, CROSSOVER, LARGE_RANK = "r ≪ d", "crossover", "r ≫ d"

_WIDTH_WHY = {
    ("forward", "sgd"): ("Δu = −η γ_r² G AᵀA x′; E[AᵀA C AᵀA] = σ_A⁴((r² + r) C + r tr(C) I) by Wick",
                         "η²σ_A⁴σ_x²‖G‖_F² (isotropic probes)"),
    ("backward", "sgd"): ("(γ_r ΔB A)ᵀu = −η γ_r² AᵀA Gᵀu; E‖AᵀA w‖² = σ_A⁴(r² + r + r d)‖w‖² by Wick",
                          "η²σ_A⁴‖Gᵀu‖² (fixed u)"),
    ("forward", "adam"): ("Δu_o = −η γ_r Σ_j sign(g_o·a_j)(a_j·x′); E[sign(g·a)(a·x′)] = σ_A√(2/π)(ĝ·x′)",
                          "η²n²σ_A²σ_x²·d_out (isotropic probes)"),
    ("backward", "adam"): ("(γ_r ΔB A)ᵀu = −η γ_r Σ_j a_j Σ_o u_o sign(g_o·a_j); E[sign X sign Y] = (2/π) arcsin ρ",
                           "η²n²σ_A²‖Ĝᵀu‖² (fixed u)"),
}


def _check_width_quantity(quantity: str, optimizer: str) -> None:
    check_optimizer(optimizer)
    if quantity not in WIDTH_QUANTITIES:
        raise RsstabError(f"no finite-width law for quantity {quantity!r}: expected one of "
                          f"{', '.join(WIDTH_QUANTITIES)}", parameter="quantity")


def width_coefficients(quantity: str, optimizer: str, d_eff: Any, *, pi: Any = math.pi) -> tuple[Any, Any]:
    """``(c_coh, c_inc)`` with E‖Q‖² = scale·γ_r^(2k)·(c_coh·r² + c_inc·r), exactly at finite (r, d).

    The arithmetic is generic: pass sympy's ``d`` and ``sympy.pi`` to get exact expressions (the
    derivations compare theirs with these), or numbers for floats.

    >>> width_coefficients("forward", "sgd", 512)
    (1, 513)
    >>> [round(c, 4) for c in width_coefficients("backward", "adam", 512)]
    [0.6366, 511.3634]
    """
    _check_width_quantity(quantity, optimizer)
    if optimizer == "sgd":
        return 1, d_eff + 1
    c = 2 / pi
    return c, d_eff - c


def _positive(value: float, parameter: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise RsstabError(f"{what} must be a positive finite number, got {value!r}", parameter=parameter)
    return float(value)


@dataclass(frozen=True)
class WidthLaw:
    """One quantity's exact law at width ``d``: E‖Q‖² = scale·γ_r^(2k)·(coherent·r² + incoherent·r).

    ``k`` is :attr:`gamma_power` (the coherent RMS is ∝ γ_r^k·r, the r → ∞ law of :func:`law`);
    ``scale`` (rank-free; see the table in this module's source and :attr:`scale`) defaults to 1,
    so that sizes are relative. The simulator's predictions multiply by the scale it measures.

    >>> L = finite_width_law("forward", "sgd", 512)
    >>> L.crossover_rank, L.regime(16), L.regime(4096)
    (513.0, 'r ≪ d', 'r ≫ d')
    >>> round(L.local_slope(64, -0.5), 3)       # rsLoRA's RMS shrinks at r ≪ d ...
    -0.445
    >>> round(L.local_slope(10**6, -0.5), 3)    # ... and is flat at r ≫ d
    -0.0
    """

    quantity: str
    optimizer: Optimizer
    d: float
    d_eff: float
    coherent: float
    incoherent: float
    gamma_power: int
    why: str
    scale: str

    @property
    def crossover_rank(self) -> float:
        """r* where the coherent and incoherent squares are equal: c_inc / c_coh."""
        return self.incoherent / self.coherent

    def coherent_square(self, r: float, gamma: float = 1.0) -> float:
        """‖E_A Q‖² / scale at rank r with γ_r = ``gamma``."""
        return gamma ** (2 * self.gamma_power) * self.coherent * r * r

    def incoherent_square(self, r: float, gamma: float = 1.0) -> float:
        """E_A‖Q − E_A Q‖² / scale."""
        return gamma ** (2 * self.gamma_power) * self.incoherent * r

    def mean_square(self, r: float, gamma: float = 1.0) -> float:
        """E‖Q‖² / scale = coherent + incoherent square."""
        return self.coherent_square(r, gamma) + self.incoherent_square(r, gamma)

    def rms(self, r: float, gamma: float = 1.0) -> float:
        """√(E‖Q‖² / scale)."""
        return math.sqrt(self.mean_square(r, gamma))

    def regime(self, r: float) -> str:
        """``r ≪ d``, ``crossover`` or ``r ≫ d`` (see :data:`REGIME_FACTOR`)."""
        ratio = r / self.crossover_rank  # = coherent square / incoherent square
        if ratio <= 1 / REGIME_FACTOR:
            return SMALL_RANK
        if ratio >= REGIME_FACTOR:
            return LARGE_RANK
        return CROSSOVER

    def local_slope(self, r: float, gamma_exponent: float) -> float:
        """d log RMS / d log r at rank r for γ_r ∝ r^g: k·g + (2 c_coh r + c_inc) / (2 (c_coh r + c_inc))."""
        slope: float = rms_local_slope(self.quantity, self.optimizer, r, self.d, gamma_exponent, d_eff=self.d_eff)
        return slope

    def secant_slope(self, r1: float, r2: float, gamma1: float, gamma2: float) -> float:
        """log(RMS(r2)/RMS(r1)) / log(r2/r1): the slope ``rsstab simulate`` measures between two ranks."""
        return (math.log(self.rms(r2, gamma2) / self.rms(r1, gamma1))) / math.log(r2 / r1)

    @property
    def text(self) -> str:
        """The law as text, e.g. ``γ_r⁴·(r² + 513·r)``."""
        g = {2: "γ_r²", 4: "γ_r⁴"}[2 * self.gamma_power]
        coh = "r²" if self.coherent == 1 else f"{self.coherent:.4g}·r²"
        return f"{g}·({coh} + {self.incoherent:.6g}·r)"


def finite_width_law(quantity: str, optimizer: str, d: float, *, d_eff: float | None = None) -> WidthLaw:
    """The exact finite-(r, d) law of ``forward`` or ``backward`` under ``sgd`` or ``adam``.

    Args:
        quantity: ``"forward"`` (the learned change on a probe) or ``"backward"`` (the signal sent
            back through the learned adapter for a fixed output gradient u).
        optimizer: ``"sgd"`` or ``"adam"``.
        d: the input width of the adapted layer.
        d_eff: the effective width (default ``d``: isotropic probes, fixed u; see the module table).

    Raises:
        RsstabError: unknown quantity/optimizer, or a width that is not a positive number.

    The law is E‖Q‖² = scale·γ_r^(2k)·(c_coh·r² + c_inc·r), k = ``law(quantity, optimizer).gamma_power``
    (SGD: c_coh = 1, c_inc = d_eff + 1; Adam: c_coh = 2/π, c_inc = d_eff − 2/π). Here
    G = Σ_t G_t is the data gradient summed over the n steps (G_t = mean over the batch of v xᵀ, with
    v = ∂L/∂(adapted layer's output), x its input), exact to first order in η under SGD; Ĝ is G with
    its rows normalised; Adam is taken at ε → 0 with a gradient whose signs stay fixed over the n
    steps (then ΔB_n = n·ΔB_1). Mean squares are over A (and over the probe x′ where one is drawn):

    ========  =========  ==============================  ==============================================
    quantity  optimizer  scale                           d_eff (exact)
    ========  =========  ==============================  ==============================================
    forward   sgd        η²σ_A⁴σ_x²‖G‖_F²                d: probes x′ ~ N(0, σ_x² I_d) (the simulator's
                                                         first layer)
    forward   sgd        η²σ_A⁴ tr(G Σ_h Gᵀ)             tr(Σ_h)‖G‖_F² / tr(G Σ_h Gᵀ): probes with
                                                         covariance Σ_h (deeper layers)
    forward   sgd        η²σ_A⁴‖G x′‖²                   ‖G‖_F²‖x′‖² / ‖G x′‖²: one fixed probe x′
    backward  sgd        η²σ_A⁴‖Gᵀu‖²                    d, for every fixed output gradient u
    forward   adam       η²n²σ_A²σ_x²·d_out              d: isotropic probes (as above)
    backward  adam       η²n²σ_A²‖Ĝᵀu‖²                  d·Q/‖Ĝᵀu‖², Q = uᵀ (2/π) arcsin(ĜĜᵀ) u; = d
                                                         when Ĝ's rows are parallel (one example) or
                                                         orthogonal
    ========  =========  ==============================  ==============================================

    >>> L = finite_width_law("forward", "adam", 512)
    >>> round(L.crossover_rank, 2), L.text
    (803.25, 'γ_r²·(0.6366·r² + 511.363·r)')
    """
    _check_width_quantity(quantity, optimizer)
    d = _positive(d, "width", "the width d")
    d_eff = d if d_eff is None else _positive(d_eff, "d_eff", "the effective width d_eff")
    coh, inc = width_coefficients(quantity, optimizer, d_eff)
    why, scale = _WIDTH_WHY[(quantity, optimizer)]
    return WidthLaw(quantity, check_optimizer(optimizer), d, d_eff, float(coh), float(inc),
                    int(law(quantity, optimizer).gamma_power), why, scale)


def crossover_rank(quantity: str, optimizer: str, d: Any, *, d_eff: Any = None, pi: Any = math.pi) -> Any:
    """r* = c_inc / c_coh: d_eff + 1 under SGD, π d_eff / 2 − 1 under Adam (generic arithmetic).

    >>> crossover_rank("forward", "sgd", 4096), round(crossover_rank("forward", "adam", 4096), 1)
    (4097.0, 6433.0)
    """
    coh, inc = width_coefficients(quantity, optimizer, d if d_eff is None else d_eff, pi=pi)
    return inc / coh


def rms_local_slope(quantity: str, optimizer: str, r: Any, d: Any, gamma_exponent: Any, *,
                    d_eff: Any = None, pi: Any = math.pi) -> Any:
    """d log RMS / d log r at (r, d) for γ_r ∝ r^g (generic arithmetic, like :func:`crossover_rank`).

    >>> round(rms_local_slope("forward", "sgd", 16, 512, -0.5), 3)
    -0.485
    """
    coh, inc = width_coefficients(quantity, optimizer, d if d_eff is None else d_eff, pi=pi)
    k = int(law(quantity, optimizer).gamma_power)
    return k * gamma_exponent + (2 * coh * r + inc) / (2 * (coh * r + inc))


# --------------------------------------------------------------------------------------------------
# The range of the first-order laws: the expansion parameter and the next term (result 13)
# --------------------------------------------------------------------------------------------------
#
# The laws above are first order in η: the learned change is the sum of the n steps' gradients taken
# at the initial point. Two effects make the next term (``proofs/expansion_range.py``, ``rsstab derive
# expansion-range``); for each, the size of the next term relative to the first:
#
# * **B-driven** (A at its init). With A fixed the task is a quadratic in B: on the simulator's task
#   (loss ½‖f(x) − y‖² averaged over the batch, B₀ = 0, residual R = γBA − D) the learned change obeys
#   M ← M − η_B·γ²·(M − D)·Σ·AᵀA, so along an eigenvalue λ of γ²·Σ·AᵀA the exact n-step change is the
#   first-order one times [1 − (1 − ηλ)ⁿ]/(nηλ) = 1 − (n − 1)·ηλ/2 + O(η²) (:func:`sgd_saturation_factor`).
#   Averaged over Gaussian A (Wick; E[(AᵀA)^k] ∝ I) the mean square's correction is exactly
#   −(n − 1)·η_B·γ²·σ_A²·w(r, d)·c with w = E tr(AᵀA)³ / (σ_A² E tr(AᵀA)²) =
#   (r² + d² + 3rd + 3r + 3d + 4)/(r + d + 1) (:func:`wishart_moment_ratio`) and c the curvature of the
#   layer's input and output sides (1 for the first layer: isotropic inputs, a loss on the output).
#   Adam (ε → 0) moves every entry by η whatever the gradient's size, so the curvature enters only
#   through the gradient's drift: a gradient shrinking linearly by the fraction ρ of the residual
#   learned over the run changes the bias-corrected m̂/√v̂ steps by −κ_n·ρ (:func:`adam_drift_coefficients`;
#   m̂ and √v̂ shrink almost together, κ_10 = 0.032 at betas (0.9, 0.999)).
# * **A-driven** (A's own learning, zero to first order since B₀ = 0; result 12). SGD:
#   A_t − A₀ = (t(t−1)/2)·η_A·η_B·γ²·A₀·G₁ᵀG₁ (G₁ a step's data gradient) feeds back into B, and the
#   mean square over A (Wick) grows by 2·η_A·η_B·γ²·(n − 1)·[(n − 2)/6·q₂ + (n/2)·((r + 1)·q₂ + q₁)/(r + d + 1)]
#   with q₁ = tr C, q₂ = tr C²/tr C ≤ q₁, C = G₁ᵀG₁: the coupling of A and B through the residual (a
#   saddle: A and B grow together like cosh/sinh of n·η·γ·‖G₁‖), second order in η but with n² and the
#   data gradient's size. Adam: A moves by sign-like steps from step 1 on, A_n − A₀ = α_n·η_A·sign(BᵀG₁)
#   (α_n: the bias-corrected steps of a gradient growing linearly from 0, α_10 = 8.17), which for one
#   example adds α_n·η_A·√d/σ_A times the B-driven coherent part (every row aligned: the largest
#   coherence), first order in η_A.
#
# The expansion parameter is the bound on the next term relative to the first,
# ε = |B-driven| + A-driven; a first-order prediction is **in range** while ε ≤ EXPANSION_LIMIT, the
# report's 10 % agreement: the next term moves the prediction by at most 10 %. Beyond it the adapter's
# growth feeds back into its own gradient and the update saturates at the size the task allows (or,
# through A's learning, grows faster): a measured slope there is beyond the small-η range, a
# statement about the learning rate, not about the rank scaling of the theorem.

#: ε at or below which a first-order prediction is in range: the next term is at most 10 % of the
#: first (the report's agreement of a law with a measurement within 10 %).
EXPANSION_LIMIT = 0.1


def wishart_moment_ratio(r: Any, d: Any) -> Any:
    """``w(r, d) = E tr(AᵀA)³ / (σ_A²·E tr(AᵀA)²)`` for A (r×d) with iid N(0, σ_A²) entries: the
    mean curvature (in units of σ_A²) that SGD's B-driven next term sees; ≈ r for r ≫ d and ≈ d for
    r ≪ d (a rank-r A has r nonzero eigenvalues of size ‖a_j‖² ≈ d·σ_A²). Generic arithmetic.

    >>> wishart_moment_ratio(1, 1)   # E z⁶ / E z⁴ = 15/3
    5.0
    """
    return (r * r + d * d + 3 * r * d + 3 * r + 3 * d + 4) / (r + d + 1)


def sgd_saturation_factor(x: float, steps: int) -> float:
    """The exact n-step change of gradient descent on a quadratic along one curvature eigenvalue λ
    (x = η·λ), relative to the first-order one: ``[1 − (1 − x)ⁿ]/(n·x)`` = 1 − (n − 1)·x/2 + O(x²).

    >>> round(sgd_saturation_factor(0.01, 10), 4), 1 - 9 * 0.01 / 2
    (0.9562, 0.955)
    """
    if x == 0:
        return 1.0
    return (1.0 - (1.0 - x) ** steps) / (steps * x)


@functools.lru_cache(maxsize=64)
def adam_drift_coefficients(steps: int, betas: tuple[float, float] = (0.9, 0.999)) -> tuple[float, float]:
    """``(κ_n, α_n)`` of bias-corrected Adam (ε → 0) over n steps:

    * κ_n: a gradient g_s = g₀·(1 − ρ·s/n) (shrinking by the fraction ρ over the run) moves the sum
      of the steps m̂_t/√v̂_t by −κ_n·ρ·n·sign(g₀) to first order in ρ: κ_n = Σ_t (μ_t − ν_t)/n², μ_t
      and ν_t the mean step index under m̂'s and v̂'s bias-corrected weights;
    * α_n: the sum of the steps of a gradient growing linearly from 0 (A's, as B_t ∝ t):
      Σ_{t=1}^{n−1} (Σ_s w^m_{t,s}·s)/√(Σ_s w^v_{t,s}·s²).

    >>> [round(v, 4) for v in adam_drift_coefficients(10)]
    [0.0322, 8.1706]
    >>> adam_drift_coefficients(1)
    (0.0, 0.0)

    O(n) (running sums), and the same (n, betas) for every rank, seed and layer of a run: kept (64
    entries).
    """
    b1, b2 = (float(b) for b in betas)
    n = int(steps)
    kappa = alpha = 0.0
    # Running sums Σ_s (1 − β)·β^(t−s)·s^k over s ≤ t (one step of each recursion per t); dividing
    # by 1 − β^(t+1) gives the bias-corrected weights' means.
    m1 = v1 = v2 = 0.0
    for t in range(n):
        m1 = b1 * m1 + (1 - b1) * t
        v1 = b2 * v1 + (1 - b2) * t
        v2 = b2 * v2 + (1 - b2) * t * t
        mu = m1 / (1 - b1 ** (t + 1))
        kappa += mu - v1 / (1 - b2 ** (t + 1))
        if t >= 1:
            alpha += mu / math.sqrt(v2 / (1 - b2 ** (t + 1)))
    return (kappa / (n * n) if n else 0.0), alpha


@dataclass(frozen=True)
class Expansion:
    """The next term of a first-order prediction relative to the first: ``b_driven`` (signed: the
    saturation of B's own dynamics is negative) and ``a_driven`` (A's own learning, ≥ 0);
    :attr:`value` = |b_driven| + a_driven bounds it, :attr:`in_range` is ``value ≤ EXPANSION_LIMIT``.

    >>> e = Expansion(-0.03, 0.05)
    >>> round(e.value, 3), e.in_range
    (0.08, True)
    """

    b_driven: float
    a_driven: float

    @property
    def value(self) -> float:
        v = abs(self.b_driven) + self.a_driven
        return v if math.isfinite(v) else math.inf

    @property
    def in_range(self) -> bool:
        return self.value <= EXPANSION_LIMIT


def sgd_expansion(*, rank: float, width: float, gamma: float, lr_a: float, lr_b: float, steps: int,
                  sigma_a2: float, curvature: float = 1.0, step_grad2: float = 0.0) -> Expansion:
    """SGD's next term relative to the first at (r, d) (result 13): B-driven
    ``−(n − 1)·η_B·γ²·σ_A²·w(r, d)·curvature/2`` (the RMS's share of the mean square's correction) and
    A-driven ``η_A·η_B·γ²·(n − 1)·[(n − 2)/6 + (n/2)·(r + 2)/(r + d + 1)]·q₁``, the Wick coefficient
    with q₂ ≤ q₁ = ``step_grad2`` (‖G₁‖_F², a step's data gradient), so a bound.

    >>> e = sgd_expansion(rank=1024, width=64, gamma=1 / 32, lr_a=1.0, lr_b=1.0, steps=10, sigma_a2=1 / 64)
    >>> round(e.b_driven, 4), e.a_driven
    (-0.079, 0.0)
    """
    n, r, d = int(steps), float(rank), float(width)
    lam = gamma**2 * sigma_a2 * wishart_moment_ratio(r, d) * curvature
    b = -(n - 1) * lr_b * lam / 2
    a = lr_a * lr_b * gamma**2 * (n - 1) * ((n - 2) / 6 + (n / 2) * (r + 2) / (r + d + 1)) * step_grad2
    return Expansion(b, a)


def adam_expansion(*, width: float, lr_a: float, steps: int, sigma_a: float, learned_fraction: float,
                   coherent_fraction: float = 1.0, betas: tuple[float, float] = (0.9, 0.999)) -> Expansion:
    """Adam's (ε → 0) next term relative to the first (result 13): B-driven ``−κ_n·ρ`` (ρ =
    ``learned_fraction``, the learned change over the residual) and A-driven
    ``α_n·η_A·√d/σ_A·coherent_fraction`` (A's sign steps add to the coherent part only; the
    one-example, every-row-aligned value).

    >>> e = adam_expansion(width=64, lr_a=1e-4, steps=10, sigma_a=1 / 8, learned_fraction=0.1)
    >>> round(e.b_driven, 4), round(e.a_driven, 4), e.in_range
    (-0.0032, 0.0523, True)
    """
    kappa, alpha = adam_drift_coefficients(int(steps), (float(betas[0]), float(betas[1])))
    return Expansion(-kappa * learned_fraction, alpha * lr_a * math.sqrt(float(width)) / sigma_a * coherent_fraction)
