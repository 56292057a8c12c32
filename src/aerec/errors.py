"""Error types that the CLI turns into one-line messages and exit codes."""

import contextvars
import re
from contextlib import contextmanager


class AerecError(Exception):
    """Base class: a problem with the user's input or environment (exit code 2)."""

    exit_code = 2


class DataError(AerecError):
    """Malformed, missing or empty data. The message names the file, line and problem."""


class ConfigError(AerecError):
    """A wrong configuration key or value. The message lists the valid keys."""


class ModelFileError(AerecError):
    """A model directory that is truncated, tampered with or of an unknown format version."""


class ResourceError(AerecError):
    """A request that would exceed the available memory or another resource."""


# Messages are written in the command line's words (--item-col, --feedback implicit). A Python
# caller gets the same message with the keyword it would change instead; the CLI keeps its flags.

_IN_CLI = contextvars.ContextVar("aerec_in_cli", default=False)
_OUTER = contextvars.ContextVar("aerec_api_words", default=False)  # the outermost entry point words it
_FLAG = re.compile(r"--([a-z][a-z-]*)(?: (explicit|implicit|X)\b)?")

# what each flag is called from Python: files (data.load), DataFrames (from_dataframe, load), fit(df)
FILE_WORDS = {"user-col": "user_col=", "item-col": "item_col=", "rating-col": "rating_col=", "time-col": "time_col=",
              "title-col": "title_col=", "sep": "sep=", "no-header": "header=False", "encoding": "encoding=",
              "feedback": "feedback=", "threshold": "threshold="}
FRAME_WORDS = {**FILE_WORDS, "user-col": "user=", "item-col": "item=", "rating-col": "rating=", "time-col": "time=",
               "title-col": "title="}
FIT_WORDS = {**FILE_WORDS, **{f"{role}-col": f"aerec.data.from_dataframe(df, {role}=...)"
                              for role in ("user", "item", "rating", "time", "title")}}


def api_message(message: str, words: dict) -> str:
    """`message` with each CLI flag in `words` replaced by its Python keyword."""
    def swap(m):
        word = words.get(m.group(1))
        if word is None:
            return m.group(0)
        value = m.group(2)
        if not word.endswith("="):
            return word + (f" {value}" if value else "")
        if value is None:
            return word + "..."
        return word + (value if value == "X" else f'"{value}"')

    return _FLAG.sub(swap, message)


@contextmanager
def cli_words():
    """Used by the CLI: errors keep their flag names."""
    token = _IN_CLI.set(True)
    try:
        yield
    finally:
        _IN_CLI.reset(token)


@contextmanager
def api_words(words: dict):
    """Around a Python entry point: an AerecError from inside names keywords, not flags (those
    of the outermost entry point: fit(df) names from_dataframe's keywords, not its own)."""
    if _IN_CLI.get() or _OUTER.get():
        yield
        return
    token = _OUTER.set(True)
    try:
        yield
    except AerecError as e:
        if e.args and isinstance(e.args[0], str):
            e.args = (api_message(e.args[0], words), *e.args[1:])
        raise
    finally:
        _OUTER.reset(token)
