"""A real HTTP server on 127.0.0.1 for the tests that fetch, and a fixture that fails a test
whose traffic goes elsewhere."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import pytest

from retrieval.feeds.addresses import AddressPolicy

S = TypeVar("S")


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and sends whole responses with `_send`."""

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8",
              **headers: str) -> None:
        """Status, Content-Type, Content-Length, `headers` (a_b -> a-b), then `body`."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler] = BaseHTTPRequestHandler
                ) -> Iterator[ThreadingHTTPServer]:
    """A server on a free port of 127.0.0.1, serving in a thread until the block ends; its
    handler may be set after it starts (`server.RequestHandlerClass = ...`)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def base_url(server: ThreadingHTTPServer) -> str:
    """http://127.0.0.1:<port> of `server`."""
    return f"http://127.0.0.1:{server.server_address[1]}"


@contextmanager
def site_server(make_site: Callable[[str], S],
                handler_for: Callable[[S], type[BaseHTTPRequestHandler]]) -> Iterator[S]:
    """A test site (made from its base URL) served by the handler made for it."""
    with http_server() as server:
        site = make_site(base_url(server))
        server.RequestHandlerClass = handler_for(site)
        yield site


def rss(base: str, items: list[tuple[str, str]], title: str = "Test feed") -> bytes:
    """An RSS 2.0 feed of `items` ((title, path on `base`)), as a site serves it."""
    entries = "".join(f"<item><title>{t}</title><link>{base}{p}</link></item>"
                      for t, p in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>{base}/</link>{entries}</channel></rss>").encode()


LOCAL = AddressPolicy.allowing(["127.0.0.1"])  # the test servers, on any port


@pytest.fixture(autouse=True)
def only_localhost(monkeypatch):
    """Any connection to an address other than 127.0.0.1 fails the test (autouse in the
    modules that import it)."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
