"""Finite width: Monte Carlo checks of results 9 and 10 and of rsstab.theory's width laws at several
(r, d), r < d included; the regime-aware verdicts of ``rsstab check --width``.

Each quantity X (the learned change, the backward signal) is sampled over A — and over the probe x′
where one is drawn — together with X′, the same quantity for an independent copy A′ of A and the same
probe: E‖X‖² is the mean square, E⟨X, X′⟩ = E_x′‖E_A X‖² the coherent square (the replica identity the
derivations use), the incoherent square their difference. Every estimate must land within K = 5
standard errors (from the sample itself) of the exact value.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import rsstab.derive as D
from rsstab import theory
from rsstab.verdict.classify import check
from rsstab.cli import main
from rsstab.derive.results import width as fw
from rsstab.derive.symbols import dot
from rsstab.errors import RsstabError

K = 5.0
N = 20_000
SIZES = [(2, 12), (5, 20), (8, 8), (24, 4)]  # (r, d): r < d, r = d, r > d


def _assert_close(samples: np.ndarray, exact: float, what: str) -> None:
    est, se = float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(samples.size))
    assert abs(est - exact) <= K * se, f"{what}: Monte Carlo {est:.6g} vs exact {exact:.6g} (SE {se:.3g})"


def _parts(X: np.ndarray, Xp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample ‖X‖² and ⟨X, X′⟩ (unbiased for the mean square and the coherent square)."""
    return np.einsum("ni,ni->n", X, X), np.einsum("ni,ni->n", X, Xp)


def _setup(seed: int, r: int, d: int, d_out: int = 3) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(d_out, d)) / math.sqrt(d)
    sA = 0.7
    A = rng.normal(0, sA, (N, r, d))
    Ap = rng.normal(0, sA, (N, r, d))
    return rng, G, A, Ap


SA, SX, ETA, GAMMA = 0.7, 1.3, 0.3, 0.8


@pytest.mark.parametrize("r, d", SIZES)
def test_sgd_forward_over_isotropic_probes(r: int, d: int) -> None:
    rng, G, A, Ap = _setup(9 + r, r, d)
    xp = rng.normal(0, SX, (N, d))
    def change(A: np.ndarray) -> np.ndarray:  # −η γ² G AᵀA x′
        return -ETA * GAMMA**2 * np.einsum("od,nd->no", G, np.einsum("njd,nj->nd", A, np.einsum("njd,nd->nj", A, xp)))
    total, coherent = _parts(change(A), change(Ap))
    L = theory.finite_width_law("forward", "sgd", d)
    scale = ETA**2 * SA**4 * SX**2 * float((G**2).sum())
    _assert_close(total, scale * L.mean_square(r, GAMMA), f"E‖Δu‖² at r={r}, d={d}")
    _assert_close(coherent, scale * L.coherent_square(r, GAMMA), f"coherent square at r={r}, d={d}")
    # The derived sympy expressions (per row, summed over the rows) give the same numbers.
    coh, inc = fw.sgd_forward_parts(isotropic=True)
    vals = {D.r: r, D.d: d, D.sigma_A: SA, D.sigma_x: SX, D.eta: ETA, D.gamma: GAMMA, dot("g", "g"): float((G**2).sum())}
    assert float(coh.subs(vals)) == pytest.approx(scale * L.coherent_square(r, GAMMA))
    assert float(inc.subs(vals)) == pytest.approx(scale * L.incoherent_square(r, GAMMA))


