"""Running the service under uvicorn with limits that slow or lying clients cannot exhaust.

uvicorn alone bounds neither how long a client may take to send its headers nor how long a
body may take to arrive (a ``Content-Length`` larger than the body waits forever), and with
``limit_concurrency`` such connections crowd real requests out with 503s. ``GuardedH11`` (uvicorn's
h11 protocol) adds:

- a read deadline: a request's headers and body must arrive within ``read_timeout`` seconds of
  the connection opening (or of the previous response), else the connection is closed;
- a connection cap: a new connection beyond ``max_connections`` closes the oldest connection
  that is not waiting for its answer (one still sending, or idle between requests), so half-open
  connections can never lock out a real request; only when every connection awaits its answer
  do further requests get 503.

Headers are limited to ``MAX_HEADER_BYTES`` (h11's incomplete-event limit, 400, for headers that
arrive in pieces; ``app.BodyLimit``, 431, for the rest) and
bodies to ``max_body`` (``app.BodyLimit``: 413); idle keep-alive connections close after
``keep_alive`` seconds.
"""

from __future__ import annotations

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from aerec.serve.app import MAX_HEADER_BYTES

READ_TIMEOUT = 10.0
KEEP_ALIVE = 5.0
MAX_CONNECTIONS = 512


class GuardedH11(H11Protocol):
    read_timeout = READ_TIMEOUT
    max_connections = MAX_CONNECTIONS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._deadline = None
        self._arm()
        if len(self.connections) > self.max_connections:
            self._evict()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets its own deadline

    # a request is "unread" until h11 has its headers and its whole body
    def _unread(self) -> bool:
        return self.conn.their_state in (h11.IDLE, h11.SEND_BODY)

    def _arm(self) -> None:
        self._disarm()
        self._since = self.loop.time()
        self._deadline = self.loop.call_later(self.read_timeout, self._expire)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self._unread():
            self.logger.info("closing a connection that did not send its request within %gs", self.read_timeout)
            self._drop()

    def _drop(self) -> None:
        self.connections.discard(self)  # counted out at once; connection_lost follows
        self.transport.close()

    def _evict(self) -> None:
        idle = [c for c in self.connections
                if c is not self and isinstance(c, GuardedH11) and not c.transport.is_closing() and c._unread()]
        if idle:
            oldest = min(idle, key=lambda c: c._since)
            self.logger.info("connection cap %d reached: closing the oldest connection without a complete request",
                             self.max_connections)
            oldest._drop()


def guarded_protocol(read_timeout: float = READ_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> type:
    """GuardedH11 with these limits (uvicorn builds protocol instances from a class)."""
    if read_timeout <= 0 or max_connections < 1:
        raise ValueError("read_timeout must be > 0 and max_connections >= 1")
    return type("GuardedH11", (GuardedH11,), {"read_timeout": float(read_timeout),
                                              "max_connections": int(max_connections)})


def server_config(app, *, host: str = "127.0.0.1", port: int = 8000, read_timeout: float = READ_TIMEOUT,
                  keep_alive: float = KEEP_ALIVE, max_connections: int = MAX_CONNECTIONS,
                  log_level: str = "info", access_log: bool = False) -> uvicorn.Config:
    """The uvicorn configuration ``aerec serve`` runs with (also used by the tests)."""
    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=access_log,
        http=guarded_protocol(read_timeout, max_connections), ws="none", lifespan="on",
        # beyond the cap only connections that all await answers remain: their requests get 503
        limit_concurrency=max_connections + 1, timeout_keep_alive=keep_alive,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES, timeout_graceful_shutdown=5)
