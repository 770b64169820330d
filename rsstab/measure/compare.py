"""A simulation beside the theory: the library behind ``rsstab simulate``.

:func:`report` simulates a schedule across ranks (:func:`rsstab.measure.empirical.empirical_verdict`),
puts the symbolic verdict of the same tuple (:func:`rsstab.verdict.classify.check`) beside each fitted
slope, and adds the exact finite-(r, d) predictions of the measured values
(:mod:`rsstab.measure.predict`) with where they hold (:func:`range_statement`);
:func:`render_predictions` is their text table. The command (:mod:`rsstab.commands.simulate`)
parses the arguments, calls :func:`report` and prints.

Light at import (the standard library and :mod:`rsstab.vocab`): the simulator, the fits and the
theory are imported by the functions that use them.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from rsstab.vocab import FLAT_BAND

__all__ = ["init_std_expr", "report", "symbolic_tuple", "range_statement", "render_predictions"]


def init_std_expr(text: str | None) -> str | None:
    """``--init-std``'s expression in r: a PEFT init name (``true``/``kaiming`` → 1, ``gaussian`` →
    1/r, :data:`rsstab.verdict.model.INIT_NAMES`, as ``rsstab check --init-std``) or the text itself."""
    if text is None:
        return None
    from rsstab.verdict.model import INIT_NAMES

    return INIT_NAMES.get(text.strip().lower(), text)


def report(
    expr: str,
    optimizer: str = "sgd",
    constants: dict[str, float | Fraction] | None = None,
    *,
    init_std: str | None = None,
    **options: Any,
) -> tuple[Any, dict[str, Any]]:
    """Simulate, fit, then compare with theory. Returns (EmpiricalVerdict, JSON-ready dict).

    The tuple (γ_r, learning rate, σ_A, η_B/η_A): ``options["lr"]`` and ``options["lr_ratio"]``
    are numbers or expressions in r (evaluated per rank), ``init_std`` is ``rsstab check``'s
    σ_A (an expression in r or a PEFT init name), simulated as A₀ ~ N(0, σ_A(r)²/width); the
    dict's ``tuple`` records them and the symbolic verdict is for the same tuple
    (:func:`symbolic_tuple`; with η_B/η_A ≠ 1 its ``terms`` say whether A and B both learn).

    The dict has ``label``, ``optimizer``, ``diverged`` and ``quantities`` (each with ``slope``,
    ``ci``, ``theory``, ``agrees`` (|slope − theory| ≤ the ``tolerance`` option, default 0.1),
    ``ranks``, ``values``, …), plus the symbolic verdict (``symbolic``: label and headline at a
    fixed learning rate, ``lr``) and its learning-rate rule ``lr_exponent`` (η ∝ r^lr_exponent).
    ``forward`` and ``backward`` also carry ``predicted`` (per rank, the exact finite-(r, d)
    prediction of ``values`` from the simulation's own A-independent data statistics,
    :mod:`rsstab.measure.predict`), ``predicted_coherent``/``predicted_incoherent``, ``predicted_d_eff``,
    ``predicted_local_slopes`` and ``predicted_ratio`` (measured/predicted); ``prediction`` says
    what it is (first order in η; for Adam with fresh batches, how its one-column integrals are evaluated).
    """
    from rsstab.measure.empirical import empirical_verdict
    from rsstab.measure.fit import agrees_with
    from rsstab.verdict.classify import check

    sigma = init_std_expr(init_std)
    if sigma is not None:
        options["a_init_scale"] = sigma
    lr, ratio = options.get("lr"), options.get("lr_ratio", 1.0)
    check_lr, check_ratio = symbolic_tuple(lr, ratio)
    # check refuses a value for a name none of the tuple's expressions has (one-line error, exit 2)
    symbolic = check(expr, optimizer=optimizer, constants=constants or None, lr=check_lr, init_std=sigma,
                     lr_ratio=check_ratio)
    notes = list(symbolic.notes) if check_ratio is not None else []
    verdict = empirical_verdict(expr, optimizer, constants=constants, **options)
    out = verdict.as_dict()
    out["tuple"] = {"gamma": expr, "lr": verdict.settings["lr"], "lr_ratio": ratio,
                    "init_std": init_std if init_std is not None else 1.0, "init_std_expr": sigma or "1",
                    "a_init_scale": "A₀ ~ N(0, σ_A(r)²/width): σ_A in units of the fan-in std 1/√width",
                    "symbolic_lr": check_lr, "symbolic_lr_ratio": check_ratio, "notes": notes}
    out["symbolic"] = {"label": symbolic.label, "headline": symbolic.headline, "lr": symbolic.lr,
                       "lr_exponent": symbolic.lr_exponent, "lr_exponent_exact": symbolic.lr_exponent_exact,
                       "lr_rule": symbolic.lr_rule,
                       "terms": [dict(t) for t in symbolic.terms]}
    # headline: the measured label at the simulated learning rate (EmpiricalVerdict.headline); the
    # learning-rate rule is the theory's for the simulated tuple (a simulation measures one η, not a rule)
    out["lr"] = symbolic.lr  # the learning rate (rule) of the symbolic verdict
    out["lr_exponent"], out["lr_exponent_exact"] = symbolic.lr_exponent, symbolic.lr_exponent_exact
    out["lr_rule"] = symbolic.lr_rule
    tolerance = options.get("tolerance")
    tol = FLAT_BAND if tolerance is None else float(tolerance)
    for q, fit in verdict.fits.items():
        qv = symbolic.quantities.get(q)
        theory = None if qv is None else qv.exponent
        out["quantities"][q]["theory"] = theory
        # the report's one rule: the interval meets [theory ± tolerance]
        out["quantities"][q]["agrees"] = None if theory is None else agrees_with(fit, theory, tol, interval=True)
    _add_predictions(verdict, out)
    return verdict, out


def symbolic_tuple(lr: Any, lr_ratio: Any) -> tuple[str | None, str | None]:
    """``rsstab check``'s ``lr`` and ``lr_ratio`` for the simulated tuple: a number learning rate
    is a fixed one (None: check's default learning-rate rule), a ratio of 1 is none.

    >>> symbolic_tuple(1e-5, 1.0)
    (None, None)
    >>> symbolic_tuple("eta*r**c", "r")
    ('eta*r**c', 'r')
    >>> symbolic_tuple(1e-5, 2.0)
    (None, '2.0')
    """
    check_lr = None if lr is None or isinstance(lr, (int, float)) else str(lr)
    ratio_one = isinstance(lr_ratio, (int, float)) and float(lr_ratio) == 1.0
    return check_lr, (None if ratio_one else str(lr_ratio))


def _add_predictions(verdict: Any, out: dict[str, Any]) -> None:
    """Put the exact finite-(r, d) predictions (:mod:`rsstab.measure.predict`) beside the measured values.
    With η_B/η_A ≠ 1 the first-order law is B's: the cells are read at η_B = η·(η_B/η_A) (A's first
    update multiplies B₀ = 0, so A's own learning reaches the output only at order η_A·η_B)."""
    import math

    from rsstab.measure.predict import ADAM_FRESH_NOTE, FINITE_ETA_NOTE, PREDICTED_SOURCES, predict_expansion, predict_rows
    from rsstab.measure.rows import layer_rms, rms_ratio, seed_rms

    cells = {r: {**c, "lr": float(c["lr"]) * float(c.get("lr_ratio", 1.0))} for r, c in verdict.cells.items()}
    pred = predict_rows(verdict.rows, cells, verdict.optimizer)
    expansion = predict_expansion(verdict.rows, verdict.cells, verdict.optimizer)
    fresh_adam = verdict.optimizer == "adam" and not verdict.settings.get("fixed_batch")
    out["prediction"] = (FINITE_ETA_NOTE if "finite-eta" in expansion["order"] else ADAM_FRESH_NOTE if fresh_adam
                         else "exact finite-(r, d) law, first order in η, from the recorded data statistics")
    for q, p in pred.items():
        entry = out["quantities"][q]
        entry["predicted"] = p["values"]
        entry["predicted_first_order"] = p["first_order"]
        entry["predicted_order"] = list(expansion["order"])
        entry["predicted_coherent"] = p["coherent"]
        entry["predicted_incoherent"] = p["incoherent"]
        entry["predicted_d_eff"] = p["d_eff"]
        ranks, vals = entry["ranks"], p["values"]

        def slopes(v: list[float]) -> list[float]:
            return [math.log(v[i + 1] / v[i]) / math.log(ranks[i + 1] / ranks[i]) for i in range(len(ranks) - 1)]  # noqa: B023

        entry["predicted_local_slopes"] = slopes(vals)
        # the law is a mean square over A: compare it with the seeds' root mean square (unbiased when
        # squared), not with the geometric mean in ``values``, which Jensen's inequality puts below it
        # (paired by seed: a seed's data move both sides, so the ratio's error is the draw of A's)
        m_ranks, m_values = layer_rms(verdict.rows, PREDICTED_SOURCES[q])
        m_values = m_values[[m_ranks.index(r) for r in ranks]]
        rms, se = seed_rms(m_values)
        entry["measured_rms"], entry["measured_rms_se"] = rms, se
        entry["measured_rms_local_slopes"] = slopes(rms)
        paired = [rms_ratio(m, p_ms) for m, p_ms in zip(m_values, p["seed_mean_squares"])]
        entry["predicted_ratio"] = [x for x, _ in paired]
        entry["predicted_ratio_se"] = [e for _, e in paired]
        entry["predicted_expansion"] = list(expansion["values"])
        entry["predicted_in_range"] = list(expansion["in_range"])
    out["prediction_range"] = range_statement(out["quantities"]["forward"]["ranks"], expansion, out["label"],
                                              verdict.optimizer)
    if out["prediction_range"]["out_of_range_ranks"] or out["prediction_range"]["beyond_small_eta_ranks"]:
        out["reason"] = f"{out['reason']} — {out['prediction_range']['statement']}"


def range_statement(ranks: list[int], expansion: dict[str, list[Any]], label: str, optimizer: str) -> dict[str, Any]:
    """Where the predictions hold and where the theorem's small-η range ends (results 13 and 14): the
    ranks out of range, those beyond the small-η range, and one sentence that puts a measured label
    there — a statement about the learning rate, not about the rank scaling the theorem is about. A
    rank whose prediction is carried to finite η (``order`` ``finite-eta``) can be beyond the small-η
    range and still in range: the finite-η solution predicts what the learning rate does there.

    >>> st = range_statement([4, 16], {"values": [0.5, 0.05], "in_range": [False, True], "eps_ratio": [1e9, 1e9]},
    ...                      "collapse", "sgd")
    >>> st["out_of_range_ranks"], st["statement"][:63]
    ([4], 'the measured collapse is at settings beyond the small-η regime ')
    """
    from rsstab.theory import ADAM_SIGN_RATIO, EXPANSION_LIMIT

    n = len(ranks)
    order = list(expansion.get("order") or ["first"] * n)
    first_values = list(expansion.get("first_order_expansion") or expansion["values"])
    small = list(expansion.get("small_eta") or expansion["in_range"])
    out_ranks = [r for r, ok in zip(ranks, expansion["in_range"]) if not ok]
    info: dict[str, Any] = {"limit": EXPANSION_LIMIT, "out_of_range_ranks": out_ranks,
                            "beyond_small_eta_ranks": [r for r, ok in zip(ranks, small) if not ok],
                            "order": order, "b_driven": list(expansion.get("b_driven", [])),
                            "a_driven": list(expansion.get("a_driven", []))}
    if "batch_noise" in expansion:
        info["batch_noise"] = list(expansion["batch_noise"])
    if optimizer == "adam":
        info["eps_ratio"] = list(expansion["eps_ratio"])
    if not out_ranks and all(small):
        info["statement"] = (f"every rank in the small-η regime (the next term ≤ {EXPANSION_LIMIT:g} of the first)")
        return info
    eta_ranks = [r for r, v in zip(ranks, first_values) if not v <= EXPANSION_LIMIT]
    eps_ranks = [r for r, e in zip(ranks, expansion["eps_ratio"]) if not e >= ADAM_SIGN_RATIO]
    followed = [r for r, o, ok in zip(ranks, order, expansion["in_range"]) if o == "finite-eta" and ok and r in eta_ranks]
    noisy = [(r, v) for r, o, ok, v in zip(ranks, order, expansion["in_range"], expansion["values"])
             if o == "finite-eta" and not ok]
    parts = []
    if eta_ranks:
        worst = max(v for v in first_values if not v <= EXPANSION_LIMIT)
        parts.append(
            f"beyond the small-η regime at r = {', '.join(map(str, eta_ranks))} (the first-order law's next term is "
            f"up to {worst:.3g} of the first, > {EXPANSION_LIMIT:g}): at this learning rate the adapter's growth feeds "
            "back into its own gradient — B saturates at the size the task allows, A's own learning adds to it — so a "
            "slope measured there is a statement about the learning rate, not about the rank scaling of the theorem; "
            "lower η to measure that")
    if followed:
        parts.append(f"the finite-η solution (result 14) predicts the values there (in range at r = "
                     f"{', '.join(map(str, followed))})")
    if noisy:
        worst = max(v for _, v in noisy)
        what = "the trajectory diverges" if not math.isfinite(worst) else \
            f"the batch noise it leaves out is up to {worst:.3g} of the mean square, > {EXPANSION_LIMIT:g}"
        parts.append(f"the finite-η prediction is out of range at r = {', '.join(str(r) for r, _ in noisy)} ({what})")
    if eps_ranks:
        parts.append(
            f"outside the ε → 0 (sign) law at r = {', '.join(map(str, eps_ranks))}: Adam's step-0 gradients are below "
            f"{ADAM_SIGN_RATIO:g}·ε there, so its update lies between sign descent and SGD with rate η/ε "
            "(`rsstab check --optimizer adam --eps … --grad-scale …` gives that factor)")
    text = "; ".join(parts)
    if label in ("collapse", "blow-up") and (eta_ranks or eps_ranks):
        text = f"the measured {label} is at settings {text}"
    info["statement"] = text
    return info


def render_predictions(out: dict[str, Any]) -> str:
    """The text table of measured vs predicted values (``report``'s dict)."""
    lines = [f"finite-(r, d) prediction ({out['prediction']}):"]
    for q in ("forward", "backward"):
        e = out["quantities"][q]
        if "predicted" not in e:
            continue
        lines.append(f"  {q} (RMS over A): predicted local slopes "
                     + " ".join(f"{s:+.2f}" for s in e["predicted_local_slopes"])
                     + "   measured " + " ".join(f"{s:+.2f}" for s in e["measured_rms_local_slopes"]))
        lines.append(f"  {'r':>6}{'measured':>12}{'predicted':>12}{'ratio':>8}{'± se':>7}{'1st order':>12}"
                     f"{'coherent':>12}{'incoherent':>12}{'range':>10}")
        for i, r in enumerate(e["ranks"]):
            m, p, ratio = e["measured_rms"][i], e["predicted"][i], e["predicted_ratio"][i]
            mark = "" if e["predicted_in_range"][i] else "  out of range"
            lines.append(f"  {r:>6}{m if m is not None else float('nan'):>12.4g}{p:>12.4g}"
                         f"{ratio if ratio is not None else float('nan'):>8.3f}{e['predicted_ratio_se'][i]:>7.3f}"
                         f"{e['predicted_first_order'][i]:>12.4g}"
                         f"{e['predicted_coherent'][i]:>12.4g}{e['predicted_incoherent'][i]:>12.4g}"
                         f"{e['predicted_expansion'][i]:>10.3g}{mark}")
    rng = out.get("prediction_range")
    if rng is not None:
        finite = "finite-eta" in rng.get("order", [])
        what = ("the batch noise the finite-η solution leaves out (result 14)" if finite else
                "the next term in η relative to the first (result 13)")
        lines.append(f"  range = {what}; in range while ≤ {rng['limit']:g}: {rng['statement']}")
    return "\n".join(lines)
