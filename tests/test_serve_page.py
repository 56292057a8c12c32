"""The page `aerec serve` shows at /: its endpoints over HTTP (search, history, CSP, hostile ids
sent back as received), and the page itself in a real headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium): search, a basket of three items, the folded-in
recommendations read from the page, a known user's history and recommendations.

The browser test skips, saying why, where Selenium, chromium or chromedriver is missing (`make
test` apt-installs the last two when it runs as root), or fails where AEREC_REQUIRE_BROWSER=1
(.ci/run). AEREC_PAGE_SCREENSHOT=FILE.png makes it save its screenshot there (docs/serving-page.png
was made so)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from aerec import io, models  # noqa: E402
from aerec.serve.app import MAX_ID_CHARS, create_app  # noqa: E402
from aerec.serve.engine import Engine  # noqa: E402

XSS = "<img src=x onerror=window.pwned=1>"
# 24 artist-like ids (the block data has 24 items): separators, quotes, spaces, unicode, markup,
# URL syntax (/ ? # % & +, a dot segment) and number-like text
ITEMS = [
    "Crosby, Stills, Nash & Young", '"Weird Al" Yankovic', "Sigur Rós ", " Björk", "AC/DC", "007", "C-00042",
    "NaN", XSS, "Guns N' Roses", "a?b#c", "100%", "1+1=2", "..", "  ", "Mötley Crüe", "Simon & Garfunkel",
    "The The", "été ☃ 日本語", "x\u2028y", "<b>bold</b>", "-1", "Earth, Wind & Fire", "back\\slash",
]
TITLES = [f"Album {i}: {name.strip() or 'blank'}" for i, name in enumerate(ITEMS)]
TITLES[3] = "<script>window.pwned=2</script>"
USERS_PREFIX = "listener ü/"  # user ids with a slash and unicode


@pytest.fixture(scope="module")
def page_model(block_data, tmp_path_factory):
    assert len(ITEMS) == len(set(ITEMS)) == block_data.n_items
    data = replace(block_data, item_ids=np.array(ITEMS, dtype=object), item_titles=np.array(TITLES, dtype=object),
                   user_ids=np.array([f"{USERS_PREFIX}{u}" for u in range(block_data.n_users)], dtype=object))
    train = data.csr("ones")
    model = models.create("multdae", epochs=3, hidden=(8,), batch_size=16).fit(train)
    path = tmp_path_factory.mktemp("page") / "model"
    io.save(model, path, item_ids=data.item_ids, user_ids=data.user_ids, history=train, item_titles=data.item_titles)
    return path


@pytest.fixture()
def client(page_model):
    with TestClient(create_app(io.load(page_model), model_dir=page_model)) as c:
        yield c


def _get_all(app, paths):
    """GET each path through httpx's ASGI transport, which decodes a path once as uvicorn does
    (Starlette's TestClient decodes twice: "%2520" would arrive as " ")."""
    import asyncio

    import httpx

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return [await c.get(p) for p in paths]

    return asyncio.run(go())


# the endpoints the page calls ---------------------------------------------------------------


def test_page_is_served_with_a_strict_policy(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "unsafe" not in csp
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", csp)
    assert r.headers["x-content-type-options"] == "nosniff"
    # no external assets, and nothing the service returns goes in as markup
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in r.text, sink
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_search_by_id_or_title_ranks_an_exact_id_first(client, page_model):
    engine = Engine(io.load(page_model))
    got = client.get("/items", params={"q": "album 1"}).json()  # titles, case-insensitive
    assert got["total"] == 11 and len(got["items"]) == 11
    pops = [x["popularity"] for x in got["items"]]
    assert pops == sorted(pops, reverse=True) and all(x["title"].startswith("Album 1") for x in got["items"])
    got = client.get("/items", params={"q": "AC/DC"}).json()
    assert got["items"][0] == engine.item_info("AC/DC")
    got = client.get("/items", params={"q": "..", "limit": 100}).json()
    assert got["items"][0]["id"] == ".."  # the exact id before the titles holding ".."
    got = client.get("/items", params={"limit": 3}).json()  # empty query: the most popular
    assert got["total"] == 24
    assert [x["id"] for x in got["items"]] == [ITEMS[j] for j in np.argsort(-engine.popularity, kind="stable")[:3]]
    assert client.get("/items", params={"q": "no such thing"}).json() == {"items": [], "total": 0}
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"q": "x" * (MAX_ID_CHARS + 1)}):
        assert client.get("/items", params=params).status_code == 422, params


