"""ChatGPTProposer against a local OpenAI-protocol server, through the real openai client."""

from __future__ import annotations

import json
import logging
import pickle
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable

import pytest

from failmodes.attributes import prompt
from failmodes.interfaces import BackgroundProposer
from failmodes.proposers.chatgpt import DEFAULT_MODEL, ChatGPTProposer, ProposalError
from failmodes.testing.openai_server import OpenAIServer, Reply

openai = pytest.importorskip("openai")

KEY = "sk-test-7f3a9c2e51d84b06aa"
FAST = {"retry-after-ms": "1"}  # the openai client then retries at once


def class_of(body: dict) -> str:
    """The class a request asks about, read from its question."""
    question = body["messages"][-1]["content"]
    return re.search(r"that an? (.+?) can ", question).group(1)


def values(*items: str) -> str:
    return json.dumps({"values": list(items)})


def per_class(answers: dict) -> Callable[[dict], str | Reply]:
    """A handler answering each class with its reply, or its list of replies played in order."""
    played: dict[str, int] = {}

    def handler(body):
        name = class_of(body)
        reply = answers[name]
        if isinstance(reply, list):
            i = played[name] = played.get(name, -1) + 1
            return reply[min(i, len(reply) - 1)]
        return reply

    return handler


def asked(server: OpenAIServer) -> list[str]:
    return [class_of(r.body) for r in server.requests]


def make(server: OpenAIServer, **options) -> ChatGPTProposer:
    options = {"api_key": KEY, "max_retries": 1, "timeout": 10, **options}
    return ChatGPTProposer(base_url=server.base_url, **options)


@pytest.fixture(scope="module")
def shared():
    """One server and client for the many one-exchange tests: a client takes ~0.1 s to build."""
    state = {}
    with OpenAIServer(lambda body: state["handler"](body)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=1)
        yield server, client, state
        client.close()


@pytest.fixture
def answering(shared):
    """``answering(reply_or_handler, **options) -> (proposer, server)`` on the shared server."""
    server, client, state = shared

    def use(reply, **options):
        state["handler"] = reply if callable(reply) else lambda body: reply
        server.requests.clear()
        return ChatGPTProposer(client=client, **options), server

    return use


GOOD = {
    "fox": values("in a desert", "on a frozen lake"),
    "owl": values("at the beach", "in a busy city"),
    "cat": values("underwater"),
}
GOOD_FOX = ["in a desert", "on a frozen lake"]


# -- answers ---------------------------------------------------------------------------------------


def test_background_values_read_after_the_class_name():
    with OpenAIServer(per_class(GOOD)) as server:
        proposer = make(server)
        proposals = proposer.propose(["owl", "fox"])
    assert isinstance(proposer, BackgroundProposer)
    assert proposals == {"owl": ["at the beach", "in a busy city"], "fox": GOOD_FOX}
    assert list(proposals) == ["owl", "fox"]
    assert prompt("fox", proposals["fox"][0]) == "a photo of a fox in a desert"
    assert prompt("owl", proposals["owl"][1]) == "a photo of an owl in a busy city"


def test_the_request_asks_the_question_with_a_strict_json_schema():
    with OpenAIServer(per_class(GOOD)) as server:
        make(server).propose(["fox"])
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == DEFAULT_MODEL
    assert body["temperature"] == 0.0
    assert "seed" not in body
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert user["content"] == "What are the uncommon backgrounds that a fox can appear in?"
    assert "after the object's name" in system["content"]
    assert '"in a desert"' in system["content"] and "preposition" in system["content"]
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    schema = response_format["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["properties"]["values"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert schema["schema"]["required"] == ["values"]
    assert schema["schema"]["additionalProperties"] is False


def test_color_values_are_adjectives_before_the_class_name(answering):
    proposer, server = answering(values("Red", "bright purple arrow", "a black and white", "RED"))
    proposals = proposer.propose(["arrow"], attribute="colour")
    assert proposals == {"arrow": ["red", "bright purple", "black and white"]}
    assert prompt("arrow", proposals["arrow"][0], "color") == "a photo of a red arrow"
    system, user = server.requests[0].body["messages"]
    assert user["content"] == "What are the uncommon colors that an arrow can have?"
    assert "before the object's name" in system["content"]


def test_size_question_and_values(answering):
    proposer, server = answering(values("Tiny", "giant"))
    proposals = proposer.propose(["circle"], attribute="size")
    assert proposals == {"circle": ["tiny", "giant"]}
    assert prompt("circle", "giant", "size") == "a photo of a giant circle"
    assert "sizes" in server.requests[0].body["messages"][1]["content"]


def test_redundant_values_are_merged(answering):
    answer = values("in a desert", "In the desert", "deserts", "Desert", "on a frozen lake")
    proposer, _ = answering(answer)
    assert proposer.propose(["fox"]) == {"fox": ["in a desert", "on a frozen lake"]}


@pytest.mark.parametrize(
    ("raw", "phrase"),
    [
        ("desert", "in the desert"),  # a bare place gets "in the"
        ("snow", "in the snow"),
        ("Desert", "in the desert"),
        ("a busy city", "in a busy city"),  # its own article is kept
        ("Sahara Desert", "in the Sahara Desert"),  # a name keeps its capitals
        ("In a cave", "in a cave"),
        ("on a frozen lake", "on a frozen lake"),  # a preposition: as it is
        ("next to a road", "next to a road"),
        ("in front of a house", "in front of a house"),
        ("underwater", "underwater"),
        ("floating in space", "floating in space"),
        ("covered in snow", "covered in snow"),
        ("A fox in a desert", "in a desert"),  # the class name repeated is dropped
        ("fox at night.", "at night"),
        ('"in a cave"', "in a cave"),
    ],
)
def test_background_phrases_read_after_the_class_name(answering, raw, phrase):
    proposer, _ = answering(values(raw))
    (value,) = proposer.propose(["fox"])["fox"]
    assert value == phrase
    assert prompt("fox", value) == f"a photo of a fox {phrase}"


def test_each_question_is_logged_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="failmodes"), OpenAIServer(per_class(GOOD)) as s:
        make(s).propose(["fox", "owl"])
    messages = [r.getMessage() for r in caplog.records if r.name == "failmodes"]
    for question in (
        "What are the uncommon backgrounds that a fox can appear in?",
        "What are the uncommon backgrounds that an owl can appear in?",
    ):
        assert sum(question in m for m in messages) == 1


