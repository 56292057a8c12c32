"""Dates of any year, mixed date and date-time strings, day-first ambiguity, and the duplicate
(user, item) rule: counts summed, ratings kept latest, or what --duplicates says."""

import numpy as np
import pandas as pd
import pytest

from aerec import data
from aerec.cli import main
from aerec.errors import DataError


def _csv(tmp_path, text, name="r.csv"):
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def _seconds(day: str) -> int:
    return int(np.datetime64(day, "s").astype(np.int64))


def test_dates_of_any_year_load_as_exact_seconds(tmp_path, capsys):
    f = _csv(tmp_path, "user,item,date\n1,1,9999-12-31\n1,2,0001-01-01\n2,1,2500-06-01\n2,2,1970-01-01 00:00:01\n")
    d = data.load(f)
    assert d.timestamp.tolist() == [_seconds("9999-12-31"), _seconds("0001-01-01"), _seconds("2500-06-01"), 1]
    assert main(["data", "info", str(f)]) == 0
    frame = pd.DataFrame({"user": [1, 2], "item": [1, 2],
                          "time": pd.to_datetime(["9999-12-31", "2020-01-01"]).as_unit("s")})
    assert data.from_dataframe(frame, time="time").timestamp.tolist() == [_seconds("9999-12-31"),
                                                                          _seconds("2020-01-01")]
    aware = frame.assign(time=frame["time"].dt.tz_localize("Europe/Paris"))
    assert data.from_dataframe(aware, time="time").timestamp[1] == _seconds("2020-01-01") - 3600


def test_mixed_dates_and_date_times_parse(tmp_path):
    d = data.load(_csv(tmp_path, "user,item,date\n1,1,2020-01-01\n1,2,2020-01-01 23:59:59\n1,3,9999-12-31 23:59:59\n"))
    assert d.timestamp.tolist() == [_seconds("2020-01-01"), _seconds("2020-01-01") + 86399,
                                    _seconds("9999-12-31") + 86399]


def test_day_first_ambiguity_is_refused_or_declared(tmp_path, capsys):
    f = _csv(tmp_path, "user,item,date\n1,1,01/02/2020\n1,2,03/04/2020\n")
    with pytest.raises(DataError, match="could be day-first or month-first; pass --dayfirst or --monthfirst"):
        data.load(f)
    assert data.load(f, dayfirst=True).timestamp[0] == _seconds("2020-02-01")
    assert data.load(f, dayfirst=False).timestamp[0] == _seconds("2020-01-02")
    assert main(["data", "info", str(f), "--dayfirst", "--time-col", "date"]) == 0
    assert main(["data", "info", str(f)]) == 2
    assert "--dayfirst" in capsys.readouterr().err
    sure = _csv(tmp_path, "user,item,date\n1,1,31/01/2020\n1,2,03/04/2020\n", "s.csv")
    assert data.load(sure).timestamp[1] == _seconds("2020-04-03")  # day 31 settles it
    with pytest.raises(DataError, match="cannot be month-first"):
        data.load(sure, dayfirst=False)
    frame = pd.DataFrame({"user": [1, 1], "item": [1, 2], "time": ["01/02/2020", "03/04/2020"]})
    with pytest.raises(DataError, match="day-first or month-first"):
        data.from_dataframe(frame, time="time")
    assert data.from_dataframe(frame, time="time", dayfirst=True).timestamp[0] == _seconds("2020-02-01")


RETAIL = "customer_id,sku,quantity,order_date\nC-1,007,2,2020-01-01\nC-1,007,3,2020-01-05\nC-1,A,1,2020-01-02\n" \
         "C-2,A,5,2020-01-03\nC-2,A,1,2020-01-01\n"


def test_duplicate_counts_are_summed_and_ratings_keep_the_latest(tmp_path):
    f = _csv(tmp_path, RETAIL)
    with pytest.warns(data.DataWarning, match=r"2 duplicate \(user, item\) rows merged, values summed \(counts\)"):
        d = data.load(f)
    got = {(d.user_ids[u], d.item_ids[i]): r for u, i, r in zip(d.user, d.item, d.rating)}
    assert got == {("C-1", "007"): 5.0, ("C-1", "A"): 1.0, ("C-2", "A"): 6.0}
    assert d.meta["duplicates"] == {"rule": "sum", "merged_rows": 2}
    ratings = _csv(tmp_path, "user,item,rating,ts\n1,2,5,300\n1,2,1,100\n", "ratings.csv")
    with pytest.warns(data.DataWarning, match="kept the latest by timestamp"):
        assert data.load(ratings).rating.tolist() == [5.0]


@pytest.mark.parametrize("rule,want", [("sum", 6.0), ("last", 5.0), ("first", 1.0), ("max", 5.0)])
def test_the_duplicate_rule_can_be_chosen_everywhere(tmp_path, rule, want, capsys):
    f = _csv(tmp_path, RETAIL)
    with pytest.warns(data.DataWarning, match="rows merged"):
        d = data.load(f, duplicates=rule)
        frame = data.from_dataframe(pd.read_csv(f, dtype={"customer_id": str, "sku": str}), duplicates=rule)
    for inter in (d, frame):
        c2 = int(np.flatnonzero(inter.user_ids == "C-2")[0])
        assert inter.rating[inter.user == c2].tolist() == [want]
    assert main(["data", "info", str(f), "--duplicates", rule]) == 0
    assert f"rows merged, {'values summed' if rule == 'sum' else ''}" in capsys.readouterr().err
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[data]\nduplicates = "{rule}"\n')
    args = ["train", "pop", "-d", str(f), "-p", "full", "--config", str(cfg), "-q", "--out", str(tmp_path / rule)]
    assert main(args) == 0
    assert f"merged, {'values summed' if rule == 'sum' else ''}" in capsys.readouterr().err
    cfg.write_text('[data]\nduplicates = "mean"\n')
    assert main([*args[:-1], str(tmp_path / "bad")]) == 2
    assert "duplicates must be one of sum, last, max, first" in capsys.readouterr().err


def test_a_value_beyond_float32_is_refused_where_it_enters(tmp_path, capsys):
    f = _csv(tmp_path, "user_id,item_id,rating\n1,1,1e39\n1,2,4\n2,1,5\n")
    assert main(["data", "info", str(f)]) == 2
    assert "line 2: rating 1e+39 is beyond the 32-bit float range" in capsys.readouterr().err
    with pytest.raises(DataError, match="row 1: rating 1e"):
        data.from_dataframe(pd.DataFrame({"user": [1], "item": [1], "rating": [1e39]}), rating="rating")
