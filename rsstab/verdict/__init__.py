"""The verdicts: what a γ_r schedule (or the whole tuple γ_r, η, σ_A) does as the rank grows.

Imports nothing when it runs: each module is imported by name (the root's :func:`rsstab.check` and
:class:`rsstab.Verdict` come from :mod:`rsstab.verdict.classify`).

* :mod:`rsstab.verdict.model` — :class:`~rsstab.verdict.model.Verdict` and
  :class:`~rsstab.verdict.model.QuantityVerdict`, their dict / JSON form and the wording the
  verdicts share.
* :mod:`rsstab.verdict.request` — :class:`~rsstab.verdict.request.CheckRequest`, the inputs of
  :func:`~rsstab.verdict.classify.check` validated (in a fixed order) and parsed once; both engines
  take it.
* :mod:`rsstab.verdict.classify` — the exact engine (orders in r from :mod:`rsstab.asymptotics`)
  and :func:`~rsstab.verdict.classify.check`, the dispatcher: a schedule with parameters or a
  tuple goes to :mod:`rsstab.verdict.parametric`.
* :mod:`rsstab.verdict.parametric` — one label per exact region of parameter space
  (:mod:`rsstab.asymptotics.parametric` cuts the regions).
* :mod:`rsstab.verdict.hyperparams` — the conditions ("terms") of the tuple (γ_r, η_A, η_B, σ_A).
* :mod:`rsstab.verdict.regimes` — at a finite width: the width tables, from the exact laws.
* :mod:`rsstab.verdict.transfer` — learning-rate transfer from one rank to another.
* :mod:`rsstab.verdict.adam_eps` — Adam with ε > 0: where the sign regime ends.

Below them: :mod:`rsstab.theory` (the laws), :mod:`rsstab.asymptotics` (orders in r) and
:mod:`rsstab.schedule` (parsing). Above them: :mod:`rsstab.measure` (a simulation beside the
verdict), :mod:`rsstab.lint` and the commands.
"""
