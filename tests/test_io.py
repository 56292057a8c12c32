"""Model files: round trip, integrity checks, atomic replacement, no unpickling, serving by id."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

import aerec
from aerec import io, models
from aerec.errors import DataError, ModelFileError
from aerec.models.base import Recommender


@pytest.fixture(scope="module")
def pop(block_case):
    return models.create("pop").fit(block_case.train)


@pytest.fixture(scope="module")
def dae(block_case):
    return models.create("multdae", epochs=2, hidden=(8,), batch_size=16).fit(block_case.train)


def save(model, case, path, **kw):
    d = case.data
    return io.save(model, path, item_ids=d.item_ids, user_ids=d.user_ids, history=case.train,
                   item_titles=d.item_titles, **kw)


@pytest.mark.parametrize("which", ["pop", "dae"])
def test_round_trip_is_bit_identical(which, request, block_case, tmp_path):
    m = request.getfixturevalue(which)
    save(m, block_case, tmp_path / "m", extra_meta={"note": "x"})
    names = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert names == ["config.json", "history.npz", "items.json", "manifest.json", "users.json", "weights.safetensors"]
    loaded = Recommender.load(tmp_path / "m")
    assert np.array_equal(loaded.score(block_case.fold_in), m.score(block_case.fold_in))
    assert loaded.meta == {"note": "x"} and loaded.item_titles[0] == "item 100"
    assert (loaded.histories != block_case.train).nnz == 0
    assert list(loaded.user_ids) == list(block_case.data.user_ids)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format_version"] == io.FORMAT_VERSION and cfg["model"] == m.name and cfg["task"] == "ranking"
    # a loaded model saves again without repeating its vocabularies
    loaded.save(tmp_path / "again")
    assert np.array_equal(aerec.load(tmp_path / "again").score(block_case.fold_in), m.score(block_case.fold_in))


def test_load_never_unpickles(dae, block_case, tmp_path, monkeypatch):
    save(dae, block_case, tmp_path / "m")

    def forbidden(*a, **k):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    assert np.array_equal(aerec.load(tmp_path / "m").score(block_case.fold_in), dae.score(block_case.fold_in))


def test_load_checks_the_class(pop, block_case, tmp_path):
    save(pop, block_case, tmp_path / "m")
    with pytest.raises(ModelFileError, match="not a MultDAE"):
        models.get("multdae").load(tmp_path / "m")


@pytest.mark.parametrize("damage, file, message", [
    ("truncate", "weights.safetensors", "checksum mismatch"),
    ("flip", "history.npz", "checksum mismatch"),
    ("flip", "items.json", "checksum mismatch"),
    ("delete", "users.json", "missing"),
    ("delete", "manifest.json", "missing"),
    ("garble", "manifest.json", "not valid JSON"),
])
def test_damaged_files_are_named(damage, file, message, dae, block_case, tmp_path):
    save(dae, block_case, tmp_path / "m")
    f = tmp_path / "m" / file
    raw = f.read_bytes()
    if damage == "truncate":
        f.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        f.write_bytes(raw[:-3] + bytes([raw[-3] ^ 1]) + raw[-2:])
    elif damage == "garble":
        f.write_bytes(raw[:10])
    else:
        f.unlink()
    with pytest.raises(ModelFileError, match=message) as err:
        aerec.load(tmp_path / "m")
    assert file in str(err.value) and "\n" not in str(err.value)


def test_wrong_format_version_is_refused(pop, block_case, tmp_path):
    save(pop, block_case, tmp_path / "m")
    d = tmp_path / "m"
    cfg = json.loads((d / "config.json").read_text())
    cfg["format_version"] = 999
    (d / "config.json").write_text(json.dumps(cfg))
    manifest = json.loads((d / "manifest.json").read_text())  # a consistent manifest: only the version is wrong
    manifest["files"]["config.json"] = {"sha256": io.fsutil.sha256_file(d / "config.json"),
                                        "bytes": (d / "config.json").stat().st_size}
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"config\.json: format version 999"):
        aerec.load(d)
    manifest["format_version"] = 2
    (d / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"manifest\.json: format version 2"):
        aerec.load(d)


def test_save_replaces_a_model_atomically(pop, dae, block_case, tmp_path, monkeypatch):
    target = tmp_path / "m"
    save(pop, block_case, target)
    save(dae, block_case, target)  # replacing an existing model works
    assert type(aerec.load(target)).__name__ == "MultDAE"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io.fsutil, "sha256_file", boom)
    with pytest.raises(ModelFileError, match="disk full"):
        save(pop, block_case, target)
    monkeypatch.undo()
    # the failed save left the previous model whole and no temporary folders behind
    assert type(aerec.load(target)).__name__ == "MultDAE"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_save_refuses_foreign_directories_and_bad_arguments(pop, block_case, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ModelFileError, match="not an aerec model directory"):
        save(pop, block_case, other)
    assert (other / "keep.txt").read_text() == "mine"
    with pytest.raises(DataError, match="item ids"):
        io.save(pop, tmp_path / "x", item_ids=np.arange(3))
    with pytest.raises(DataError, match="together"):
        io.save(pop, tmp_path / "x", item_ids=block_case.data.item_ids, history=block_case.train)
    with pytest.raises(DataError, match="not fitted"):
        io.save(models.create("pop"), tmp_path / "x", item_ids=block_case.data.item_ids)


def test_recommend_by_original_ids(dae, block_case, tmp_path):
    save(dae, block_case, tmp_path / "m")
    m = aerec.load(tmp_path / "m")
    d = block_case.data
    seen = set(d.item_ids[block_case.train[0].indices].tolist())
    rec = m.recommend_user("u0", k=4)
    assert len(rec.item_ids) == 4 and not seen & set(rec.item_ids) and rec.fallback is None
    assert rec.titles == [f"item {i}" for i in rec.item_ids]
    assert rec.scores == sorted(rec.scores, reverse=True)
    excluded = m.recommend_user("u0", k=4, exclude=[rec.item_ids[0]])
    assert rec.item_ids[0] not in excluded.item_ids
    with pytest.raises(io.UnknownUserError, match="unknown user 'nobody'"):
        m.recommend_user("nobody")
    # ids from a command line arrive as strings; they still find integer ids
    as_str = m.recommend_items([str(i) for i in (101, 102, 103)], k=2)
    assert as_str.item_ids == m.recommend_items([101, 102, 103], k=2).item_ids
    assert not {101, 102, 103} & set(as_str.item_ids)
    # no known item: the stored-history popularity, said so
    fb = m.recommend_items(["zzz"], k=3)
    pop_order = np.argsort(-np.bincount(block_case.train.indices, minlength=d.n_items), kind="stable")[:3]
    assert fb.fallback == "popularity" and fb.unknown_items == ["zzz"]
    assert fb.item_ids == d.item_ids[pop_order].tolist()
    with pytest.raises(DataError):
        m.recommend_items([101], k=0)
    assert json.dumps(fb.to_dict())  # plain JSON types for the service


def test_model_without_history_cannot_serve_known_users(pop, block_case, tmp_path):
    io.save(pop, tmp_path / "m", item_ids=block_case.data.item_ids)
    m = aerec.load(tmp_path / "m")
    assert m.histories is None and m.item_titles is None
    with pytest.raises(DataError, match="without user histories"):
        m.recommend_user("u0")
    assert len(m.recommend_items([100], k=2).item_ids) == 2