def test_history_of_a_known_user(client, page_model):
    model = io.load(page_model)
    user = model.user_ids[5]
    got = client.get("/history", params={"user": user}).json()
    row = model.histories[5]
    assert got["user"] == user and got["total"] == row.nnz and sorted(got["items"]) == sorted(
        model.item_ids[row.indices].tolist())
    assert got["titles"] == [TITLES[ITEMS.index(i)] for i in got["items"]] and got["values"] == [1.0] * row.nnz
    assert len(client.get("/history", params={"user": user, "limit": 2}).json()["items"]) == 2
    r = client.get("/history", params={"user": "nobody"})
    assert r.status_code == 404 and "unknown user 'nobody'" in r.json()["detail"]
    assert client.get("/history").status_code == 422
    assert client.get("/history", params={"user": user, "limit": 0}).status_code == 422


def test_every_id_the_service_returns_it_accepts_back(client):
    """Ids from search, history and recommendations go straight back into /recommend, /items/{id}
    and /history, as the page sends them."""
    returned = set()
    for q in ["", "a", "album", " ", "/", "%", "<"]:
        returned |= {x["id"] for x in client.get("/items", params={"q": q, "limit": 100}).json()["items"]}
    users = set()
    for u in range(10):
        got = client.get("/history", params={"user": f"{USERS_PREFIX}{u}"}).json()
        returned |= set(got["items"])
        users.add(got["user"])
        rec = client.post("/recommend", json={"user": got["user"], "k": 24}).json()
        returned |= set(rec["items"])
    assert returned == set(ITEMS)
    for item in sorted(returned):
        rec = client.post("/recommend", json={"items": [item], "k": 3, "exclude": [item]})
        assert rec.status_code == 200 and rec.json()["unknown_items"] == [] and item not in rec.json()["items"]
        assert client.get("/items", params={"q": item}).json()["items"][0]["id"] == item
    # a URL path cannot carry a dot segment: clients resolve it first
    paths = sorted(i for i in returned if i not in (".", ".."))
    for item, r in zip(paths, _get_all(client.app, ["/items/" + quote(i, safe="") for i in paths])):
        assert r.status_code == 200 and r.json()["id"] == item, item
    for user in users:
        assert client.get("/history", params={"user": user}).json()["user"] == user
        assert client.post("/recommend", json={"user": user}).status_code == 200


def test_rating_models_and_models_without_histories(rating_case, block_data, tmp_path):
    d = rating_case.data
    model = models.create("autorec", variant="user", hidden=8, epochs=2, patience=0).fit(rating_case.train)
    io.save(model, tmp_path / "ar", item_ids=d.item_ids, user_ids=d.user_ids, history=rating_case.train)
    with TestClient(create_app(io.load(tmp_path / "ar"))) as c:
        # an empty basket with its (empty) ratings, as the page sends it: the popularity fallback
        got = c.post("/recommend", json={"items": [], "ratings": [], "k": 3}).json()
        assert got["fallback"] == "popularity" and len(got["items"]) == 3
        hist = c.get("/history", params={"user": d.user_ids[1]}).json()
        row = rating_case.train[1]
        assert hist["total"] == row.nnz and hist["values"] == sorted(row.data.tolist(), reverse=True)
    model = models.create("pop").fit(block_data.csr("ones"))
    io.save(model, tmp_path / "pop", item_ids=block_data.item_ids)  # no histories, no users
    with TestClient(create_app(io.load(tmp_path / "pop"))) as c:
        got = c.get("/items", params={"limit": 3}).json()
        assert got["total"] == 24 and [x["id"] for x in got["items"]] == [100, 101, 102]
        assert got["items"][0]["popularity"] is None
        r = c.get("/history", params={"user": "u1"})
        assert r.status_code == 400 and "without user histories" in r.json()["detail"]


def test_a_thousand_hostile_ids_come_back_and_go_back_over_http(tmp_path):
    """Each id found by search (as the page finds it) is accepted back by /recommend and, where a
    URL path can carry it, by /items/{id}; a user's history ids likewise."""
    from helpers import hostile_ids

    # ids longer than a request may carry are another check's (the service's id length limit)
    ids = [i for i in hostile_ids() if len(i) <= MAX_ID_CHARS]
    assert len(ids) > 990
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((40, len(ids))) < 0.05).astype(np.float32))
    model = models.create("pop").fit(x)
    io.save(model, tmp_path / "m", item_ids=np.array(ids, dtype=object),
            user_ids=np.array(ids[:40], dtype=object), history=x)
    app = create_app(io.load(tmp_path / "m"))
    with TestClient(app) as c:
        found = []
        for item in ids:
            first = c.get("/items", params={"q": item, "limit": 1}).json()["items"][0]["id"]
            assert first == item, (item, first)
            found.append(first)
        for i in range(0, len(found), 200):
            got = c.post("/recommend", json={"items": found[i : i + 200], "k": 1000}).json()
            assert got["unknown_items"] == [] and not set(got["items"]) & set(found[i : i + 200])
        paths = [i for i in found if i not in (".", "..")]
        for item, r in zip(paths, _get_all(app, ["/items/" + quote(i, safe="") for i in paths])):
            assert r.status_code == 200 and r.json()["id"] == item, item
        for user in ids[:40]:
            hist = c.get("/history", params={"user": user}).json()
            assert hist["user"] == user
            rec = c.post("/recommend", json={"items": hist["items"], "k": 1000}).json()
            assert rec["unknown_items"] == [] and not set(rec["items"]) & set(hist["items"])
            assert c.post("/recommend", json={"user": hist["user"], "k": 5}).status_code == 200


