"""The HTTP service: FastAPI over an ``Engine`` and a ``MicroBatcher``.

Endpoints: ``POST /recommend``, ``GET|HEAD /health``, ``GET /model``, ``GET /items/{id}``, the
read-only ``GET /items?q=`` (search by id or title) and ``GET /history?user=`` (a known user's
stored items) that the page needs, the page itself at ``GET /`` (``static/index.html``, read once
at start-up), and the OpenAPI docs (``/docs``, ``/openapi.json``). Requests are validated strictly (unknown fields,
wrong types and out-of-range k are 422, and so are ratings an implicit model cannot take or that
lie outside a rating model's range or are not finite as float32), bodies over ``max_body`` bytes are refused with 413
before they are parsed, an unknown user is 404, and unknown items are listed in the answer.
Every id is looked up in in-memory dicts: no request reads a file.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
from importlib import resources
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, model_validator
from starlette.convertors import Convertor, register_url_convertor

from aerec import io
from aerec.errors import AerecError
from aerec.limits import MAX_ID_CHARS
from aerec.serve.batching import MicroBatcher
from aerec.serve.engine import Engine

log = logging.getLogger("aerec.serve")


class AnyText(Convertor):
    """A path parameter that is any text: Starlette's "path" convertor (".*") stops at a line
    break, so an id holding one could not be looked up by /items/{id}."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("anytext", AnyText())

MAX_K = 1000
MAX_ITEMS = 5000  # per list in a request; the body limit usually binds first
MAX_BODY = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024

Id = StrictInt | Annotated[str, StringConstraints(strict=True, max_length=MAX_ID_CHARS)]
Rating = Annotated[float, Field(allow_inf_nan=False)]


class RecommendRequest(BaseModel):
    """Exactly one of ``user`` (a known user, from its stored history) or ``items`` (a new user,
    folded in from these item ids; an empty list gets the popularity fallback)."""

    model_config = ConfigDict(extra="forbid")

    user: Id | None = None
    items: list[Id] | None = Field(None, max_length=MAX_ITEMS)
    ratings: list[Rating] | None = Field(None, max_length=MAX_ITEMS,
                                         description="Rating models: one rating per item (default: the top rating).")
    k: StrictInt = Field(10, ge=1, le=MAX_K, description="Number of items (fewer if fewer are left).")
    exclude: list[Id] = Field(default_factory=list, max_length=MAX_ITEMS, description="Item ids never to recommend.")
    include_seen: StrictBool = Field(False, description="Known users: allow items already in their history "
                                                        "(repeat purchases).")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.user is None) == (self.items is None):
            raise ValueError("give exactly one of 'user' or 'items'")
        if self.ratings is not None and (self.items is None or len(self.ratings) != len(self.items)):
            raise ValueError("'ratings' needs 'items' of the same length")
        return self


class RecommendResponse(BaseModel):
    items: list[int | str]
    scores: list[float]
    titles: list[str | None] | None = None
    unknown_items: list[int | str] = Field(default_factory=list, description="Given ids the model does not know.")
    fallback: str | None = Field(None, description="'popularity' when no known item was given.")


class ItemResponse(BaseModel):
    id: int | str
    title: str | None = None
    popularity: int | None = Field(None, description="Number of stored histories holding the item.")


class SearchResponse(BaseModel):
    items: list[ItemResponse]
    total: int = Field(description="Number of matching items (the answer holds at most 'limit').")


class HistoryResponse(BaseModel):
    user: int | str
    items: list[int | str] = Field(description="The stored history, highest value first (at most 'limit').")
    titles: list[str | None] | None = None
    values: list[float]
    total: int = Field(description="Number of items in the stored history.")


def page() -> tuple[str, str]:
    """The page (static/index.html) and its Content-Security-Policy: its one inline script and
    style are allowed by hash, everything else (other scripts, frames, forms, other hosts) is not."""
    html = resources.files("aerec.serve").joinpath("static", "index.html").read_text(encoding="utf-8")

    def hashes(tag):
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                        for m in re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S))

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
           "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp


