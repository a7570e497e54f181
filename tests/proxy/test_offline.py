"""The offline demo model: in the persona's voice, deterministic, paced, counted."""

from __future__ import annotations

import time

from app.proxy.node.chat_request import parse_chat_request
from app.proxy.node.upstreams.base import Finished, TextDelta, Usage
from app.proxy.node.upstreams.offline import OfflineDemoUpstream, compose_reply, estimate_prompt_tokens

PERSONA = (
    "You are Ada Lovelace, a mathematician who wrote the first program. Speak warmly.\n"
    "A loop repeats the same steps until its condition says stop.\n"
    "A function is a recipe with a name: give it ingredients and it hands back a dish.\n"
    "The Analytical Engine would weave algebraic patterns as the Jacquard loom weaves flowers."
)


def request(user: str, **fields: object):
    body = {
        "model": "twin-offline-demo",
        "messages": [{"role": "system", "content": PERSONA}, {"role": "user", "content": user}],
    } | fields
    return parse_chat_request(body, known_models={"twin-offline-demo": None}, max_completion_tokens=4096)


async def run(model: OfflineDemoUpstream, user: str, **fields: object) -> tuple[str, Usage, Finished]:
    events = [event async for event in model.stream(request(user, **fields), "twin-offline-demo")]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    return text, next(e for e in events if isinstance(e, Usage)), events[-1]


def test_reply_introduces_the_persona_and_answers_from_its_most_relevant_line() -> None:
    reply = compose_reply(PERSONA, "How does a loop know when to stop?")

    assert reply.startswith("I'm Ada Lovelace, a mathematician who wrote the first program.")
    assert "A loop repeats the same steps until its condition says stop." in reply
    assert "Jacquard" not in reply
    assert "How does a loop know" not in reply  # no echo of the question


def test_later_replies_skip_the_introduction() -> None:
    first = compose_reply(PERSONA, "Tell me about a loop and a function.")
    second = compose_reply(PERSONA, "Tell me about a loop and a function.", [first])

    assert not second.startswith("I'm Ada")
    assert "A loop repeats" in first
    assert "A function is a recipe" in first
    assert second != first


def test_a_question_outside_the_persona_gets_a_line_of_it_not_silence() -> None:
    reply = compose_reply(PERSONA, "Who wins the football tonight?")

    assert any(line in reply for line in PERSONA.splitlines()[1:])


def test_same_conversation_same_reply_and_different_ones_differ() -> None:
    first = compose_reply(PERSONA, "What is a loop?")

    assert compose_reply(PERSONA, "What is a loop?") == first
    assert compose_reply(PERSONA, "What is a function?") != first
    assert compose_reply("You are Grace Hopper, an admiral.", "What is a loop?") != first


async def test_usage_counts_streamed_tokens_and_estimates_the_prompt() -> None:
    model = OfflineDemoUpstream("offline", tokens_per_second=0)
    text, usage, finish = await run(model, "What is a loop?")
    streamed = [e async for e in model.stream(request("What is a loop?"), "m") if isinstance(e, TextDelta)]

    assert text == compose_reply(PERSONA, "What is a loop?")
    assert usage.completion_tokens == len(streamed)
    assert usage.prompt_tokens == estimate_prompt_tokens(request("What is a loop?").messages)
    assert usage.prompt_tokens == 3 + (4 + -(-len(PERSONA) // 4)) + (4 + 4)
    assert finish == Finished("stop")


async def test_max_tokens_truncates_with_finish_length() -> None:
    text, usage, finish = await run(OfflineDemoUpstream("offline", tokens_per_second=0), "Hi", max_tokens=3)

    assert usage.completion_tokens == 3
    assert finish == Finished("length")
    assert compose_reply(PERSONA, "Hi").startswith(text)


async def test_tokens_are_paced_at_the_configured_rate() -> None:
    model = OfflineDemoUpstream("offline", tokens_per_second=200)
    started = time.perf_counter()
    _, usage, _ = await run(model, "Hi")
    elapsed = time.perf_counter() - started

    assert elapsed >= (usage.completion_tokens - 1) / 200
    assert elapsed < usage.completion_tokens / 200 + 0.5
