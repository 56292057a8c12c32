"""Opening input files safely: the one guard every reader goes through.

`check_file` refuses what is not a regular file (folders, FIFOs, devices such as /dev/zero,
sockets), tells "permission denied" apart from "no such file", and applies an optional size
cap. `read_bytes` reads a small file (an item list, say) under a cap. `open_input` streams a
data file, decompressing .gz/.bz2/.xz/.zip; a compressed file is first streamed through the
decompressed-size cap without being kept, so a compression bomb is refused before any parsing
and within a few megabytes of memory.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from aerec.errors import DataError

# compressed files are streamed through a cap so that a zip or gzip bomb is refused, not loaded
COMPRESSED = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
MIN_CAP = 256 << 20  # bytes: a small archive may always expand this far
MAX_RATIO = 100  # beyond that expansion ratio a compressed file is taken for a bomb
_BLOCK = 1 << 20


def check_file(path, label: str | None = None, *, max_bytes: int | None = None) -> int:
    """Refuse anything but a readable regular file (of at most max_bytes); return its size.

    Folders, FIFOs (reading one hangs), devices (/dev/zero never ends) and sockets are refused
    in one line naming the file; so are missing and unreadable files, each with its own reason.
    """
    path = Path(path).expanduser()
    label = label or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{label}: no such file") from None
    except PermissionError:
        raise DataError(f"{label}: permission denied (a folder on the way may not be readable)") from None
    except OSError as e:
        raise DataError(f"{label}: cannot open ({e.strerror or e})") from None
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise DataError(f"{label}: is a folder, expected a file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device or socket"
        raise DataError(f"{label}: is {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise DataError(f"{label}: is {st.st_size:,} bytes, over the {max_bytes:,}-byte limit for this input")
    if not os.access(path, os.R_OK):
        raise DataError(f"{label}: permission denied")
    return st.st_size


def read_bytes(path, *, max_bytes: int, label: str | None = None) -> bytes:
    """The bytes of a small regular file, refused beyond max_bytes (also if it grows while read)."""
    path = Path(path).expanduser()
    label = label or str(path)
    check_file(path, label, max_bytes=max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except PermissionError:
        raise DataError(f"{label}: permission denied") from None
    except OSError as e:
        raise DataError(f"{label}: cannot read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise DataError(f"{label}: over the {max_bytes:,}-byte limit for this input")
    return data


def decompressed_cap(compressed_bytes: int) -> int:
    """The most bytes a compressed input may expand to ($AEREC_MAX_DECOMPRESSED overrides)."""
    env = os.environ.get("AEREC_MAX_DECOMPRESSED", "").strip()
    if env:
        try:
            return int(float(env))
        except ValueError:
            raise DataError(f"AEREC_MAX_DECOMPRESSED={env!r} is not a number of bytes") from None
    return max(MIN_CAP, MAX_RATIO * compressed_bytes)


def bomb_error(label: str, cap: int) -> DataError:
    return DataError(f"{label}: decompresses to more than {cap:,} bytes; refused as a possible "
                     f"compression bomb (set AEREC_MAX_DECOMPRESSED=BYTES to allow more)")


class CappedStream(io.RawIOBase):
    """A read-only stream that stops at `cap` bytes and remembers why it stopped.

    Errors of the underlying decompressor (not gzip, truncated, ...) are kept in `error` and the
    stream ends; the caller turns them into one DataError naming the file.
    """

    def __init__(self, raw, cap: int):
        self.raw, self.cap, self.seen = raw, cap, 0
        self.exceeded = False
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.exceeded or self.error:
            return 0
        try:
            data = self.raw.read(len(buf))
        except (OSError, EOFError, ValueError, *zlib_errors()) as e:
            self.error = str(e) or type(e).__name__
            return 0
        self.seen += len(data)
        if self.seen > self.cap:
            self.exceeded = True
            return 0
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


def zlib_errors():
    import lzma
    import zipfile
    import zlib

    return (zlib.error, lzma.LZMAError, zipfile.BadZipFile)  # a bad CRC, a size the header lied about


def _decompressor(path: Path, kind: str, label: str):
    """(raw decompressed stream, declared size or None)."""
    if kind == "gzip":
        import gzip

        return gzip.open(path, "rb"), None
    if kind == "bz2":
        import bz2

        return bz2.open(path, "rb"), None
    if kind == "xz":
        import lzma

        return lzma.open(path, "rb"), None
    import zipfile

    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{label}: not a zip archive") from None
    members = [m for m in z.infolist() if not m.is_dir() and "__MACOSX" not in m.filename]
    if len(members) != 1:
        z.close()
        names = ", ".join(m.filename for m in members[:5]) or "none"
        raise DataError(f"{label}: a zip must hold exactly one data file (it holds {len(members)}: {names})")
    try:
        return z.open(members[0]), members[0].file_size
    except (RuntimeError, NotImplementedError, zipfile.BadZipFile) as e:  # encrypted, unknown method
        z.close()
        raise DataError(f"{label}: cannot read the zip member ({e})") from None


def _measure(path: Path, kind: str, label: str, cap: int) -> None:
    """Stream the decompressed bytes once, keeping none, and refuse beyond the cap.

    This pass runs before any parsing, so a bomb costs the time to inflate `cap` bytes (well
    under a second for the default cap) and a megabyte of memory, never a parse of its rows.
    A zip whose header declares more than the cap is refused without inflating anything.
    """
    raw, declared = _decompressor(path, kind, label)
    try:
        if declared is not None and declared > cap:
            raise bomb_error(label, cap)
        seen = 0
        while True:
            try:
                block = raw.read(_BLOCK)
            except (OSError, EOFError, ValueError, *zlib_errors()) as e:
                raise DataError(f"{label}: not a readable {kind} file ({str(e) or type(e).__name__})") from None
            if not block:
                return
            seen += len(block)
            if seen > cap:
                raise bomb_error(label, cap)
    finally:
        raw.close()


def open_input(path, label: str | None = None):
    """A buffered binary stream of the file's (decompressed, size-capped) bytes."""
    path = Path(path).expanduser()
    label = label or str(path)
    size = check_file(path, label)
    kind = COMPRESSED.get(path.suffix.lower())
    try:
        if kind is None:
            return open(path, "rb")
        cap = decompressed_cap(size)
        _measure(path, kind, label, cap)
        raw, _ = _decompressor(path, kind, label)
        return io.BufferedReader(CappedStream(raw, cap), buffer_size=_BLOCK)
    except PermissionError:
        raise DataError(f"{label}: permission denied") from None
    except OSError as e:
        raise DataError(f"{label}: cannot open ({e.strerror or e})") from None


def stream_problem(stream, label: str, kind: str | None) -> DataError | None:
    """The reason a capped stream ended early (a decompression error or the cap), if any."""
    capped = getattr(stream, "raw", None)
    if not isinstance(capped, CappedStream):
        return None
    if capped.error:
        return DataError(f"{label}: not a readable {kind or 'compressed'} file ({capped.error})")
    if capped.exceeded:
        return bomb_error(label, capped.cap)
    return None
