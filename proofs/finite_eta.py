"""Result 14 — beyond first order in η: SGD's exact finite-η recursion on the depth-1 task.

On one linear layer (loss ½‖(M − D)x‖², M = γ·B·A) SGD on B and A is a closed recursion of M,
K_A = γ²AᵀA and K_B = γ²BBᵀ (checked as a polynomial identity in generic matrices, with a batch's
covariance and the population's); from B₀ = 0, B stays in D's column space; along one singular pair the
recursion's expansion in η is result 13's next terms (B's saturation, A's own learning); and
rsstab.finite_eta.population_step is the recursion.

Run ``python proofs/finite_eta.py``: it prints the chain of steps and exits 0 when every asserted identity
holds, 1 (with the failing identity on stderr) otherwise. The derivation lives in
:mod:`rsstab.derive.results.finite_eta`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "finite-eta"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
