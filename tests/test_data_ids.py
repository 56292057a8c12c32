"""Ids round-trip exactly; input files that are not plain tables are refused with exit 2."""

import gzip
import os
import zipfile

import pandas as pd
import pytest

from aerec import data
from aerec.cli import main
from aerec.errors import DataError


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_zero_padded_ids_stay_distinct(tmp_path):
    f = _write(tmp_path / "zeros.csv", "user,item\n007,0100\n007,0200\n7,0100\n7,0300\n")
    d = data.load(f)
    assert d.user_ids.tolist() == ["007", "7"]
    assert d.item_ids.tolist() == ["0100", "0200", "0300"]
    assert len(d) == 4


@pytest.mark.parametrize("ids", [["+1", "1"], ["1e3", "1000"], ["1.0", "2"], ["ü", "ß"], ["-0", "0"]])
def test_non_canonical_integers_keep_their_text(tmp_path, ids):
    f = _write(tmp_path / "x.csv", "user,item\n" + "".join(f"u,{i}\n" for i in ids))
    assert sorted(data.load(f).item_ids.tolist()) == sorted(ids)


def test_canonical_integers_become_ints_and_quoted_ids_keep_separators(tmp_path):
    f = _write(tmp_path / "x.csv", 'user,item\n"a,b",10\n"c;d",2\n')
    d = data.load(f)
    assert d.user_ids.tolist() == ["a,b", "c;d"]
    assert d.item_ids.tolist() == [2, 10] and d.item_ids.dtype.kind == "i"


def test_headerless_tsv_positional_and_gzip(tmp_path):
    text = "u1\t007\t5\nu2\t7\t3\n"
    plain = _write(tmp_path / "r.tsv", text)
    packed = tmp_path / "r.tsv.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    for f in (plain, packed):
        d = data.load(f, header=False)
        assert d.item_ids.tolist() == ["007", "7"] and d.rating.tolist() == [5.0, 3.0]


def test_dataframe_ids_and_titles():
    df = pd.DataFrame({"customer": ["007", "7", "007"], "sku": [100, 200, 300], "name": ["a", "b", "c"],
                       "n": [1, 5, 9]})
    d = data.from_dataframe(df, user="customer", item="sku", rating="n", title="name")
    assert d.user_ids.tolist() == ["007", "7"] and d.item_ids.tolist() == [100, 200, 300]
    assert d.item_titles.tolist() == ["a", "b", "c"]
    same = data.load(df, user_col="customer", item_col="sku", rating_col="n")
    assert same.user_ids.tolist() == ["007", "7"]


def _rc(args, capsys):
    rc = main(args)
    return rc, capsys.readouterr().err


def test_bad_inputs_exit_2_naming_the_file(tmp_path, capsys, monkeypatch):
    notgz = tmp_path / "r.csv.gz"
    notgz.write_bytes(b"user,item\n1,2\n")
    rc, err = _rc(["data", "info", str(notgz)], capsys)
    assert rc == 2 and "r.csv.gz" in err and "gzip" in err
    rc, err = _rc(["data", "info", "/dev/zero"], capsys)
    assert rc == 2 and "not a regular file" in err
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    rc, err = _rc(["data", "info", str(fifo)], capsys)  # would hang if it were opened
    assert rc == 2 and "FIFO" in err
    plain = _write(tmp_path / "r.csv", "user,item\n1,2\n")
    rc, err = _rc(["data", "info", str(plain), "--sep", "[a"], capsys)
    assert rc == 2 and "regular expression" in err
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\x00\x01\x02user")
    rc, err = _rc(["data", "info", str(binary)], capsys)
    assert rc == 2 and "b.csv" in err


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_compression_bomb_is_refused_not_loaded(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("AEREC_MAX_DECOMPRESSED", "100000")
    body = b"user,item\n" + b"1,2\n" * 200_000  # 800 kB of text
    if kind == "gz":
        f = tmp_path / "bomb.csv.gz"
        f.write_bytes(gzip.compress(body))
    else:
        f = tmp_path / "bomb.zip"
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("r.csv", body)
    with pytest.raises(DataError, match="compression bomb"):
        data.load(f)
    monkeypatch.setenv("AEREC_MAX_DECOMPRESSED", str(10**7))
    assert len(data.load(f)) == 1  # under the cap it reads (one pair, duplicates merged)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path, capsys):
    f = _write(tmp_path / "r.csv", "user,item\n1,2\n")
    f.chmod(0)
    rc, err = _rc(["data", "info", str(f)], capsys)
    assert rc == 2 and "r.csv" in err


def test_binary_config_and_missing_export_folder(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(b"\xff\xfe\x00binary")
    rc, err = _rc(["train", "pop", "-d", "x.csv", "-p", "strong", "--config", str(cfg)], capsys)
    assert rc == 2 and "c.toml" in err
    fifo = tmp_path / "c.fifo.toml"
    os.mkfifo(fifo)
    rc, err = _rc(["train", "pop", "-d", "x.csv", "-p", "strong", "--config", str(fifo)], capsys)
    assert rc == 2 and "not a regular file" in err
    blocker = tmp_path / "afile"
    blocker.write_text("")
    for cmd in (["data", "synth", "--users", "5", "--items", "5", "--interactions", "10", "--out"],
                ["split", str(_write(tmp_path / "r.csv", "user,item\n1,2\n")), "-p", "weak", "--out"]):
        rc, err = _rc([*cmd, str(blocker / "sub" / "x.csv")], capsys)  # a folder that cannot exist
        assert rc == 2 and err.strip().splitlines()[-1].startswith("error: ") and "afile" in err, err
    rc, _ = _rc(["data", "synth", "--users", "5", "--items", "5", "--interactions", "10", "--out",
                 str(tmp_path / "new" / "x.csv")], capsys)
    assert rc == 0 and (tmp_path / "new" / "x.csv").exists()  # a missing folder is created


def test_registered_format_from_a_bomb_zip_or_a_fifo_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("AEREC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AEREC_MAX_DECOMPRESSED", "100000")
    z = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("ml-100k/u.data", b"1\t2\t5\t881250949\n" * 20_000)
    with pytest.raises(DataError, match="compression bomb"):
        data.fetch("ml-100k", path=z)
    fifo = tmp_path / "u.data"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="FIFO"):
        data.fetch("ml-100k", path=fifo)


def test_zero_padded_items_recommend_by_their_own_ids(tmp_path, capsys):
    f = tmp_path / "codes.csv"
    rows = [f"u{u},{i:05d}" for u in range(30) for i in range(u % 3 * 5, u % 3 * 5 + 5) if (u + i) % 5]
    f.write_text("user,item\n" + "\n".join(rows) + "\n")
    assert main(["train", "pop", "-d", str(f), "-p", "full", "--out", str(tmp_path / "r"), "-q"]) == 0
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "r"), "--items", "00005", "-k", "2", "--json"]) == 0
    import json

    rec = json.loads(capsys.readouterr().out)
    assert rec["unknown_items"] == [] and rec["fallback"] is None
    assert all(len(i) == 5 and i.startswith("000") for i in rec["items"])
