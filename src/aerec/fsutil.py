"""Atomic writes: a file is written to a temporary file in the same folder, fsynced, then renamed;
a folder (a split export, a training run) is built in a hidden sibling ``.NAME.partial`` and
swapped in whole when complete, so a failed or killed run never damages an earlier one.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from aerec.errors import AerecError


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# folders built aside and swapped in ----------------------------------------------------------


def partial_dir(path: str | Path) -> Path:
    """Where the folder ``path`` is built before it is complete: a hidden sibling."""
    path = Path(path)
    return path.parent / f".{path.name}.partial"


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


class BusyError(AerecError):
    """Another process is building the same folder."""


@contextlib.contextmanager
def locked_dir(path: str | Path):
    """Hold an exclusive lock on the folder ``path`` (which must exist) while the block runs; the
    kernel drops it when the process dies, so a killed run never leaves a stale lock."""
    import fcntl

    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BusyError(f"{path}: another aerec process is writing this folder") from None
        yield Path(path)
    finally:
        os.close(fd)


def check_busy(path: Path) -> None:
    """Refuse when another live process holds the lock of the folder ``path``."""
    if path.is_dir():
        with locked_dir(path):
            pass


def fresh_partial(path: str | Path) -> Path:
    """An empty build folder for ``path``, replacing what a killed earlier build left there."""
    tmp = partial_dir(path)
    if tmp.exists():
        check_busy(tmp)
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_dir(src: str | Path, dst: str | Path) -> None:
    """Put the complete folder ``src`` at ``dst``. An existing ``dst`` is swapped out in one
    atomic step where the system allows it (else renamed aside first) and then deleted."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists() or is_empty_dir(dst):
        os.replace(src, dst)  # rename(2) replaces an empty folder
    elif _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # src now holds the old folder
    else:
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(dst.parent)


@contextlib.contextmanager
def staged_dir(path: str | Path):
    """Build the folder ``path`` in ``.NAME.partial`` and swap it in only if the block succeeds;
    on any error the partial folder is removed and ``path`` is as it was."""
    tmp = fresh_partial(path)
    try:
        with locked_dir(tmp):
            yield tmp
            replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
