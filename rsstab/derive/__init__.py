r"""Symbolic derivations of why the stable LoRA scaling is γ_r ∝ 1/√r (SGD) or 1/r (Adam).

Every result is a :class:`Derivation`: a chain of :class:`Step` objects (assumption → computation →
result), each a sentence plus a sympy expression, and a list of :class:`Check` identities that the
``proofs/`` scripts assert. The CLI (``rsstab derive``) and the report render the same objects.

The quantities are *derived from their index sums*, not typed in: the pairing (Isserlis/Wick) engine
of :mod:`~rsstab.derive.wick` makes the factors ``r`` and ``d`` *come out of the computation* at
every finite size, and a brute-force expansion at concrete small r, d checks the engine.

The package: :mod:`~rsstab.derive.symbols` (the shared symbols and their notation),
:mod:`~rsstab.derive.wick` (index sums and their Gaussian expectations),
:mod:`~rsstab.derive.words` (matrix words, SGD trajectories), :mod:`~rsstab.derive.model` (steps,
checks, derivations), :mod:`~rsstab.derive.results` (the results) and
:mod:`~rsstab.derive.render` (text, markdown, LaTeX; the proof runner).

>>> y = forward_sum()                      # y_i = γ_r Σ_j Σ_k B_ij A_jk x_k
>>> wick_expectation(y.power(2), IID_VARIANCES)
d*gamma_r**2*r*sigma_A**2*sigma_B**2*sigma_x**2
>>> RESULTS[:3]
('iid', 'first-step', 'trajectory')
"""

from __future__ import annotations

from rsstab.derive.model import KINDS, Check, Derivation, DerivationError, Step
from rsstab.derive.render import FORMATS, render, run_proof, write_markdown
from rsstab.derive.results import RESULTS, derivation, derivations
from rsstab.derive.results.adam import adam_stability_factor, sign_step_moments
from rsstab.derive.results.reparam import reparametrised_trajectories
from rsstab.derive.results.sgd import sgd_stability_factor
from rsstab.derive.symbols import IID_VARIANCES, INIT_VARIANCES, d, d_out, eta, gamma, r, sigma_A, sigma_B, sigma_x
from rsstab.derive.wick import (
    Factor,
    IndexSum,
    brute_force_expectation,
    contraction_values,
    forward_sum,
    wick_expectation,
)
from rsstab.derive.words import A0, by_gamma_power, expect_nc, expect_nc_square, sgd_trajectory, transpose, vector

__all__ = [
    "A0",
    "FORMATS",
    "IID_VARIANCES",
    "INIT_VARIANCES",
    "KINDS",
    "RESULTS",
    "Check",
    "Derivation",
    "DerivationError",
    "Factor",
    "IndexSum",
    "Step",
    "adam_stability_factor",
    "brute_force_expectation",
    "by_gamma_power",
    "contraction_values",
    "d",
    "d_out",
    "derivation",
    "derivations",
    "eta",
    "expect_nc",
    "expect_nc_square",
    "forward_sum",
    "gamma",
    "r",
    "render",
    "reparametrised_trajectories",
    "run_proof",
    "sgd_stability_factor",
    "sgd_trajectory",
    "sigma_A",
    "sigma_B",
    "sigma_x",
    "sign_step_moments",
    "transpose",
    "vector",
    "wick_expectation",
    "write_markdown",
]
