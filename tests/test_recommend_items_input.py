"""`aerec recommend --items-file / --items-json`: any item id from the CLI, exactly (commas,
spaces, quotes, unicode, line separators other than \\n), ratings through --items-sep or
[id, rating] pairs, and the data readers' file guard (no FIFO hang, no /dev/zero)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from helpers import hostile_ids

from aerec import io, models
from aerec.cli import main
from aerec.cli import recommend as recommend_cli
from aerec.serve.engine import Engine

# 24 ids for the 24 items of the block data: what artist, product and free-text ids look like
HOSTILE = [
    "Crosby, Stills, Nash & Young", '"Weird Al" Yankovic', "Sigur Rós ", " leading space", "AC/DC", "007",
    "C-00042", "NaN", "None", "#1 hits", "it's", "tab\there", "line\u2028sep", "vt\x0bff\x0c", "été ☃ 日本語",
    "1e5", "a,b,c", "  ", "Artist", "Artist 174", 'q"uote"', "back\\slash", "multi\nline", "cr\rinside",
]


def artist_ids() -> list[str]:
    assert len(HOSTILE) == len(set(HOSTILE)) == 24
    return list(HOSTILE)


def test_a_thousand_hostile_ids_are_read_exactly(tmp_path, capsys):
    """Half the ids go in, k covers the catalogue: the answer must be exactly the other half. An id
    read wrongly either shows up as unknown or, if it turns into its near-twin ("Sigur Rós " ->
    "Sigur Rós"), excludes the twin instead and comes back itself."""
    ids = hostile_ids()  # the shared 1,000 (tests/helpers.py)
    x = sp.csr_matrix(np.ones((2, len(ids)), np.float32))
    model = models.create("pop").fit(x)
    io.save(model, tmp_path / "pop", item_ids=np.array(ids, dtype=object), user_ids=np.array(["u0", "u1"]), history=x)
    rng = np.random.default_rng(1)
    given = set(rng.choice(ids, size=len(ids) // 2, replace=False).tolist())
    rest = set(ids) - given
    # lines: no line break in an id, no "\r" at its end; a BOM opens no file (it is not part of an id there)
    lines = sorted((i for i in given if "\n" not in i and not i.endswith("\r")), key=lambda i: i.startswith("\ufeff"))
    cases = [("--items-file", "\n".join(lines) + "\n", set(ids) - set(lines)), ("--items-json", json.dumps(sorted(given)), rest)]
    for flag, text, want in cases:
        f = tmp_path / "given"
        f.write_text(text, encoding="utf-8")
        code, out, err = run(capsys, "recommend", tmp_path / "pop", flag, f, "-k", 1000, "--json")
        got = json.loads(out)
        assert code == 0 and got["unknown_items"] == [], (flag, err, got["unknown_items"][:5])
        assert set(got["items"]) == want, (flag, sorted(set(got["items"]) ^ want)[:5])
    assert len(given) - len(lines) < 10  # the line format covered almost all of them


@pytest.fixture(scope="module")
def hostile_dir(block_data, tmp_path_factory):
    data = replace(block_data, item_ids=np.array(artist_ids(), dtype=object), item_titles=None)
    train = data.csr("ones")
    model = models.create("multdae", epochs=3, hidden=(8,), batch_size=16).fit(train)
    path = tmp_path_factory.mktemp("hostile") / "model"
    io.save(model, path, item_ids=data.item_ids, user_ids=data.user_ids, history=train)
    return path


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _baskets(ids):
    return [ids[i : i + 3] for i in range(0, len(ids), 3)]


def test_hostile_ids_round_trip_through_items_file(hostile_dir, tmp_path, capsys):
    engine = Engine(io.load(hostile_dir))
    # a line holds any id but one with a line break ("\n", or "\r" ending a line); --items-json takes those
    lines_ok = [x for x in artist_ids() if "\n" not in x and not x.endswith("\r")]
    assert len(lines_ok) == 23 and "cr\rinside" in lines_ok
    for basket in _baskets(lines_ok):
        f = tmp_path / "items.txt"
        f.write_bytes(("\n".join(basket) + "\n").encode())
        code, out, err = run(capsys, "recommend", hostile_dir, "--items-file", f, "-k", "5", "--json")
        assert code == 0, err
        got = json.loads(out)
        assert got == engine.recommend_items(basket, 5).to_dict()
        assert got["unknown_items"] == [] and got["fallback"] is None, (basket, got)
        assert set(got["items"]) <= set(HOSTILE) and not set(got["items"]) & set(basket)
    # Windows line ends and a missing final line break are fine
    f.write_bytes(b"AC/DC\r\nArtist 174\r\nCrosby, Stills, Nash & Young")
    code, out, _ = run(capsys, "recommend", hostile_dir, "--items-file", f, "--json")
    assert code == 0 and json.loads(out)["unknown_items"] == []


def test_hostile_ids_round_trip_through_items_json(hostile_dir, tmp_path, capsys):
    engine = Engine(io.load(hostile_dir))
    for basket in _baskets(artist_ids()):
        f = tmp_path / "items.json"
        f.write_text(json.dumps(basket, ensure_ascii=basket[0] < "M"), encoding="utf-8")  # escaped and raw unicode
        code, out, err = run(capsys, "recommend", hostile_dir, "--items-json", f, "-k", "5", "--json")
        assert code == 0, err
        got = json.loads(out)
        assert got == engine.recommend_items(basket, 5).to_dict() and got["unknown_items"] == [], (basket, got)
        # the answer's ids are the model's, exactly, and go straight back in
        f.write_text(json.dumps(got["items"][:3]))
        code, out, _ = run(capsys, "recommend", hostile_dir, "--items-json", f, "--json")
        assert code == 0 and json.loads(out)["unknown_items"] == []


def test_the_table_prints_hostile_ids(hostile_dir, tmp_path, capsys):
    f = tmp_path / "items.txt"
    f.write_text("Artist 174\nnope, not here\n")
    code, out, _ = run(capsys, "recommend", hostile_dir, "--items-file", f, "-k", "3")
    assert code == 0 and "1 unknown item id(s) ignored: nope, not here" in out


def test_ratings_through_items_sep_and_json_pairs(autorec_dir, tmp_path, capsys):
    want = Engine(io.load(autorec_dir)).recommend_items(["100", "101", "102"], 5, ratings=[5, 1, 4]).to_dict()
    for sep, flag in ((",", ","), ("\t", "tab"), (" :: ", " :: ")):
        f = tmp_path / "rated.txt"
        f.write_text(f"100{sep}5\n101{sep}1\n102{sep}4\n")
        code, out, err = run(capsys, "recommend", autorec_dir, "--items-file", f, "--items-sep", flag, "-k", "5", "--json")
        assert code == 0 and json.loads(out) == want, err
    f = tmp_path / "rated.json"
    f.write_text('[[100, 5], ["101", 1.0], [102, 4]]')
    code, out, err = run(capsys, "recommend", autorec_dir, "--items-json", f, "-k", "5", "--json")
    assert code == 0 and json.loads(out) == want, err


def test_items_sep_cuts_at_the_last_separator(tmp_path):
    f = tmp_path / "rated.csv"
    f.write_text("Crosby, Stills, Nash & Young,5\n\"Weird Al\" Yankovic, 4\n")
    items, ratings = recommend_cli.read_items_file(f, ",")
    assert items == ["Crosby, Stills, Nash & Young", '"Weird Al" Yankovic'] and ratings == [5.0, 4.0]
    assert recommend_cli.read_items_file(f) == (["Crosby, Stills, Nash & Young,5", "\"Weird Al\" Yankovic, 4"], None)


def test_old_item_rating_lines_get_a_hint(tmp_path, capsys, block_data):
    """Before, --items-file read '100 5' as item 100 rated 5; now the line is one id, and a line
    that reads as a known id and a number gets a hint naming --items-sep."""
    model = models.create("pop").fit(block_data.csr("ones"))
    path = tmp_path / "pop"
    io.save(model, path, item_ids=block_data.item_ids, user_ids=block_data.user_ids, history=block_data.csr("ones"))
    f = tmp_path / "old.txt"
    f.write_text("100 5\n101,4\n")
    code, out, err = run(capsys, "recommend", path, "--items-file", f)
    assert code == 0 and "2 unknown item id(s)" in out
    assert "look like 'ITEM RATING'" in err and "--items-sep" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, message", [
    ('{"items": [1]}', "expected a JSON list"),
    ('"100"', "expected a JSON list"),
    ("[100, [101, 5]]", "not a mix"),
    ("[true]", "must be a string or an integer"),
    ("[1.5]", "must be a string or an integer"),
    ("[null]", "must be a string or an integer"),
    ("[[100]]", "expected [id, rating]"),
    ('[[100, "5"]]', "expected [id, rating]"),
    ("[[100, 5, 1]]", "expected [id, rating]"),
    ("[[100, NaN]]", "NaN is not valid JSON"),
    ("[100,", "not valid JSON (line 1"),
    ('["\\ud800"]', "lone surrogate"),
    ("[" * 100000 + "]" * 100000, "not valid JSON"),
])
def test_bad_items_json_is_one_line_exit_2(hostile_dir, tmp_path, capsys, text, message):
    f = tmp_path / "bad.json"
    f.write_text(text)
    code, out, err = run(capsys, "recommend", hostile_dir, "--items-json", f)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("args, message", [
    (["--items", "100", "--items-sep", ","], "--items-sep goes with --items-file"),
    (["--items-file", "F", "--items-sep", ""], "--items-sep is empty"),
    (["--items-file", "F", "--items-json", "F"], "exactly one of"),
    (["--items-json", "F", "--ratings", "5"], "--ratings goes with --items"),
])
def test_option_mistakes_are_one_line(hostile_dir, tmp_path, capsys, args, message):
    f = tmp_path / "ok.txt"
    f.write_text("AC/DC\n")
    code, _, err = run(capsys, "recommend", hostile_dir, *[f if a == "F" else a for a in args])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_file_over_the_cap_is_refused(hostile_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(recommend_cli, "ITEMS_FILE_CAP", 64)
    f = tmp_path / "big.txt"
    f.write_text("AC/DC\n" * 20)
    for flag in ("--items-file", "--items-json"):
        code, _, err = run(capsys, "recommend", hostile_dir, flag, f)
        assert code == 2 and "64-byte limit" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"), reason="needs FIFOs and /dev/zero")
@pytest.mark.parametrize("flag", ["--items-file", "--items-json"])
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_fifo_and_dev_zero_are_refused_not_read(hostile_dir, tmp_path, flag, kind):
    """In a subprocess with a timeout: a hang fails the test instead of blocking the suite."""
    if kind == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    else:
        target = "/dev/zero"
    try:
        done = subprocess.run([sys.executable, "-m", "aerec", "recommend", str(hostile_dir), flag, str(target)],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"recommend {flag} {target} hung")
    err = done.stderr.strip()
    assert done.returncode == 2 and done.stdout == "" and len(err.splitlines()) == 1, err
    assert ("FIFO" if kind == "fifo" else "device") in err
