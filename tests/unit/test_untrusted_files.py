"""Nothing the library reads from a cache or a user's file can run code: no pickle anywhere."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch

from failmodes.cache import Cache

SOURCE = Path(__file__).resolve().parents[2] / "failmodes"


def _code_lines():
    for path in sorted(SOURCE.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if code.strip() and not code.strip().startswith(("'", '"')):
                yield path, number, code


def test_no_pickle_and_torch_load_only_with_weights_only():
    problems = []
    for path, number, code in _code_lines():
        if re.search(r"\bimport pickle\b|\bpickle\.|cloudpickle|dill\b|allow_pickle=True", code):
            problems.append(f"{path}:{number}: {code.strip()}")
        if "torch.load(" in code and "weights_only=True" not in code:
            problems.append(f"{path}:{number}: torch.load without weights_only=True")
    assert problems == []


def test_a_pickle_planted_in_the_cache_is_never_unpickled(tmp_path):
    cache = Cache(tmp_path)
    key = cache.key("heads", {"x": 1})
    path = cache.entry("heads", key).with_suffix(".safetensors")
    path.parent.mkdir(parents=True)
    marker = tmp_path / "ran"
    # a pickle that would create a file if it were ever loaded with pickle
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    path.write_bytes(payload)
    assert cache.get_tensors("heads", key) is None  # unreadable as safetensors: a miss
    assert not marker.exists()
    assert not path.exists()  # the unreadable entry was discarded
    # and torch refuses it too, as the library loads checkpoints
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(payload)
    with pytest.raises((pickle.UnpicklingError, RuntimeError)):
        torch.load(checkpoint, weights_only=True)
    assert not marker.exists()
