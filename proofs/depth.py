"""Result 6 — depth.

For L stacked layers (W_ℓ + Δ_ℓ) with Δ_ℓ = Θ(r^e), the perturbation exponent is L·e when e > 0, e when
e < 0 and 0 when e = 0, forward and backward.

Run ``python proofs/depth.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.scaling`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "depth"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
