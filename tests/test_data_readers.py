"""User files: column mapping, and a one-line DataError (file, line, problem) for each bad input."""

import numpy as np
import pandas as pd
import pytest

from aerec.data import DataWarning, load, read_file
from aerec.errors import DataError


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("AEREC_HOME", str(tmp_path / "home"))


def write(tmp_path, text, name="r.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_with_header_guesses_columns(tmp_path):
    p = write(tmp_path, "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.0,200\n2,10,5,300\n\n")
    d = read_file(p)
    assert (d.n_users, d.n_items, len(d)) == (2, 2, 3)
    assert d.user_ids.tolist() == [1, 2] and d.item_ids.tolist() == [10, 20]
    assert d.rating.dtype == np.float32 and d.timestamp.tolist() == [100, 200, 300]
    assert d.csr()[0, 1] == 3.0


def test_mapping_by_name_and_position_without_header(tmp_path):
    p = write(tmp_path, "a\tx\t5\nb\ty\t1\n", "r.tsv")
    d = read_file(p, header=False)
    assert d.user_ids.tolist() == ["a", "b"] and d.rating.tolist() == [5.0, 1.0]
    p2 = write(tmp_path, "sku;who;stars;when\ni1;u1;2;2020-01-02\ni2;u1;4;2020-01-03\n", "r2.txt")
    d2 = load(p2, user_col="who", item_col="sku", rating_col="stars", time_col="when", sep=";")
    assert d2.user_ids.tolist() == ["u1"] and d2.timestamp.tolist() == [1577923200, 1578009600]
    d3 = read_file(p2, user_col=1, item_col="0", sep=";")
    assert d3.rating.tolist() == [2.0, 4.0] and d3.timestamp is None  # "stars" is a known rating name
    assert d3.item_ids.tolist() == ["i1", "i2"]


def test_double_colon_and_parquet(tmp_path):
    d = read_file(write(tmp_path, "1::5::3::9\n2::5::4::8\n", "ratings.dat"), header=False)
    assert len(d) == 2 and d.timestamp.tolist() == [9, 8]
    pq = tmp_path / "r.parquet"
    pd.DataFrame({"user": ["a", "b"], "item": [1, 2], "rating": [1.0, 2.0]}).to_parquet(pq)
    assert len(read_file(pq)) == 2


def test_missing_file_and_column(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        read_file(tmp_path / "nope.csv")
    p = write(tmp_path, "user,item\n1,2\n")
    with pytest.raises(DataError, match=r"r\.csv: no column 'stars' for rating \(columns: user, item\)"):
        read_file(p, rating_col="stars")
    with pytest.raises(DataError, match=r"r\.csv: no column 5 for item"):
        read_file(p, item_col=5)
    q = write(tmp_path, "a,b\n1,2\n", "q.csv")
    with pytest.raises(DataError, match=r"q\.csv: cannot tell which column holds the user ids"):
        read_file(q)


def test_malformed_rows_name_the_line(tmp_path):
    p = write(tmp_path, "user,item,rating\n1,2,3\n4,5,6,7\n")
    with pytest.raises(DataError, match=r"r\.csv line 3: malformed row, expected 3 fields, found 4"):
        read_file(p)
    p = write(tmp_path, "user,item,rating\n1,2,3\n\n4\n")
    with pytest.raises(DataError, match=r"r\.csv line 4: missing item id"):
        read_file(p)
    from aerec.data.formats import read_ml_dat

    p = write(tmp_path, "1::2::3::4\n1:2::3::4::5\n", "ratings.dat")
    with pytest.raises(DataError, match=r"ratings\.dat line 2: malformed row"):
        read_ml_dat(p, name="x")


def test_bad_ratings(tmp_path):
    cases = {"abc": r"line 3: rating 'abc' is not a number", "nan": r"line 3: rating is missing or NaN",
             "inf": r"line 3: rating inf is not finite", "": r"line 3: rating is missing or NaN"}
    for bad, msg in cases.items():
        p = write(tmp_path, f"user,item,rating\n1,2,3\n1,3,{bad}\n")
        with pytest.raises(DataError, match=r"r\.csv " + msg):
            read_file(p)


def test_bad_timestamp_and_non_numeric_where_numeric(tmp_path):
    p = write(tmp_path, "user,item,timestamp\n1,2,5\n1,3,yesterday-ish\n")
    with pytest.raises(DataError, match=r"r\.csv line 3: timestamp 'yesterday-ish' is neither a number nor a date"):
        read_file(p)
    from aerec.data.formats import read_ml100k

    p = write(tmp_path, "1\t2\t3\t4\nx\t2\t3\t4\n", "u.data")
    with pytest.raises(DataError, match=r"u\.data line 2: user id 'x' is not an integer"):
        read_ml100k(p)


def test_duplicates_keep_latest_by_timestamp(tmp_path):
    p = write(tmp_path, "user,item,rating,timestamp\n1,2,5,300\n1,2,1,100\n1,3,2,50\n1,3,4,60\n")
    with pytest.warns(DataWarning, match=r"r\.csv: 2 duplicate \(user, item\) rows merged, kept the latest by timestamp"):
        d = read_file(p)
    assert sorted(zip(d.item_ids[d.item].tolist(), d.rating.tolist())) == [(2, 5.0), (3, 4.0)]
    assert d.meta["duplicates_dropped"] == 2


def test_duplicates_without_timestamps_keep_last(tmp_path):
    p = write(tmp_path, "user,item,rating\n1,2,5\n1,2,1\n")
    with pytest.warns(DataWarning, match=r"1 duplicate .* kept the last occurrence in the file \(no timestamps\)"):
        d = read_file(p)
    assert d.rating.tolist() == [1.0]


def test_empty_inputs(tmp_path):
    with pytest.raises(DataError, match=r"e\.csv: the file is empty"):
        read_file(write(tmp_path, "", "e.csv"))
    with pytest.raises(DataError, match=r"h\.csv: no interactions"):
        read_file(write(tmp_path, "user,item,rating\n\n\n", "h.csv"))
    d = read_file(write(tmp_path, "user,item,rating\n1,2,1\n2,2,2\n", "low.csv"))
    with pytest.raises(DataError, match=r"no interactions left after filtering"):
        d.binarize().compact()


def test_registered_name_rejects_column_options():
    with pytest.raises(DataError, match=r"ml-100k is a registered data set; column options"):
        load("ml-100k", sep=",")
    with pytest.raises(DataError, match=r"nosuch: no such file, and not a registered data set"):
        load("nosuch")