def test_options_are_sent(answering):
    proposer, server = answering(
        values("in a desert", "in a cave", "on a lake"),
        model="llama3.1",
        temperature=None,
        seed=3,
        max_values=2,
        request_options={"max_tokens": 50},
    )
    assert proposer.propose(["fox"]) == {"fox": ["in a desert", "in a cave"]}
    assert proposer.answers_[("background", "fox")] == ["in a desert", "in a cave", "on a lake"]
    body = server.requests[0].body
    assert body["model"] == "llama3.1"
    assert "temperature" not in body
    assert body["seed"] == 3 and body["max_tokens"] == 50
    assert "at most 2 uncommon backgrounds" in body["messages"][0]["content"]


def test_passes_the_proposer_checks(answering):
    from failmodes.testing import check_proposer

    proposer, _ = answering(values("in a desert", "Deserts", "on a frozen lake", "snow"))
    check_proposer(proposer)
    check_proposer(proposer, attribute="color")


def test_a_class_named_twice_is_asked_once(answering):
    proposer, server = answering(per_class(GOOD))
    proposals = proposer.propose(["fox", "owl", "fox"])
    assert asked(server) == ["fox", "owl"]
    assert list(proposals) == ["fox", "owl"]


# -- servers without JSON schemas ------------------------------------------------------------------

NUMBERED = """Here are some uncommon backgrounds for a fox:

1. **In a desert** - foxes rarely live in sand.
2. On a frozen lake: slippery.
3) next to a road (at night)
"""


def test_a_server_that_rejects_the_schema_is_asked_in_plain_text(caplog):
    rejected = Reply(status=400, error="response_format 'json_schema' is not supported")

    def handler(body):
        return rejected if "response_format" in body else NUMBERED

    with caplog.at_level(logging.INFO, logger="failmodes"), OpenAIServer(handler) as server:
        proposals = make(server).propose(["fox", "owl"])
    assert proposals["fox"] == ["in a desert", "on a frozen lake", "next to a road"]
    sent = ["response_format" in r.body for r in server.requests]
    assert sent == [True, False, False]  # one rejection, then plain text for every class
    assert "plain text" in caplog.text


def test_a_bad_request_about_something_else_is_an_error(answering):
    proposer, server = answering(Reply(status=400, error="model 'x' does not exist"))
    with pytest.raises(ProposalError, match=r"'fox'.*BadRequestError.*does not exist"):
        proposer.propose(["fox"])
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "answer",
    [
        values("in a desert", "on a frozen lake", "in a cave"),  # JSON object
        '["in a desert", "on a frozen lake", "in a cave"]',  # JSON list
        '{"backgrounds": ["in a desert", "on a frozen lake", "in a cave"]}',  # another key
        '[{"background": "in a desert"}, {"background": "on a frozen lake"}, "in a cave"]',
        'Sure!\n```json\n{"values": ["in a desert", "on a frozen lake", "in a cave"]}\n```\n',
        "Here they are: " + values("in a desert", "on a frozen lake", "in a cave") + " Enjoy!",
        "Uncommon backgrounds:\n- in a desert\n- on a frozen lake\n* In a cave.",  # bullets
        NUMBERED.replace("3) next to a road (at night)", "3. inside a dark cave"),
        "in a desert, on a frozen lake, and in a cave",  # one line
        "in a desert\non a frozen lake\ncave",  # one per line
        "Sorry, only three come to mind:\n- in a desert\n- on a frozen lake\n- in a cave",
        "I can't think of many, but:\n1. in a desert\n2. on a frozen lake",  # a list: no refusal
    ],
)
def test_plain_answers_are_parsed_tolerantly(answering, answer):
    proposer, server = answering(answer, schema=False)
    (result,) = proposer.propose(["fox"]).values()
    assert "response_format" not in server.requests[0].body
    assert result[:2] == ["in a desert", "on a frozen lake"]
    assert len(result) in (2, 3)
    assert all(prompt("fox", v).startswith("a photo of a fox ") for v in result)


