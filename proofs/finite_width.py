"""Result 9 — finite width under SGD: the coherent and the incoherent part.

After one SGD step (and after n steps to first order in η, with G → Σ_t G_t) the learned change on a probe
is −η γ_r² G AᵀA x′. By pairings of the four A entries (and of the probe's entries for isotropic probes) its
mean square is η²γ_r⁴σ_A⁴σ_x²‖G‖_F² (r² + (d + 1) r): a coherent part ∝ r² (Theorem 3.2's mean) and an
incoherent part ∝ r (d + 1), equal at r* = d + 1; the backward signal for a fixed u obeys the same law.
Exact at every finite r and d (checked against a brute-force expansion at r < d, r = d and r > d).

Run ``python proofs/finite_width.py``: it prints the chain of steps and exits 0 when every asserted identity holds,
1 (with the failing identity on stderr) otherwise. The derivation lives in :mod:`rsstab.derive.results.width`.
"""

import sys

from rsstab.derive import run_proof

RESULT = "finite-width"

if __name__ == "__main__":
    sys.exit(run_proof(RESULT))
