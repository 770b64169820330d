"""Result 11 — Adam with ε > 0: where the sign regime ends, and the learning-rate rule on each side.

One LoRA layer at step 0 (B = 0, Gaussian A, one input x): g_ij = ∂L/∂B_ij = γ_r·v_i·(a_j·x) depends on r only
through γ_r, and Adam's first step is ΔB_ij = −η·g_ij/(|g_ij| + ε): sign descent while ρ = E|g_ij|/ε ≫ 1, SGD with
rate η/ε while ρ ≪ 1. For γ_r = α·r^g (g < 0) the sign regime ends at r_ε = (ε/(α·G))^(1/g); the exact factor
F(ρ) between the laws is bounded (1 − 1/ρ ≤ F ≤ 1, 1 − 2ρ ≤ F/((π/2)ρ) ≤ 1), and the learning-rate rule
η ∝ r^−(k·g+1) has k = 1 (sign) or 2 (SGD-like), checked against rsstab.theory.

Run ``python proofs/adam_epsilon.py``: it prints the chain of steps and exits 0 when every asserted identity
holds, 1 (with the failing identity on stderr) otherwise. The derivation lives in
:mod:`rsstab.derive.results.adam_epsilon`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "adam-epsilon"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
