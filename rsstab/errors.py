"""The one error class users catch."""

from __future__ import annotations

__all__ = ["RsstabError", "ScheduleError", "MissingExtraError", "require_extra", "EXTRA_OF", "SIM_MODULES",
           "missing_extra"]


class RsstabError(ValueError):
    """Invalid input to rsstab: the message is one line that names the problem.

    ``parameter`` names the argument of the library function at fault (``"constants"``,
    ``"workers"``, …) when there is one; library messages speak of parameters, and the command
    line translates them into its flags. The command line prints the message as
    ``rsstab: error: <message>`` and exits with code 2.

    >>> str(RsstabError("no value for beta", parameter="constants"))
    'no value for beta'
    >>> RsstabError("no value for beta", parameter="constants").parameter
    'constants'
    """

    def __init__(self, message: str = "", *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class ScheduleError(RsstabError):
    """A γ_r schedule that cannot be parsed or is not real and positive for large r."""


class MissingExtraError(RsstabError):
    """An optional dependency is not installed: the message says which extra to install."""


def require_extra(extra: str, modules: tuple[str, ...]) -> None:
    """Import ``modules`` or raise :class:`MissingExtraError` naming ``pip install "rsstab[extra]"``.

    >>> require_extra("core", ("json",))
    >>> require_extra("sim", ("no_such_module_xyz",))
    Traceback (most recent call last):
    ...
    rsstab.errors.MissingExtraError: this needs no_such_module_xyz: pip install "rsstab[sim]"
    """
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise MissingExtraError(f'this needs {name}: pip install "rsstab[{extra}]"') from None


#: The modules a Monte Carlo run imports (``rsstab simulate``, ``rsstab check --simulate``).
SIM_MODULES = ("numpy", "scipy", "torch")

#: Top-level module → the extra of ``pyproject.toml`` that installs it (its optional-dependencies).
EXTRA_OF = {"torch": "sim", "numpy": "sim", "scipy": "sim", "matplotlib": "sim", "tqdm": "sim",
            "peft": "peft", "transformers": "peft", "safetensors": "peft", "gguf": "lm",
            "dask": "dask", "distributed": "dask", "hypothesis": "testing",
            "jupytext": "test", "nbclient": "test", "nbformat": "test", "ipykernel": "test"}


def missing_extra(exc: ImportError) -> MissingExtraError | None:
    """The one-line error for an import that failed because an extra is not installed, or None
    when the missing module belongs to no extra (a real bug, left to surface).

    >>> str(missing_extra(ModuleNotFoundError("No module named 'torch.nn'", name="torch.nn")))
    'this needs torch: pip install "rsstab[sim]"'
    >>> missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None
    True
    """
    top = (getattr(exc, "name", None) or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    return None if extra is None else MissingExtraError(f'this needs {top}: pip install "rsstab[{extra}]"')