@pytest.mark.parametrize(
    "answer",
    [
        "Foxes usually live in forests, but they can also be found in many other surprising "
        "places around the world.",
        '{"values": 3}',
        '{"answer": "deserts"}',
        "[1, 2]",
    ],
)
def test_plain_answers_that_are_no_list_are_malformed(answering, answer):
    proposer, _ = answering(answer, schema=False)
    with pytest.raises(ProposalError, match=r"class 'fox'.*malformed"):
        proposer.propose(["fox"])


REFUSALS = [
    "Sorry, I can't help with that.",
    "I'm sorry, but I cannot list places where that animal appears.",
    "I\u2019m sorry, I can\u2019t assist with that request.",
    "As an AI language model, I cannot browse the internet, so I can't say.",
    "I cannot help with that",
    "**Sorry**, that is not something I can answer.",
    "Unfortunately, I am unable to answer that.",
]


@pytest.mark.parametrize("answer", REFUSALS)
def test_a_plain_text_refusal_is_a_refusal_not_values(answering, answer):
    proposer, _ = answering(per_class({"owl": GOOD["owl"], "fox": answer}), schema=False)
    with pytest.raises(ProposalError, match=r"class 'fox'.*the model refused to answer") as caught:
        proposer.propose(["owl", "fox"])
    assert caught.value.class_name == "fox"
    assert caught.value.partial == {"owl": ["at the beach", "in a busy city"]}
    assert ("background", "fox") not in proposer.answers_


def test_a_refusal_after_the_schema_is_rejected_or_ignored_is_a_refusal(answering):
    rejected = Reply(status=400, error="response_format 'json_schema' is not supported")

    def handler(body):
        return rejected if "response_format" in body else REFUSALS[0]

    proposer, server = answering(handler)
    with pytest.raises(ProposalError, match=r"class 'fox'.*refused to answer: \"Sorry, I can't"):
        proposer.propose(["fox"])
    assert ["response_format" in r.body for r in server.requests] == [True, False]
    proposer, _ = answering(REFUSALS[1])  # a server that ignores the schema
    with pytest.raises(ProposalError, match=r"class 'fox'.*refused to answer: \"I'm sorry"):
        proposer.propose(["fox"])


# -- failures --------------------------------------------------------------------------------------


def test_a_rate_limit_is_retried():
    answers = {"fox": [Reply(status=429, error="slow down", headers=FAST), GOOD["fox"]]}
    with OpenAIServer(per_class(answers)) as server:
        assert make(server).propose(["fox"]) == {"fox": GOOD_FOX}
    assert asked(server) == ["fox", "fox"]


def test_a_server_error_after_retries_names_the_class_and_keeps_the_answers():
    broken = Reply(status=500, error="the model is down", headers=FAST)
    with OpenAIServer(per_class({**GOOD, "owl": broken})) as server:
        proposer = make(server, max_retries=2, concurrency=1)  # one class after another
        with pytest.raises(ProposalError) as caught:
            proposer.propose(["fox", "owl", "cat"])
    err = caught.value
    assert isinstance(err, RuntimeError)
    assert err.class_name == "owl" and err.attribute == "background"
    assert err.partial == {"fox": GOOD_FOX}
    assert proposer.answers_ == {("background", "fox"): GOOD_FOX}
    message = str(err)
    assert "'owl'" in message and "after 2 retries" in message and "InternalServerError" in message
    assert "the model is down" in message and "propose again" in message
    assert err.__cause__ is None  # the server's text may carry request data: not chained
    assert asked(server) == ["fox", "owl", "owl", "owl"]  # cat is not asked


