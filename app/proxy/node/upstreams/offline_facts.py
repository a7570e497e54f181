"""The offline demo model's memory: it extracts facts deterministically, and uses the ones it is given.

Asked to extract facts (a system prompt that says "extract … facts … JSON", as the backend's memory does),
it answers ``{"facts": [{"kind", "key", "text", "message"}…]}`` from a few patterns of each user message::

    "call me Sam" / "my name is Sam"      → name        name
    "I'm training for a marathon"         → goal        goal:marathon
    "my goal is to run a marathon"        → goal        goal:marathon
    "I like / love / enjoy / hate sushi"  → preference  preference:sushi  (a later "hate" replaces a "love")
    "I live in Lyon" / "I moved to Lyon"  → place       home
    "remind me to stretch"                → promise     promise:stretch

In a normal reply it greets the fan by a remembered name and asks after a remembered goal, from lines of the
system prompt such as "Their name is Sam" and "They are training for a marathon".
"""

from __future__ import annotations

import json
import re

EXTRACTION_REQUEST = re.compile(r"\bextract\b[^\n]*\bfacts\b[^\n]*\bJSON\b", re.IGNORECASE)

_END = r"(?=\s+(?:and|but|so|because|though|which)\b|\s*[.,!?;:\n]|$)"
_NAME = re.compile(r"\b(?:call me|my name is|i'm called|i am called)\s+([A-Za-z][\w'-]{0,39})", re.IGNORECASE)
_TRAINING = re.compile(rf"\b(?:i'm|i am|im)\s+training for\s+(.{{1,60}}?){_END}", re.IGNORECASE)
_GOAL = re.compile(rf"\bmy goal is\s+(?:to\s+)?(.{{1,80}}?){_END}", re.IGNORECASE)
_PREFERENCE = re.compile(rf"\bi\s+(like|love|enjoy|hate|dislike)\s+(.{{1,60}}?){_END}", re.IGNORECASE)
_HOME = re.compile(rf"\bi\s+(?:live in|moved to)\s+(.{{1,60}}?){_END}", re.IGNORECASE)
_PROMISE = re.compile(rf"\bremind me to\s+(.{{1,80}}?){_END}", re.IGNORECASE)
_FILLER = frozenset({"a", "an", "the", "my", "to", "some", "run", "do", "finish", "complete"})

# The memory block: a line that says what is remembered, then its "- " lines (app/memory/retrieval.py).
_MEMORY_BLOCK = re.compile(r"^[^\n]*\bremember\b[^\n]*:[ \t]*\n(?:- [^\n]*(?:\n|$))+", re.MULTILINE | re.IGNORECASE)
_REMEMBERED_NAME = re.compile(r"^- Their name is ([\w'-]+)", re.MULTILINE)
_REMEMBERED_GOAL = re.compile(r"^- They are training for (.+?)\.?$", re.MULTILINE)


def is_extraction_request(system_prompt: str) -> bool:
    return bool(EXTRACTION_REQUEST.search(system_prompt))


def _slug(phrase: str) -> str:
    words = [word for word in re.findall(r"[a-z0-9]+", phrase.lower()) if word not in _FILLER]
    return "-".join(words[-2:]) or "it"


def _fact(kind: str, key: str, text: str) -> dict[str, str]:
    return {"kind": kind, "key": key, "text": text}


def extract_facts(message: str) -> str:
    """The JSON answer to an extraction request about ``message``: the same message, the same facts."""
    return json.dumps({"facts": _facts_of(message)})


def extract_facts_from(messages: list[str]) -> str:
    """The JSON answer to an extraction request about several messages: each one's facts, numbered from 1."""
    return json.dumps(
        {"facts": [fact | {"message": number} for number, text in enumerate(messages, 1) for fact in _facts_of(text)]}
    )


def _facts_of(message: str) -> list[dict[str, str]]:
    facts: list[dict[str, str]] = []
    if match := _NAME.search(message):
        facts.append(_fact("name", "name", f"Their name is {match.group(1).capitalize()}"))
    for match in _TRAINING.finditer(message):
        facts.append(_fact("goal", f"goal:{_slug(match.group(1))}", f"They are training for {match.group(1)}"))
    for match in _GOAL.finditer(message):
        facts.append(_fact("goal", f"goal:{_slug(match.group(1))}", f"Their goal is to {match.group(1)}"))
    for match in _PREFERENCE.finditer(message):
        verb, thing = match.group(1).lower(), match.group(2)
        facts.append(_fact("preference", f"preference:{_slug(thing)}", f"They {verb} {thing}"))
    if match := _HOME.search(message):
        facts.append(_fact("place", "home", f"They live in {match.group(1)}"))
    for match in _PROMISE.finditer(message):
        facts.append(
            _fact("promise", f"promise:{_slug(match.group(1))}", f"You promised to remind them to {match.group(1)}")
        )
    return facts


def without_memories(system_prompt: str) -> str:
    """The system prompt without its memory block: the persona alone."""
    return _MEMORY_BLOCK.sub("", system_prompt).strip()


def remembered_address(system_prompt: str) -> tuple[str | None, str | None]:
    """The fan's remembered name and training goal, from the memory lines of the system prompt."""
    name = _REMEMBERED_NAME.search(system_prompt)
    goal = _REMEMBERED_GOAL.search(system_prompt)
    return (name.group(1) if name else None), (goal.group(1) if goal else None)
