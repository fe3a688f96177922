"""Which network addresses a fetch may connect to: public unicast on the default ports,
plus what the operator allows (BYLINE_FETCH_ALLOW). Checked on the address a name resolves
to, on every hop, and the connection goes to the address that was checked (retrieval.feeds.fetch).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = frozenset({80, 443})
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class Blocked(Exception):
    """A request would connect to an address the policy refuses (the message says which)."""


def embedded_v4(ip: IP) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo's client, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IP) -> bool:
    """Public unicast: not loopback, private, link-local, CGNAT, multicast, unspecified,
    reserved or documentation space, in any of the IPv6 forms that carry an IPv4 address."""
    inner = embedded_v4(ip)
    if inner is not None and not is_public(inner):
        return False
    if isinstance(ip, ipaddress.IPv6Address) and any(ip in net for net in _NAT64[1:]):
        return False  # local-use NAT64: whatever it translates to is a local network's
    return ip.is_global and not ip.is_multicast and not ip.is_unspecified


@dataclass(frozen=True)
class AddressPolicy:
    """Public unicast on ports 80 and 443, plus the hosts and networks the operator allows,
    on any port."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> AddressPolicy:
        """Hosts (`intranet.example`) and networks (`10.0.0.0/8`, `127.0.0.1`) allowed too;
        ValueError naming an entry that is neither."""
        hosts, networks = set(), []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not all(part.replace("-", "").isalnum() for part in entry.split(".")):
                    raise ValueError(f"{raw.strip()!r} is neither a host name nor an "
                                     "address or network") from None
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AddressPolicy:
        """BYLINE_FETCH_ALLOW: comma-separated hosts and networks allowed beside public
        addresses (a newsroom's intranet, say)."""
        env = os.environ if env is None else env
        return cls.allowing((env.get("BYLINE_FETCH_ALLOW") or "").split(","))

    def check(self, host: str, ip: IP, port: int) -> None:
        """Blocked unless a connection to `ip`:`port` (for the name `host`) is allowed."""
        name = host.lower().rstrip(".").strip("[]")
        if name in self.hosts or any(ip in net for net in self.networks):
            return
        inner = embedded_v4(ip)
        if inner is not None and any(inner in net for net in self.networks):
            return
        if not is_public(ip):
            raise Blocked(f"{host} is at {ip}, an address that is not allowed")
        if port not in DEFAULT_PORTS:
            raise Blocked(f"port {port} is not allowed (only 80 and 443)")