def test_propose_again_asks_only_for_the_missing_classes():
    down = {"now": True}

    def handler(body):
        if class_of(body) == "owl" and down["now"]:
            return Reply(status=503, headers=FAST)
        return GOOD[class_of(body)]

    with OpenAIServer(handler) as server:
        proposer = make(server, max_retries=0, concurrency=1)  # in order: cat is asked last
        with pytest.raises(ProposalError, match="'owl'") as caught:
            proposer.propose(["fox", "owl", "cat"])
        assert caught.value.partial == {"fox": GOOD_FOX}
        down["now"] = False
        proposals = proposer.propose(["fox", "owl", "cat"])
        assert asked(server) == ["fox", "owl", "owl", "cat"]
        assert proposals == {
            "fox": GOOD_FOX,
            "owl": ["at the beach", "in a busy city"],
            "cat": ["underwater"],
        }
        assert proposer.propose(["cat", "fox"]) == {"cat": ["underwater"], "fox": GOOD_FOX}
        proposer.propose(["fox"], attribute="color")  # another attribute is another question
        assert len(server.requests) == 5


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (Reply(refusal="I can't help with that."), "refused to answer: \"I can't help with that"),
        (Reply(values("in a desert"), finish_reason="content_filter"), "content filter"),
        (Reply(""), "empty answer"),
        (Reply(None), "empty answer"),
        (Reply("  \n"), "empty answer"),
        (Reply(values()), "holds no values"),
        (Reply(values("", "  ", "...")), "holds no values"),
        (Reply("this is not JSON"), "malformed.*not the JSON object"),
        (Reply('{"values": ["in a des', finish_reason="length"), "malformed \\(cut off"),
        (Reply(body={"object": "chat.completion", "choices": []}), "no choices"),
        (Reply(body="<html>bad gateway</html>"), "class 'fox'"),
    ],
)
def test_unusable_answers_raise_a_proposal_error_naming_the_class(answering, reply, match):
    proposer, _ = answering(per_class({"owl": GOOD["owl"], "fox": reply}))
    with pytest.raises(ProposalError, match=match) as caught:
        proposer.propose(["owl", "fox"])
    assert "class 'fox'" in str(caught.value)
    assert caught.value.class_name == "fox"
    assert caught.value.partial == {"owl": ["at the beach", "in a busy city"]}


def test_an_unreachable_server_is_a_proposal_error():
    with OpenAIServer("unused") as server:
        base_url = server.base_url
    proposer = ChatGPTProposer(base_url=base_url, api_key=KEY, max_retries=0, timeout=5)
    with pytest.raises(ProposalError, match=r"class 'fox'.*APIConnectionError"):
        proposer.propose(["fox"])


def test_proposal_errors_pickle():
    err = ProposalError("no", class_name="fox", attribute="color", partial={"owl": ["red"]})
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.class_name, back.attribute, back.partial) == (
        "no",
        "fox",
        "color",
        {"owl": ["red"]},
    )


# -- many classes at once -------------------------------------------------------------------------

MANY = {f"animal{i}": values(f"in cave number {i}", "on a frozen lake") for i in range(40)}


def test_concurrent_answers_equal_the_one_at_a_time_answers():
    names = list(MANY)[:24][::-1]
    with OpenAIServer(per_class(MANY)) as server:
        one = make(server, concurrency=1).propose(names)
        assert asked(server) == names  # one class after another, in order
        server.requests.clear()
        eight = make(server, concurrency=8).propose(names)
    assert eight == one and list(eight) == names
    assert eight["animal7"] == ["in cave number 7", "on a frozen lake"]
    assert sorted(asked(server)) == sorted(names)  # each class asked once


@pytest.mark.parametrize("concurrency", [1, 3])
def test_requests_in_flight_reach_but_never_exceed_the_concurrency(concurrency):
    names = list(MANY)[:12]
    with OpenAIServer(per_class(MANY), delay=0.03) as server:
        make(server, concurrency=concurrency).propose(names)
    assert server.max_in_flight == concurrency
    assert len(server.requests) == len(names)


def test_a_server_that_rejects_the_schema_learns_it_once_for_every_class():
    rejected = Reply(status=422, error="unsupported: response_format json_schema")

    def handler(body):
        return rejected if "response_format" in body else values(f"in {class_of(body)} land")

    names = list(MANY)[:10]
    with OpenAIServer(handler) as server:
        proposals = make(server, concurrency=4).propose(names)
    assert proposals["animal3"] == ["in animal3 land"]
    # the first class goes alone, so no other request is sent before the server's answer
    assert ["response_format" in r.body for r in server.requests] == [True] + [False] * 10


def test_a_rate_limit_storm_slows_the_pool_down_and_every_class_is_answered(caplog):
    storm = {"left": 10}

    def handler(body):  # the first 10 requests, whatever their class, answer 429
        if storm["left"]:
            storm["left"] -= 1
            return Reply(status=429, error="slow down", headers=FAST)
        return MANY[class_of(body)]

    names = list(MANY)[:8]
    with caplog.at_level(logging.INFO, logger="failmodes"), OpenAIServer(handler) as server:
        proposer = make(server, max_retries=0, concurrency=4)
        proposals = proposer.propose(names)
    assert proposals == {n: json.loads(MANY[n])["values"] for n in names}
    assert len(server.requests) == 18
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("up to 2 requests at once, not 4" in m for m in info)
    assert any("up to 1 requests at once, not 2" in m for m in info)
    assert any("up to 4 requests at once again" in m for m in info)  # the limit grew back


