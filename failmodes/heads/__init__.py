"""Head trainers: refit a classifier's linear head on frozen features."""

from failmodes.heads.linear import LinearHeadTrainer, patch_model

__all__ = ["LinearHeadTrainer", "patch_model"]
