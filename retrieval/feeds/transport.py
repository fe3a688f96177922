"""The fetcher's connections: to checked addresses only, and within one deadline per fetch.

httpx resolves and connects through httpcore's network backend; `GuardedBackend` takes its
place. It resolves the host itself, checks every address against the AddressPolicy, and
connects to the address it checked (no second lookup that DNS rebinding could answer
differently); TLS still verifies the host's name. Every read and write of a connection
made for a fetch is bounded by that fetch's deadline, so a server that sends a byte every
few seconds cannot hold it past the deadline (httpx's timeouts are per read).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from retrieval.feeds.addresses import AddressPolicy, Blocked


class _Deadline(threading.local):
    at: float | None = None
    exempt: str | None = None  # the host a user named, fetched wherever it points


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's blocking backend, connecting only where `policy` allows."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self.state = _Deadline()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        timeout = self._left(timeout)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        if self.state.exempt is None or host.lower() != self.state.exempt:
            for address in addresses:  # every one: a name may give a public and a private
                self.policy.check(host, ipaddress.ip_address(address.split("%")[0]), port)
        stream = super().connect_tcp(addresses[0], port, timeout, local_address,
                                     socket_options)
        return _BoundedStream(stream, self)

    def _left(self, timeout: float | None) -> float | None:
        """`timeout`, shortened to what is left of the fetch's deadline."""
        if self.state.at is None:
            return timeout
        left = self.state.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch ran past its deadline")
        return left if timeout is None else min(timeout, left)

    @contextlib.contextmanager
    def deadline(self, seconds: float, exempt: str | None = None) -> Iterator[None]:
        """Within: every connect, read and write ends by `seconds` from now; connections to
        `exempt` (a host the user named) are not checked."""
        self.state.at, self.state.exempt = time.monotonic() + seconds, exempt
        try:
            yield
        finally:
            self.state.at = self.state.exempt = None


class _BoundedStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current fetch's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, backend: GuardedBackend) -> None:
        self._stream, self._backend = stream, backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._backend._left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._backend._left(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        tls = self._stream.start_tls(ssl_context, server_hostname,
                                     self._backend._left(timeout))
        return _BoundedStream(tls, self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every fetch: loading the CA bundle costs CPU with the
    GIL held (docs/security.md, "Measured")."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def guarded_transport(policy: AddressPolicy) -> tuple[httpx.HTTPTransport, GuardedBackend]:
    """An httpx transport whose connections go through a GuardedBackend (and the backend)."""
    transport = httpx.HTTPTransport(verify=tls_context())
    pool = transport._pool  # httpx gives no way to pass httpcore a network backend
    if not hasattr(pool, "_network_backend"):
        raise RuntimeError("this httpcore keeps its network backend elsewhere: update "
                           "retrieval.feeds.transport")
    backend = GuardedBackend(policy)
    pool._network_backend = backend
    return transport, backend


__all__ = ["Blocked", "GuardedBackend", "guarded_transport"]
