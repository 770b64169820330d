"""Result 1 — iid forward variance.

With B, A, x independent with zero-mean Gaussian entries, the index sum y_i = γ_r Σ_j Σ_k B_ij A_jk x_k has
Var(y_i) = γ_r² r d σ_A² σ_B² σ_x² exactly (pairings of the entries leave one free j and one free k), and its
m-th moments (m = 2, 4, 6, checked against a conditional-Gaussian / χ² route and a brute-force expansion at
small r, d) are polynomials of degree m/2 in r: Θ((γ_r² r)^(m/2)).

Run ``python proofs/iid_forward_variance.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.iid`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "iid"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
