"""The data section shared by every command and run config: how to read a file and what its
values mean. Keys (TOML ``[data]``; command-line ``--user-col`` ... ``--threshold``):

user_col, item_col, rating_col, time_col, title_col, sep, header, duplicates, trim_ids, dayfirst,
feedback, threshold

They become keyword arguments of ``aerec.data.load``.
"""

from __future__ import annotations

from aerec.config import check_threshold
from aerec.errors import ConfigError

KEYS = ("user_col", "item_col", "rating_col", "time_col", "title_col", "sep", "header", "duplicates", "trim_ids",
        "dayfirst", "feedback", "threshold")
_TYPES = {"header": (bool,), "threshold": (int, float), "feedback": (str,), "sep": (str,), "duplicates": (str,),
          "trim_ids": (bool,), "dayfirst": (bool,)}
DUPLICATES = ("sum", "last", "max", "first")


def merge(section: dict | None, given: dict | None = None, where: str = "[data]") -> dict:
    """The config file's [data] section overridden by command-line values (None = not given)."""
    out = {}
    for source, label in ((section or {}, where), (given or {}, "the command line")):
        if not isinstance(source, dict):
            raise ConfigError(f"{label}: the data section must be a table")
        unknown = sorted(set(source) - set(KEYS))
        if unknown:
            raise ConfigError(f"{label}: unknown data option(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
        for k, v in source.items():
            if v is None:
                continue
            want = _TYPES.get(k)
            if want and (not isinstance(v, want) or (k == "threshold" and isinstance(v, bool))):
                raise ConfigError(f"{label}: data option {k} = {v!r} has the wrong type")
            if k in ("user_col", "item_col", "rating_col", "time_col", "title_col") and not isinstance(v, (str, int)):
                raise ConfigError(f"{label}: data option {k} must be a column name or a 0-based position")
            if k == "duplicates" and v not in DUPLICATES:
                raise ConfigError(f"{label}: duplicates must be one of {', '.join(DUPLICATES)}, got {v!r}")
            if k == "threshold":
                check_threshold(v, f"{label}: threshold")
            if k == "feedback" and v not in ("explicit", "implicit"):
                raise ConfigError(f"{label}: feedback must be 'explicit' or 'implicit', got {v!r}")
            out[k] = v
    return out


SEMANTICS = ("feedback", "threshold")


def columns_only(options: dict) -> dict:
    """The keywords that aerec.data.load reads from a file (feedback and threshold are decided
    after loading, see aerec.data.feedback.of)."""
    return {k: v for k, v in options.items() if k not in SEMANTICS}
