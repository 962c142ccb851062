"""Feature extractors: split a classifier into a frozen backbone and its linear head."""

from failmodes.extractors.torch import TorchExtractor

__all__ = ["TorchExtractor"]
