"""Model directories as untrusted input: edits that keep the checksums consistent (the manifest
rewritten too) must still be refused with one line naming the file and field, never a raw
exception or a model that answers nonsense. Plus the optional HMAC, file modes and save() errors."""

from __future__ import annotations

import json
import os
import shutil
import stat

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aerec
from aerec import fsutil, io, models
from aerec.cli import main
from aerec.errors import AerecError, DataError, ModelFileError
from aerec.serve.engine import Engine


def _save(model, case, path):
    d = case.data
    return io.save(model, path, item_ids=d.item_ids, user_ids=d.user_ids, history=case.train,
                   item_titles=d.item_titles)


@pytest.fixture(scope="module")
def pop_dir(block_case, tmp_path_factory):
    return _save(models.create("pop").fit(block_case.train), block_case, tmp_path_factory.mktemp("pop") / "m")


@pytest.fixture(scope="module")
def dae_dir(block_case, tmp_path_factory):
    m = models.create("multdae", epochs=1, hidden=(8,), batch_size=16).fit(block_case.train)
    return _save(m, block_case, tmp_path_factory.mktemp("dae") / "m")


@pytest.fixture()
def copy(tmp_path):
    def make(src):
        dst = tmp_path / "copy"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        return dst

    return make


def reseal(d, *, drop=()):
    """Rewrite the manifest so every checksum matches again (what any editor of the files can do)."""
    manifest = json.loads((d / io.MANIFEST).read_text())
    files = {}
    for name in manifest["files"]:
        if name not in drop:
            files[name] = {"sha256": fsutil.sha256_file(d / name), "bytes": (d / name).stat().st_size}
    manifest["files"] = files
    (d / io.MANIFEST).write_text(json.dumps(manifest))


def edit_json(d, name, change):
    obj = json.loads((d / name).read_text())
    obj = change(obj)
    (d / name).write_text(json.dumps(obj))
    if name != io.MANIFEST:
        reseal(d)


def refused(d, *words):
    with pytest.raises(ModelFileError) as err:
        aerec.load(d)
    msg = str(err.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _set(key, value):
    def change(obj):
        obj[key] = value
        return obj

    return change


def _drop(key):
    def change(obj):
        del obj[key]
        return obj

    return change


@pytest.mark.parametrize("name, change, words", [
    (io.MANIFEST, lambda m: [m], ["manifest.json", "JSON object"]),
    (io.CONFIG, lambda c: [c], ["config.json", "JSON object"]),
    (io.CONFIG, _set("model", 123), ["config.json", "'model'"]),
    (io.CONFIG, _set("model", "no-such-model"), ["config.json", "'model'"]),
    (io.CONFIG, _set("n_items", "24"), ["config.json", "'n_items'"]),
    (io.CONFIG, _set("has_history", "yes"), ["config.json", "'has_history'"]),
    (io.CONFIG, _set("config", {"bogus_key": 1}), ["config.json", "'config'"]),
    (io.CONFIG, _set("task", "rating"), ["config.json", "'task'"]),
    (io.ITEMS, _drop("ids"), ["items.json", "'ids'", "missing"]),
    (io.ITEMS, lambda o: {**o, "titles": o["titles"][:3]}, ["items.json", "'titles'"]),
    (io.ITEMS, lambda o: {**o, "titles": [1] * len(o["titles"])}, ["items.json", "titles[0]"]),
    (io.ITEMS, lambda o: {**o, "ids": [[x] for x in o["ids"]]}, ["items.json", "ids[0]"]),
    (io.ITEMS, lambda o: {**o, "ids": [1] * len(o["ids"])}, ["items.json", "more than once"]),
    (io.ITEMS, lambda o: {**o, "ids": [o["ids"][0], str(o["ids"][0])] + o["ids"][2:]}, ["items.json", "more than once"]),
    (io.ITEMS, lambda o: {**o, "ids": o["ids"][:-1]}, ["items.json", "'ids'"]),
    (io.USERS, lambda o: {"ids": [{"a": 1}] * len(o["ids"])}, ["users.json", "ids[0]"]),
    (io.USERS, lambda o: {"ids": o["ids"][:-1]}, ["history.npz", "'shape'"]),
])
def test_schema_violations_are_one_line_naming_file_and_field(name, change, words, pop_dir, copy):
    d = copy(pop_dir)
    edit_json(d, name, change)
    refused(d, *words)


def test_the_manifest_must_list_every_file_load_reads(pop_dir, copy):
    d = copy(pop_dir)
    edit_json(d, io.ITEMS, _set("titles", None))
    reseal(d, drop=[io.ITEMS])  # items.json edited and left out of the manifest
    refused(d, "manifest.json", "items.json")
    d = copy(pop_dir)
    reseal(d, drop=[io.HISTORY])
    refused(d, "manifest.json", "history.npz")
    d = copy(pop_dir)
    manifest = json.loads((d / io.MANIFEST).read_text())
    manifest["files"]["../evil"] = manifest["files"][io.ITEMS]
    (d / io.MANIFEST).write_text(json.dumps(manifest))
    refused(d, "manifest.json", "not a model file")


def _history(d, **change):
    with np.load(d / io.HISTORY) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change)
    with open(d / io.HISTORY, "wb") as f:
        np.savez(f, **arrays)
    reseal(d)


