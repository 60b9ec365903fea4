"""A tiny scripted HTTP server on 127.0.0.1 for download tests.

Each URL path has a list of :class:`Reply` objects served in order; the last
one is repeated for any further request. Unknown paths get 404. Every request
is recorded (path and headers) in ``server.requests``. :func:`bypass_proxies`
keeps a proxy set in the environment from standing between urllib and the server.
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


@dataclasses.dataclass
class Reply:
    """One scripted response.

    ``status`` is the HTTP status; ``body`` the payload. With ``truncate_at``
    the server announces ``len(body)`` bytes but sends only the first
    ``truncate_at`` and closes the connection (a broken transfer). With
    ``send_length=False`` no Content-Length is sent: the body ends when the
    connection closes.
    """

    status: int = 200
    body: bytes = b""
    truncate_at: int | None = None
    send_length: bool = True


@dataclasses.dataclass
class Request:
    path: str
    headers: dict[str, str]


class ScriptedServer:
    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            timeout = 10

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                owner._serve(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, prefix: str) -> str:
        """The base URL of a mirror served under ``/prefix/``."""
        return f"{self.base_url}/{prefix}/"

    def add(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def hits(self, path: str) -> int:
        return sum(r.path == path for r in self.requests)

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.requests.append(Request(handler.path, dict(handler.headers.items())))
            replies = self.routes.get(handler.path)
            if not replies:
                reply = Reply(404, b"not found")
            elif len(replies) > 1:
                reply = replies.pop(0)
            else:
                reply = replies[0]
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/octet-stream")
        if reply.send_length:
            handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        body = reply.body if reply.truncate_at is None else reply.body[: reply.truncate_at]
        handler.wfile.write(body)
        handler.wfile.flush()
        handler.close_connection = True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def bypass_proxies(monkeypatch: Any) -> None:
    """Unset the proxy variables and set ``no_proxy=*`` for the test (a pytest ``monkeypatch``)."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