def test_a_rate_limit_pauses_the_pool_as_retry_after_says():
    sent: dict[str, list[float]] = {}
    limited = {"owl": [Reply(status=429, headers={"retry-after-ms": "400"}), GOOD["owl"]]}
    answer = per_class({**GOOD, **limited, **MANY})

    def handler(body):
        sent.setdefault(class_of(body), []).append(time.monotonic())
        return answer(body)

    names = ["fox", "owl", "cat", *list(MANY)[:4]]
    with OpenAIServer(handler) as server:
        proposals = make(server, max_retries=0, concurrency=2).propose(names)
    assert proposals["owl"] == ["at the beach", "in a busy city"]
    owl_429, owl_again = sent["owl"]
    assert owl_again - owl_429 >= 0.4
    # a request sent before the 429 came back may arrive just after it; then nothing is sent
    # until the pause ends
    times = sorted(t - owl_429 for ts in sent.values() for t in ts)
    assert not [t for t in times if 0.1 < t < 0.4]
    assert len([t for t in times if t >= 0.4]) >= 3


@pytest.mark.parametrize(("concurrency", "owl_requests"), [(1, 1), (4, 4)])
def test_a_class_rate_limited_after_its_pauses_fails(concurrency, owl_requests):
    always = Reply(status=429, error="quota exceeded", headers=FAST)
    names = ["fox", "owl", "cat"]
    with OpenAIServer(per_class({**GOOD, "owl": always})) as server:
        proposer = make(server, max_retries=0, concurrency=concurrency)
        with pytest.raises(ProposalError) as caught:
            proposer.propose(names)
    err = caught.value
    assert err.class_name == "owl" and "RateLimitError" in str(err)
    assert asked(server).count("owl") == owl_requests
    if concurrency == 1:  # as before: the 429 fails the class, and cat is not asked
        assert "pauses" not in str(err) and asked(server) == ["fox", "owl"]
        assert err.partial == {"fox": GOOD_FOX}
    else:  # owl is asked again after 3 pauses; cat, sent with it, is answered
        assert "still rate limited after 3 pauses" in str(err)
        assert err.partial == {"fox": GOOD_FOX, "cat": ["underwater"]}


def test_a_failing_class_keeps_the_answers_of_the_requests_in_flight():
    broken = Reply(status=500, error="the model is down", headers=FAST)
    answers = {**GOOD, "owl": broken, "dog": values("in a bath")}
    with OpenAIServer(per_class(answers)) as server:
        proposer = make(server, max_retries=0, concurrency=3)
        with pytest.raises(ProposalError) as caught:
            proposer.propose(["fox", "owl", "cat", "dog"])
    err = caught.value
    assert err.class_name == "owl" and "InternalServerError" in str(err)
    # fox went alone, then owl, cat and dog together: cat's and dog's answers are kept
    assert err.partial == {"fox": GOOD_FOX, "cat": ["underwater"], "dog": ["in a bath"]}
    assert set(proposer.answers_) == {("background", n) for n in ("fox", "cat", "dog")}
    assert "['cat', 'dog', 'fox'] are kept" in str(err)
    assert err.__cause__ is None and err.__suppress_context__


def test_no_class_is_sent_after_a_failure():
    broken = Reply(status=500, error="the model is down", headers=FAST)
    names = ["fox", "owl", *MANY]
    with OpenAIServer(per_class({**GOOD, **MANY, "owl": broken})) as server:
        proposer = make(server, max_retries=0, concurrency=4)
        with pytest.raises(ProposalError) as caught:
            proposer.propose(names)
    err = caught.value
    assert err.class_name == "owl"
    answered = [n for n in asked(server) if n != "owl"]
    assert list(err.partial) == [n for n in names if n in answered]  # every answer, in order
    assert len(answered) < 12  # of 41: only those sent before owl's failure came back


def test_of_two_failing_classes_the_error_names_the_first_in_order():
    broken = Reply(status=500, error="the model is down", headers=FAST)
    gate = threading.Event()

    def handler(body):
        name = class_of(body)
        if name == "dog":
            gate.set()
            return broken
        return broken if name == "owl" else GOOD[name]

    with OpenAIServer(handler) as server, pytest.raises(ProposalError) as caught:
        make(server, max_retries=0, concurrency=4).propose(["fox", "owl", "cat", "dog"])
    assert gate.is_set()  # dog was asked, and failed too
    assert caught.value.class_name == "owl"
    assert caught.value.partial == {"fox": GOOD_FOX, "cat": ["underwater"]}


# -- the API key -----------------------------------------------------------------------------------


