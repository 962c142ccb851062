"""A generated set as files: an image folder with a manifest, written and read back.

``<class>/<value>/NNNN.png`` with a ``manifest.json`` listing every request (class, value,
prompt, count, seed) and every image (its file, request, index in the request and seed), so
that a debugging set can be shared, inspected and read back. Bare-class images go in a
``_none`` folder. A class or value too long for a folder name is cut and ends in a hash of its
full text; the manifest keeps the full names.
[`GeneratedSet.export`][failmodes.results.GeneratedSet.export] and
[`GeneratedSet.load`][failmodes.results.GeneratedSet.load] use these.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from failmodes.images import file_inside
from failmodes.interfaces import GenerationRequest

if TYPE_CHECKING:
    from failmodes.results import GeneratedSet

__all__ = ["FORMAT", "MAX_NAME_BYTES", "export_generated", "read_generated"]

FORMAT = "failmodes.GeneratedSet/1"
"""The manifest's ``format``."""

MAX_NAME_BYTES = 100
"""The longest folder name (UTF-8 bytes) made from a class or value.

Well under the 255 bytes that common file systems allow, so that an exported folder can be
copied anywhere; a longer name is cut and ends in a hash of the full text.
"""


def export_generated(generated: GeneratedSet, folder: str | Path) -> Path:
    """Write ``generated`` as an image folder with a manifest.

    The files are written into a new hidden folder beside ``folder``, which is renamed to
    ``folder`` once everything is written: an export that fails leaves no folder behind. The
    filter report and the image ids are not written.

    Args:
        generated: the set to write.
        folder: where to write; it must not exist yet or be empty (it is created).

    Returns:
        ``folder``, as a ``Path``.

    Raises:
        FileExistsError: if ``folder`` exists and is not empty.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; export into a new folder")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".failmodes-export-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write(generated, staging)
        if folder.exists():
            folder.rmdir()  # empty, as checked above
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _write(generated: GeneratedSet, folder: Path) -> None:
    """Write the images and the manifest of ``generated`` into ``folder``, which exists."""
    offsets = generated.offsets
    entries = []
    for i, image in enumerate(generated.images):
        request = generated.requests[int(generated.request_index[i])]
        value = "_none" if generated.values[i] is None else _safe_name(generated.values[i])
        sub = Path(_safe_name(request.class_name)) / value
        (folder / sub).mkdir(parents=True, exist_ok=True)
        name = sub / f"{i:04d}.png"
        image.save(folder / name, format="PNG")
        entries.append(
            {
                "file": name.as_posix(),
                "request": int(generated.request_index[i]),
                "index": int(offsets[i]),
                "seed": request.image_seed(int(offsets[i])),
            }
        )
    manifest = {
        "format": FORMAT,
        "requests": [r.identity() for r in generated.requests],
        "images": entries,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))


def read_generated(folder: str | Path) -> tuple[list[GenerationRequest], list[Any], np.ndarray]:
    """Read a folder written by [`export_generated`][export_generated].

    Args:
        folder: the folder it wrote, with its ``manifest.json``.

    Returns:
        ``(requests, images, request_index)``: the requests, every image decoded as an RGB PIL
        image, and each image's request.

    Raises:
        FileNotFoundError: if the folder has no ``manifest.json`` or an image is missing.
        ValueError: if the manifest names a file outside the folder (an absolute path, ``..``,
            a link out of it).
    """
    from PIL import Image

    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    requests = [GenerationRequest(**r) for r in manifest["requests"]]
    images, owner = [], []
    for entry in manifest["images"]:
        path = file_inside(folder, entry["file"], f"{folder / 'manifest.json'}")
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
        owner.append(int(entry["request"]))
    return requests, images, np.asarray(owner, dtype=np.int64)


def _safe_name(text: str) -> str:
    """A folder name from a class or value: spaces to underscores, no path separators.

    A name longer than [`MAX_NAME_BYTES`][MAX_NAME_BYTES] is cut (on a character boundary)
    and ends in 12 hex digits of the SHA-256 of ``text``, so that two long names that share
    their start get two folders, and the same name always the same one.

    Examples:
        >>> from failmodes.generated_files import _safe_name
        >>> _safe_name("in a desert"), _safe_name("../etc")
        ('in_a_desert', 'etc')
        >>> long = _safe_name("fox " * 60)
        >>> len(long.encode()), long[-13:]
        (100, '-951924e0ca46')
    """
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip())
    cleaned = cleaned.strip("._") or "_"
    if len(cleaned.encode()) <= MAX_NAME_BYTES:
        return cleaned
    suffix = hashlib.sha256(text.encode()).hexdigest()[:12]
    head = cleaned.encode()[: MAX_NAME_BYTES - len(suffix) - 1].decode(errors="ignore")
    return f"{head.rstrip('._-')}-{suffix}"
