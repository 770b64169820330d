"""Lazy package attributes (PEP 562): a package names where each public attribute lives, and the
module is imported on first use only — so ``import rsstab`` or ``import rsstab.sweep`` stays light.

>>> import types
>>> pkg = types.ModuleType("demo")
>>> pkg.__all__ = ["dumps"]
>>> pkg.__getattr__, pkg.__dir__ = lazy_attributes(vars(pkg), {"dumps": "json"})
>>> pkg.__getattr__("dumps").__name__, "dumps" in vars(pkg)
('dumps', True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(namespace: MutableMapping[str, Any], where: Mapping[str, str]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__``: ``where`` maps an attribute to the module that
    defines it; the first access imports that module and caches the value in ``namespace``."""
    name_of_package = namespace.get("__name__", "?")

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {name_of_package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *namespace.get("__all__", ())})

    return __getattr__, __dir__