@pytest.mark.parametrize("r, d", SIZES[:2])
def test_sgd_forward_at_one_probe_has_its_own_d_eff(r: int, d: int) -> None:
    rng, G, A, Ap = _setup(19 + r, r, d)
    xp = rng.normal(size=d)
    def change(A: np.ndarray) -> np.ndarray:
        return -ETA * GAMMA**2 * np.einsum("od,njd,nj->no", G, A, A @ xp)
    total, coherent = _parts(change(A), change(Ap))
    gx2, gf2, x2 = float(((G @ xp) ** 2).sum()), float((G**2).sum()), float(xp @ xp)
    L = theory.finite_width_law("forward", "sgd", d, d_eff=gf2 * x2 / gx2)
    scale = ETA**2 * SA**4 * gx2
    _assert_close(total, scale * L.mean_square(r, GAMMA), f"E_A‖Δu‖² at one probe, r={r}, d={d}")
    _assert_close(coherent, scale * L.coherent_square(r, GAMMA), f"coherent square at one probe, r={r}, d={d}")


@pytest.mark.parametrize("r, d", SIZES)
def test_sgd_backward_with_a_fixed_u(r: int, d: int) -> None:
    rng, G, A, Ap = _setup(29 + r, r, d)
    w = G.T @ rng.normal(size=G.shape[0])
    def signal(A: np.ndarray) -> np.ndarray:  # −η γ² AᵀA Gᵀu
        return -ETA * GAMMA**2 * np.einsum("njd,nj->nd", A, A @ w)
    total, coherent = _parts(signal(A), signal(Ap))
    L = theory.finite_width_law("backward", "sgd", d)
    scale = ETA**2 * SA**4 * float(w @ w)
    _assert_close(total, scale * L.mean_square(r, GAMMA), f"backward mean square at r={r}, d={d}")
    _assert_close(coherent, scale * L.coherent_square(r, GAMMA), f"backward coherent square at r={r}, d={d}")


def test_sgd_two_steps_first_order_in_eta_per_entry() -> None:
    """The derived η¹ part after n = 2 steps: E_A[(·)_i²] with g_i = Σ_t v_t[i] x_t, at r < d."""
    rng = np.random.default_rng(5)
    r, d, d_out = 3, 7, 2
    vecs = {f"x{t}": rng.normal(size=d) for t in range(2)} | {f"v{t}": rng.normal(size=d_out) for t in range(2)}
    vecs["xp"] = rng.normal(size=d)
    A = rng.normal(0, SA, (N, r, d))
    g0 = sum(vecs[f"v{t}"][0] * vecs[f"x{t}"] for t in range(2))
    out = -ETA * GAMMA**2 * np.einsum("nj,nj->n", A @ g0, A @ vecs["xp"])
    A2, B2 = D.sgd_trajectory(2)
    lin = fw._eta_part(sp.expand(D.gamma * B2 * A2 * D.vector("xp")), 1)
    second, mean = D.expect_nc_square(lin), D.expect_nc(lin)   # registers the contractions first
    vals = {D.r: r, D.d: d, D.sigma_A: SA, D.eta: ETA, D.gamma: GAMMA} | D.contraction_values(vecs)
    _assert_close(out**2, float(second.subs(vals)), "E_A[(Δu₂)_i²] (η¹ part)")
    _assert_close(out, float(mean.subs(vals)), "E_A[(Δu₂)_i] (η¹ part)")


@pytest.mark.parametrize("r, d", [(2, 12), (6, 6), (20, 3)])
def test_adam_first_step_forward_over_isotropic_probes(r: int, d: int) -> None:
    rng, G, A, Ap = _setup(39 + r, r, d)
    xp = rng.normal(0, SX, (N, d))
    def change(A: np.ndarray) -> np.ndarray:  # −η γ sign(G Aᵀ) A x′
        return -ETA * GAMMA * np.einsum("noj,nj->no", np.sign(np.einsum("od,njd->noj", G, A)), np.einsum("njd,nd->nj", A, xp))
    total, coherent = _parts(change(A), change(Ap))
    L = theory.finite_width_law("forward", "adam", d)
    scale = ETA**2 * SA**2 * SX**2 * G.shape[0]
    _assert_close(total, scale * L.mean_square(r, GAMMA), f"Adam E‖Δu‖² at r={r}, d={d}")
    _assert_close(coherent, scale * L.coherent_square(r, GAMMA), f"Adam coherent square at r={r}, d={d}")
    coh, inc, coh_iso, inc_iso = fw.adam_forward_parts()
    vals = {D.r: r, D.d: d, D.sigma_A: SA, D.sigma_x: SX, D.eta: ETA, D.gamma: GAMMA}
    assert float(coh_iso.subs(vals)) * G.shape[0] == pytest.approx(scale * L.coherent_square(r, GAMMA))
    assert float(inc_iso.subs(vals)) * G.shape[0] == pytest.approx(scale * L.incoherent_square(r, GAMMA))


