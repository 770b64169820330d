"""Result 10 — finite width under Adam: the coherent and the incoherent part of sign descent.

Adam's first step is ΔB = −η sign(G Aᵀ). With E[sign(g·a)(a·x′)] = σ_A √(2/π) (ĝ·x′) (regression of a·x′ on g·a)
the learned change per output coordinate has, over isotropic probes, a coherent square ∝ (2/π) γ_r² r² and an
incoherent square ∝ γ_r² r (d − 2/π): r* = πd/2 − 1. The backward signal for a fixed u uses the arcsine law
E[sign X sign Y] = (2/π) arcsin ρ and the independence of an isotropic Gaussian's radius and direction.

Run ``python proofs/adam_finite_width.py``: it prints the chain of steps and exits 0 when every asserted identity
holds, 1 (with the failing identity on stderr) otherwise. The derivation lives in
:mod:`rsstab.derive.results.width`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "adam-finite-width"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT))