# the page in a browser ------------------------------------------------------------------------


def _browser():
    """(chromium, chromedriver) paths, or a reason to skip."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return None, "selenium is not installed (pip install -e '.[dev]')"
    chromium = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or next((p for p in ("/usr/bin/chromedriver",
                                                               "/usr/lib/chromium/chromedriver") if os.path.exists(p)), None)
    if chromium is None or driver is None:
        return None, ("no chromium and chromedriver (apt-get install chromium chromium-driver; "
                      "`make test` does it as root)")
    return (chromium, driver), None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def served(page_model, tmp_path):
    with _serve(page_model, tmp_path) as url:
        yield url


@contextlib.contextmanager
def _serve(model_dir, tmp_path):
    """`aerec serve` on a free 127.0.0.1 port, stopped at the end."""
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "aerec", "serve", str(model_dir), "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to 60 s to import and load
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"aerec serve exited: {log.read()[-2000:]}")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture()
def browser(tmp_path):
    paths, reason = _browser()
    if paths is None:
        if os.environ.get("AEREC_REQUIRE_BROWSER") == "1":  # CI: a skip must not hide the page
            pytest.fail(f"AEREC_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1180,800",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    # the driver's path is given, so Selenium Manager never looks for (or downloads) one
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, what, timeout=30):
    """what(driver) once it is truthy; the page re-renders its lists, so stale elements retry."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(what)


def _rows(driver):
    """The recommendations table as (id, title, score) read from the page."""
    from selenium.webdriver.common.by import By

    return [(tr.find_element(By.CSS_SELECTOR, "span.id").get_attribute("textContent"),
             tr.find_element(By.CSS_SELECTOR, "td.title").get_attribute("textContent"),
             float(tr.find_element(By.CSS_SELECTOR, "td.score").text))
            for tr in driver.find_elements(By.CSS_SELECTOR, "#recs tbody tr")]


def _text(driver, css):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).get_attribute("textContent")


