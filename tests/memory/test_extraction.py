"""Extraction: the offline demo model's deterministic facts, and the backend's check of any model's answer."""

from __future__ import annotations

import json

import pytest

from app.memory.extraction import EXTRACTION_PROMPT, MalformedExtraction, normalise_key, parse_facts
from app.memory.models import MemoryKind
from app.memory.retrieval import MEMORY_HEADER
from app.proxy.node.upstreams.offline import compose_reply
from app.proxy.node.upstreams.offline_facts import extract_facts, extract_facts_from, is_extraction_request


def facts_of(message: str) -> list[tuple[str, str, str]]:
    return [(fact.kind, fact.key, fact.text) for fact in parse_facts(extract_facts(message))]


def test_the_backend_prompt_is_recognised_as_an_extraction_request() -> None:
    assert is_extraction_request(EXTRACTION_PROMPT)
    assert not is_extraction_request("You are Ada Lovelace, a mathematician. Answer kindly.")


def test_name_and_training_goal_from_one_message() -> None:
    assert facts_of("call me Sam, I'm training for a marathon") == [
        ("name", "name", "Their name is Sam"),
        ("goal", "goal:marathon", "They are training for a marathon"),
    ]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("My name is lucia.", ("name", "name", "Their name is Lucia")),
        ("my goal is to run a marathon", ("goal", "goal:marathon", "Their goal is to run a marathon")),
        ("I love sushi and I hate olives", ("preference", "preference:sushi", "They love sushi")),
        ("I live in Lyon now", ("place", "home", "They live in Lyon now")),
        ("please remind me to stretch", ("promise", "promise:stretch", "You promised to remind them to stretch")),
    ],
)
def test_each_pattern_gives_its_fact(message: str, expected: tuple[str, str, str]) -> None:
    assert expected in facts_of(message)


def test_a_message_without_facts_gives_none_and_the_same_answer_every_time() -> None:
    assert facts_of("What do you think about the weather on Mars?") == []
    assert extract_facts("call me Sam") == extract_facts("call me Sam")


def test_love_and_hate_of_the_same_thing_share_a_key_so_one_replaces_the_other() -> None:
    (loved,), (hated,) = facts_of("I love olives"), facts_of("I hate olives")
    assert loved[1] == hated[1] == "preference:olives"
    assert loved[2] != hated[2]


def test_training_for_and_goal_is_name_the_same_subject() -> None:
    assert facts_of("I'm training for the marathon")[0][1] == facts_of("my goal is to finish a marathon")[0][1]


def test_the_demo_reply_uses_a_remembered_name_and_goal() -> None:
    persona = "You are Ada, a coach.\n\nWhat you remember:\n- Their name is Sam\n- They are training for a marathon"
    reply = compose_reply(persona, "Any tips for today?")
    assert "Sam" in reply
    assert "training for a marathon" in reply
    assert "Sam" not in compose_reply("You are Ada, a coach.", "Any tips for today?")


def test_the_demo_reply_never_takes_a_memory_for_the_persona_s_own_line() -> None:
    """The offline model answers from the persona's most relevant lines: the memory block is not one of them."""
    persona = (
        "You are Ada, a coach. Long runs build the base for every race.\n\n"
        + MEMORY_HEADER
        + "\n- They love sushi after long runs\n- They live in Lyon"
    )
    reply = compose_reply(persona, "How long should my long runs be?")
    assert "Long runs build the base for every race." in reply
    assert "sushi" not in reply
    assert "Lyon" not in reply


@pytest.mark.parametrize(
    "output",
    [
        "I think their name is Sam",  # no JSON at all
        '{"facts": "Sam"}',  # not a list
        '{"facts": [{"kind": "name", "key": "name"}]}',  # no text
        '{"facts": [{"kind": "mood", "key": "mood", "text": "Happy"}]}',  # unknown kind
        '{"facts": [{"kind": "name", "key": "name", "text": "   "}]}',  # empty text
        '{"facts": [{"kind": "name", "key": "name", "text": "' + "x" * 201 + '"}]}',  # too long
        '{"facts": [1, 2]}',
        "{" * 5000 + "}" * 5000,  # nested past any sane depth
    ],
)
def test_malformed_answers_are_refused(output: str) -> None:
    with pytest.raises(MalformedExtraction):
        parse_facts(output)


def test_an_answer_in_a_code_fence_is_read() -> None:
    fenced = (
        "```json\n" + json.dumps({"facts": [{"kind": "Place", "key": " Home ", "text": "They live in Oslo"}]}) + "\n```"
    )
    (fact,) = parse_facts(fenced)
    assert (fact.kind, fact.key) == (MemoryKind.place, "home")


def test_keys_are_normalised() -> None:
    assert normalise_key(MemoryKind.goal, "Goal: Run a Marathon!") == "goal:run-a-marathon"
    assert normalise_key(MemoryKind.name, "  ") == "name"
    assert len(normalise_key(MemoryKind.fact, "k" * 500)) == 64


def test_facts_of_several_messages_say_which_message_each_comes_from() -> None:
    said = ["call me Sam", "what is the weather like?", "I love sushi and I live in Lyon"]
    facts = parse_facts(extract_facts_from(said), len(said))
    assert [(fact.key, fact.message) for fact in facts] == [("name", 0), ("preference:sushi", 2), ("home", 2)]


def test_a_fact_without_its_message_comes_from_the_last() -> None:
    (fact,) = parse_facts(json.dumps({"facts": [{"kind": "name", "key": "name", "text": "Their name is Sam"}]}), 3)
    assert fact.message == 2


@pytest.mark.parametrize("message", [0, 4, -1, "1", 1.0, True, None])
def test_a_fact_from_no_message_asked_about_is_refused(message: object) -> None:
    output = json.dumps({"facts": [{"kind": "name", "key": "name", "text": "Their name is Sam", "message": message}]})
    with pytest.raises(MalformedExtraction):
        parse_facts(output, 3)
