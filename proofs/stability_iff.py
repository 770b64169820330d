"""Result 5 — the iff.

Over γ_r = c r^p (log r)^k, the derived stability factor γ_r² r is Θ(1) iff (p, k) = (−1/2, 0); every other
exponent collapses or blows up (and γ_r r under Adam gives Θ(1/r)). Cross-checked against rsstab.check.

Run ``python proofs/stability_iff.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.scaling`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "iff"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT, argv=sys.argv[1:]))