def test_the_page_in_a_headless_browser(browser, served, page_model):
    from selenium.webdriver.common.by import By

    engine = Engine(io.load(page_model))
    browser.get(served + "/")
    _wait(browser, lambda d: "24 items" in _text(d, "#model-info"))
    _wait(browser, lambda d: len(_rows(d)) == 10)  # the empty basket: the most popular items

    # search by title text and add three items
    search = browser.find_element(By.ID, "search")
    search.send_keys("album 1")
    _wait(browser, lambda d: "11 matches" in _text(d, "#search-note"))
    chosen = []

    def add_first_new(d):
        for li in d.find_elements(By.CSS_SELECTOR, "#search-results li"):
            item, button = li.find_element(By.CSS_SELECTOR, "span.id").get_attribute("textContent"), \
                li.find_element(By.TAG_NAME, "button")
            if item not in chosen and button.is_enabled():
                button.click()
                return item
        return None

    for _ in range(3):
        chosen.append(_wait(browser, add_first_new))
        n = len(chosen)
        _wait(browser, lambda d, n=n: f"with the {n} item(s)" in _text(d, "#recs-for"))
    # and one more by an id full of markup, searched for exactly
    search.clear()
    search.send_keys(XSS)
    _wait(browser, lambda d: _text(d, "#search-results li span.id") == XSS)
    browser.find_element(By.CSS_SELECTOR, "#search-results li button").click()
    chosen.append(XSS)
    _wait(browser, lambda d: "with the 4 item(s)" in _text(d, "#recs-for"))

    basket = [e.get_attribute("textContent") for e in browser.find_elements(By.CSS_SELECTOR, "#basket span.id")]
    assert basket == chosen and all(c in ITEMS for c in chosen)
    want = engine.recommend_items(chosen, 10)
    _wait(browser, lambda d: [r[0] for r in _rows(d)] == want.item_ids)
    rows = _rows(browser)
    assert [r[1] for r in rows] == want.titles and not set(chosen) & {r[0] for r in rows}
    np.testing.assert_allclose([r[2] for r in rows], want.scores, atol=1e-4)
    assert browser.execute_script("return window.pwned") is None  # markup in ids and titles stayed text
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main b, main script")
    shot = os.environ.get("AEREC_PAGE_SCREENSHOT")

    # removing an item updates the recommendations
    browser.find_elements(By.CSS_SELECTOR, "#basket li button")[-1].click()
    want3 = engine.recommend_items(chosen[:3], 10)
    _wait(browser, lambda d: [r[0] for r in _rows(d)] == want3.item_ids)
    if shot:
        search.clear()
        search.send_keys("&")
        _wait(browser, lambda d: "matches" in _text(d, "#search-note") and "&" in _text(d, "#search-results"))
        from PIL import Image  # matplotlib's dependency: 256 colours keep a page screenshot small

        Path(shot).parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(shot)
        Image.open(shot).convert("RGB").quantize(256).save(shot, optimize=True)

    # a known user: history and recommendations
    user = f"{USERS_PREFIX}7"
    browser.find_element(By.ID, "user").send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    _wait(browser, lambda d: _text(d, "#recs-for").startswith(f"for user {user}"))
    hist = engine.history(user)
    shown = [e.get_attribute("textContent") for e in browser.find_elements(By.CSS_SELECTOR, "#history span.id")]
    assert shown == hist["items"] and f"{hist['total']} item(s)" in _text(browser, "#user-note")
    want = engine.recommend_user(user, 10)
    _wait(browser, lambda d: [r[0] for r in _rows(d)] == want.item_ids)
    np.testing.assert_allclose([r[2] for r in _rows(browser)], want.scores, atol=1e-4)

    # integers beyond 2^53 stay exact (as strings, which the service matches like the integers)
    assert browser.execute_script("return parseJSON('[9007199254740993, -9007199254740993, 7, 1.5, 1e300]')") == [
        "9007199254740993", "-9007199254740993", 7, 1.5, 1e300]

    # no script error, no refused inline script or style (the policy's hashes match), no failed call
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors

    # an unknown user is a message on the page, not a broken page
    browser.find_element(By.ID, "user").clear()
    browser.find_element(By.ID, "user").send_keys("nobody")
    browser.find_element(By.CSS_SELECTOR, "#user-form button").click()
    _wait(browser, lambda d: "unknown user 'nobody'" in _text(d, "#user-note"))
    errors = [e["message"] for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert len(errors) == 1 and "/history?" in errors[0] and "404" in errors[0], errors


def test_a_rating_model_in_the_browser(browser, rating_case, tmp_path):
    """Rating models: each basket item carries a rating (the top one by default), sent with it."""
    from selenium.webdriver.common.by import By

    d = rating_case.data
    model = models.create("autorec", variant="user", hidden=8, epochs=2, patience=0).fit(rating_case.train)
    io.save(model, tmp_path / "ar", item_ids=d.item_ids, user_ids=d.user_ids, history=rating_case.train,
            item_titles=d.item_titles)
    engine = Engine(io.load(tmp_path / "ar"))
    with _serve(tmp_path / "ar", tmp_path) as url:
        browser.get(url + "/")
        _wait(browser, lambda d: "ratings 1–5" in _text(d, "#model-info"))
        assert _text(browser, "#score-head") == "rating"
        for item in ("101", "105"):
            search = browser.find_element(By.ID, "search")
            search.clear()
            search.send_keys(item)
            _wait(browser, lambda d, item=item: _text(d, "#search-results li span.id") == item)
            browser.find_element(By.CSS_SELECTOR, "#search-results li button").click()
        want = engine.recommend_items([101, 105], 10, ratings=[5.0, 5.0])
        _wait(browser, lambda d: [r[0] for r in _rows(d)] == [str(i) for i in want.item_ids])
        rating = browser.find_elements(By.CSS_SELECTOR, "#basket input.rating")[1]
        assert rating.get_attribute("value") == "5"
        rating.clear()
        rating.send_keys("1\t")  # the change event fires when the field loses focus
        before, want = want, engine.recommend_items([101, 105], 10, ratings=[5.0, 1.0])
        assert not np.allclose(before.scores, want.scores, atol=1e-3)  # so the wait below means something
        _wait(browser, lambda d: [r[2] for r in _rows(d)] == pytest.approx(want.scores, abs=1e-4))
        assert [r[0] for r in _rows(browser)] == [str(i) for i in want.item_ids]
