"""Captioners: for each failure image, the most likely value among its class's candidates.

[`CLIPCaptioner`][CLIPCaptioner] (open_clip zero-shot) is the default; it needs the ``clip`` extra,
and open_clip is imported only when a model is built.
"""

from __future__ import annotations

from failmodes.captioners.openclip import CLIPCaptioner

__all__ = ["CLIPCaptioner"]
