"""`aerec serve`: endpoints, strict validation, body limit, micro-batching, and that no request
crashes the service or reads a file. Uses FastAPI's TestClient and httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import builtins
import json
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from aerec import io, models  # noqa: E402
from aerec.cli import main  # noqa: E402
from aerec.limits import MAX_ID_CHARS  # noqa: E402
from aerec.serve.app import create_app  # noqa: E402
from aerec.serve.engine import Engine  # noqa: E402

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10)


def saved(name, case, tmp_path_factory, **cfg):
    d = case.data
    model = models.create(name, **cfg).fit(case.train)
    path = tmp_path_factory.mktemp(name) / "model"
    io.save(model, path, item_ids=d.item_ids, user_ids=d.user_ids, history=case.train, item_titles=d.item_titles)
    return path


@pytest.fixture(scope="module")
def dae_dir(block_case, tmp_path_factory):
    return saved("multdae", block_case, tmp_path_factory, epochs=3, hidden=(8,), batch_size=16)


@pytest.fixture(scope="module")
def cdae_dir(block_case, tmp_path_factory):
    return saved("cdae", block_case, tmp_path_factory, epochs=3, hidden=8, batch_size=16)


@pytest.fixture()
def dae(dae_dir):
    return io.load(dae_dir)


@pytest.fixture()
def client(dae, dae_dir):
    with TestClient(create_app(dae, model_dir=dae_dir)) as c:
        yield c


def test_health_model_items_and_docs(client, dae):
    assert client.get("/health").json()["status"] == "ok"
    meta = client.get("/model").json()
    assert meta["model"] == "multdae" and meta["n_items"] == dae.n_items and meta["n_users"] == len(dae.user_ids)
    assert meta["limits"]["max_k"] == 1000 and meta["aerec_version"]
    assert client.get("/items/100").json() == {"id": 100, "title": "item 100", "popularity": int(dae.histories[:, 0].nnz)}
    r = client.get("/items/nope")
    assert r.status_code == 404 and "unknown item" in r.json()["detail"]
    assert client.get("/items/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert "/recommend" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_known_user_and_new_user_match_the_library(client, dae):
    got = client.post("/recommend", json={"user": "u0", "k": 5, "exclude": [107]}).json()
    assert got == io.recommend_user(dae, "u0", 5, exclude=[107]).to_dict()
    assert 107 not in got["items"] and not set(got["items"]) & set(dae.item_ids[dae.histories[0].indices].tolist())
    got = client.post("/recommend", json={"items": [100, "101", "nope"], "k": 4, "exclude": [102]}).json()
    want = io.recommend_items(dae, [100, "101", "nope"], 4, exclude=[102]).to_dict()
    assert got == want and got["unknown_items"] == ["nope"] and got["fallback"] is None
    assert len(got["items"]) == 4 and not {100, 101, 102} & set(got["items"]) and got["titles"][0].startswith("item ")


@pytest.mark.parametrize("items", [[], ["nope", 99999]])
def test_no_known_item_gets_the_popularity_fallback(client, dae, items):
    got = client.post("/recommend", json={"items": items, "k": 3}).json()
    assert got["fallback"] == "popularity" and got["unknown_items"] == items
    counts = np.bincount(dae.histories.indices, minlength=dae.n_items)
    assert got["items"] == dae.item_ids[np.argsort(-counts, kind="stable")[:3]].tolist()


def test_k_larger_than_the_catalogue_returns_every_unseen_item(client, dae):
    got = client.post("/recommend", json={"user": "u0", "k": 1000}).json()
    assert len(got["items"]) == dae.n_items - dae.histories[0].nnz


def test_include_seen_lets_a_known_users_history_back(client, dae):
    seen = set(dae.item_ids[dae.histories[0].indices].tolist())
    default = client.post("/recommend", json={"user": "u0", "k": 1000}).json()["items"]
    repeat = client.post("/recommend", json={"user": "u0", "k": 1000, "include_seen": True}).json()["items"]
    assert not seen & set(default) and seen <= set(repeat) and len(repeat) == dae.n_items
    assert client.post("/recommend", json={"user": "u0", "include_seen": "yes"}).status_code == 422


def test_unknown_user_is_404_with_a_message(client):
    r = client.post("/recommend", json={"user": "nobody"})
    assert r.status_code == 404 and "unknown user 'nobody'" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    b"{", b"not json", b"[1, 2]", b'"u0"', b"null", b"",
    b'{"user": "u0", "k": "10"}', b'{"user": "u0", "k": 1.5}', b'{"user": "u0", "k": true}',
    b'{"user": "u0", "k": 0}', b'{"user": "u0", "k": 1001}', b'{"user": "u0", "k": 1000000000000}',
    b'{"user": ["u0"]}', b'{"user": null}', b'{"items": "100"}', b'{"items": [100, [101]]}',
    b'{"items": [100], "ratings": [5, 4]}', b'{"items": [100], "ratings": [NaN]}', b'{"user": "u0", "ratings": [5]}',
    b'{"user": "u0", "items": [100]}', b"{}", b'{"user": "u0", "extra": 1}', b'{"user": "u0", "exclude": 100}',
    b'{"user": "' + b"x" * (MAX_ID_CHARS + 1) + b'"}',
])
def test_malformed_requests_are_422(client, body):
    r = client.post("/recommend", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert client.get("/health").status_code == 200


def test_oversized_bodies_are_413_with_or_without_content_length(client):
    big = b'{"items": [' + b",".join(b"%d" % i for i in range(20000)) + b"]}"
    assert len(big) > 64 * 1024
    r = client.post("/recommend", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "65536" in r.json()["detail"]

    def chunks():  # streamed: no Content-Length, so the limit must count the bytes
        for i in range(0, len(big), 4096):
            yield big[i : i + 4096]

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/recommend", json={"user": "u0"}).status_code == 200


def test_a_failing_forward_pass_is_500_and_the_service_lives_on(client, dae, monkeypatch):
    real = dae.score_tensor  # the forward pass the service ranks from, on the model's device

    def broken(history):
        raise RuntimeError("boom")

    monkeypatch.setattr(dae, "score_tensor", broken)
    r = client.post("/recommend", json={"items": [100]})
    assert r.status_code == 500 and "internal error" in r.json()["detail"]
    monkeypatch.setattr(dae, "score_tensor", real)
    assert client.post("/recommend", json={"items": [100]}).status_code == 200


def test_requests_never_read_files(client, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("a request tried to read a file")

    for target, name in [(builtins, "open"), (pathlib.Path, "open"), (pathlib.Path, "read_text"),
                         (pathlib.Path, "read_bytes"), (np, "load"), (io, "load")]:
        monkeypatch.setattr(target, name, forbidden)
    for path in ["/items/100", "/items/%2Fetc%2Fpasswd", "/items/../../etc/passwd", "/model", "/health"]:
        assert client.get(path).status_code in (200, 404)
    for body in [{"user": "u0"}, {"user": "../../etc/passwd"}, {"items": ["/etc/passwd", 100]}]:
        assert client.post("/recommend", json=body).status_code in (200, 404)


def _counting(model, monkeypatch):
    calls = []
    for name in ("score_tensor", "score_users"):
        real = getattr(model, name, None)
        if real is not None:
            def wrapped(*a, _real=real, _name=name, **k):
                calls.append(_name)
                return _real(*a, **k)

            monkeypatch.setattr(model, name, wrapped)
    return calls


@pytest.mark.parametrize("which", ["dae_dir", "cdae_dir"])
def test_concurrent_requests_share_forward_passes_and_equal_unbatched_results(which, request, monkeypatch):
    path = request.getfixturevalue(which)
    model = io.load(path)
    users = [f"u{i}" for i in range(0, 48, 6)]
    bodies = [{"user": u, "k": 5} for u in users] + [{"items": [100 + i, 110 + i, "zz"], "k": 5} for i in range(8)]
    engine = Engine(io.load(path))  # unbatched reference: one forward pass per request
    want = [engine.recommend_user(b["user"], 5) if "user" in b else engine.recommend_items(b["items"], 5)
            for b in bodies]
    calls = _counting(model, monkeypatch)
    app = create_app(model, batch_wait_ms=200, max_batch=64)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await asyncio.gather(*(c.post("/recommend", json=b) for b in bodies))

    responses = asyncio.run(go())
    assert all(r.status_code == 200 for r in responses)
    assert 0 < len(calls) < len(bodies) // 2, calls
    if which == "cdae_dir":  # known users through the learned user vectors, new users folded in
        assert sorted(set(calls)) == ["score_tensor", "score_users"]
    for r, w in zip(responses, want):
        got = r.json()
        assert got["items"] == w.item_ids and got["unknown_items"] == w.unknown_items
        np.testing.assert_allclose(got["scores"], w.scores, rtol=1e-5, atol=1e-6)


def test_serve_without_fastapi_names_the_extra(dae_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now raises ImportError
    assert main(["serve", str(dae_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'aerec[serve]'" in err and len(err.splitlines()) == 1


# hardening (issue 15) ----------------------------------------------------------------------------


def _post_all(app, bodies):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await asyncio.gather(*(c.post("/recommend", json=b) for b in bodies))

    return asyncio.run(go())


@pytest.mark.parametrize("which", ["dae_dir", "autorec_dir"])
def test_one_poisoned_request_never_fails_the_others(which, request):
    """Valid requests in flight with one whose rating is finite as float64 but inf as float32:
    every valid one succeeds; the poison alone is refused."""
    model = io.load(request.getfixturevalue(which))
    valid = {"items": [model.item_ids[0].item(), model.item_ids[3].item()], "k": 3}
    poison = {"items": [model.item_ids[0].item()], "ratings": [1e308], "k": 3}
    bodies = [valid] * 30 + [poison] + [valid] * 30
    responses = _post_all(create_app(model, batch_wait_ms=50, max_batch=64), bodies)
    codes = [r.status_code for r in responses]
    assert codes[30] == 422 and codes[:30] + codes[31:] == [200] * 60, codes
    assert all(r.json() == responses[0].json() for r in responses[:30] + responses[31:])


def test_a_query_that_fails_scoring_fails_alone(dae, monkeypatch):
    """The batcher answers each query of a failed batch alone: only the failing one gets 500."""
    real = dae.score_tensor
    bad_col = int(Engine(dae).item_index["105"])

    def fragile(history):
        if (history[:, bad_col].toarray() != 0).any():
            raise RuntimeError("cannot score this row")
        return real(history)

    monkeypatch.setattr(dae, "score_tensor", fragile)
    app = create_app(dae, batch_wait_ms=50, max_batch=64)
    bodies = [{"items": [100, 101], "k": 3}] * 20 + [{"items": [105], "k": 3}] + [{"items": [102], "k": 3}] * 20
    codes = [r.status_code for r in _post_all(app, bodies)]
    assert codes[20] == 500 and codes[:20] + codes[21:] == [200] * 40, codes
    assert app.state.batcher.batches < len(bodies)  # they were batched, and the batch failed


@pytest.mark.parametrize("ratings", [[-1e30], [1e30], [0.0], [5.5], [1e308], [-1e308]])
def test_ratings_outside_the_rating_range_are_422(autorec_dir, ratings):
    model = io.load(autorec_dir)
    lo, hi = io.rating_range(model)
    assert (lo, hi) == (1.0, 5.0)
    with TestClient(create_app(model)) as c:
        item = model.item_ids[0].item()
        r = c.post("/recommend", json={"items": [item], "ratings": ratings, "k": 3})
        assert r.status_code == 422 and "rating" in r.json()["detail"], r.text
        assert c.post("/recommend", json={"items": [item], "ratings": [hi], "k": 3}).status_code == 200
        assert c.post("/recommend", json={"items": [item], "ratings": [lo], "k": 3}).status_code == 200
        assert c.get("/model").json()["rating_range"] == [1.0, 5.0]


def test_implicit_models_refuse_ratings(client):
    r = client.post("/recommend", json={"items": [100], "ratings": [1.0], "k": 3})
    assert r.status_code == 422 and "takes no ratings" in r.json()["detail"]
    assert client.post("/recommend", json={"items": [100], "k": 3}).status_code == 200


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.dictionaries(st.sampled_from(["user", "items", "ratings", "k", "exclude", "extra"]), json_values, max_size=5),
    st.fixed_dictionaries({"items": st.lists(st.integers(90, 130) | st.text(max_size=4), max_size=6)},
                          optional={"ratings": st.lists(st.floats() | st.integers(-10**400, 10**400), max_size=6),
                                    "k": st.integers(-5, 2000), "exclude": st.lists(st.integers(90, 130), max_size=4)}),
    json_values))
def test_fuzzed_bodies_get_an_answer_never_a_500(client, body):
    try:
        content = json.dumps(body, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return
    r = client.post("/recommend", content=content, headers={"content-type": "application/json"})
    assert r.status_code in (200, 404, 413, 422), (r.status_code, r.text, content[:200])
    if r.status_code == 200:
        got = r.json()
        assert all(np.isfinite(got["scores"]))


def test_model_endpoint_shows_no_local_paths(dae, tmp_path):
    dae.meta = {"dataset": "/home/alice/secret/ratings.csv", "protocol": "strong", "seed": 0}
    io.save(dae, tmp_path / "m")
    model = io.load(tmp_path / "m")
    with TestClient(create_app(model, model_dir=tmp_path / "m")) as c:
        text = c.get("/model").text
    assert "ratings.csv" in text and "/home/alice" not in text and str(tmp_path) not in text


def test_head_health_is_200(client):
    r = client.head("/health")
    assert r.status_code == 200 and r.content == b""
