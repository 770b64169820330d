"""Result 8 — the SGD reparametrisation identity.

With B̃ = γ_r B, SGD on (A, B̃) depends on γ_r only through η_B̃ = η γ_r²; proved on symbolic matrices and
checked on two float64 trajectories that agree to 1e-12.

Run ``python proofs/sgd_reparametrisation.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.reparam`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "reparam"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
