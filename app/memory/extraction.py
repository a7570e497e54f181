"""Extraction: what the fan said, turned into short facts by the avatar's model through the proxy node.

The request is a chat completion like any reply (paid with x402 and attested, at the avatar's model and
verification level, only to trusted nodes) whose user messages are what the fan said since the last extraction,
oldest first; the model answers JSON, each fact with the number of the message it comes from (the last when
left out)::

    {"facts": [{"kind": "name", "key": "name", "text": "Their name is Sam", "message": 1}, …]}

Anything else (not JSON, a wrong shape, an unknown kind, an empty or overlong text) is
:class:`MalformedExtraction`: the turn's facts are dropped with a log line, never half-stored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.memory.models import MAX_FACT_CHARS, MAX_KEY_CHARS, MemoryKind
from app.proxy.client.client import ProxyClient
from app.proxy.protocol import VerificationLevel

MAX_FACTS_PER_TURN = 12
EXTRACTION_MAX_TOKENS = 400  # per message asked about, up to EXTRACTION_MAX_TOKENS_PER_CALL
EXTRACTION_MAX_TOKENS_PER_CALL = 1_600

EXTRACTION_PROMPT = (
    "You extract durable facts about the user from their messages and answer with JSON only.\n"
    'Answer {"facts": [{"kind": …, "key": …, "text": …, "message": …}]}, with [] when there is nothing worth '
    "remembering.\n"
    "Each user message is one thing the user said, oldest first; message: the number of the one the fact comes "
    "from (1 = the first). A later message overrides an earlier one.\n"
    f"kind: one of {', '.join(kind.value for kind in MemoryKind)}.\n"
    'key: a short normalised key, the same for the same subject ("name", "home", "goal:marathon", '
    '"preference:sushi"), so that a new value replaces the old one.\n'
    'text: one short sentence in the third person ("Their name is Sam", "They love sushi").\n'
    "Only facts the user states about themselves or asks you to remember; never guesses."
)

_KEY_PART = re.compile(r"[^a-z0-9-]+")


class MalformedExtraction(ValueError):
    """The model's answer is not the facts JSON asked for."""


@dataclass(frozen=True)
class Fact:
    kind: MemoryKind
    key: str
    text: str
    message: int = 0  # which of the messages asked about it comes from (0-based)


def extraction_messages(said: Sequence[str]) -> list[dict[str, str]]:
    return [{"role": "system", "content": EXTRACTION_PROMPT}, *({"role": "user", "content": text} for text in said)]


def normalise_key(kind: MemoryKind, key: str) -> str:
    """Lower case, ``subject`` or ``kind:subject`` of ``[a-z0-9-]``; the same subject always gives the same key."""
    parts = [_KEY_PART.sub("-", part.strip().lower()).strip("-") for part in key.split(":", 1)]
    parts = [part for part in parts if part]
    if not parts:
        return kind.value
    return ":".join(parts)[:MAX_KEY_CHARS]


def _json_object(output: str) -> object:
    """The JSON object in ``output``; models like to wrap it in a code fence or a sentence."""
    start, end = output.find("{"), output.rfind("}")
    if start < 0 or end < start:
        raise MalformedExtraction("no JSON object in the answer")
    try:
        return json.loads(output[start : end + 1])
    except (ValueError, RecursionError) as error:
        raise MalformedExtraction(f"not JSON: {error}") from None


def parse_facts(output: str, messages: int = 1) -> list[Fact]:
    """The facts in a model's answer about ``messages`` messages, each with the one it comes from."""
    document = _json_object(output)
    facts = document.get("facts") if isinstance(document, dict) else None
    if not isinstance(facts, list):
        raise MalformedExtraction('expected {"facts": [...]}')
    parsed: list[Fact] = []
    for item in facts[: MAX_FACTS_PER_TURN * messages]:
        if not isinstance(item, dict) or not all(isinstance(item.get(name), str) for name in ("kind", "key", "text")):
            raise MalformedExtraction("each fact is {kind, key, text}, all strings")
        try:
            kind = MemoryKind(item["kind"].strip().lower())
        except ValueError:
            raise MalformedExtraction(f"unknown kind {item['kind'][:32]!r}") from None
        text = " ".join(item["text"].split())
        if not text or len(text) > MAX_FACT_CHARS:
            raise MalformedExtraction(f"a fact's text is 1–{MAX_FACT_CHARS} characters")
        source = item.get("message", messages)
        if type(source) is not int or not 1 <= source <= messages:
            raise MalformedExtraction(f"a fact's message is a number from 1 to {messages}")
        parsed.append(Fact(kind, normalise_key(kind, item["key"]), text, source - 1))
    return parsed


async def extract(
    proxy: ProxyClient, *, model: str, verification: VerificationLevel, said: Sequence[str]
) -> tuple[list[Fact], int]:
    """The facts in what the fan said (one or more messages, oldest first) and the wei paid for asking, in one
    call (raises what the proxy client raises)."""
    result = await proxy.chat(
        model=model,
        messages=extraction_messages(said),
        verification=verification,
        max_tokens=min(EXTRACTION_MAX_TOKENS * len(said), EXTRACTION_MAX_TOKENS_PER_CALL),
    )
    paid = result.payment is not None and result.payment.success and result.payment.amount
    facts = parse_facts(result.text, len(said))
    return facts, int(result.payment.amount) if paid else 0  # type: ignore[union-attr,arg-type]
