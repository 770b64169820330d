"""Result 4 — the backward pass after training.

The gradient into the adapter input, (γ_r B_n A_n)^T u, has mean −η γ_r² r σ_A² Σ_k (v_k·u) x_k to leading
order: Θ(η γ_r² r), the same factor as the forward pass.

Run ``python proofs/backward_pass.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.sgd`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "backward"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
