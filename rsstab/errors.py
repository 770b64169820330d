"""The one error class users catch."""

from __future__ import annotations

from collections.abc import Callable

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

    A message that must name another argument names it as ``{name}`` and lists it in ``names``:
    ``str()`` spells it as the library's argument, :meth:`spelled` as a front end does (the command
    line: its flag), so a library message never names a command-line flag.

    >>> e = RsstabError("{width} needs a value for beta ({constants})", names=("width", "constants"))
    >>> str(e), e.spelled({"width": "--width", "constants": "--set"}.get)
    ('width needs a value for beta (constants)', '--width needs a value for beta (--set)')
    """

    def __init__(self, message: str = "", *, parameter: str | None = None, names: tuple[str, ...] = ()) -> None:
        self.template, self.names = message, tuple(names)
        super().__init__(self.spelled(lambda name: name) if self.names else message)
        self.parameter = parameter

    def spelled(self, spell: Callable[[str], str | None]) -> str:
        """The message with each argument in :attr:`names` spelled by ``spell`` (its own name where
        ``spell`` gives None)."""
        text = self.template
        for name in self.names:
            text = text.replace("{" + name + "}", spell(name) or name)
        return text


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
