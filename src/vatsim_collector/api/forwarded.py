"""The client's address behind reverse proxies, believed only from proxies the operator names.

Anybody can send ``X-Forwarded-For``: believed from any peer, it lets one client pose as any
number of addresses (a fresh rate-limit bucket per request). So the header counts only when the
peer itself is a configured trusted proxy, and then only the hops that proxy (and any trusted
proxies before it) appended: the list is walked from the right, trusted hops skipped, and the
first untrusted address is the client. Everything left of it was written by that client.

The server must not rewrite the peer itself (uvicorn does for 127.0.0.1 unless started with
``proxy_headers=False``): this middleware is then the only place forwarded headers are read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# A header longer than this is not a proxy chain but an attempt to make the walk expensive.
MAX_FORWARDED_HOPS = 32


class TrustedProxies:
    """Addresses and networks whose forwarded headers are believed (none by default)."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        networks: list[IPNetwork] = []
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted proxy {text!r} is neither an IP address nor a network"
                ) from None
        self.networks = tuple(networks)

    @classmethod
    def parse(cls, setting: str) -> TrustedProxies:
        """From the comma-separated setting (``VATSIM_TRUSTED_PROXIES``)."""
        return cls(setting.split(","))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress | None) -> bool:
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    def client_of(self, peer: str, forwarded_for: Iterable[str]) -> str:
        """The client address for a request from ``peer`` carrying these X-Forwarded-For values.

        An unparseable hop ends the walk at the last address known good, so that garbage a
        client wrote cannot become its identity.
        """
        current = _address(peer)
        if current is None or not self.trusts(current):
            return peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
            address = _address(hop)
            if address is None:
                break
            current = address
            if not self.trusts(current):
                break
        return str(current)


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class ForwardedClient:
    """Sets ``scope["client"]`` from trusted proxies' ``X-Forwarded-For``.

    Everything after it (the rate limit, logs) sees the resolved client as the peer.
    ``X-Forwarded-Proto`` is not read: nothing here builds an absolute URL (redirects are
    relative, ``api/redirects.py``).
    """

    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.proxies:
            peer = scope.get("client")
            if peer and self.proxies.trusts(_address(peer[0])):
                headers = Headers(scope=scope)
                client = self.proxies.client_of(peer[0], headers.getlist("x-forwarded-for"))
                scope = dict(scope, client=(client, 0 if client != peer[0] else peer[1]))
        await self.app(scope, receive, send)