class BodyLimit:
    """Refuse request bodies over max_bytes with 413 before anything parses them, and headers
    over MAX_HEADER_BYTES with 431. The body is read here (at most max_bytes + one chunk) and
    replayed to the app."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or []
        if sum(len(k) + len(v) + 4 for k, v in headers) > MAX_HEADER_BYTES:  # h11 bounds only split headers
            return await self._refuse(send, 431)
        length = dict(headers).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await self._refuse(send, 413 if length.isdigit() else 400)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._refuse(send, 413)
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, send, status: int):
        detail = {413: f"request body over {self.max_bytes} bytes", 431: f"request headers over {MAX_HEADER_BYTES} bytes"
                  }.get(status, "bad Content-Length header")
        payload = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def _no_paths(obj):
    """obj with every string that looks like a file path cut to its last part: GET /model must
    not reveal where the training data or the model live on this machine."""
    if isinstance(obj, dict):
        return {k: _no_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_no_paths(v) for v in obj]
    if isinstance(obj, str) and ("/" in obj or "\\" in obj):
        return re.split(r"[\\/]+", obj.rstrip("/\\"))[-1] or "(path)"
    return obj


def model_info(engine: Engine, model_dir=None) -> dict:
    """What GET /model answers; config.json is read once here, at start-up. No local paths."""
    m = engine.model
    saved = {}
    if model_dir is not None:
        with contextlib.suppress(OSError, ValueError):
            saved = json.loads((model_dir / io.CONFIG).read_text())
    if not isinstance(saved, dict):
        saved = {}
    scale = io.rating_range(m)
    return _no_paths({"model": m.name, "task": m.task, "n_items": engine.n_items,
                      "n_users": len(engine.user_index), "has_titles": engine.titles is not None,
                      "rating_range": None if scale is None else list(scale),
                      "config": m.config_dict(), "meta": dict(getattr(m, "meta", None) or {}),
                      "aerec_version": saved.get("aerec_version"), "created": saved.get("created")})


def create_app(model, *, model_dir=None, max_batch: int = 64, batch_wait_ms: float = 2.0,
               max_body: int = MAX_BODY) -> FastAPI:
    """The service for a loaded model (``aerec.io.load``)."""
    engine = Engine(model)
    batcher = MicroBatcher(engine, max_rows=max_batch, max_wait=batch_wait_ms / 1000.0)
    info = {**model_info(engine, model_dir),
            "limits": {"max_k": MAX_K, "max_items": MAX_ITEMS, "max_body_bytes": max_body},
            "batching": {"max_batch": max_batch, "wait_ms": batch_wait_ms}}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await batcher.aclose()

    from aerec import __version__

    app = FastAPI(title="aerec", version=__version__, lifespan=lifespan,
                  description=f"Recommendations from a {model.name} model ({engine.n_items} items).")
    app.state.engine, app.state.batcher = engine, batcher
    html, csp = page()
    page_headers = {"content-security-policy": csp, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "cache-control": "no-cache"}

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        # without the offending input: it may not be JSON-encodable (NaN) and can be large
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.post("/recommend", response_model=RecommendResponse,
              responses={400: {"description": "Request the model cannot answer"}, 404: {"description": "Unknown user"},
                         413: {"description": "Body too large"}})
    async def recommend(req: RecommendRequest):
        try:
            if req.user is not None:
                query = engine.prepare_user(req.user, req.k, req.exclude, exclude_seen=not req.include_seen)
            else:
                query = engine.prepare_items(req.items, req.k, req.exclude, req.ratings)
        except io.UnknownUserError as e:
            if e.below_threshold:
                e.hint = 'fold it in from its items: POST /recommend with {"items": [...]}'
            raise HTTPException(404, str(e)) from None
        except io.RatingsError as e:  # a request the model cannot take, like a schema error
            raise HTTPException(422, str(e)) from None
        except AerecError as e:
            raise HTTPException(400, str(e)) from None
        try:
            rec = await batcher.submit(query)
        except AerecError as e:
            raise HTTPException(400, str(e)) from None
        except Exception as e:  # logged, answered, and the service carries on
            log.error("scoring failed: %s: %s", type(e).__name__, e)
            return JSONResponse({"detail": "internal error while scoring"}, status_code=500)
        return rec.to_dict()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model.name, "requests": batcher.requests, "batches": batcher.batches}

    app.head("/health", include_in_schema=False)(health)  # load balancers probe with HEAD

    @app.get("/model")
    async def model_meta():
        return info

    @app.get("/", include_in_schema=False)
    async def index():
        return HTMLResponse(html, headers=page_headers)

    @app.get("/items", response_model=SearchResponse)
    async def search(q: Annotated[str, Query(max_length=MAX_ID_CHARS, description="Text in the id or title "
                                             "(case-insensitive); empty: the most popular items.")] = "",
                     limit: Annotated[int, Query(ge=1, le=100)] = 20):
        items, total = engine.search(q, limit)
        return {"items": items, "total": total}

    @app.get("/history", response_model=HistoryResponse,
             responses={400: {"description": "Model saved without histories"}, 404: {"description": "Unknown user"}})
    async def history(user: Annotated[str, Query(max_length=MAX_ID_CHARS, description="A known user's id.")],
                      limit: Annotated[int, Query(ge=1, le=MAX_K)] = 100):
        try:
            return engine.history(user, limit)
        except io.UnknownUserError as e:
            raise HTTPException(404, str(e)) from None
        except AerecError as e:
            raise HTTPException(400, str(e)) from None

    # ":anytext" so ids holding "/" or a line break still match; the id is only a dict key, never a file name
    @app.get("/items/{item_id:anytext}", response_model=ItemResponse, responses={404: {"description": "Unknown item"}})
    async def item(item_id: str):
        found = engine.item_info(item_id)
        if found is None:
            raise HTTPException(404, f"unknown item {item_id!r}")
        return found

    if max_body:
        app.add_middleware(BodyLimit, max_bytes=max_body)
    return app
