"""Result 7 — Adam / sign descent.

Adam's first step is −η sign(g); the learned output after it is Θ(η γ_r r), so the stable scaling under
sign-like updates is Θ(1/r).

Run ``python proofs/adam_sign_descent.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.adam`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "adam"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
