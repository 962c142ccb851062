"""failmodes: find, describe, cover and repair a classifier's failure modes.

The method follows Chegini & Feizi, "Identifying and Mitigating Model Failures through Few-shot
CLIP-aided Diffusion Generation" (arXiv 2312.05464). Heavy backends are imported lazily, so
``import failmodes`` needs only the base dependencies.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from failmodes.errors import DataError, SettingError
from failmodes.interfaces import (
    BackgroundProposer,
    Caption,
    EditingGenerator,
    FailureCaptioner,
    FeatureExtractor,
    GenerationRequest,
    HeadTrainer,
    ImageFilter,
    ImageGenerator,
)
from failmodes.results import (
    FailureExample,
    FailureModes,
    FailureSet,
    Features,
    GeneratedSet,
    ModeAccuracy,
    PreparedRun,
    RunResult,
)

__version__ = "0.1.0.dev0"

logging.getLogger("failmodes").addHandler(logging.NullHandler())

# public name -> module that defines it, imported on first access
_LAZY = {
    "Debugger": "failmodes.debugger",
    "TorchExtractor": "failmodes.extractors.torch",
    "TimmExtractor": "failmodes.extractors.timm",
    "OpenCLIPExtractor": "failmodes.extractors.openclip",
    "StaticProposer": "failmodes.proposers.static",
    "ChatGPTProposer": "failmodes.proposers.chatgpt",
    "merge_values": "failmodes.proposers.merge",
    "CLIPCaptioner": "failmodes.captioners.openclip",
    "StableDiffusionGenerator": "failmodes.generators.diffusion",
    "LinearHeadTrainer": "failmodes.heads.linear",
    "patch_model": "failmodes.heads.linear",
    "FeatureShards": "failmodes.shards",
}

__all__ = [
    "BackgroundProposer",
    "Caption",
    "DataError",
    "EditingGenerator",
    "FailureCaptioner",
    "FailureExample",
    "FailureModes",
    "FailureSet",
    "FeatureExtractor",
    "Features",
    "GeneratedSet",
    "GenerationRequest",
    "HeadTrainer",
    "ImageFilter",
    "ImageGenerator",
    "ModeAccuracy",
    "PreparedRun",
    "RunResult",
    "SettingError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'failmodes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
