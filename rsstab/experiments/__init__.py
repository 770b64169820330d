"""The experiments: what compares measurements with predictions and presents them.

The library (:mod:`rsstab.sim`, :mod:`rsstab.measure.fit`, :mod:`rsstab.verdict.classify`, …) measures and predicts;
this subpackage puts the two side by side and draws, tabulates and reports them. Arrows go from
here into the library, never back: no library module imports :mod:`rsstab.experiments`.

* :mod:`~rsstab.experiments.figures` — matplotlib figures (log-log against the rank, curves
  against the step), saved through :func:`rsstab.io.save_figure`;
* :mod:`~rsstab.experiments.compare` — fitted slopes beside the theory's exponents, markdown tables;
* :mod:`~rsstab.experiments.scripts` — the plumbing shared by ``simulations/*.py``;
* :mod:`~rsstab.experiments.claims` — the claims table of ``reports/REPORT.md`` (a package: kinds,
  verdicts, the claims measured by exponents and those measured where they could fail);
* :mod:`~rsstab.experiments.disagreements` — the report's Disagreements section (causes by rule);
* :mod:`~rsstab.experiments.tuning` — learning-rate search on a lattice, interpolated optima, the η* exponent;
* :mod:`~rsstab.experiments.lrtransfer` — the learning-rate transfer experiment and its tables;
* :mod:`~rsstab.experiments.minilm` — LoRA vs rsLoRA with PEFT on pretrained MiniLM-L6;
* :mod:`~rsstab.experiments.minilm_fits` — that experiment's fitted slopes beside the theory;
* :mod:`~rsstab.experiments.phase` — phase diagrams of the tuple: measured labels over grids of exponents.

Importing the package loads nothing heavy; each module imports what it needs.
"""
