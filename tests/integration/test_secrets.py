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
