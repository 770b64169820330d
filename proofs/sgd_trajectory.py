"""Result 3 — the n-step SGD trajectory (the paper's Appendix A induction).

B_n = −η γ_r Σ_k v_k x_k^T A_0^T + O(γ_r³): the induction step is proved with opaque P_t, Q_t, and the exact
recursion for n = 1, 2, 3 is expanded; every expected remainder term is O(γ_r² (γ_r² r)^s), which vanishes
only because γ_r → 0.

Run ``python proofs/sgd_trajectory.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.sgd`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "trajectory"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