def test_history_indices_and_values_are_range_checked(pop_dir, copy):
    d = copy(pop_dir)
    with np.load(d / io.HISTORY) as z:
        indices, data, indptr = z["indices"].copy(), z["data"].copy(), z["indptr"].copy()
    _history(d, indices=np.where(np.arange(len(indices)) == 3, 10_000, indices).astype(np.int32))
    refused(d, "history.npz", "'indices'")
    d = copy(pop_dir)
    _history(d, indices=np.where(np.arange(len(indices)) == 3, -1, indices).astype(np.int32))
    refused(d, "history.npz", "'indices'")
    d = copy(pop_dir)
    _history(d, indptr=indptr[::-1].copy())
    refused(d, "history.npz", "'indptr'")
    d = copy(pop_dir)
    _history(d, data=np.full_like(data, np.nan))
    refused(d, "history.npz", "'data'")
    d = copy(pop_dir)
    _history(d, data=np.array([{"x": 1}] * len(data), dtype=object))
    refused(d, "history.npz")


def _weights(d, change):
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(d / io.WEIGHTS))
    save_file(change(arrays), str(d / io.WEIGHTS))
    reseal(d)


@pytest.mark.parametrize("which", ["pop_dir", "dae_dir"])
def test_non_finite_weights_are_refused(which, request, copy):
    d = copy(request.getfixturevalue(which))
    _weights(d, lambda a: {k: np.full_like(v, np.nan) if v.dtype.kind == "f" else v for k, v in a.items()})
    refused(d, "weights.safetensors", "NaN")


def test_weight_shape_mismatch_is_one_line_naming_the_tensor(dae_dir, copy):
    d = copy(dae_dir)
    edit_json(d, io.CONFIG, lambda c: {**c, "config": {**c["config"], "hidden": [9]}})
    msg = refused(d, "weights.safetensors", "tensor '", "shape")
    assert "size mismatch" not in msg and "Error(s)" not in msg  # no torch text
    d = copy(dae_dir)
    _weights(d, lambda a: {k: v for k, v in list(a.items())[1:]})
    refused(d, "weights.safetensors", "is missing")
    d = copy(dae_dir)
    _weights(d, lambda a: {**a, "extra": np.zeros(3, np.float32)})
    refused(d, "weights.safetensors", "'extra'")


def test_numpy_weights_of_the_wrong_size_are_refused(pop_dir, copy):
    d = copy(pop_dir)
    _weights(d, lambda a: {"item_counts": a["item_counts"][:5]})
    refused(d, "weights.safetensors")
    d = copy(pop_dir)
    _weights(d, lambda a: {"other": a["item_counts"]})
    refused(d, "weights.safetensors", "item_counts")


def test_hmac_signs_and_verifies_the_manifest(pop, block_case, tmp_path, monkeypatch, copy):
    monkeypatch.setenv(io.KEY_ENV, "s3cret")
    d = _save(pop, block_case, tmp_path / "signed")
    assert (d / io.SIGNATURE).is_file()
    assert aerec.load(d).n_items == pop.n_items
    # an edit that reseals the checksums is caught by the signature
    edit_json(d, io.ITEMS, lambda o: {**o, "titles": ["evil"] * len(o["titles"])})
    refused(d, "manifest.hmac", "does not match")
    d = _save(pop, block_case, tmp_path / "signed")
    monkeypatch.setenv(io.KEY_ENV, "another key")
    refused(d, "manifest.hmac", "does not match")
    (d / io.SIGNATURE).unlink()
    refused(d, "manifest.hmac", "missing")
    monkeypatch.delenv(io.KEY_ENV)
    unsigned = _save(pop, block_case, tmp_path / "unsigned")
    assert not (unsigned / io.SIGNATURE).exists() and aerec.load(unsigned).n_items == pop.n_items
    monkeypatch.setenv(io.KEY_ENV, "s3cret")
    refused(unsigned, "manifest.hmac", "missing")


@pytest.fixture(scope="module")
def pop(block_case):
    return models.create("pop").fit(block_case.train)


def test_model_files_have_consistent_readable_modes(pop, block_case, tmp_path):
    old = os.umask(0o022)
    try:
        d = _save(pop, block_case, tmp_path / "m")
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in d.iterdir()}
    assert set(modes.values()) == {0o644}, modes


def test_save_errors_are_clean(pop, block_case, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ModelFileError, match="cannot be written"):
        io.save(pop, blocker / "sub" / "m", item_ids=block_case.data.item_ids)
    ids = np.array([object()] * pop.n_items, dtype=object)
    with pytest.raises(DataError, match="integers or strings"):
        io.save(pop, tmp_path / "m", item_ids=ids)
    with pytest.raises(DataError, match="more than once"):
        io.save(pop, tmp_path / "m", item_ids=np.ones(pop.n_items, dtype=np.int64))
    with pytest.raises(DataError, match="integers or strings"):
        io.save(pop, tmp_path / "m", item_ids=block_case.data.item_ids,
                user_ids=[{"a": 1}] * block_case.train.shape[0], history=block_case.train)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no temporary folder left behind


