"""The API key never reaches logs, reprs, caches, manifests, summaries or reports."""

from __future__ import annotations

import json
import logging

import pytest

pytest.importorskip("openai")
pytest.importorskip("open_clip")

from failmodes import ChatGPTProposer, Debugger  # noqa: E402
from failmodes.testing.openai_server import OpenAIServer  # noqa: E402
from failmodes.toyworld import ToyWorld, demo_components  # noqa: E402

KEY = "sk-test-SECRET-5f0c9a1e77"


def test_the_key_is_written_nowhere(tmp_path, caplog, monkeypatch):
    world = ToyWorld(seed=6)
    values = json.dumps({"values": world.values[:12]})
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    caplog.set_level(logging.DEBUG)
    with OpenAIServer(values) as server:
        proposer = ChatGPTProposer("tiny", base_url=server.base_url, max_retries=0)
        settings = demo_components(
            world, cache=tmp_path / "cache", k=[2], lam=[0.5], images_per_mode=[5]
        )
        dbg = Debugger(**{**settings, "proposer": proposer})
        result = dbg.run(world.train(20), world.debug(800), world.test(300), seed=0)
        assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was used
    (tmp_path / "out").mkdir()
    result.save_summary(tmp_path / "out" / "summary.json")
    result.report(tmp_path / "out" / "report.html")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any("proposals" in p.parts for p in written)  # the proposals were cached
    for path in written:
        assert KEY.encode() not in path.read_bytes(), path
    for text in (caplog.text, repr(proposer), repr(dbg.components), repr(result)):
        assert KEY not in text


TOKEN = "tok-HEADER-SECRET-93e1d0"


def _failing_proposal(server_reply, **options):
    """The ProposalError of a proposer whose server answers ``server_reply``, and its text."""
    import traceback

    from failmodes.proposers import ProposalError
    from failmodes.testing.openai_server import Reply

    with OpenAIServer([Reply(**server_reply)] * 4) as server:
        proposer = ChatGPTProposer(
            "tiny", base_url=server.base_url, api_key=KEY, max_retries=0, **options
        )
        with pytest.raises(ProposalError) as caught:
            proposer.propose(["fox"])
    err = caught.value
    return proposer, err, "".join(traceback.format_exception(err))


def test_a_key_echoed_by_the_server_stays_out_of_the_traceback(caplog):
    caplog.set_level(logging.DEBUG)
    _, err, shown = _failing_proposal({"status": 401, "error": f"Incorrect API key: {KEY}"})
    assert "401" in str(err) or "AuthenticationError" in str(err)  # the cause is still named
    assert KEY not in shown and KEY not in caplog.text
    assert err.__cause__ is None and err.__suppress_context__


def test_extra_header_values_are_redacted_everywhere(caplog, tmp_path):
    from failmodes.cache import Cache
    from failmodes.steps import propose

    caplog.set_level(logging.DEBUG)
    options = {"request_options": {"extra_headers": {"X-Api-Token": TOKEN}}}
    proposer, err, shown = _failing_proposal(
        {"status": 400, "error": f"bad header X-Api-Token={TOKEN}"}, **options
    )
    assert TOKEN not in shown and TOKEN not in caplog.text and TOKEN not in repr(proposer)
    with OpenAIServer(json.dumps({"values": ["in a desert", "on snow"]})) as server:
        good = ChatGPTProposer("tiny", base_url=server.base_url, api_key=KEY, **options)
        propose(good, ["fox"], cache=Cache(tmp_path / "cache"))
        assert server.requests[0].headers["x-api-token"] == TOKEN  # it was sent
    for path in (tmp_path / "cache").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes() and KEY.encode() not in path.read_bytes()
