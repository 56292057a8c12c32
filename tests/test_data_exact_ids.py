"""1,000 hostile ids round-trip exactly from CSV, TSV, Parquet and DataFrames to recommendations
and back; ids never wrap, never collide through non-ASCII digits, and the service takes back
any id a reader accepts."""

import numpy as np
import pandas as pd
import pytest
from helpers import hostile_ids, write_raw_table

from aerec import data, io, models
from aerec.errors import DataError


def _rows(items: list[str], users: list[str]) -> list[tuple[str, str]]:
    rows = [(users[j % len(users)], item) for j, item in enumerate(items)]  # every item at least once
    rng = np.random.default_rng(1)
    rows += [(users[int(u)], items[int(i)]) for u, i in zip(rng.integers(0, len(users), 800),
                                                             rng.integers(0, 40, 800))]
    return rows


def _inputs(tmp_path, rows):
    frame = pd.DataFrame(rows, columns=["user", "item"])
    csv = tmp_path / "pandas.csv"
    frame.to_csv(csv, index=False, lineterminator="\r\n")  # CRLF: pandas then quotes ids holding a bare \r
    raw_csv = tmp_path / "raw.csv"
    write_raw_table(raw_csv, rows, ",")
    tsv = tmp_path / "raw.tsv"
    write_raw_table(tsv, rows, "\t")
    pq = tmp_path / "r.parquet"
    frame.to_parquet(pq, index=False)
    return {"csv (pandas writer)": csv, "csv (raw)": raw_csv, "tsv (raw)": tsv, "parquet": pq, "dataframe": frame}


def test_a_thousand_hostile_ids_round_trip_through_every_input_to_recommendations(tmp_path):
    items = hostile_ids(1000)
    users = hostile_ids(200, seed=1)
    rows = _rows(items, users)
    for kind, src in _inputs(tmp_path, rows).items():
        inter = data.load(src, duplicates="last")
        assert sorted(inter.item_ids.tolist()) == sorted(items), kind
        assert sorted(inter.user_ids.tolist()) == sorted(users), kind
        pairs = {(inter.user_ids[u], inter.item_ids[i]) for u, i in zip(inter.user, inter.item)}
        assert pairs == set(rows), kind
        model = models.create("pop").fit(inter)
        for user in (users[0], "NaN", "None", " ", "007"):
            if user not in users:
                continue
            rec = model.recommend_user(user, k=len(items))
            seen = {i for u, i in rows if u == user}
            assert set(rec.item_ids) == set(items) - seen, (kind, user)
        back = model.recommend_items(items[:60], k=len(items))  # the ids go back in exactly
        assert back.unknown_items == [] and set(back.item_ids) == set(items[60:]), kind


def test_weird_al_and_a_trailing_space_stay_distinct_in_a_headerless_tsv(tmp_path):
    f = tmp_path / "plays.tsv"
    f.write_text('1\t"Weird Al" Yankovic\t5\n1\tSigur Rós \t3\n2\tSigur Rós\t7\n2\tAC/DC\t1\n', encoding="utf-8")
    d = data.load(f, header=False)
    assert sorted(d.item_ids.tolist()) == sorted(['"Weird Al" Yankovic', "Sigur Rós ", "Sigur Rós", "AC/DC"])
    quoted = tmp_path / "q.csv"
    quoted.write_text('user,item\n1,"Weird Al"\n1,"a,""b"""\n2,x"y\n', encoding="utf-8")
    assert sorted(data.load(quoted).item_ids.tolist()) == sorted(["Weird Al", 'a,"b"', 'x"y'])
    unclosed = tmp_path / "u.csv"
    unclosed.write_text('user,item\n1,"Weird Al\n2,x\n', encoding="utf-8")  # a quote that never closes
    assert sorted(data.load(unclosed).item_ids.tolist()) == ['"Weird Al', "x"]


