"""Endpoint safety: https off the embedded chain; never a loopback, private or link-local address
(checked after DNS resolution) unless TWIN_PROXY_ALLOW_PRIVATE_ENDPOINTS; no redirects followed."""

from __future__ import annotations

import httpx
import pytest

from app.chain.client import Chain
from app.proxy.accounts import platform_wallet
from app.proxy.client.client import NoNodeAvailable, NoTrustedNode, ProxyClient
from app.proxy.client.endpoints import endpoint_problem
from app.proxy.config import ProxySettings
from app.proxy.node.app import in_process_node
from app.proxy.node.attestation import code_measurement
from tests.proxy.conftest import node_settings
from tests.proxy.fakes import FakeProviders

MESSAGES = [{"role": "system", "content": "PRIVATE PERSONA"}, {"role": "user", "content": "Hi"}]


def resolving_to(*addresses: str):
    async def resolver(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolver


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1",
        "http://10.0.0.1",
        "http://169.254.169.254",
        "http://[::1]",
        "https://127.0.0.1:8443",
        "https://10.0.0.1",
        "https://172.16.0.9",
        "https://192.168.1.1",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]",
        "https://[::ffff:127.0.0.1]",
        "https://[fe80::1]",
        "https://[fd00::1]",
        "https://0.0.0.0",
        "https://100.64.0.1",
        "https://224.0.0.1",
    ],
)
async def test_non_public_addresses_are_refused(url: str) -> None:
    problem = await endpoint_problem(url, allow_private=False, resolver=resolving_to("93.184.216.34"))
    assert problem is not None
    assert await endpoint_problem(url, allow_private=True) is None  # the embedded default


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (("10.0.0.5",), "10.0.0.5 is a private"),
        (("93.184.216.34", "127.0.0.1"), "127.0.0.1 is a loopback"),  # any answer that is not public
        (("169.254.169.254",), "link-local"),
        (("::1",), "loopback"),
        (("93.184.216.34", "2606:2800:220:1::1"), None),
    ],
)
async def test_names_are_checked_after_resolution(addresses: tuple[str, ...], refused: str | None) -> None:
    problem = await endpoint_problem("https://node.example", allow_private=False, resolver=resolving_to(*addresses))
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        assert refused in problem
        assert "node.example resolves to" in problem


async def test_https_is_required_and_names_must_resolve() -> None:
    public = resolving_to("93.184.216.34")
    assert (
        await endpoint_problem("http://node.example", allow_private=False, resolver=public)
        == "the endpoint must use https"
    )
    assert await endpoint_problem("ftp://node.example", allow_private=False, resolver=public) is not None
    assert await endpoint_problem("https://user:pw@node.example", allow_private=False, resolver=public) is not None
    assert "does not resolve" in (
        await endpoint_problem("https://node.example", allow_private=False, resolver=resolving_to()) or ""
    )

    async def failing(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    assert "does not resolve" in (
        await endpoint_problem("https://x.invalid", allow_private=False, resolver=failing) or ""
    )


async def test_a_trusted_node_at_a_private_endpoint_is_not_routed_to(chain: Chain, node_url: str) -> None:
    """The session's uvicorn node registered http://127.0.0.1:PORT; its measurement is allowlisted, so only
    the endpoint keeps it from being routed to when private endpoints are not allowed."""
    assert node_url.startswith("http://127.0.0.1:")
    base = ProxySettings(trusted_measurements=[code_measurement()])
    strict = base.model_copy(update={"allow_private_endpoints": False})
    client = ProxyClient(chain, platform_wallet(strict, chain), strict)
    lenient = ProxyClient(chain, platform_wallet(base, chain), base)  # embedded chain: private allowed
    try:
        (record,) = [node for node in await client.healthy_nodes() if node.endpoint == node_url]
        trust = await client.assess(record)
        assert (trust.trusted, trust.detail) == (False, "unsafe endpoint: the endpoint must use https")
        assert client.trust_of(record).reason == "measurement"
        with pytest.raises(NoTrustedNode, match="unsafe endpoint"):
            await client.chat(model="gpt-fake", messages=MESSAGES)
        assert (await lenient.assess(record)).reason == "measurement"
    finally:
        await client.aclose()
        await lenient.aclose()


async def test_redirects_are_not_followed(chain: Chain, fake_upstream: tuple[str, FakeProviders]) -> None:
    seen: list[str] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(307, headers={"location": "http://169.254.169.254/latest/meta-data"})

    settings = node_settings(fake_upstream[0])
    async with in_process_node(settings, chain, name="redirecting") as node:
        client = ProxyClient(
            chain,
            platform_wallet(settings, chain),
            settings,
            transports={node.endpoint: httpx.MockTransport(redirect)},
            own_tee_ids=[node.tee_id],
        )
        try:
            with pytest.raises(NoNodeAvailable, match="HTTP 307"):
                await client.chat(model="gpt-fake", messages=MESSAGES)
        finally:
            await client.aclose()
    assert seen == [f"{node.endpoint}/v1/chat/completions"]
