"""Property: reading any generated (often malformed) file either succeeds or raises DataError."""

import string

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aerec.data import read_file
from aerec.data.formats import read_ml100k, read_ml_dat, read_netflix
from aerec.errors import DataError

FIELD = st.one_of(
    st.integers(-5, 10**6).map(str),
    st.sampled_from(["", "nan", "NaN", "inf", "-inf", "1e400", "3.5", "abc", '"', '"x"', " 7 ", "1:", "::", "|", "\t"]),
    st.text(alphabet=string.ascii_letters + string.digits + ",;:.-\"' ", max_size=6),
)
LINE = st.lists(FIELD, min_size=0, max_size=6)
SEP = st.sampled_from([",", "\t", "::", ";", "|"])
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _text(lines, sep):
    return "\n".join(sep.join(f) for f in lines) + "\n"


def _read(fn, *args, **kwargs):
    try:
        d = fn(*args, **kwargs)
    except DataError as e:
        assert "\n" not in str(e)  # one line
        return None
    assert len(d) > 0 and np.isfinite(d.rating).all() if d.rating is not None else True
    return d


@SETTINGS
@given(lines=st.lists(LINE, min_size=0, max_size=8), sep=SEP, header=st.booleans(), ext=st.sampled_from([".csv", ".tsv", ".txt"]))
def test_user_files(tmp_path_factory, lines, sep, header, ext):
    p = tmp_path_factory.mktemp("p") / f"f{ext}"
    p.write_text(("user,item,rating,timestamp\n".replace(",", sep) if header else "") + _text(lines, sep))
    _read(read_file, p, header=header, sep=sep)
    _read(read_file, p, header=header)  # separator sniffed
    _read(read_file, p, header=header, user_col=0, item_col=1, rating_col=2)


@SETTINGS
@given(lines=st.lists(LINE, min_size=0, max_size=8))
def test_movielens_formats(tmp_path_factory, lines):
    d = tmp_path_factory.mktemp("m")
    (d / "u.data").write_text(_text(lines, "\t"))
    (d / "ratings.dat").write_text(_text(lines, "::"))
    _read(read_ml100k, d / "u.data")
    _read(read_ml_dat, d / "ratings.dat", name="x")


@SETTINGS
@given(lines=st.lists(LINE, min_size=0, max_size=8), head=st.booleans())
def test_netflix_format(tmp_path_factory, lines, head):
    p = tmp_path_factory.mktemp("n") / "combined_data_1.txt"
    p.write_text(("1:\n" if head else "") + _text(lines, ","))
    _read(read_netflix, p)


def test_binary_garbage(tmp_path):
    p = tmp_path / "g.csv"
    p.write_bytes(bytes(range(256)) * 3)
    _read(read_file, p)
    q = tmp_path / "g.parquet"
    q.write_bytes(b"PAR1 not really")
    _read(read_file, q)
    z = tmp_path / "g.npz"
    z.write_bytes(b"PK\x03\x04 broken")
    _read(read_file, z)


ID_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                  min_size=1, max_size=12)


@SETTINGS
@given(ids=st.lists(ID_TEXT, min_size=1, max_size=12, unique=True), sep=st.sampled_from([",", "\t", ";", "|"]),
       writer=st.sampled_from(["csv", "raw"]))
def test_any_text_id_round_trips(tmp_path_factory, ids, sep, writer):
    """Ids written by an RFC writer (Python's csv, quoting where needed) or by hand (raw unless
    a separator, line break or leading quote needs quotes) read back exactly."""
    import csv

    from helpers import write_raw_table

    p = tmp_path_factory.mktemp("ids") / "r.csv"
    rows = [("u", x) for x in ids]
    if writer == "csv":
        with open(p, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter=sep, lineterminator="\r\n")
            w.writerow(["user", "item"])
            w.writerows(rows)
    else:
        write_raw_table(p, rows, sep)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = read_file(p, sep=sep)
    assert sorted(map(str, d.item_ids.tolist())) == sorted(ids)
