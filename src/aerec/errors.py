"""Error types that the CLI turns into one-line messages and exit codes."""


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
