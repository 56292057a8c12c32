"""`aerec data ...` and `aerec doctor` through aerec.cli.main: exit codes, text and --json."""

import json

import pytest

from aerec.cli import main


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("AEREC_HOME", str(tmp_path / "home"))


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_everywhere(capsys):
    for argv in (["data", "--help"], ["data", "fetch", "--help"], ["data", "list", "--help"],
                 ["data", "info", "--help"], ["data", "synth", "--help"], ["doctor", "--help"]):
        rc, out, _ = run(capsys, *argv)
        assert rc == 0 and "Usage:" in out


def test_synth_info_roundtrip_json(capsys, tmp_path):
    out_file = tmp_path / "s.npz"
    rc, out, _ = run(capsys, "-q", "data", "synth", "--users", "50", "--items", "40", "--interactions", "600",
                     "--seed", "1", "--out", str(out_file), "--json")
    assert rc == 0
    s = json.loads(out)
    assert (s["users"], s["items"], s["interactions"]) == (50, 40, 600)
    rc, out, _ = run(capsys, "data", "info", str(out_file), "--json")
    info = json.loads(out)
    assert rc == 0 and info["interactions"] == 600 and sum(info["rating_histogram"].values()) == 600
    assert info["binarized"]["interactions"] < 600
    for ext in ("csv", "parquet"):
        f = tmp_path / f"s.{ext}"
        assert run(capsys, "-q", "data", "synth", "--users", "50", "--items", "40", "--interactions", "600",
                   "--seed", "1", "--out", str(f))[0] == 0
        rc, out, _ = run(capsys, "data", "info", str(f), "--json")
        assert rc == 0 and json.loads(out)["interactions"] == 600


def test_info_column_mapping_and_warning(capsys, tmp_path):
    f = tmp_path / "r.txt"
    f.write_text("a|x|5|1\na|x|2|2\nb|y|4|3\n")
    rc, out, err = run(capsys, "data", "info", str(f), "--no-header", "--sep", "|", "--user-col", "0",
                       "--item-col", "1", "--rating-col", "2", "--time-col", "3")
    assert rc == 0 and "2 users, 2 items, 2 interactions" in out
    assert "warning: " in err and "1 duplicate (user, item) rows merged, kept the latest by timestamp" in err
    assert "rating histogram" in out and "binarized (rating > 3.5): 1 interactions" in out


def test_errors_are_one_line_exit_2(capsys, tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("user,item,rating\n1,2,nan\n")
    rc, out, err = run(capsys, "data", "info", str(f))
    assert rc == 2 and err.strip().count("\n") == 0
    assert err.startswith("error: ") and "bad.csv line 2: rating is missing or NaN" in err
    rc, _, err = run(capsys, "data", "fetch", "msd", "--path", str(tmp_path / "nothing"))
    assert rc == 2 and "nothing: no such file or folder" in err
    rc, _, err = run(capsys, "data", "info", "ml-5k")
    assert rc == 2 and "not a registered data set" in err


def test_list_and_doctor(capsys):
    rc, out, _ = run(capsys, "data", "list", "--json")
    rows = json.loads(out)
    assert rc == 0 and [r["name"] for r in rows] == ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "netflix", "msd"]
    assert {r["status"] for r in rows} == {"absent"}
    rc, out, _ = run(capsys, "data", "list")
    assert rc == 0 and "ml-25m" in out and "absent" in out
    rc, out, _ = run(capsys, "doctor", "--json")
    r = json.loads(out)
    assert rc == 0 and r["packages"]["numpy"] and isinstance(r["torch"]["threads"], int)
    assert "cuda_available" in r["torch"] and r["cache"]["home"].endswith("home")
    rc, out, _ = run(capsys, "doctor")
    assert rc == 0 and "torch threads" in out and "GPU:" in out and "AEREC_HOME" in out
