"""Result 13 — the range of the first-order laws: the expansion parameter and the next term in η.

On the simulator's task (loss ½‖f(x) − y‖², B₀ = 0, Gaussian A): with A fixed B does gradient descent on a
quadratic, so along a curvature eigenvalue λ the exact n-step change is the first-order one times
[1 − (1 − ηλ)ⁿ]/(nηλ) = 1 − (n − 1)ηλ/2 + O(η²), with the mean curvature γ²σ_A²·w(r, d),
w = E tr(AᵀA)³/(σ_A² E tr(AᵀA)²) = (r² + d² + 3rd + 3r + 3d + 4)/(r + d + 1) (Gaussian integrals expanded
exactly); A's own learning adds c²s²(n − 1)(2n − 1)/3 (c = ηγ, s a data-gradient singular value) under SGD;
Adam's drift and A-step coefficients κ_n, α_n are computed exactly; all compared with rsstab.theory.

Run ``python proofs/expansion_range.py``: it prints the chain of steps and exits 0 when every asserted identity
holds, 1 (with the failing identity on stderr) otherwise. The derivation lives in
:mod:`rsstab.derive.results.expansion`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "expansion-range"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
