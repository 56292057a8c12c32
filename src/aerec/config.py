"""Typed configs: dataclasses validated on construction, round-tripping through TOML.

``build`` checks every value before the dataclass exists: its type, that every number is finite
(NaN and infinity are never a setting), and the bounds a field declares in its metadata
(``field(default=0, metadata={"min": 0})``, see ``SEED``). The class's own ``validate()`` then
checks what depends on several fields.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import tomllib
import typing
from pathlib import Path
from typing import Any

from aerec.errors import ConfigError, DataError

# Seeds feed numpy's SeedSequence and torch.manual_seed(seed + 1): non-negative and within int64.
SEED_MAX = 2**62
SEED = {"min": 0, "max": SEED_MAX}

# The ranking metrics' default cutoffs (--ks overrides; @10 as RecBole reports). One tuple, so the
# help, the runner and the bench cannot drift apart (issue 23 #12). Here because this module is light.
RANKING_KS = (10, 20, 50, 100)

# Data and weights are float32: a number beyond its range becomes infinity there.
FLOAT32_MAX = 3.4028234663852886e38


def finite_float(value, label: str) -> float:
    """A finite float from a setting's value (booleans, text and nan/inf are refused)."""
    if isinstance(value, bool):
        raise ConfigError(f"{label} must be a number, got {value!r}")
    try:
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{label} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise ConfigError(f"{label} must be a finite number, got {value!r}")
    return f


def check_threshold(value, label: str = "threshold") -> float:
    """A value threshold: a finite number that float32 ratings can be compared with."""
    value = finite_float(value, label)
    if abs(value) > FLOAT32_MAX:
        raise ConfigError(f"{label} {value:g} is beyond the 32-bit float range of the values (+-3.4e38)")
    return value


# Learning rates: above LR_MAX no optimizer here takes a finite step (the issue-24 H+Vamp lr=1e30).
LR_MAX = 10.0
LR = {"min": 0, "max": LR_MAX}


def lr_field(default: float | None):
    """A dataclass field for a learning rate: a number in (0, LR_MAX] (None where the model allows it)."""
    return dataclasses.field(default=default, metadata=LR)


def seed_field(default: int = 0):
    """A dataclass field for a seed: an integer in [0, 2**62]."""
    return dataclasses.field(default=default, metadata=SEED)


def check_k(k) -> int:
    """A whole number of items >= 1: bools, strings and fractions are refused, not truncated."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise DataError(f"k must be a whole number of items, got {k!r}")
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    return int(k)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a value (often a string from --set key=value) to the field's declared type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"'{key}': bad value {value!r}")
    if origin is typing.Literal:
        for a in args:
            try:
                if _coerce(value, type(a), key) == a:
                    return a
            except ConfigError:
                pass
        raise ConfigError(f"'{key}' must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").replace("(", "").replace(")", "").split(",") if v.strip()]
        elif isinstance(value, (int, float)):  # one number: a one-element list
            value = [value]
        elif not isinstance(value, (list, tuple)):
            raise ConfigError(f"'{key}' must be a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(v.strip() if isinstance(v, str) else v, inner, key) for v in value]
        return tuple(out) if origin is tuple else out
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"'{key}' must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        if isinstance(value, int):
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())  # exact for large integers, unlike float()
            except ValueError:
                pass
        try:
            f = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}") from None
        if not math.isfinite(f) or f != int(f):
            raise ConfigError(f"'{key}' must be an integer, got {value!r}")
        return int(f)
    if annotation is float:
        return finite_float(value, f"'{key}'")
    if annotation is str:
        return str(value)
    return value


def build(cls: type, values: dict | None = None, **overrides) -> Any:
    """Make a config of dataclass cls from a dict and keyword overrides, with typed checks."""
    merged = {**(values or {}), **overrides}
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(merged) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)} for {cls.__name__}; valid keys: {', '.join(sorted(names))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(v, hints[k], k) for k, v in merged.items()}
    for k, v in kwargs.items():
        check_value(k, v, names[k].metadata)
    cfg = cls(**kwargs)
    check = getattr(cfg, "validate", None)
    if check:
        check()
    return cfg


def check_value(key: str, value: Any, bounds=None) -> None:
    """Every number finite (floats within float32's range), and within the field's ``min``/``max`` metadata (lists: each element)."""
    if isinstance(value, (list, tuple)):
        for v in value:
            check_value(key, v, bounds)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"'{key}' must be a finite number, got {value!r}")
    if isinstance(value, float) and abs(value) > FLOAT32_MAX:  # it would be infinite in the float32 maths
        raise ConfigError(f"'{key}' = {value:g} is beyond the 32-bit float range (+-3.4e38)")
    bounds = bounds or {}
    if "min" in bounds and value < bounds["min"]:
        raise ConfigError(f"'{key}' must be at least {bounds['min']}, got {value!r}")
    if "max" in bounds and value > bounds["max"]:
        raise ConfigError(f"'{key}' must be at most {bounds['max']}, got {value!r}")


def to_dict(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def parse_set(pairs: list[str]) -> dict:
    """['a=1', 'b=x'] -> {'a': '1', 'b': 'x'} (coerced later by build)."""
    out = {}
    for p in pairs:
        if "=" not in p:
            raise ConfigError(f"--set expects key=value, got {p!r}")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def dumps_toml(sections: dict[str, dict]) -> str:
    """Write {section: {key: value}} as TOML; None values are left out (TOML has no null)."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    return "\n".join(lines)


MAX_TOML_BYTES = 4 << 20  # a config is a few hundred bytes; a bigger "config" is a mistake or an attack


def load_toml(path: str | Path) -> dict:
    from aerec.data.files import read_bytes

    p = Path(path)
    try:
        text = read_bytes(p, max_bytes=MAX_TOML_BYTES).decode("utf-8")
    except DataError as e:
        raise ConfigError(f"{e} (expected a TOML config file)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text file (not valid UTF-8); expected TOML") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None
