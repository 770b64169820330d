"""The results, each built by one function into a :class:`~rsstab.derive.model.Derivation`.

>>> RESULTS  # doctest: +NORMALIZE_WHITESPACE
('iid', 'first-step', 'trajectory', 'backward', 'iff', 'depth', 'adam', 'reparam', 'finite-width', 'adam-finite-width',
 'adam-epsilon', 'hyperparameter-tuple', 'expansion-range', 'finite-eta')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rsstab.derive.model import Derivation
from rsstab.derive.results.adam import adam_sign_descent
from rsstab.derive.results.adam_epsilon import adam_epsilon
from rsstab.derive.results.expansion import expansion_range
from rsstab.derive.results.finite_eta import finite_eta
from rsstab.derive.results.hyperparams import hyperparameter_tuple
from rsstab.derive.results.width import adam_finite_width, finite_width
from rsstab.derive.results.iid import iid_forward
from rsstab.derive.results.reparam import reparam
from rsstab.derive.results.scaling import depth, stability_iff
from rsstab.derive.results.sgd import backward, first_step, trajectory
from rsstab.errors import RsstabError

__all__ = ["RESULTS", "derivation", "derivations"]

_BUILDERS: dict[str, Callable[[], Derivation]] = {
    "iid": iid_forward,
    "first-step": first_step,
    "trajectory": trajectory,
    "backward": backward,
    "iff": stability_iff,
    "depth": depth,
    "adam": adam_sign_descent,
    "reparam": reparam,
    "finite-width": finite_width,
    "adam-finite-width": adam_finite_width,
    "adam-epsilon": adam_epsilon,
    "hyperparameter-tuple": hyperparameter_tuple,
    "expansion-range": expansion_range,
    "finite-eta": finite_eta,
}
#: Result keys in issue order.
RESULTS: tuple[str, ...] = tuple(_BUILDERS)


def derivation(key: str) -> Derivation:
    """Build one result's derivation (the sympy work happens here)."""
    try:
        builder = _BUILDERS[key]
    except KeyError:
        raise RsstabError(f"unknown result {key!r}: expected one of {', '.join(RESULTS)}") from None
    return builder()


def derivations(keys: Sequence[str] | None = None) -> list[Derivation]:
    """Build several (default: all) derivations in issue order."""
    return [derivation(k) for k in (RESULTS if keys is None else keys)]
