"""The one file guard every reader shares, and compressed inputs refused before parsing."""

import errno
import os
import zipfile

import pytest

from aerec import data
from aerec.cli import main
from aerec.errors import DataError


def test_check_file_refuses_what_is_not_a_readable_regular_file(tmp_path):
    f = tmp_path / "ok.txt"
    f.write_text("a\n")
    assert data.check_file(f) == 2
    with pytest.raises(DataError, match="no such file"):
        data.check_file(tmp_path / "missing.txt")
    with pytest.raises(DataError, match="is a folder"):
        data.check_file(tmp_path)
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="FIFO"):
        data.check_file(fifo)
    with pytest.raises(DataError, match="not a regular file"):
        data.check_file("/dev/zero")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 1000)
    with pytest.raises(DataError, match="over the 999-byte limit"):
        data.check_file(big, max_bytes=999)
    assert data.read_bytes(big, max_bytes=1000) == b"x" * 1000
    with pytest.raises(DataError, match="limit"):
        data.read_bytes(big, max_bytes=10)
    with pytest.raises(DataError, match="not a regular file"):
        data.read_bytes("/dev/zero", max_bytes=10)


def _deny_inside(monkeypatch, folder):
    real = os.stat

    def stat(path, *a, **k):
        if str(path).startswith(str(folder) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "stat", stat)


def test_a_file_in_an_unreadable_folder_is_permission_denied_not_missing(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "r.csv").write_text("user,item\n1,2\n")
    _deny_inside(monkeypatch, locked)  # what a mode-000 folder does to anyone but root
    with pytest.raises(DataError, match="permission denied"):
        data.load(locked / "r.csv")
    assert main(["data", "info", str(locked / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "permission denied" in err and "no such file" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their folder's mode")
def test_a_file_in_a_mode_000_folder(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "r.csv").write_text("user,item\n1,2\n")
    locked.chmod(0)
    try:
        assert main(["data", "info", str(locked / "r.csv")]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def _bomb(path, lines: int):
    block = b"1,1\n" * 250_000
    if path.suffix == ".gz":  # gzip declares no size: only the streamed bytes can tell
        import gzip

        with gzip.open(path, "wb") as f:
            f.write(b"user,item\n")
            for _ in range(lines // 250_000):
                f.write(block)
        return
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("r.csv", "w", force_zip64=True) as f:
            f.write(b"user,item\n")
            for _ in range(lines // 250_000):
                f.write(block)


@pytest.mark.parametrize("name", ["bomb.zip", "bomb.csv.gz"])
def test_a_compression_bomb_is_refused_before_any_parsing(tmp_path, monkeypatch, capsys, name):
    bomb = tmp_path / name
    _bomb(bomb, 5_000_000)  # 20 MB of "1,1" lines in a small archive
    monkeypatch.setenv("AEREC_MAX_DECOMPRESSED", str(2_000_000))
    parsed = []
    import pandas as pd

    real = pd.read_csv
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: parsed.append(1) or real(*a, **k))
    assert main(["data", "info", str(bomb)]) == 2
    assert "compression bomb" in capsys.readouterr().err
    assert parsed == []  # refused on the streamed bytes, not after reading rows


def test_a_zip_whose_header_lies_about_the_size_is_one_clear_error(tmp_path, capsys):
    import struct

    f = tmp_path / "liar.zip"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("r.csv", b"user,item\n" + b"1,1\n" * 100_000)
    raw = bytearray(f.read_bytes())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers: 10 bytes
        i = raw.find(sig)
        raw[i + at:i + at + 4] = struct.pack("<I", 10)
    f.write_bytes(bytes(raw))
    assert main(["data", "info", str(f)]) == 2
    assert "not a readable zip file" in capsys.readouterr().err