def test_cli_refuses_a_bad_model_with_exit_2(pop_dir, copy, capsys):
    d = copy(pop_dir)
    edit_json(d, io.ITEMS, _drop("ids"))
    assert main(["recommend", str(d), "--items", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "items.json" in err and "'ids'" in err


# fuzzing: any JSON value at any top-level (or config) field --------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8)

FIELDS = {io.MANIFEST: ["format_version", "files"],
          io.CONFIG: ["format_version", "model", "task", "config", "n_users", "n_items", "weights", "has_history",
                      "meta", "config.hidden", "config.dropout", "config.eval_block", "config.device"],
          io.ITEMS: ["ids", "titles"], io.USERS: ["ids"]}
TARGETS = [(f, k) for f, ks in FIELDS.items() for k in ks]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(TARGETS), value=json_values | st.just("<delete>"), element=st.booleans())
def test_fuzzed_model_json_loads_or_is_refused_in_one_line(dae_dir, copy, target, value, element):
    name, field = target
    d = copy(dae_dir)
    obj = json.loads((d / name).read_text())
    where, key = (obj["config"], field.split(".", 1)[1]) if field.startswith("config.") else (obj, field)
    if value == "<delete>":
        where.pop(key, None)
    elif element and isinstance(where.get(key), list) and where[key]:
        where[key][0] = value  # one element of a list (an id, a title)
    else:
        where[key] = value
    (d / name).write_text(json.dumps(obj))
    if name != io.MANIFEST:
        reseal(d)
    try:
        model = aerec.load(d)
    except ModelFileError as e:
        assert "\n" not in str(e) and str(d) in str(e)
        return
    try:  # whatever loads must also answer
        Engine(model).recommend_items([100, 101], k=3)
    except AerecError as e:
        assert "\n" not in str(e)


def test_a_rating_model_with_an_empty_rating_range_is_refused(rating_case, tmp_path, copy):
    d = rating_case.data
    m = models.create("autorec", variant="user", hidden=4, epochs=1).fit(rating_case.train)
    path = io.save(m, tmp_path / "ar", item_ids=d.item_ids)
    assert io.rating_range(aerec.load(path)) == (1.0, 5.0)
    dd = copy(path)
    _weights(dd, lambda a: {**a, "stats": np.array([5.0, 1.0, 3.0], np.float32)})
    refused(dd, "weights.safetensors", "'stats'")


def test_huge_finite_weights_never_answer_an_empty_list(dae_dir, copy):
    # 3e38 is a finite float32, so the file passes the NaN check, but every score overflows
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from aerec.serve.app import create_app

    d = copy(dae_dir)
    _weights(d, lambda a: {k: np.full_like(v, 3e38) if v.dtype.kind == "f" else v for k, v in a.items()})
    model = aerec.load(d)
    item = model.item_ids[0].item()
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        model.recommend_items([item], k=5)
    with pytest.raises(ModelFileError, match="NaN or infinite"):
        Engine(model).recommend_user(model.user_ids[0].item(), k=5)
    with TestClient(create_app(model, model_dir=d)) as client:
        r = client.post("/recommend", json={"items": [item], "k": 5})
    assert r.status_code == 400 and "NaN or infinite" in r.json()["detail"]


def _bomb_history(d, n: int):
    """history.npz whose 'indices' is n int64 zeros, compressed (a few hundred KB on disk)."""
    import zipfile

    with np.load(d / io.HISTORY) as z:
        arrays = {k: z[k] for k in z.files if k != "indices"}
    with zipfile.ZipFile(d / io.HISTORY, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, a in arrays.items():
            with zf.open(f"{k}.npy", "w") as fh:
                np.lib.format.write_array(fh, a)
        with zf.open("indices.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<i8", "fortran_order": False, "shape": (n,)})
            chunk, left = bytes(2**20), n * 8
            while left:
                fh.write(chunk[:left])
                left -= min(left, len(chunk))
    reseal(d)


def test_history_sizes_are_checked_from_the_headers_before_reading(pop_dir, copy):
    import tracemalloc

    d = copy(pop_dir)
    n = 40_000_000  # 320 MB once decompressed
    _bomb_history(d, n)
    assert (d / io.HISTORY).stat().st_size < 2_000_000
    tracemalloc.start()
    try:
        refused(d, "history.npz", "header")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000, f"loading allocated {peak / 1e6:.0f} MB before refusing"


def test_torch_weights_are_checked_from_the_header_before_the_network_is_built(dae_dir, copy, monkeypatch):
    d = copy(dae_dir)
    edit_json(d, io.CONFIG, lambda c: {**c, "config": {**c["config"], "hidden": [50_000_000]}})
    monkeypatch.setattr(models.get("multdae"), "init_network",
                        lambda self: pytest.fail("the network was built before its shapes were checked"))
    refused(d, "weights.safetensors", "tensor '", "shape")
