"""Result 2 — the first SGD step and the coherent sum.

From B = 0 one SGD step gives B_1 = −η γ_r v x^T A^T, and E[γ_r B_1 A x′] = −η γ_r² r σ_A² (x·x′) v exactly;
its variance is Θ(r), so the fluctuation is O(√r) against the Θ(r) mean — the coherent-sum origin of √r.

Run ``python proofs/first_sgd_step.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.sgd`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "first-step"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
