"""The offline demo model (``twin-offline-demo``): the product works with no API key at all.

It answers in the avatar's voice from two things only, the persona (the system prompt) and
the last user message, and the same conversation always gets the same reply. Tokens are
streamed at a configured pace so the chat feels like a real model. Usage is counted the same
way every time: completion tokens are the tokens streamed, prompt tokens are estimated as
4 per message plus one per 4 bytes of its text, plus 3 for the reply's priming.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import AsyncIterator, Sequence

from app.proxy.chat_request import ChatRequest, content_text
from app.proxy.upstreams.base import Finished, TextDelta, UpstreamEvent, Usage
from app.proxy.upstreams.offline_facts import extract_facts, is_extraction_request, remembered_address

_PERSONA_NAME = re.compile(r"\b(?i:you are) ([A-Z][\w'\u2019.-]*(?: [A-Z][\w'\u2019.-]*){0,3})")
_YOU_ARE = re.compile(r"\b(?i:you are)\b")
_TOKEN = re.compile(r"\S+\s*|\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]{3,}")
_STOPWORDS = frozenset({
    "about", "after", "again", "also", "because", "been", "before", "being", "could", "does", "doing",
    "from", "have", "having", "into", "just", "like", "more", "most", "much", "only", "other", "over",
    "really", "same", "should", "some", "such", "than", "that", "their", "them", "then", "there", "these",
    "they", "this", "those", "through", "very", "want", "what", "when", "where", "which", "while", "will",
    "with", "would", "your", "yours",
})

_OPENERS = ("{name} here.", "Hey, it's {name}.", "{name}, at your service.",
            "Good to hear from you. {name} speaking.")
_BRIDGES = (
    "Speaking as {descriptor}, here is how I see it:",
    "As {descriptor}, my take is simple:",
    "Coming from {descriptor}, this is what I'd say:",
)
_ADVICE = (
    "I'd start with {first}, keep {second} in mind, and not lose sight of {third}.",
    "Think about {first} first; {second} and {third} tend to follow from it.",
    "Everything here turns on {first}, with {second} close behind and {third} as the detail that decides it.",
)
_CLOSERS = ("What made you ask?", "Tell me more and I'll go deeper.", "Does that match what you had in mind?",
            "Ask me again tomorrow and I'll still say the same.")


class OfflineDemoUpstream:
    """In-process; implements the same interface as the HTTP upstreams."""

    kind = "offline"

    def __init__(self, name: str, *, tokens_per_second: float) -> None:
        self.name = name
        self._interval = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[UpstreamEvent]:
        if is_extraction_request(request.system_prompt):  # the backend's memory asks for facts
            text = extract_facts(request.last_user_message)
        else:
            text = compose_reply(request.system_prompt, request.last_user_message)
        tokens = _TOKEN.findall(text)
        finish_reason = "stop"
        if request.max_tokens is not None and len(tokens) > request.max_tokens:
            tokens, finish_reason = tokens[: request.max_tokens], "length"
        tokens = _cut_at_stop(tokens, request.stop)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, token in enumerate(tokens):
            if self._interval:
                # Pace against the start, not the previous token, so delays don't accumulate.
                await asyncio.sleep(max(0.0, started + index * self._interval - loop.time()))
            yield TextDelta(token)
        yield Usage(estimate_prompt_tokens(request.messages), len(tokens))
        yield Finished(finish_reason)


def compose_reply(persona: str, user_message: str) -> str:
    """A reply in the persona's voice to the user's message; deterministic in both."""
    seed = int.from_bytes(hashlib.sha256(f"{persona}\0{user_message}".encode()).digest()[:8], "big")
    name_match = _PERSONA_NAME.search(persona)
    name = name_match.group(1).rstrip(".") if name_match else "your twin"
    descriptor = _descriptor(persona, name_match)
    topic = " ".join(user_message.split()[:16]) or "nothing yet"
    asked = "You asked" if user_message.rstrip().endswith("?") else "You said"
    first, second, third = _keywords(user_message, persona)
    sentences = [
        _OPENERS[seed % len(_OPENERS)].format(name=name),
        f"{asked}: \u201c{topic}{'…' if len(user_message.split()) > 16 else ''}\u201d",
        _BRIDGES[(seed >> 8) % len(_BRIDGES)].format(descriptor=descriptor),
        _ADVICE[(seed >> 16) % len(_ADVICE)].format(first=first, second=second, third=third),
        _CLOSERS[(seed >> 24) % len(_CLOSERS)],
    ]
    fan_name, goal = remembered_address(persona)  # what the backend's memory put in the system prompt
    if fan_name:
        sentences[0] = f"{sentences[0]} Good to see you, {fan_name}."
    if goal:
        sentences.insert(-1, f"How is the training for {goal} going?")
    return " ".join(sentence[0].upper() + sentence[1:] for sentence in sentences)


def _descriptor(persona: str, name_match: re.Match[str] | None) -> str:
    """What the persona says its avatar is: the words after the name (or after "you are")."""
    anchor = name_match or _YOU_ARE.search(persona)
    if anchor is None:
        return "someone who knows you well"
    phrase = re.split(r"[.!?\n]", persona[anchor.end():].lstrip(" ,;:-—"), maxsplit=1)[0]
    return " ".join(phrase.split()[:14]) or "someone who knows you well"


def _keywords(user_message: str, persona: str) -> tuple[str, str, str]:
    """The message's three most telling words (longest first), topped up from the persona."""
    chosen: list[str] = []
    for source in (user_message, persona, "patience practice perspective"):
        words = sorted({w.lower() for w in _WORD.findall(source)} - _STOPWORDS - set(chosen),
                       key=lambda w: (-len(w), w))
        chosen.extend(words[: 3 - len(chosen)])
        if len(chosen) == 3:
            break
    return chosen[0], chosen[1], chosen[2]


def _cut_at_stop(tokens: list[str], stop: Sequence[str]) -> list[str]:
    if not stop:
        return tokens
    text = "".join(tokens)
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    return _TOKEN.findall(text[:cut]) if cut >= 0 else tokens


def estimate_prompt_tokens(messages: Sequence[dict[str, object]]) -> int:
    return 3 + sum(4 + math.ceil(len(content_text(m.get("content")).encode()) / 4) for m in messages)
