"""Optional dependencies: imported through one helper that names the extra providing them.

A model class lists what it needs as ``requires = (("implicit", "peers"), ...)``: (module, extra).
Commands call ``check`` on every requested model before any work, so a missing library is one
line and exit 2 up front, never a traceback after an hour of training.
"""

from __future__ import annotations

import importlib

from aerec.errors import AerecError

# import name -> the name pip installs it under, where they differ
PIP_NAMES = {"sklearn": "scikit-learn", "surprise": "scikit-surprise"}


class MissingDependency(AerecError):
    """An optional library is not installed (exit 2); the message says which extra adds it."""


def _pip_name(module: str) -> str:
    top = module.split(".")[0]
    return PIP_NAMES.get(top, top)


def _missing(module: str) -> str | None:
    """None when `module` imports, else the pip name of what is missing."""
    try:
        importlib.import_module(module)
    except ImportError as e:
        # a library that imports but lacks one of its own dependencies names that one
        name = e.name if isinstance(e, ModuleNotFoundError) and e.name else module
        return _pip_name(name)
    return None


def _message(needs: dict[str, list[str]], extras: list[str]) -> str:
    parts = [f"{who} needs {' and '.join(mods)}" for who, mods in needs.items()]
    install = " ".join(f"'aerec[{e}]'" for e in extras)
    return f"{', '.join(parts)}: pip install {install}"


def require(module: str, extra: str, who: str = "aerec"):
    """Import `module` and return it, or raise MissingDependency naming `extra`."""
    name = _missing(module)
    if name is not None:
        raise MissingDependency(_message({who: [name]}, [extra]))
    return importlib.import_module(module)


def check(*classes) -> None:
    """Every optional module each class's ``requires`` lists must import; all that are missing
    are reported in one line."""
    needs: dict[str, list[str]] = {}
    extras: list[str] = []
    for cls in classes:
        for module, extra in getattr(cls, "requires", ()):
            name = _missing(module)
            if name is None:
                continue
            who = f"model '{getattr(cls, 'name', cls.__name__)}'"
            if name not in needs.setdefault(who, []):
                needs[who].append(name)
            if extra not in extras:
                extras.append(extra)
    if needs:
        raise MissingDependency(_message(needs, extras))
