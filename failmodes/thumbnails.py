"""Thumbnails of a few failures of every failure mode, kept for the report.

Only the images a thumbnail is made of are read from the debug set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from failmodes.images import png_bytes, thumbnail
from failmodes.results import FailureExample, FailureModes

__all__ = ["failure_examples"]


def failure_examples(
    debug: Any, modes: FailureModes, *, per_mode: int = 4, size: int = 96
) -> list[FailureExample]:
    """Thumbnails of a few ``debug_seed`` failures of every failure mode, for reports.

    For each (class, value) of ``modes.modes``, ``per_mode`` of the failures captioned with
    that value are kept, spread evenly over them in debug-set order (so the same run always
    keeps the same ones). Only those images are read from ``debug``. Images larger than
    ``size`` pixels are shrunk, smaller ones kept as they are; images that are neither PIL
    images nor ``(C, H, W)`` / ``(H, W, C)`` arrays or tensors are skipped.

    Args:
        debug: the debug set the failures index into.
        modes: the captioned failures and their modes.
        per_mode: failures kept per mode (0 keeps none).
        size: the thumbnails' largest side in pixels (at least 8).

    Returns:
        One [`FailureExample`][FailureExample] per kept failure, mode by mode (classes in
        label order, each class's modes in rank order).

    Raises:
        ValueError: if ``per_mode`` is not an integer >= 0 or ``size`` not an integer >= 8.

    Examples:
        >>> import numpy as np
        >>> from PIL import Image
        >>> from failmodes import Caption, FailureModes
        >>> from failmodes.thumbnails import failure_examples
        >>> debug = [(Image.new("RGB", (128, 128), "red"), i % 2) for i in range(10)]
        >>> modes = FailureModes.from_captions(
        ...     class_names=["fox", "wallet"],
        ...     attribute="background",
        ...     indices=np.array([3, 5, 8]),
        ...     labels=np.array([1, 1, 0]),
        ...     predictions=np.array([0, 0, 1]),
        ...     captions=[Caption("in a desert", 0.9), Caption("in a desert", 0.7),
        ...               Caption("in a jungle", 0.8)],
        ...     candidates={"wallet": ["in a desert"], "fox": ["in a jungle"]},
        ...     k=1,
        ... )
        >>> examples = failure_examples(debug, modes, per_mode=1, size=32)
        >>> [(example.index, example.value) for example in examples]
        [(8, 'in a jungle'), (3, 'in a desert')]
    """
    from failmodes.data import images_at

    if isinstance(per_mode, bool) or not isinstance(per_mode, int) or per_mode < 0:
        raise ValueError(f"per_mode must be an integer >= 0, got {per_mode!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}")
    if per_mode == 0:
        return []
    picks: list[int] = []  # positions in modes.indices
    for name in modes.class_names:
        label = modes.class_names.index(name)
        for value in modes.modes.get(name, []):
            rows = sorted(
                (
                    i
                    for i, (y, cap) in enumerate(zip(modes.labels, modes.captions, strict=True))
                    if int(y) == label and cap.value == value
                ),
                key=lambda i: int(modes.indices[i]),
            )
            if len(rows) > per_mode:
                spread = np.unique(np.linspace(0, len(rows) - 1, per_mode).round().astype(int))
                rows = [rows[j] for j in spread]
            picks.extend(rows)
    images = images_at(debug, [int(modes.indices[i]) for i in picks])
    examples = []
    for i, image in zip(picks, images, strict=True):
        thumb = thumbnail(image, size)
        if thumb is None:
            continue
        caption = modes.captions[i]
        examples.append(
            FailureExample(
                index=int(modes.indices[i]),
                label=int(modes.labels[i]),
                prediction=int(modes.predictions[i]),
                value=caption.value,
                score=float(caption.score),
                png=png_bytes(thumb),
            )
        )
    return examples