def test_the_key_is_sent_only_in_the_authorization_header(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIServer(per_class(GOOD)) as server:
        ChatGPTProposer(base_url=server.base_url).propose(["fox"])
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    others = {k: v for k, v in request.headers.items() if k != "authorization"}
    assert KEY not in json.dumps(others) and KEY not in json.dumps(request.body)


def test_the_key_never_shows(monkeypatch, caplog):
    """Not in repr, logs (of any logger, at DEBUG), error messages nor results."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    proposer = ChatGPTProposer(api_key=KEY, base_url="http://127.0.0.1:9/v1", max_retries=1)
    assert KEY not in repr(proposer) and KEY[-6:] not in repr(proposer)
    assert "api_key='***'" in repr(proposer)

    def leaky(body):  # a server that echoes the key back
        if class_of(body) == "owl":
            return Reply(status=500, error=f"bad key {KEY}", headers=FAST)
        return values("in a desert", f"on {KEY}")

    caplog.set_level(logging.DEBUG)
    with OpenAIServer(leaky) as server:
        proposer.base_url = server.base_url
        with pytest.raises(ProposalError) as caught:
            proposer.propose(["fox", "owl"])
    assert KEY not in str(caught.value) and KEY not in repr(caught.value)
    assert KEY not in json.dumps(caught.value.partial) and KEY not in str(proposer.answers_)
    assert "'owl'" in str(caught.value) and "bad key ***" in str(caught.value)
    assert caplog.records and KEY not in caplog.text
    assert all(KEY not in r.getMessage() for r in caplog.records)

    with OpenAIServer(Reply(status=500, headers=FAST)) as server:  # an honest server
        proposer.base_url = server.base_url
        with pytest.raises(ProposalError) as caught:
            proposer.propose(["cat"])
    assert KEY not in "".join(traceback.format_exception(caught.value))
    assert KEY not in caplog.text


def test_a_local_server_needs_no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(per_class(GOOD)) as server:
        assert ChatGPTProposer(base_url=server.base_url).propose(["cat"]) == {"cat": ["underwater"]}
    assert server.requests[0].headers["authorization"] == "Bearer no-key"


@pytest.mark.parametrize(
    ("key", "what"),
    [
        (KEY + "\u00e9", "a non-ASCII character at position 26"),
        ("sk-\u200b" + KEY, "a non-ASCII character at position 3"),
        (KEY[:10] + " " + KEY[10:], "whitespace at position 10"),
        (KEY[:10] + "\n" + KEY[10:], "whitespace at position 10"),
        (KEY + "\x7f", "a control character at position 26"),
    ],
)
def test_a_key_that_is_not_printable_ascii_is_refused_without_showing_it(monkeypatch, key, what):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    errors = []
    with OpenAIServer(per_class(GOOD)) as server:
        with pytest.raises(
            ValueError, match=rf"^api_key must be printable ASCII.*{what}"
        ) as caught:
            make(server, api_key=key).propose(["fox"])
        errors.append(caught.value)
        monkeypatch.setenv("OPENAI_API_KEY", key)
        with pytest.raises(
            ValueError, match=rf"^OPENAI_API_KEY must be printable .*{what}"
        ) as caught:
            ChatGPTProposer(base_url=server.base_url).propose(["fox"])
        errors.append(caught.value)
    assert server.requests == []  # refused before any request
    for err in errors:
        shown = "".join(traceback.format_exception(err)) + repr(err.args)
        assert KEY[-8:] not in shown and KEY[3:10] not in shown


def test_surrounding_whitespace_is_stripped_from_the_key(monkeypatch, caplog):
    """A key read from a file keeps its newline: it is stripped, not sent nor logged."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    with OpenAIServer(per_class(GOOD)) as server:
        assert make(server, api_key=f"  {KEY}\n").propose(["fox"]) == {"fox": GOOD_FOX}
        monkeypatch.setenv("OPENAI_API_KEY", f"{KEY}\r\n")
        proposer = ChatGPTProposer(base_url=server.base_url, max_retries=0)
        assert proposer.propose(["cat"]) == {"cat": ["underwater"]}
    assert [r.headers["authorization"] for r in server.requests] == [f"Bearer {KEY}"] * 2
    assert caplog.records and all(KEY not in r.getMessage() for r in caplog.records)


URL_KEY = "sk-url-0c4e9a71b2d85f36"
QUERY_KEY = "sk-query-5d2b8e06f19c47a3"


def http_filters() -> dict[str, list]:
    """The filters of the openai client's loggers and its HTTP stack's."""
    return {
        name: list(each.filters)
        for name, each in logging.Logger.manager.loggerDict.items()
        if isinstance(each, logging.Logger) and name.startswith(("openai", "httpx", "httpcore"))
    }


def test_secrets_in_the_url_and_the_query_never_show(monkeypatch, caplog):
    """Not in repr, the cache key, the HTTP stack's logs (at DEBUG) nor error messages."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def leaky(body):  # echoes the secrets back, and logs them as the HTTP stack might
        try:
            raise RuntimeError(f"boom {URL_KEY}")
        except RuntimeError:
            logging.getLogger("httpx").debug("query %s", QUERY_KEY, exc_info=True)
        if class_of(body) == "owl":
            return Reply(status=500, error=f"bad {URL_KEY} {QUERY_KEY}", headers=FAST)
        return GOOD["fox"]

    caplog.set_level(logging.DEBUG)
    filters = http_filters()
    with OpenAIServer(leaky) as server:
        proposer = ChatGPTProposer(
            base_url=server.base_url.replace("http://", f"http://user:{URL_KEY}@"),
            api_key=KEY,
            max_retries=1,
            request_options={"extra_query": {"key": QUERY_KEY}},
        )
        shown = repr(proposer)
        with pytest.raises(ProposalError, match=r"'owl'.*bad \*\*\* \*\*\*") as caught:
            proposer.propose(["fox", "owl"])
    assert "base_url='http://user:***@127.0.0.1:" in shown and "<extra_query>" in shown
    assert "user:***@127.0.0.1" in proposer.cache_key()["server"]
    assert URL_KEY not in json.dumps(proposer.cache_key())  # extra_query values may change answers
    messages = [r.getMessage() for r in caplog.records]
    assert any("POST http://user:***@127.0.0.1" in m and "key=***" in m for m in messages)
    for secret in (URL_KEY, QUERY_KEY):
        assert secret not in shown
        assert secret not in str(caught.value) and secret not in repr(caught.value)
        assert all(secret not in m for m in messages) and secret not in caplog.text
    assert http_filters() == filters  # the scrubbing ends with the call


@pytest.mark.parametrize(
    ("base_url", "shown"),
    [
        ("http://user:pw-secret-1@host:8000/v1", "http://user:***@host:8000/v1"),
        ("https://tok-secret-2@host/v1", "https://***@host/v1"),  # a user name alone: a token
        ("http://user:p@ss-secret-3@host/v1?x=1", "http://user:***@host/v1?x=1"),
        ("http://host:8000/v1", "http://host:8000/v1"),
    ],
)
def test_repr_and_cache_key_hide_credentials_in_the_url(base_url, shown):
    proposer = ChatGPTProposer("m", base_url=base_url)
    assert repr(proposer) == f"ChatGPTProposer('m', base_url={shown!r})"
    assert proposer.cache_key()["server"] == shown


# -- construction and configuration ----------------------------------------------------------------


def test_constructor_only_stores():
    templates = {"pose": "Which uncommon poses can a {class_name} take?"}
    proposer = ChatGPTProposer("m", base_url="http://127.0.0.1:9/v1", templates=templates)
    assert vars(proposer) == {
        "model": "m",
        "client": None,
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": None,
        "max_retries": 2,
        "timeout": 60.0,
        "temperature": 0.0,
        "seed": None,
        "max_values": None,
        "templates": templates,
        "schema": True,
        "request_options": None,
        "concurrency": 4,
    }
    assert proposer.templates is templates


def test_concurrency_is_not_part_of_the_cache_key():
    key = ChatGPTProposer("m", base_url="http://127.0.0.1:9/v1").cache_key()
    assert ChatGPTProposer("m", base_url="http://127.0.0.1:9/v1", concurrency=16).cache_key() == key
    assert ChatGPTProposer("m", base_url="http://127.0.0.1:9/v1", seed=1).cache_key() != key


def test_repr_shows_what_differs_from_the_defaults():
    assert repr(ChatGPTProposer()) == f"ChatGPTProposer({DEFAULT_MODEL!r})"
    proposer = ChatGPTProposer(
        "llama3.1", max_values=5, schema=False, request_options={"extra_headers": {"x": KEY}}
    )
    assert repr(proposer) == (
        "ChatGPTProposer('llama3.1', max_values=5, schema=False, request_options=<extra_headers>)"
    )
    assert repr(ChatGPTProposer("m", concurrency=8)) == "ChatGPTProposer('m', concurrency=8)"


def test_a_client_can_be_given(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIServer(per_class(GOOD)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-client-key-123", max_retries=0)
        proposer = ChatGPTProposer(client=client, base_url="http://127.0.0.1:9/v1")
        assert proposer.propose(["fox"]) == {"fox": GOOD_FOX}
        assert repr(proposer) == (
            f"ChatGPTProposer({DEFAULT_MODEL!r}, client=<OpenAI>, base_url='http://127.0.0.1:9/v1')"
        )
        assert ChatGPTProposer(client=client).propose(["owl"])  # the client is not closed
    assert server.requests[0].headers["authorization"] == "Bearer sk-client-key-123"


def test_an_unknown_attribute_needs_a_template():
    proposer = ChatGPTProposer(base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ValueError, match=r"attribute 'pose'.*\['background', 'color', 'size'\]"):
        proposer.propose(["fox"], attribute="pose")
    bad = ChatGPTProposer(templates={"pose": "Which poses?"})
    with pytest.raises(ValueError, match=r"\{class_name\}"):
        bad.propose(["fox"], attribute="pose")
    with pytest.raises(ValueError, match="attribute"):
        proposer.propose(["fox"], attribute=" ")


def test_templates_add_and_replace_questions(answering):
    templates = {
        "pose": "Which uncommon poses can a {class_name} take?",
        "background": "Where would nobody expect a {class_name}?",
    }
    answer = values("lying upside down", "jumping", "Curled up")
    proposer, server = answering(answer, templates=templates)
    assert proposer.propose(["cat"], attribute="pose") == {
        "cat": ["lying upside down", "jumping", "curled up"]  # no "in the": not a background
    }
    proposer.propose(["cat"])
    questions = [r.body["messages"][1]["content"] for r in server.requests]
    assert questions == ["Which uncommon poses can a cat take?", "Where would nobody expect a cat?"]
    assert "uncommon poses" in server.requests[0].body["messages"][0]["content"]


@pytest.mark.parametrize(
    ("names", "options", "error", "match"),
    [
        ("fox", {}, TypeError, "not a string"),
        (["fox", " "], {}, ValueError, "non-empty"),
        (["fox"], {"max_values": 0}, ValueError, "max_values"),
        (["fox"], {"max_values": 2.5}, ValueError, "max_values"),
        (["fox"], {"concurrency": 0}, ValueError, "concurrency must be a positive integer"),
        (["fox"], {"concurrency": -2}, ValueError, "concurrency must be a positive integer"),
        (["fox"], {"concurrency": 2.0}, ValueError, "concurrency must be a positive integer"),
        (["fox"], {"concurrency": True}, ValueError, r"concurrency .*, not True"),
        (["fox"], {"concurrency": "4"}, ValueError, "concurrency must be a positive integer"),
        (["fox"], {"concurrency": None}, ValueError, "concurrency must be a positive integer"),
    ],
)
def test_bad_arguments(names, options, error, match):
    with pytest.raises(error, match=match):
        ChatGPTProposer(base_url="http://127.0.0.1:9/v1", **options).propose(names)


def test_a_missing_openai_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openai", None)
    proposer = ChatGPTProposer(base_url="http://127.0.0.1:9/v1")  # constructing needs no openai
    with pytest.raises(ImportError, match=r'pip install "failmodes\[openai\]"'):
        proposer.propose(["fox"])


# -- OpenAIServer ----------------------------------------------------------------------------------


def test_server_plays_a_list_of_replies_and_records_requests():
    replies = ["first", Reply(status=418, error="teapot"), Reply(body={"custom": True}), "last"]
    with OpenAIServer(replies) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        assert client.chat.completions.create(**ask).choices[0].message.content == "first"
        with pytest.raises(openai.APIStatusError, match="teapot") as caught:
            client.chat.completions.create(**ask)
        assert caught.value.status_code == 418
        raw = client.chat.completions.with_raw_response.create(**ask)
        assert json.loads(raw.text) == {"custom": True}
        for _ in range(2):  # the last reply repeats
            assert client.chat.completions.create(**ask).choices[0].message.content == "last"
        assert [m.id for m in client.models.list()] == ["test-model"]
    assert [r.body for r in server.requests[:5]] == [ask] * 5
    assert server.requests[-1].method == "GET" and server.requests[-1].path == "/v1/models"
    assert repr(server) == "OpenAIServer(not running, 6 requests)"
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url


def test_server_delay_lets_requests_overlap_and_counts_them():
    with OpenAIServer("in a desert", delay=0.2) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
        ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        threads = [
            threading.Thread(target=client.chat.completions.create, kwargs=ask) for _ in range(4)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        assert [m.id for m in client.models.list()] == ["test-model"]  # not counted, no delay
    assert len(server.requests) == 5
    assert server.max_in_flight == 4
    assert seconds >= 0.2 and server.max_in_flight == 4  # the four waits overlapped


@pytest.mark.parametrize("delay", [-1, -0.5, float("nan"), float("inf"), "1", True, None])
def test_server_delay_must_be_a_finite_number_at_least_zero(delay):
    with pytest.raises(ValueError, match="delay must be a finite number of seconds"):
        OpenAIServer("x", delay=delay)


def test_server_answers_errors_for_unknown_paths_and_failing_handlers():
    def handler(body):
        raise KeyError("nope")

    with OpenAIServer(handler) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError, match="handler raised KeyError"):
            client.chat.completions.create(model="m", messages=[])
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model="m", input="x")
