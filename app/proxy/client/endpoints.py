"""Endpoint safety: where the backend will send a persona and a payment.

A node's endpoint is whatever its operator wrote in the registry, so before routing to it the backend
checks it: ``https`` (on any chain but the embedded one), and every address its host resolves to is a
public one: never loopback, private (RFC 1918, ULA), link-local (169.254/16 — the cloud metadata
service — and fe80::/10), shared, multicast, reserved or unspecified, IPv4-mapped or not. The check
runs after DNS resolution; ``TWIN_PROXY_ALLOW_PRIVATE_ENDPOINTS`` turns it off (the default on the
embedded chain). The proxy client never follows redirects, so a public endpoint cannot bounce a
request to a private one.

The host is resolved again when httpx connects; a name whose answers change between the two (DNS
rebinding) is a residual risk the short cache below keeps small, and trusted nodes (approved or
measured) are not expected to play it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable

import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
CACHE_S = 30.0


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a public unicast address, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


async def endpoint_problem(
    url: str, *, allow_private: bool, resolver: Resolver = resolve, timeout_s: float = 5.0
) -> str | None:
    """Why the backend must not send requests to ``url``, or None when it may."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as error:
        return f"the endpoint is not a URL ({error})"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "the endpoint must be an http(s) URL with a host"
    if allow_private:
        return None
    if parsed.scheme != "https":
        return "the endpoint must use https"
    if parsed.userinfo:
        return "the endpoint must not carry credentials"
    host = parsed.host
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            async with asyncio.timeout(timeout_s):
                addresses = await resolver(host, parsed.port or 443)
        except (OSError, TimeoutError) as error:
            return f"{host} does not resolve ({type(error).__name__})"
        if not addresses:
            return f"{host} does not resolve"
    for address in addresses:
        if problem := address_problem(address):
            return f"{host} resolves to {problem}" if literal is None else f"the endpoint's host {problem}"
    return None


class EndpointGuard:
    """:func:`endpoint_problem` with a short cache per endpoint (DNS answers change)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        timeout_s: float,
        resolver: Resolver = resolve,
        exempt: frozenset[str] = frozenset(),
    ) -> None:
        self.allow_private = allow_private
        self._timeout = timeout_s
        self._resolver = resolver
        self._exempt = exempt  # endpoints served in-process: never on the network
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def problem(self, endpoint: str) -> str | None:
        if endpoint in self._exempt:
            return None
        cached = self._cache.get(endpoint)
        if cached is not None and time.monotonic() - cached[0] < CACHE_S:
            return cached[1]
        problem = await endpoint_problem(
            endpoint, allow_private=self.allow_private, resolver=self._resolver, timeout_s=self._timeout
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[endpoint] = (time.monotonic(), problem)
        return problem
