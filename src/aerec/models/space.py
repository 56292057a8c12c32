"""Hyperparameter search spaces: each model class declares ``space`` beside its Config.

A space maps Config field names to specs:

- ``{"type": "float", "low": 1e-4, "high": 1e-2, "log": True}`` (``log`` optional);
- ``{"type": "int", "low": 32, "high": 400, "log": True}``;
- ``{"type": "categorical", "choices": [[600], [300], [600, 300]]}``: any JSON-like values
  (lists included; Optuna only sees their JSON text, so every choice is hashable);
- ``{"type": "sum", "of": ["a", "b"]}``: not searched, set to the sum of other fields (RaCT's
  ``epochs`` = its phase lengths);
- any spec may add ``"when": {"field": value}``: the parameter is searched only when that field
  (fixed, or sampled earlier in the dict) equals the value (or is one of a list of values, for a
  field that is not itself a list).

Overrides come from the command line (``lr=1e-4:1e-2:log``, ``latent=32:400``,
``hidden=[600]|[300]``, ``dropout=off`` to drop a parameter) or a TOML ``[space]`` table
whose values are such strings or full spec tables.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from aerec import config as cfgmod
from aerec.errors import ConfigError

TYPES = ("float", "int", "categorical", "sum")
SPEC_KEYS = {"type", "low", "high", "log", "choices", "when", "of"}


def _fields(cls) -> dict:
    return typing.get_type_hints(cls.Config)


def _norm(v):
    """Tuples and lists compare equal (configs hold tuples, TOML and JSON give lists)."""
    return [_norm(x) for x in v] if isinstance(v, (list, tuple)) else v


def _is_sequence_type(hint) -> bool:
    return typing.get_origin(hint) in (tuple, list)


def validate(space: dict, cls) -> dict:
    """Check a space against the model's Config; returns it unchanged or raises ConfigError."""
    if not isinstance(space, dict):
        raise ConfigError(f"{cls.name}: a search space must be a table of field -> spec")
    hints = _fields(cls)
    bounds = {f.name: f.metadata for f in dataclasses.fields(cls.Config)}
    for key, spec in space.items():
        where = f"{cls.name} search space, '{key}'"
        if key not in hints:
            raise ConfigError(f"{where}: not a config field of {cls.name}; fields: {', '.join(sorted(hints))}")
        if not isinstance(spec, dict) or spec.get("type") not in TYPES:
            raise ConfigError(f"{where}: needs a 'type', one of {', '.join(TYPES)}")
        extra = set(spec) - SPEC_KEYS
        if extra:
            raise ConfigError(f"{where}: unknown spec key(s) {', '.join(sorted(extra))}")
        kind = spec["type"]
        if kind in ("float", "int"):
            lo, hi = spec.get("low"), spec.get("high")
            num = (int,) if kind == "int" else (int, float)
            if not all(isinstance(v, num) and not isinstance(v, bool) for v in (lo, hi)):
                raise ConfigError(f"{where}: 'low' and 'high' must be {'integers' if kind == 'int' else 'numbers'}")
            if lo > hi:
                raise ConfigError(f"{where}: 'low' ({lo}) is above 'high' ({hi})")
            if spec.get("log") and lo <= 0:
                raise ConfigError(f"{where}: a log scale needs 'low' > 0")
            for v in (lo, hi):  # the field's own bounds (lr <= 10, ...) hold for the whole range
                try:
                    cfgmod.check_value(key, cfgmod._coerce(v, hints[key], key), bounds[key])
                except ConfigError as e:
                    raise ConfigError(f"{where}: {e}") from None
        elif kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"{where}: 'choices' must be a non-empty list")
            for c in choices:
                cfgmod._coerce(c, hints[key], key)
            texts = [json.dumps(_norm(c)) for c in choices]
            if len(set(texts)) != len(texts):
                raise ConfigError(f"{where}: 'choices' repeat a value")
        else:
            of = spec.get("of")
            if not isinstance(of, list) or not of or any(k not in hints for k in of):
                raise ConfigError(f"{where}: 'of' must list config fields to add up")
        when = spec.get("when", {})
        if not isinstance(when, dict) or any(k not in hints for k in when):
            raise ConfigError(f"{where}: 'when' must map config fields to the values that enable it")
    return space


def model_space(cls) -> dict:
    """The model's declared space (a copy), validated."""
    return validate({k: dict(v) for k, v in (getattr(cls, "space", None) or {}).items()}, cls)


# overrides -------------------------------------------------------------------------------------


def _literal(text: str):
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word: a string choice such as an activation name


