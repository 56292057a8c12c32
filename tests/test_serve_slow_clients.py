"""`aerec serve` under slow and lying clients, against a real uvicorn server on 127.0.0.1 (a free
port, short limits, every loop bounded, the server stopped at the end). Connections that never
finish their headers, or announce a longer body than they send, are dropped; /health stays 200."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
import uvicorn  # noqa: E402

from aerec import io, models  # noqa: E402
from aerec.serve.app import create_app  # noqa: E402
from aerec.serve.server import server_config  # noqa: E402

WAIT = 8.0  # the most any socket waits (a hang guard, far above the server's 0.5 s read deadline)


@pytest.fixture(scope="module")
def server(block_case, tmp_path_factory):
    d = block_case.data
    model = models.create("pop").fit(block_case.train)
    path = tmp_path_factory.mktemp("pop") / "m"
    io.save(model, path, item_ids=d.item_ids, user_ids=d.user_ids, history=block_case.train)
    app = create_app(io.load(path), batch_wait_ms=0)
    config = server_config(app, host="127.0.0.1", port=0, read_timeout=0.5, keep_alive=0.5, max_connections=8,
                           log_level="critical")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):  # bounded wait for start-up
        if srv.started:
            break
        time.sleep(0.02)
    assert srv.started, "the server did not start"
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield port
    srv.should_exit = True
    thread.join(WAIT)
    assert not thread.is_alive(), "the server did not stop"


def connect(port) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    s.settimeout(WAIT)
    return s


def request(port, raw: bytes) -> bytes:
    """Send raw bytes, read until the server closes or a full response with its body is in."""
    with connect(port) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = [int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")[1:])
                          if k.strip().lower() == b"content-length"]
                if length and len(body) >= length[0]:
                    return data


def closed_by_server(s: socket.socket) -> bool:
    """True once the server closes s (EOF or reset); False if it stays open for WAIT seconds."""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def health_status(port) -> bytes:
    return request(port, b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").split(b"\r\n")[0]


def test_connections_that_never_finish_their_headers_are_dropped(server):
    slow = [connect(server) for _ in range(30)]  # far more than the cap of 8
    try:
        for s in slow:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # never the blank line
        assert b" 200 " in health_status(server) + b" "
        assert all(closed_by_server(s) for s in slow)  # evicted by newer ones or past the deadline
    finally:
        for s in slow:
            s.close()
    assert b" 200 " in health_status(server) + b" "


def test_a_body_shorter_than_its_content_length_is_dropped(server):
    with connect(server) as s:
        s.sendall(b"POST /recommend HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"items\": [100]")
        assert closed_by_server(s)
    assert b" 200 " in health_status(server) + b" "


def test_a_silent_connection_is_dropped_and_a_trickle_does_not_keep_it(server):
    with connect(server) as silent, connect(server) as trickle:
        for _ in range(3):  # a byte now and then: each read resets uvicorn's keep-alive timer, not ours
            trickle.sendall(b"X-")
            time.sleep(0.1)
        assert closed_by_server(silent) and closed_by_server(trickle)


def test_head_health_and_a_real_request_over_the_socket(server):
    head = request(server, b"HEAD /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
    body = b'{"items": [100], "k": 2}'
    got = request(server, b"POST /recommend HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    assert got.startswith(b"HTTP/1.1 200") and b'"items"' in got
    huge_header = b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n"
    assert request(server, huge_header).split(b" ")[1] in (b"400", b"431")
