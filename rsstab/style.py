"""The house style of every figure rsstab draws: matplotlib on the Agg backend, a colour-blind and
projector-safe palette, tick labels readable from the back of a room.

Used by the experiments' figures and by :meth:`rsstab.testing.RankStabilityResult.plot`
(matplotlib is imported on first use only).

>>> colour(0, 3), len(OKABE_ITO)
('#0072B2', 7)
"""

from __future__ import annotations

from typing import Any

__all__ = ["OKABE_ITO", "pyplot", "colour"]

#: Okabe & Ito's colour-blind-safe palette, without its yellow (unreadable on white or a projector);
#: its light orange and sky blue come last, so that up to five curves get strong colours.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9")


def pyplot() -> Any:
    """:mod:`matplotlib.pyplot` on the non-interactive Agg backend, with the house style: the
    colour-blind-safe :data:`OKABE_ITO` cycle and readable tick labels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cycler import cycler

    plt.rcParams.update({"axes.prop_cycle": cycler(color=OKABE_ITO), "font.size": 11, "xtick.labelsize": 10,
                         "ytick.labelsize": 10, "legend.fontsize": 8, "axes.titlesize": 11, "lines.linewidth": 1.6})
    return plt


def colour(i: int, n: int) -> str | tuple[float, ...]:
    """The colour of curve ``i`` of ``n`` ordered curves (e.g. ranks): the Okabe–Ito colours for up
    to 7 curves, else viridis cut before its yellow end. Colour-blind and projector safe."""
    if n <= len(OKABE_ITO):
        return OKABE_ITO[i]
    import matplotlib

    return tuple(matplotlib.colormaps["viridis"](0.72 * i / max(1, n - 1)))
