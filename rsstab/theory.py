"""The single place that knows the exponents: each measurable quantity as a power law in γ_r and r.

For every optimizer regime, a measurable quantity Q scales (up to r-independent factors such as
η, α, width and the data) as ``Q ∝ γ_r^k · r^m``. The derivations in :mod:`rsstab.derive` and
``proofs/`` establish these laws; the simulator never reads them (measurements stay independent of
predictions), and the comparison happens in :mod:`rsstab.classify` and the report.

>>> law("forward", "sgd").exponent(-0.5)   # rsLoRA, γ_r ∝ r^(-1/2): Θ(1)
0.0
>>> law("forward", "adam").exponent(-1.0)  # LoRA under Adam: Θ(1)
0.0
>>> stability_law("sgd").text
'γ_r²·r'
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from rsstab.errors import RsstabError
from rsstab.vocab import OPTIMIZERS, Optimizer, normalize_optimizer

__all__ = ["OPTIMIZERS", "QUANTITIES", "Law", "law", "quantities", "stability_law"]

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
    """``Q ∝ γ_r^gamma_power · r^rank_power · σ_A^sigma_a_power`` (σ_A: std of A's entries)."""

    quantity: str
    optimizer: str
    gamma_power: Fraction
    rank_power: Fraction
    why: str
    sigma_a_power: Fraction = Fraction(0)

    @property
    def text(self) -> str:
        g = {1: "γ_r", 2: "γ_r²"}.get(int(self.gamma_power), f"γ_r^{self.gamma_power}")
        if self.rank_power == 0:
            return g
        r = "r" if self.rank_power == 1 else f"r^{self.rank_power}"
        return f"{g}·{r}"

    def exponent(self, gamma_exponent: float, sigma_a_exponent: float = 0.0) -> float:
        """r-exponent of Q when γ_r ∝ r^gamma_exponent (and σ_A ∝ r^sigma_a_exponent; LoRA and
        Theorem 3.2 keep σ_A independent of r, the paper's init-only ablation scales it).

        >>> law("forward", "sgd").exponent(-1.0, sigma_a_exponent=-0.5)  # α/r with A ~ 1/√r
        -2.0
        """
        return (float(self.gamma_power) * gamma_exponent + float(self.rank_power)
                + float(self.sigma_a_power) * sigma_a_exponent)


_F = Fraction
# (γ power, r power, σ_A power, why)
_LAWS = {
    ("grad_init", "sgd"): (_F(1), _F(1, 2), _F(1), "∇_B L = γ_r·v·(A x)^T and ‖A x‖ ∝ √r·σ_A at B = 0"),
    ("grad_init", "adam"): (_F(1), _F(1, 2), _F(1), "the gradient at step 0 does not depend on the optimizer"),
    ("forward", "sgd"): (_F(2), _F(1), _F(2), "SGD learns γ_r·B·A = −η γ_r² Σ v x^T A^T A and A^T A sums r aligned terms"),
    ("forward", "adam"): (_F(1), _F(1), _F(1), "sign-like updates make ΔB = Θ(η) whatever γ_r, and ΔB·A·x sums r aligned terms"),
    ("backward", "sgd"): (_F(2), _F(1), _F(2), "the gradient into the input passes through (γ_r B A)^T = Θ(η γ_r² r)"),
    ("backward", "adam"): (_F(1), _F(1), _F(1), "the gradient into the input passes through (γ_r B A)^T = Θ(η γ_r r)"),
    ("iid_variance", "sgd"): (_F(2), _F(1), _F(2), "Var(γ_r B A x) = γ_r²·r·d·σ_A²σ_B²σ_x² sums r independent terms"),
}


def quantities(optimizer: str) -> tuple[str, ...]:
    """The quantities that have a law in this regime (iid variance is an SGD/initialisation law)."""
    optimizer = normalize_optimizer(optimizer)
    return tuple(q for q in QUANTITIES if (q, optimizer) in _LAWS)


def law(quantity: str, optimizer: str) -> Law:
    """The power law of one quantity in one optimizer regime (``"adamw"`` is Adam's)."""
    optimizer = normalize_optimizer(optimizer)
    try:
        k, m, sa, why = _LAWS[(quantity, optimizer)]
    except KeyError:
        raise RsstabError(
            f"no law for quantity {quantity!r} under {optimizer}: expected one of "
            f"{', '.join(quantities(optimizer))}"
        ) from None
    return Law(quantity, optimizer, k, m, why, sa)


def stability_law(optimizer: str) -> Law:
    """The quantity whose Θ(1)-ness decides rank stabilization: γ_r²·r (SGD), γ_r·r (Adam)."""
    return law("forward", optimizer)
