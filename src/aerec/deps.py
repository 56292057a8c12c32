"""Optional dependencies: imported through one helper that names the extra providing them.

A model class lists what it needs as ``requires = (("implicit", "peers"), ...)``: (module, extra).
Commands call ``check`` on every requested model before any work, so a missing library is one
line and exit 2 up front, never a traceback after an hour of training. The commands that need an
extra are listed in ``FEATURES`` and check themselves with ``check_feature``; ``table`` joins both
for ``aerec doctor``, so what doctor says is what the checks do.
"""

from __future__ import annotations

import importlib

from aerec.errors import AerecError

# import name -> the name pip installs it under, where they differ
PIP_NAMES = {"sklearn": "scikit-learn", "surprise": "scikit-surprise"}


# Optional parts of aerec outside the models: name -> (what it is, ((module, extra), ...)).
FEATURES = {
    "serve": ("aerec serve (HTTP service)", (("fastapi", "serve"), ("uvicorn", "serve"))),
    "tune": ("aerec tune (Optuna search)", (("optuna", "tune"),)),
    "export": ("aerec export --onnx FILE", (("onnx", "onnx"), ("onnxruntime", "onnx"), ("onnxscript", "onnx"))),
    "rating-peers": ("benchmarks/rating.py (SVD, SVD++ beside AutoRec)", (("surprise", "peers"),)),
}


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


def check_feature(name: str) -> None:
    """Every module FEATURES[name] lists must import, else one MissingDependency line."""
    who, modules = FEATURES[name]
    missing = [m for m in dict.fromkeys(_missing(module) for module, _ in modules) if m]
    if missing:
        extras = list(dict.fromkeys(extra for _, extra in modules))
        raise MissingDependency(_message({who: missing}, extras))


def table(classes=()) -> list[dict]:
    """Every optional part: the models given (their ``requires``), then FEATURES. Each row:
    who, extra(s), and each package's pip name with its installed version (None: missing).
    Versions come from the installed distributions; nothing is imported."""
    from importlib import metadata

    def version(pip: str):
        try:
            return metadata.version(pip)
        except metadata.PackageNotFoundError:
            return None

    rows = [(f"model {getattr(c, 'name', c.__name__)}", tuple(getattr(c, "requires", ()))) for c in classes]
    rows += list(FEATURES.values())
    out = []
    for who, modules in rows:
        if not modules:
            continue
        packages = {p: version(p) for p in dict.fromkeys(_pip_name(m) for m, _ in modules)}
        out.append({"for": who, "extras": list(dict.fromkeys(e for _, e in modules)), "packages": packages,
                    "installed": all(v is not None for v in packages.values())})
    return out
