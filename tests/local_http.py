"""A real HTTP server on 127.0.0.1 for the tests that fetch (no traffic goes elsewhere)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
