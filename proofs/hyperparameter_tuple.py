"""Result 12 — the hyperparameter tuple (γ_r, η_A, η_B, σ_A).

With B_0 = 0 the learned change is a B-driven term γ_r B_t A_0 plus an A-driven term γ_r B_t (A_t − A_0).
Exact SGD trajectories with two learning rates on symbolic matrices (linear loss), exact sign-descent runs
(Adam at ε → 0) in rationals, the coherent Gram matrix E[A_0ᵀA_0] = r σ_A² I, and the exponent bookkeeping
that ``rsstab check --lr --lr-ratio --init-std`` uses (tied to rsstab.theory.update_term).

Run ``python proofs/hyperparameter_tuple.py``: it prints the chain of steps and exits 0 when every asserted
identity holds, 1 (with the failing identity on stderr) otherwise. The derivation lives in
:mod:`rsstab.derive.results.hyperparams`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "hyperparameter-tuple"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