def parse_spec(key: str, text: str, cls) -> dict | None:
    """One command-line spec -> a spec dict (None for 'off')."""
    hints = _fields(cls)
    if key not in hints:
        raise ConfigError(f"--space {key}: not a config field of {cls.name}; fields: {', '.join(sorted(hints))}")
    text = text.strip()
    if text.lower() == "off":
        return None
    if "|" in text:
        return {"type": "categorical", "choices": [_literal(t) for t in text.split("|")]}
    parts = text.split(":")
    if len(parts) in (2, 3) and (len(parts) == 2 or parts[2].strip().lower() in ("log", "lin", "linear")):
        hint = hints[key]
        kind = "int" if hint is int or hint == (int | None) else "float"
        try:
            lo, hi = (int(float(p)) if kind == "int" else float(p) for p in parts[:2])
        except ValueError:
            raise ConfigError(f"--space {key}={text}: low and high must be numbers") from None
        return {"type": kind, "low": lo, "high": hi, "log": len(parts) == 3 and parts[2].strip().lower() == "log"}
    raise ConfigError(f"--space {key}={text}: expected LOW:HIGH[:log], A|B|..., or off")


def parse_overrides(items, cls) -> dict:
    """['lr=1e-4:1e-2:log', 'hidden=[600]|[300]'] -> {key: spec or None}."""
    out = {}
    for item in items or ():
        if "=" not in item:
            raise ConfigError(f"--space expects KEY=SPEC, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = parse_spec(k.strip(), v, cls)
    return out


def table_overrides(table: dict, cls) -> dict:
    """A TOML [space] table: values are spec strings, spec tables, or false / "off" to drop."""
    if not isinstance(table, dict):
        raise ConfigError("[space] must be a table")
    out = {}
    for k, v in table.items():
        if v is False:
            out[k] = None
        elif isinstance(v, str):
            out[k] = parse_spec(k, v, cls)
        elif isinstance(v, dict):
            out[k] = dict(v)
        else:
            raise ConfigError(f"[space] {k}: expected a spec string such as \"1e-4:1e-2:log\" or a table")
    return out


def apply_overrides(space: dict, overrides: dict, cls) -> dict:
    merged = dict(space)
    for k, spec in overrides.items():
        if spec is None:
            merged.pop(k, None)
        else:
            merged[k] = spec
    return validate(merged, cls)


# sampling --------------------------------------------------------------------------------------


def _enabled(spec: dict, values: dict, hints: dict) -> bool:
    for field, want in spec.get("when", {}).items():
        have = _norm(values.get(field))
        if isinstance(want, list) and not _is_sequence_type(hints[field]):
            if have not in [_norm(w) for w in want]:
                return False
        elif have != _norm(want):
            return False
    return True


def _defaults(cls, fixed: dict | None, hints: dict) -> dict:
    defaults = {}
    for f in dataclasses.fields(cls.Config):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            defaults[f.name] = f.default_factory()
    defaults.update({k: cfgmod._coerce(v, hints[k], k) for k, v in (fixed or {}).items() if k in hints})
    return defaults


def default_point(space: dict, cls, fixed: dict | None = None) -> dict:
    """The model's reference setting as Optuna parameters, to enqueue as a study's first trial.

    Numbers outside a range are clipped into it and a default that is not among a categorical's
    choices is left out (the sampler draws that one), so the point always lies in the space.
    """
    hints = _fields(cls)
    values = _defaults(cls, fixed, hints)
    point = {}
    for key, spec in space.items():
        if spec["type"] == "sum" or not _enabled(spec, values, hints):
            continue
        v = values.get(key)
        if spec["type"] in ("float", "int"):
            if v is None or isinstance(v, bool):
                continue
            v = min(max(v, spec["low"]), spec["high"])
            point[key] = int(round(v)) if spec["type"] == "int" else float(v)
        else:
            text = json.dumps(_norm(v))
            if text not in [json.dumps(_norm(c)) for c in spec["choices"]]:
                continue
            point[key] = text
        values[key] = json.loads(point[key]) if spec["type"] == "categorical" else point[key]
    return point


def sample(trial, space: dict, cls, fixed: dict | None = None) -> dict:
    """Draw one setting with an Optuna trial: {field: value} for the sampled and derived fields.

    ``fixed`` (the settings not searched) decides the "when" conditions together with the
    values drawn earlier in the space's order.
    """
    hints = _fields(cls)
    values = _defaults(cls, fixed, hints)
    params = {}
    for key, spec in space.items():
        if spec["type"] == "sum" or not _enabled(spec, values, hints):
            continue
        if spec["type"] == "float":
            v = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
        elif spec["type"] == "int":
            v = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
        else:
            texts = [json.dumps(_norm(c)) for c in spec["choices"]]
            v = json.loads(trial.suggest_categorical(key, texts))
        params[key] = v
        values[key] = v
    for key, spec in space.items():
        if spec["type"] == "sum":
            params[key] = sum(int(values[k]) for k in spec["of"])
    return params


def describe(space: dict) -> list[str]:
    """One line per parameter, for reports."""
    lines = []
    for k, s in space.items():
        if s["type"] in ("float", "int"):
            text = f"{k}: {s['type']} {s['low']:g}..{s['high']:g}{' (log)' if s.get('log') else ''}"
        elif s["type"] == "categorical":
            text = f"{k}: one of {', '.join(json.dumps(_norm(c)) for c in s['choices'])}"
        else:
            text = f"{k}: {' + '.join(s['of'])}"
        if s.get("when"):
            text += " when " + ", ".join(f"{f}={json.dumps(_norm(v))}" for f, v in s["when"].items())
        lines.append(text)
    return lines
