"""Command-line flags that several commands share, defined once.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_optimizer(p, default="sgd", help="regime")
>>> p.parse_args(["--optimizer", "AdamW"]).optimizer, p.parse_args([]).optimizer
('adam', 'sgd')
"""

from __future__ import annotations

import argparse

from rsstab.vocab import OPTIMIZER_ALIASES, OPTIMIZER_METAVAR, OPTIMIZER_NAMES, OPTIMIZERS, canonical_optimizer

__all__ = ["add_optimizer"]


def _optimizer(text: str) -> str:
    name = canonical_optimizer(text)
    if name not in OPTIMIZERS:
        aliases = ", ".join(f"{a} is {o}'s regime" for a, o in OPTIMIZER_ALIASES.items())
        raise argparse.ArgumentTypeError(f"unknown optimizer {text!r}: expected one of {', '.join(OPTIMIZER_NAMES)} "
                                         f"({aliases})")
    return name


def add_optimizer(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """``--optimizer`` accepting every name of :data:`rsstab.vocab.OPTIMIZER_NAMES` (case-insensitive,
    aliases such as ``adamw`` mapped to their optimizer), an unknown name listing them all."""
    parser.add_argument("--optimizer", type=_optimizer, metavar=OPTIMIZER_METAVAR, default=default, help=help)
