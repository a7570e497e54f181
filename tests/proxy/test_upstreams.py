"""Each upstream adapter against a fake speaking its provider's wire format on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.proxy.config import UpstreamTarget
from app.proxy.node.chat_request import ChatRequest, parse_chat_request
from app.proxy.node.errors import UpstreamUnavailable
from app.proxy.node.router import MidStreamError, UpstreamRouter
from app.proxy.node.upstreams.anthropic import AnthropicUpstream
from app.proxy.node.upstreams.base import Finished, TextDelta, ToolCalls, Upstream, UpstreamError, UpstreamEvent, Usage
from app.proxy.node.upstreams.gemini import GeminiUpstream
from app.proxy.node.upstreams.offline import OfflineDemoUpstream
from app.proxy.node.upstreams.openai import OpenAIUpstream
from tests.proxy.conftest import FAKE_KEYS, eventually
from tests.proxy.fakes import PROMPT_TOKENS, REPLY_TEXT, REPLY_TOKENS, FakeProviders


def chat_request(**fields: object) -> ChatRequest:
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "You are Ada Lovelace, a mathematician."},
            {"role": "user", "content": "Hello?"},
        ],
    } | fields
    return parse_chat_request(body, known_models={"m": None}, max_completion_tokens=512)


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def adapters(fake_upstream: tuple[str, FakeProviders], http_client: httpx.AsyncClient) -> dict[str, Upstream]:
    url = fake_upstream[0]
    return {
        "openai": OpenAIUpstream("openai", f"{url}/v1", FAKE_KEYS["FAKE_OPENAI_KEY"], http_client),
        "anthropic": AnthropicUpstream(
            "anthropic", url, FAKE_KEYS["FAKE_ANTHROPIC_KEY"], http_client, default_max_tokens=256
        ),
        "gemini": GeminiUpstream("gemini", url, FAKE_KEYS["FAKE_GEMINI_KEY"], http_client),
        "offline": OfflineDemoUpstream("offline", tokens_per_second=0),
    }


async def collect(events: AsyncIterator[UpstreamEvent]) -> list[UpstreamEvent]:
    return [event async for event in events]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
async def test_streams_text_usage_and_finish(adapters: dict[str, Upstream], provider: str) -> None:
    events = await collect(adapters[provider].stream(chat_request(), "ok"))

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == REPLY_TEXT
    assert [e for e in events if isinstance(e, Usage)] == [Usage(PROMPT_TOKENS, len(REPLY_TOKENS))]
    assert events[-1] == Finished("stop")


async def test_each_provider_gets_its_own_request_shape_and_key(
    adapters: dict[str, Upstream], fake_upstream: tuple[str, FakeProviders]
) -> None:
    providers = fake_upstream[1]
    for name in ("openai", "anthropic", "gemini"):
        await collect(adapters[name].stream(chat_request(temperature=1.5, max_tokens=64, stop="END"), "ok"))
    openai, anthropic, gemini = providers.requests[-3:]

    assert openai["headers"]["authorization"] == f"Bearer {FAKE_KEYS['FAKE_OPENAI_KEY']}"
    assert openai["body"]["stream_options"] == {"include_usage": True}
    assert openai["body"]["messages"][0]["role"] == "system"
    assert anthropic["headers"]["x-api-key"] == FAKE_KEYS["FAKE_ANTHROPIC_KEY"]
    assert anthropic["headers"]["anthropic-version"] == "2023-06-01"
    assert anthropic["body"]["system"] == "You are Ada Lovelace, a mathematician."
    assert anthropic["body"]["messages"] == [{"role": "user", "content": "Hello?"}]
    assert anthropic["body"]["temperature"] == 1.0  # clamped to Anthropic's range
    assert anthropic["body"]["stop_sequences"] == ["END"]
    assert gemini["headers"]["x-goog-api-key"] == FAKE_KEYS["FAKE_GEMINI_KEY"]
    assert gemini["body"]["systemInstruction"] == {"parts": [{"text": "You are Ada Lovelace, a mathematician."}]}
    assert gemini["body"]["generationConfig"] == {"temperature": 1.5, "maxOutputTokens": 64, "stopSequences": ["END"]}


@pytest.mark.parametrize(
    ("provider", "reason"),
    [("openai", "HTTP 500"), ("anthropic", "HTTP 529: overloaded_error"), ("gemini", "HTTP 500")],
)
async def test_failure_before_first_token_is_an_upstream_error(
    adapters: dict[str, Upstream], provider: str, reason: str
) -> None:
    with pytest.raises(UpstreamError, match=reason):
        await collect(adapters[provider].stream(chat_request(), "fail"))


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        ("openai", "fake failure mid-stream"),
        ("anthropic", "overloaded_error: Overloaded"),
        ("gemini", "UNAVAILABLE: fake overload"),
    ],
)
async def test_mid_stream_error_event_raises_after_the_tokens(
    adapters: dict[str, Upstream], provider: str, reason: str
) -> None:
    seen: list[str] = []

    async def read_all() -> None:
        async for event in adapters[provider].stream(chat_request(), "midstream"):
            if isinstance(event, TextDelta):
                seen.append(event.text)

    with pytest.raises(UpstreamError, match=reason):
        await read_all()
    assert seen == REPLY_TOKENS[:2]


async def test_openai_tool_call_fragments_are_joined(adapters: dict[str, Upstream]) -> None:
    events = await collect(adapters["openai"].stream(chat_request(), "tools"))

    assert (
        ToolCalls(
            [{"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "weather"}'}}]
        )
        in events
    )
    assert events[-1] == Finished("tool_calls")


def router(adapters: dict[str, Upstream], *targets: str, first_token_timeout: float = 1.0) -> UpstreamRouter:
    route = [UpstreamTarget(upstream=t.partition(":")[0], model=t.partition(":")[2]) for t in targets]
    return UpstreamRouter(adapters, {"m": route}, first_token_timeout=first_token_timeout, idle_timeout=0.5)


async def test_failover_before_the_first_token_reaches_the_next_upstream(adapters: dict[str, Upstream]) -> None:
    stream = await router(adapters, "openai:fail", "anthropic:fail", "gemini:ok").open(chat_request())

    assert stream.upstream == "gemini"
    assert "".join([e.text async for e in stream.events() if isinstance(e, TextDelta)]) == REPLY_TEXT


async def test_a_silent_first_token_times_out_and_fails_over(
    adapters: dict[str, Upstream], fake_upstream: tuple[str, FakeProviders]
) -> None:
    stream = await router(adapters, "openai:slow", "anthropic:ok", first_token_timeout=0.3).open(chat_request())

    assert stream.upstream == "anthropic"
    await stream.close()


async def test_when_every_upstream_fails_each_is_named(adapters: dict[str, Upstream]) -> None:
    with pytest.raises(UpstreamUnavailable) as raised:
        await router(adapters, "openai:fail", "anthropic:fail").open(chat_request())

    assert "openai: HTTP 500" in raised.value.message
    assert "anthropic: HTTP 529" in raised.value.message
    assert raised.value.status_code == 502


async def test_no_switching_after_the_first_token(adapters: dict[str, Upstream]) -> None:
    stream = await router(adapters, "anthropic:midstream", "gemini:ok").open(chat_request())

    with pytest.raises(MidStreamError, match="overloaded_error"):
        await collect(stream.events())
    assert stream.upstream == "anthropic"


async def test_silence_between_tokens_ends_the_stream(
    adapters: dict[str, Upstream], fake_upstream: tuple[str, FakeProviders]
) -> None:
    disconnects = fake_upstream[1].disconnects
    before = disconnects.count("openai:hang")
    stream = await router(adapters, "openai:hang").open(chat_request())

    with pytest.raises(MidStreamError, match=r"no token for 0\.5s"):
        await collect(stream.events())
    await eventually(lambda: disconnects.count("openai:hang") > before)  # the fake saw its request closed