@pytest.mark.parametrize("r, d", [(2, 10), (12, 5)])
def test_adam_first_step_backward_with_correlated_rows(r: int, d: int) -> None:
    """Rows of G that are neither parallel nor orthogonal: d_eff = d·Q/‖Ĝᵀu‖² (the arcsine law)."""
    rng, G, A, Ap = _setup(49 + r, r, d)
    G[1] = 0.8 * G[0] + 0.3 * G[1]
    u = rng.normal(size=G.shape[0])
    Gh = G / np.linalg.norm(G, axis=1, keepdims=True)
    W = float(((Gh.T @ u) ** 2).sum())
    Q = float(u @ ((2 / math.pi) * np.arcsin(np.clip(Gh @ Gh.T, -1, 1))) @ u)
    def signal(A: np.ndarray) -> np.ndarray:  # −η γ Aᵀ sign(A Gᵀ) u
        return -ETA * GAMMA * np.einsum("njd,nj->nd", A, np.sign(A @ G.T) @ u)
    total, coherent = _parts(signal(A), signal(Ap))
    L = theory.finite_width_law("backward", "adam", d, d_eff=d * Q / W)
    scale = ETA**2 * SA**2 * W
    _assert_close(total, scale * L.mean_square(r, GAMMA), f"Adam backward mean square at r={r}, d={d}")
    _assert_close(coherent, scale * L.coherent_square(r, GAMMA), f"Adam backward coherent square at r={r}, d={d}")
    assert abs(Q - W) > 0.01 * W  # the case really differs from d_eff = d


@pytest.mark.parametrize("rho", [-0.6, 0.0, 0.45, 0.9])
def test_arcsine_law(rho: float) -> None:
    rng = np.random.default_rng(int(100 * rho) + 100)
    a = rng.normal(size=(200_000, 2))
    g1, g2 = np.array([1.0, 0.0]), np.array([rho, math.sqrt(1 - rho**2)])
    samples = np.sign(a @ g1) * np.sign(a @ g2)
    _, e_rho = fw.arcsin_law()
    _assert_close(samples, float(e_rho.subs(fw.RHO, rho)), f"E[sign sign] at ρ={rho}")


# ---------------------------------------------------------------------------------------------- theory API


def test_crossover_ranks_and_regimes() -> None:
    assert theory.crossover_rank("forward", "sgd", 512) == 513
    assert theory.crossover_rank("backward", "adam", 4096) == pytest.approx(math.pi * 4096 / 2 - 1)
    L = theory.finite_width_law("forward", "sgd", 512)
    assert [L.regime(r) for r in (128, 129, 2052, 2051)] == ["r ≪ d", "crossover", "r ≫ d", "crossover"]
    assert L.mean_square(513) == pytest.approx(2 * L.coherent_square(513))


def test_point_slope_is_the_limit_of_secant_slopes() -> None:
    for opt in ("sgd", "adam"):
        L = theory.finite_width_law("forward", opt, 300)
        for r in (3.0, 300.0, 3e4):
            h = 1e-4
            secant = L.secant_slope(r, r * math.exp(h), r**-0.5, (r * math.exp(h)) ** -0.5)
            assert L.local_slope(r, -0.5) == pytest.approx(secant, abs=1e-4)


