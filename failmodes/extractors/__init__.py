"""Feature extractors: split a classifier into a frozen backbone and its linear head.

[`TorchExtractor`][TorchExtractor] takes any PyTorch classifier; [`TimmExtractor`][TimmExtractor]
any timm model (``timm`` extra); [`OpenCLIPExtractor`][OpenCLIPExtractor] a CLIP image tower with a
trained or zero-shot head (``clip`` extra). The backends are imported only when a model is built.
"""

from failmodes.extractors.openclip import OpenCLIPExtractor
from failmodes.extractors.timm import TimmExtractor
from failmodes.extractors.torch import TorchExtractor

__all__ = ["OpenCLIPExtractor", "TimmExtractor", "TorchExtractor"]