def test_trimming_is_asked_for_and_counted(tmp_path, capsys):
    f = tmp_path / "r.csv"
    f.write_text("user,item\n1,Sigur Rós \n1,Sigur Rós\n2, x\n", encoding="utf-8")
    with pytest.warns(data.DataWarning, match="2 item ids begin or end with spaces and are kept"):
        assert data.load(f).n_items == 3
    with pytest.warns(data.DataWarning, match=r"trimmed spaces around 2 item ids; 1 of them merged"):
        assert sorted(data.load(f, trim_ids=True).item_ids.tolist()) == ["Sigur Rós", "x"]
    from aerec.cli import main

    assert main(["data", "info", str(f), "--trim-ids", "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"items": 2' in out and "trimmed spaces around 2 item ids; 1 of them merged" in err


def test_missing_ids_follow_one_rule_for_files_and_dataframes(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("user,item\nNA,1\nNone,2\nNaN,3\nnull,4\n", encoding="utf-8")
    from_file = data.load(f)
    frame = pd.DataFrame({"user": ["NA", "None", "NaN", "null"], "item": [1, 2, 3, 4]})
    from_frame = data.from_dataframe(frame)
    assert sorted(from_file.user_ids.tolist()) == sorted(from_frame.user_ids.tolist()) == ["NA", "NaN", "None", "null"]
    empty = tmp_path / "e.csv"
    empty.write_text("user,item\n,1\n2,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 2: missing user id"):
        data.load(empty)
    for missing in (None, np.nan, pd.NA):
        with pytest.raises(DataError, match="row 1: missing user id"):
            data.from_dataframe(pd.DataFrame({"user": [missing, "b"], "item": [1, 2]}))


def test_uint64_ids_keep_their_value(tmp_path):
    big = [2**64 - 1, 2**63, 7]
    frame = pd.DataFrame({"user": np.array(big, dtype=np.uint64), "item": np.array(big, dtype=np.uint64)})
    d = data.from_dataframe(frame)
    assert sorted(d.user_ids.tolist()) == sorted(big) and sorted(d.item_ids.tolist()) == sorted(big)
    model = models.create("pop").fit(d)
    assert set(model.recommend_items([2**64 - 1], k=5).item_ids) == {2**63, 7}
    f = tmp_path / "big.csv"
    f.write_text("user,item\n" + "".join(f"{b},{b}\n" for b in big))
    assert sorted(data.load(f).item_ids.tolist()) == sorted(big)  # the same ids from text
    f.write_text("user,item\n1,-1\n1,18446744073709551616\n")
    assert data.load(f).item_ids.tolist() == ["-1", "18446744073709551616"]  # beyond 64 bits: text
    model.save(tmp_path / "m")
    again = io.load(tmp_path / "m")
    assert sorted(again.item_ids.tolist()) == sorted(big) and set(again.recommend_user(2**63, k=5).item_ids) == {2**64 - 1, 7}


def test_only_ascii_digits_are_numbers(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("user,item\n12,a\n1２,b\n1٢,c\n", encoding="utf-8")
    d = data.load(f)
    assert sorted(d.user_ids.tolist()) == sorted(["12", "1２", "1٢"])
    frame = pd.DataFrame({"user": ["12", "1２", "1٢"], "item": ["a", "b", "c"]})
    assert data.from_dataframe(frame).n_users == 3


def test_ids_are_capped_at_the_length_the_service_takes_back(tmp_path):
    from aerec.serve import app

    assert app.MAX_ID_CHARS == data.MAX_ID_CHARS
    f = tmp_path / "r.csv"
    f.write_text("user,item\n1," + "x" * data.MAX_ID_CHARS + "\n1," + "y" * 300 + "\n", encoding="utf-8")
    assert data.load(f).n_items == 2
    f.write_text("user,item\n1," + "x" * (data.MAX_ID_CHARS + 1) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"line 2: item id of {data.MAX_ID_CHARS + 1:,} characters"):
        data.load(f)


def test_dataframe_mistakes_are_one_clear_error():
    dup = pd.DataFrame([[1, 2, 3]], columns=["user", "item", "item"])
    with pytest.raises(DataError, match="column 'item' appears more than once"):
        data.from_dataframe(dup)
    flags = pd.DataFrame({True: [1], False: [2]})
    with pytest.raises(DataError, match="column label True"):
        data.from_dataframe(flags, user=True, item=False)
    with pytest.raises(DataError, match="row 2: user id .* lone surrogate"):
        data.from_dataframe(pd.DataFrame({"user": ["a", "b\ud800"], "item": [1, 2]}, dtype=object))
    with pytest.raises(DataError, match=r"row 1: item id \(1, 2\) is a tuple"):
        data.from_dataframe(pd.DataFrame({"user": ["a"], "item": [(1, 2)]}))
    with pytest.raises(DataError, match=r"row 2: user ids 7 and '7' would be the same id"):
        data.from_dataframe(pd.DataFrame({"user": [7, "7"], "item": [1, 2]}))


def test_the_service_takes_back_every_id_it_returns(tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aerec.serve.app import create_app

    long_ids = ["x" * 300, "y" * data.MAX_ID_CHARS, '"Weird Al" Yankovic', "Sigur Rós ", "NaN", "1٢"]
    frame = pd.DataFrame({"user": ["a", "a", "b", "b", "c", "c"], "item": long_ids})
    model = models.create("pop").fit(data.from_dataframe(frame))
    model.save(tmp_path / "m")
    with TestClient(create_app(io.load(tmp_path / "m"), model_dir=tmp_path / "m")) as client:
        got = client.post("/recommend", json={"items": [], "k": 10}).json()
        assert sorted(got["items"]) == sorted(long_ids)
        back = client.post("/recommend", json={"items": got["items"][:3], "k": 10})
        assert back.status_code == 200 and back.json()["unknown_items"] == []