def test_one_flat_band_for_every_measurement() -> None:
    import inspect

    from rsstab.measure.fit import fit_slope
    from rsstab.verdict.regimes import rms_label
    from rsstab.testing.stability import DEFAULTS
    from rsstab.vocab import FLAT_BAND

    assert inspect.signature(fit_slope).parameters["tolerance"].default is FLAT_BAND
    assert DEFAULTS["tolerance"] is FLAT_BAND
    assert rms_label(FLAT_BAND) == rms_label(-FLAT_BAND) == rms_label(0.0)
    assert rms_label(1.01 * FLAT_BAND) != rms_label(0.0) != rms_label(-1.01 * FLAT_BAND)


@pytest.mark.parametrize("bad", [0, -3, float("nan"), float("inf"), "512", True])
def test_width_must_be_a_positive_number(bad: object) -> None:
    with pytest.raises(RsstabError) as info:
        theory.finite_width_law("forward", "sgd", bad)  # type: ignore[arg-type]
    assert info.value.parameter == "width"


def test_unknown_width_quantity() -> None:
    with pytest.raises(RsstabError, match="no finite-width law for quantity 'grad_init'"):
        theory.finite_width_law("grad_init", "sgd", 8)


# ---------------------------------------------------------------------------------------------- mutations


@pytest.fixture
def fresh_width_caches():
    caches = (fw.sgd_forward_parts, fw.sgd_backward_parts, fw.sign_row_moments, fw.adam_forward_parts)
    for f in caches:
        f.cache_clear()
    yield
    for f in caches:
        f.cache_clear()


def test_a_wrong_law_in_theory_fails_the_proofs(monkeypatch: pytest.MonkeyPatch, fresh_width_caches: None) -> None:
    """theory saying c_inc = d (not d + 1) under SGD, or c_coh = 1 under Adam: the proofs must fail."""
    real = theory.width_coefficients

    def wrong(quantity: str, optimizer: str, d_eff: object, *, pi: object = math.pi) -> tuple:
        coh, inc = real(quantity, optimizer, d_eff, pi=pi)
        return (coh, inc - 1) if optimizer == "sgd" else (1, inc)

    monkeypatch.setattr(theory, "width_coefficients", wrong)
    for key in ("finite-width", "adam-finite-width"):
        failures = D.derivation(key).failures()
        assert failures and any("rsstab.theory" in c.statement for c in failures), key


def test_replacing_the_replica_by_the_sample_itself_fails(monkeypatch: pytest.MonkeyPatch, fresh_width_caches: None) -> None:
    """With A′ = A the "coherent square" would be the whole second moment: the split must be caught."""
    monkeypatch.setattr(fw, "replica", lambda s, tensor="A", copy="A′": s)
    assert D.derivation("finite-width").failures()


# ---------------------------------------------------------------------------------------------- rsstab check --width

#: The issue's measurements (depth 1, width 512, r = 8, 32, 128, 512, 2048): local forward RMS slopes.
MEASURED = {
    ("alpha/sqrt(r)", "sgd"): (-0.45, -0.44, -0.34, -0.15),
    ("alpha/r", "adam"): (-0.50, -0.44, -0.37, -0.17),
    ("alpha/sqrt(r)", "adam"): (-0.00, +0.06, +0.13, +0.33),
}
ISSUE_RANKS = [8, 32, 128, 512, 2048]


@pytest.mark.parametrize("expr, optimizer", list(MEASURED))
def test_predicted_local_slopes_match_the_issue_measurements(expr: str, optimizer: str) -> None:
    v = check(expr, optimizer, width=512, ranks=ISSUE_RANKS)
    predicted = [row.slope for row in v.width.rows[1:]]
    measured = MEASURED[(expr, optimizer)]
    assert predicted == pytest.approx(measured, abs=0.06)
    # ... and so their flat / shrinks / grows labels agree interval by interval.
    from rsstab.verdict.regimes import rms_label

    assert [row.label for row in v.width.rows[1:]] == [rms_label(m) for m in measured]
    # The verdict itself is the coherent part's, the same as without a width.
    assert v.label == check(expr, optimizer).label


