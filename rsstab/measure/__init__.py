"""Measurement: simulate across ranks, fit the slopes, and put the theory beside them.

Imports nothing when it runs: each module is imported by name. The simulator itself is
:mod:`rsstab.sim`, which imports nothing from here (nor the theory, nor the verdicts).

* :mod:`rsstab.measure.rows` — a simulation's tidy rows turned into arrays.
* :mod:`rsstab.measure.fit` — log-log slopes against the rank, their confidence intervals and labels.
* :mod:`rsstab.measure.empirical` — the empirical verdict: run the cells through the sweep store,
  fit, label.
* :mod:`rsstab.measure.predict` — exact finite-(r, d) predictions of the measured values, from
  the simulation's own data statistics.
* :mod:`rsstab.measure.compare` — a simulation beside the symbolic verdict and the predictions:
  the library behind ``rsstab simulate``.
"""
