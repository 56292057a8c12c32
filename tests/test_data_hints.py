"""Hints a first-hour user needs: the separator that would parse, --no-header when the first
row is data, wider column guesses with the unused columns listed, and `data info` on counts."""

import numpy as np
import pytest

from aerec import data
from aerec.cli import main


def _run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_wrong_sep_names_the_one_that_parses(tmp_path, capsys):
    f = tmp_path / "r.csv"
    f.write_text("user;item;rating\n1;2;5\n1;3;4\n2;2;1\n")
    rc, _, err = _run(capsys, "data", "info", str(f), "--sep", ",")
    assert rc == 2 and "--sep ';'" in err and err.count("\n") == 1
    g = tmp_path / "r.txt"
    g.write_text("user\titem\n1\t2,x\n1\t3,y\n")
    rc, _, err = _run(capsys, "data", "info", str(g), "--sep", ",")
    assert rc == 2 and "--sep \\t" in err


def test_a_headerless_file_gets_the_no_header_hint(tmp_path, capsys):
    f = tmp_path / "plays.tsv"
    f.write_text("1\tAC/DC\t34\n1\tBjörk\t5\n2\tAC/DC\t1\n")
    rc, _, err = _run(capsys, "data", "info", str(f))
    assert rc == 2 and "add --no-header" in err
    rc, out, _ = _run(capsys, "data", "info", str(f), "--no-header")
    assert rc == 0 and "2 users, 2 items" in out


def test_retail_columns_are_guessed_and_the_unused_listed(tmp_path, capsys):
    f = tmp_path / "orders.csv"
    f.write_text("order_no,customer_id,sku,quantity,price,order_date,store\n"
                 "1,C-00042,007,2,9.5,2020-01-01,north\n2,C-00042,A-1,1,3.0,2020-01-02,south\n"
                 "3,C-7,007,20,9.5,2020-01-03,north\n")
    d = data.load(f)
    assert d.meta["columns"] == {"user": "customer_id", "item": "sku", "rating": "quantity",
                                 "timestamp": "order_date"}
    assert d.meta["unused_columns"] == ["order_no", "price", "store"]
    rc, _, err = _run(capsys, "data", "info", str(f))
    assert rc == 0 and "user=customer_id, item=sku, value=quantity, time=order_date; unused: order_no, price, store" in err
    g = tmp_path / "products.csv"
    g.write_text("client_id,product,qty,date\n1,p,1,2020-01-01\n")
    assert data.load(g).meta["columns"] == {"user": "client_id", "item": "product", "rating": "qty", "timestamp": "date"}


def test_data_info_on_counts_says_values_and_uses_log_bins(tmp_path, capsys):
    rng = np.random.default_rng(0)
    plays = np.minimum(rng.zipf(1.6, 3000), 5000)
    f = tmp_path / "plays.csv"
    rows = [f"u{k % 300},a{k // 300 % 97}x{k},{p}" for k, p in enumerate(plays)]
    f.write_text("user,artist,plays\n" + "\n".join(rows) + "\n")
    rc, out, _ = _run(capsys, "data", "info", str(f))
    assert rc == 0 and "values: counts" in out and "ratings: yes" not in out
    s = data.load(f).summary()
    hist = s["value_histogram"] if "value_histogram" in s else s["rating_histogram"]
    counts = list(hist.values())
    assert max(counts) < 0.9 * sum(counts)  # linear bins put ~all plays in the first bin
    assert list(hist)[0].startswith("1-") and len(hist) > 4
    stars = tmp_path / "stars.csv"
    stars.write_text("user,item,rating\n1,1,5\n1,2,3\n2,1,4\n")
    rc, out, _ = _run(capsys, "data", "info", str(stars))
    assert rc == 0 and "ratings: yes" in out


@pytest.mark.parametrize("header", ["user,item\n", ""])
def test_no_hint_when_the_file_is_fine(tmp_path, header, capsys):
    f = tmp_path / "r.csv"
    f.write_text(header + "1,2\n3,4\n")
    args = ["data", "info", str(f)] + ([] if header else ["--no-header"])
    assert _run(capsys, *args)[0] == 0