def test_regime_without_a_width_is_the_large_rank_limit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/sqrt(r)", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["regime"] == "r >> d (width fixed, r → ∞)"
    assert d["crossover_rank"] is None and d["width_table"] == []
    assert main(["check", "alpha/sqrt(r)"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("regime: r >> d (width fixed, r → ∞)")


def test_check_width_json_names_the_crossover_rank() -> None:
    p = subprocess.run([sys.executable, "-m", "rsstab.cli", "check", "alpha/sqrt(r)", "--width", "4096", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["label"] == "rank-stabilized" and d["width"] == 4096
    assert d["crossover_rank"] == 4097.0
    assert "coherent part" in d["regime"]
    rows = d["width_table"]
    assert [row["r"] for row in rows] == [8 * 4**k for k in range(len(rows))] and rows[-1]["r"] >= 16 * 4097
    assert rows[0]["regime"] == "r ≪ d" and rows[-1]["regime"] == "r ≫ d"
    assert rows[0]["slope"] is None and all(row["label"] == "collapse" for row in rows[1:4])
    assert "r* ≈ 4097" in d["rms_summary"]


def test_check_width_text_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "alpha/r", "--optimizer", "adam", "--width", "512", "--ranks", "2048,8,128"]) == 0
    out = capsys.readouterr().out
    assert "regime: width d = 512 — the verdict is about the coherent part" in out
    assert "crossover rank r* ≈ 803.248" in out
    table = out.split("finite width d = 512")[1].splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["8", "128", "2048"]
    assert "shrinks" in table[3] and "RMS over A: shrinks for r = 8…2048" in out


def test_width_verdicts_round_trip_through_json() -> None:
    from rsstab.verdict.classify import Verdict

    v = check("alpha/sqrt(r)", "adam", width=300, ranks=[4, 64, 1024])
    assert Verdict.from_dict(json.loads(v.to_json())) == v
    plain = check("alpha/r")
    assert Verdict.from_dict(json.loads(plain.to_json())) == plain


def test_library_errors_name_width_and_ranks() -> None:
    with pytest.raises(RsstabError) as info:
        check("alpha/r", width=0)
    assert info.value.parameter == "width"
    with pytest.raises(RsstabError) as info:
        check("alpha/r", ranks=[8, 32])
    assert info.value.parameter == "ranks"
    with pytest.raises(RsstabError) as info:
        check("alpha/r", width=64, ranks=[8, -1])
    assert info.value.parameter == "ranks"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--width", "0"], "--width: expected a positive integer"),
        (["--width", "x"], "--width: expected a positive integer"),
        (["--width", "-4"], "--width: expected a positive integer"),
        (["--width", "1.5"], "--width: expected a positive integer"),
        (["--width", "64", "--ranks", "8,x"], "--ranks: expected comma-separated positive integers"),
        (["--width", "64", "--ranks", "0,8"], "--ranks: expected comma-separated positive integers"),
        (["--width", "64", "--ranks", "8,,32"], "--ranks: expected comma-separated positive integers"),
        (["--width", "64", "--ranks", "-8"], "--ranks: expected comma-separated positive integers"),
        (["--width", "99999999999999999999"], "≤ 2^53"),
        (["--ranks", "8,32"], "--ranks is only used with --width"),
    ],
)
def test_bad_width_or_ranks_is_one_line_exit_2(args: list[str], message: str) -> None:
    p = subprocess.run([sys.executable, "-m", "rsstab.cli", "check", "alpha/r", *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_check_with_width_imports_nothing_heavy() -> None:
    code = ("import sys; from rsstab.cli import main; main(['check', 'alpha/r', '--width', '512', '--json']); "
            "sys.stderr.write(repr(sorted(m for m in ('torch', 'matplotlib', 'numpy', 'scipy') "
            "if m in sys.modules)))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.stderr.strip() == "[]"
