__version__ = "0.1.0"


def load(path, **kwargs):
    """Load a saved model directory (see aerec.io.load); imports torch only when needed."""
    from aerec import io

    return io.load(path, **kwargs)
