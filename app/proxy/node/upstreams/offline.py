"""The offline demo model (``twin-offline-demo``): the product works with no API key at all.

It answers in the avatar's voice from the persona (the system prompt) and the conversation: the
persona's lines most relevant to the last user message (retrieval by shared words), the ones
earlier replies used left for later; the same conversation always gets the same reply. It is still
a demo model, labelled as one: it knows only what the persona says. Tokens are
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

from app.proxy.node.chat_request import ChatRequest, content_text
from app.proxy.node.upstreams.base import Finished, TextDelta, UpstreamEvent, Usage
from app.proxy.node.upstreams.offline_facts import (
    extract_facts_from,
    is_extraction_request,
    remembered_address,
    without_memories,
)

_PERSONA_NAME = re.compile(r"\b(?i:you are) ([A-Z][\w'\u2019.-]*(?: [A-Z][\w'\u2019.-]*){0,3})")
_YOU_ARE = re.compile(r"\b(?i:you are)\b")
_TOKEN = re.compile(r"\S+\s*|\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]{3,}")
_STOPWORDS = frozenset(
    {
        "about",
        "after",
        "again",
        "also",
        "because",
        "been",
        "before",
        "being",
        "could",
        "does",
        "doing",
        "from",
        "have",
        "having",
        "into",
        "just",
        "like",
        "more",
        "most",
        "much",
        "only",
        "other",
        "over",
        "really",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "very",
        "want",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
        "yours",
    }
)

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_OPENERS = ("Good question.", "Ah, I like this one.", "Let me be straight with you.", "Here's what I know.")
_FIRST_MEETING = "I'm {name}, {descriptor}."
_NO_MATCH = (
    "That's a little outside what I know best, but here is what I keep coming back to:",
    "I can't claim expertise on that. What I can tell you is this:",
)
_CLOSERS = (
    "What made you ask?",
    "Tell me more and I'll go deeper.",
    "Does that match what you had in mind?",
    "What would you try first?",
)
LINES_PER_REPLY = 2


class OfflineDemoUpstream:
    """In-process; implements the same interface as the HTTP upstreams."""

    kind = "offline"

    def __init__(self, name: str, *, tokens_per_second: float) -> None:
        self.name = name
        self._interval = 1.0 / tokens_per_second if tokens_per_second > 0 else 0.0

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[UpstreamEvent]:
        if is_extraction_request(request.system_prompt):  # the backend's memory asks for facts
            text = extract_facts_from([content_text(m.get("content")) for m in request.messages if m["role"] == "user"])
        else:
            earlier = [content_text(m.get("content")) for m in request.messages if m["role"] == "assistant"]
            text = compose_reply(request.system_prompt, request.last_user_message, earlier)
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


def compose_reply(persona: str, user_message: str, earlier: Sequence[str] = ()) -> str:
    """A reply in the persona's voice: the persona's lines most relevant to the user's message
    (shared words, crudely stemmed), skipping lines ``earlier`` replies already used; the first reply
    introduces the avatar. Deterministic in all three, and it never repeats the question back. It greets the
    fan by a remembered name and asks after a remembered goal (the memory lines of the system prompt), and
    never takes those lines for the persona's own."""
    fan_name, goal = remembered_address(persona)  # what the backend's memory put in the system prompt
    persona = without_memories(persona)
    seed = int.from_bytes(hashlib.sha256(f"{persona}\0{user_message}\0{len(earlier)}".encode()).digest()[:8], "big")
    name_match = _PERSONA_NAME.search(persona)
    name = name_match.group(1).rstrip(".") if name_match else "your twin"
    lines = _knowledge(persona, name_match)
    said = " ".join(earlier)
    asked = _stems(user_message)
    ranked = sorted(range(len(lines)), key=lambda i: (-len(asked & _stems(lines[i])), lines[i] in said, i))
    relevant = [lines[i] for i in ranked[:LINES_PER_REPLY] if asked & _stems(lines[i])]
    sentences = [] if earlier else [_FIRST_MEETING.format(name=name, descriptor=_descriptor(persona, name_match))]
    if relevant:
        sentences += [_OPENERS[seed % len(_OPENERS)], *relevant]
    else:
        fresh = [line for line in lines if line not in said] or lines or ["Take your time; the answer comes."]
        sentences += [_NO_MATCH[seed % len(_NO_MATCH)], fresh[(seed >> 8) % len(fresh)]]
    if fan_name:
        sentences.insert(0, f"Good to see you, {fan_name}.")
    if goal:
        sentences.append(f"How is the training for {goal} going?")
    sentences.append(_CLOSERS[(seed >> 16) % len(_CLOSERS)])
    return " ".join(sentence[0].upper() + sentence[1:] for sentence in sentences)


def _knowledge(persona: str, name_match: re.Match[str] | None) -> list[str]:
    """The persona's sentences, without the one that names the avatar (that one introduces it)."""
    introduction = persona[: name_match.end()] if name_match else ""
    body = persona[len(introduction) :]
    if introduction:  # drop the rest of the naming sentence
        body = re.split(r"(?<=[.!?\n])", body, maxsplit=1)[-1]
    return [sentence.strip() for sentence in _SENTENCE.findall(body) if len(_WORD.findall(sentence)) >= 3]


def _stems(text: str) -> set[str]:
    """Telling words, lower-cased and crudely stemmed, so "runs" meets "running"."""
    words = {word.lower() for word in _WORD.findall(text)} - _STOPWORDS
    return {re.sub(r"(ing|ed|es|e|s)$", "", word) for word in words}


def _descriptor(persona: str, name_match: re.Match[str] | None) -> str:
    """What the persona says its avatar is: the words after the name (or after "you are")."""
    anchor = name_match or _YOU_ARE.search(persona)
    if anchor is None:
        return "someone who knows you well"
    phrase = re.split(r"[.!?\n]", persona[anchor.end() :].lstrip(" ,;:-—"), maxsplit=1)[0]
    return " ".join(phrase.split()[:24]) or "someone who knows you well"


def _cut_at_stop(tokens: list[str], stop: Sequence[str]) -> list[str]:
    if not stop:
        return tokens
    text = "".join(tokens)
    cut = min((text.find(s) for s in stop if s in text), default=-1)
    return _TOKEN.findall(text[:cut]) if cut >= 0 else tokens


def estimate_prompt_tokens(messages: Sequence[dict[str, object]]) -> int:
    return 3 + sum(4 + math.ceil(len(content_text(m.get("content")).encode()) / 4) for m in messages)
