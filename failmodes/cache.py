"""An on-disk, content-addressed cache for every deterministic step of a run.

An entry's key is the SHA-256 of canonical JSON describing everything its content depends on:
the component's configuration ([`fingerprint`][fingerprint]: its name and settings, or a hash of its
weights), a fingerprint of the input data ([`data_fingerprint`][data_fingerprint]: file names, sizes
and modification times, or the pixels of in-memory images, or a name the user gives), and the
step's own arguments (seeds, prompts, ...). A fine-tuned model or a changed dataset gives
another key, so it never meets a stale entry.

Entries are plain files, never pickles: tensors in safetensors, JSON, and PNG images with a
``manifest.json`` giving each image's provenance (prompt, seed, generator and its settings).
Every write goes to a temporary file (or folder) first and is renamed into place, so a reader
sees a whole entry or none, even when the writer is killed; an entry that cannot be read is
treated as missing and rewritten.

The cache lives in ``$FAILMODES_CACHE`` when set, else in the user cache folder that
``platformdirs`` gives (``~/.cache/failmodes`` on Linux). A
[`Debugger`][failmodes.debugger.Debugger] uses it by default; ``Debugger(cache=False)`` turns it off
and ``Debugger(cache="path")`` points it elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from failmodes._checks import check_number
from failmodes.images import ImageList, file_inside

__all__ = [
    "Cache",
    "CacheEntry",
    "CacheWarning",
    "cache_spec",
    "cached",
    "data_fingerprint",
    "digest",
    "fingerprint",
    "resolve_cache",
    "tensor_digest",
]

logger = logging.getLogger("failmodes")

# Bumped when the layout or the meaning of an entry changes: old entries are then ignored.
FORMAT = 1
_SIMPLE = (str, int, float, bool, type(None))


def digest(value: Any) -> str:
    """The SHA-256 hex digest of ``value`` as canonical JSON (sorted keys, no spaces).

    Args:
        value: JSON-ready data; numpy scalars, paths, dtypes and devices are written as their
            values or names, other objects as their ``repr``.

    Returns:
        64 hexadecimal characters; equal data (whatever its key order) gives equal digests.

    Examples:
        >>> from failmodes.cache import digest
        >>> digest({"a": 1, "b": [2, 3]}) == digest({"b": [2, 3], "a": 1})
        True
    """
    blob = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode()).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating | np.bool_):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    return repr(value)


# -- fingerprints --------------------------------------------------------------------------------


def tensor_digest(tensors: Mapping[str, torch.Tensor] | Sequence[torch.Tensor]) -> str:
    """A hash of tensors' names, dtypes, shapes and bytes (e.g. a model's ``state_dict()``).

    Args:
        tensors: ``{name: tensor}`` or a sequence of tensors (named by position).

    Returns:
        64 hexadecimal characters.
    """
    items = tensors.items() if isinstance(tensors, Mapping) else enumerate(tensors)
    h = hashlib.sha256()
    for name, tensor in items:
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _module_digest(module: torch.nn.Module) -> str:
    return tensor_digest({**dict(module.named_parameters()), **dict(module.named_buffers())})


# settings that change how a component runs, not what it computes
_NOT_SETTINGS = frozenset({"progress", "num_workers"})


def fingerprint(component: Any) -> Any:
    """What a component's results depend on, as JSON-ready data; ``None`` when unknown.

    A component may say it itself with a ``cache_key()`` method. Otherwise its class and its
    public settings are used (``progress`` and ``num_workers`` excepted): simple values as they
    are, ``nn.Module`` objects by a hash of their weights and buffers, tensors by their bytes,
    other objects by their ``repr`` unless it shows a memory address, in which case the
    component cannot be described and ``None`` is returned (its steps are then not cached).

    Args:
        component: an extractor, proposer, captioner, generator, head trainer or filter.

    Returns:
        JSON-ready data, or ``None`` for ``None`` and for a component that cannot be described.

    Examples:
        >>> from failmodes import StaticProposer
        >>> from failmodes.cache import fingerprint
        >>> described = fingerprint(StaticProposer({"fox": ["in a desert"]}))
        >>> described["class"], described["values"]
        ('failmodes.proposers.static.StaticProposer', {'fox': ['in a desert']})
        >>> fingerprint(StaticProposer(lambda name, attribute: ["red"])) is None
        True
    """
    if component is None:
        return None
    own = getattr(component, "cache_key", None)
    if callable(own):
        return own()
    described = _describe(component, top=True)
    return None if described is _UNKNOWN else described


def _describe(value: Any, top: bool = False) -> Any:
    if isinstance(value, str | Path) and len(str(value)) < 4096 and os.path.isfile(value):
        stat = os.stat(value)  # a weights file: its content may change under the same name
        return {"file": str(value), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if isinstance(value, _SIMPLE):
        return value
    if isinstance(value, torch.nn.Module):
        return {"module": type(value).__qualname__, "weights": _module_digest(value)}
    if isinstance(value, torch.Tensor):
        return {"tensor": tensor_digest([value])}
    if isinstance(value, torch.dtype | torch.device | Path):
        return str(value)
    if isinstance(value, list | tuple):
        items = [_describe(v) for v in value]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else items
    if isinstance(value, Mapping):
        out = {str(k): _describe(v) for k, v in value.items()}
        return _UNKNOWN if any(v is _UNKNOWN for v in out.values()) else out
    if top and hasattr(value, "__dict__"):
        return _settings(value)
    text = repr(value)
    return _UNKNOWN if " at 0x" in text else {"repr": text}


def _settings(component: Any) -> Any:
    """A component's class and public settings (private and learned state, ``model_``, left out)."""
    settings: dict[str, Any] = {
        "class": f"{type(component).__module__}.{type(component).__qualname__}"
    }
    for name, v in sorted(vars(component).items()):
        private = name.startswith("_") and name != "_head"
        if private or name.endswith("_") or name in _NOT_SETTINGS:
            continue
        settings[name] = _describe(v)
        if settings[name] is _UNKNOWN:
            return _UNKNOWN
    return settings


class _Unknown:
    def __repr__(self) -> str:
        return "<unknown>"


_UNKNOWN = _Unknown()


def data_fingerprint(data: Any) -> Any:
    """A cheap description of a dataset that changes when its content does; ``None`` if unknown.

    In order of preference: the dataset's own ``cache_key`` (a name you give, e.g.
    ``dataset.cache_key = "imagenet-val-2012"``); a ``Subset`` as its dataset and indices; a
    folder dataset (``samples`` of paths, as torchvision's ``ImageFolder``) by its files' paths,
    sizes and modification times, and its transform; in-memory images (ToyWorld's datasets,
    [`ImageDataset`][failmodes.data.ImageDataset], lists, tensors) by their pixels and labels. An
    iterable without a length cannot be fingerprinted.

    Args:
        data: a dataset of images or ``(image, label)`` pairs.

    Returns:
        JSON-ready data, or ``None`` when ``data`` cannot be described (its steps are then not
        cached).

    Examples:
        >>> from PIL import Image
        >>> from failmodes.cache import data_fingerprint
        >>> data = [(Image.new("RGB", (4, 4), "red"), 0)]
        >>> data_fingerprint(data) == data_fingerprint([(Image.new("RGB", (4, 4), "red"), 0)])
        True
        >>> data_fingerprint(data) == data_fingerprint([(Image.new("RGB", (4, 4), "red"), 1)])
        False
    """
    for reader in (_by_name, _by_subset, _by_files, _by_pixels, _by_tensors):
        found = reader(data)
        if found is not _UNKNOWN:
            return found
    if not (hasattr(data, "__len__") and hasattr(data, "__getitem__")):
        return None
    return _by_items(data)


def _by_name(data: Any) -> Any:
    own = getattr(data, "cache_key", None)
    return _UNKNOWN if own is None else {"name": own() if callable(own) else own}


def _by_subset(data: Any) -> Any:
    inner, indices = getattr(data, "dataset", None), getattr(data, "indices", None)
    if inner is None or indices is None:
        return _UNKNOWN
    base = data_fingerprint(inner)
    if base is None:
        return None
    return {"subset_of": base, "indices": digest([int(i) for i in indices])}


def _by_files(data: Any) -> Any:
    """A folder dataset (torchvision's ``ImageFolder``): its files' paths, sizes and times."""
    samples = getattr(data, "samples", None)
    if not (isinstance(samples, list) and samples and isinstance(samples[0], tuple | list)):
        return _UNKNOWN
    h = hashlib.sha256()
    for path, label in samples:
        stat = os.stat(path)
        h.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}\n".encode())
    transform = getattr(data, "transform", None)
    return {"files": h.hexdigest(), "transform": None if transform is None else repr(transform)}


def _by_pixels(data: Any) -> Any:
    pixels = getattr(data, "pixels", None)
    if not isinstance(pixels, np.ndarray):
        return _UNKNOWN
    labels = getattr(data, "labels", None)
    return {"pixels": _array_digest(pixels), "labels": digest(list(labels or []))}


def _by_tensors(data: Any) -> Any:
    if isinstance(data, torch.Tensor):
        return {"tensor": tensor_digest([data])}
    tensors = getattr(data, "tensors", None)
    if isinstance(tensors, tuple) and all(isinstance(t, torch.Tensor) for t in tensors):
        return {"tensors": tensor_digest(list(tensors))}
    return _UNKNOWN


def _by_items(data: Any) -> Any:
    """Every image's pixels and every label, read in order."""
    from failmodes.data import iter_items

    h = hashlib.sha256()
    for image, label in iter_items(data):
        h.update(f"{label}|".encode())
        if isinstance(image, Image.Image):
            h.update(f"{image.mode}{image.size}".encode())
            h.update(image.tobytes())
        elif isinstance(image, torch.Tensor):
            h.update(tensor_digest([image]).encode())
        elif isinstance(image, np.ndarray):
            h.update(_array_digest(image).encode())
        else:
            return None
    return {"items": h.hexdigest()}


def _array_digest(array: np.ndarray) -> str:
    h = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


# -- the store -----------------------------------------------------------------------------------


class Cache:
    """A content-addressed store of JSON, tensors and images under one folder.

    Entries are grouped by ``kind`` (``"features"``, ``"captions"``, ...) and found by a key
    from [`key`][key]; a ``get_*`` of an entry that is missing, or cannot be read, returns
    ``None``.

    Args:
        root: the folder; ``None`` uses ``$FAILMODES_CACHE``, else the user cache folder.

    Examples:
        >>> import tempfile, torch
        >>> cache = Cache(tempfile.mkdtemp())
        >>> key = cache.key("features", {"extractor": "demo", "data": "toy"})
        >>> cache.put_tensors("features", key, {"features": torch.ones(2, 3)})
        >>> cache.get_tensors("features", key)["features"].shape
        torch.Size([2, 3])
        >>> cache.put_json("proposals", key, ["in a desert"])
        >>> cache.get_json("proposals", key), cache.get_json("proposals", "0" * 64)
        (['in a desert'], None)
    """

    def __init__(self, root: str | Path | None = None):
        self.root = root

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"

    @property
    def path(self) -> Path:
        """The cache folder in use."""
        if self.root is not None:
            return Path(self.root).expanduser()
        env = os.environ.get("FAILMODES_CACHE")
        if env:
            return Path(env).expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("failmodes"))

    @staticmethod
    def key(kind: str, spec: Any) -> str:
        """The key of an entry of ``kind`` whose content depends on ``spec``.

        Args:
            kind: the entry's kind (``"features"``, ``"captions"``, ...).
            spec: JSON-ready data describing everything the content depends on.

        Returns:
            A 64-character hex digest of ``kind``, ``spec`` and the cache format.
        """
        return digest({"kind": kind, "format": FORMAT, "spec": spec})

    def entry(self, kind: str, key: str) -> Path:
        """Where an entry lives (a file stem or a folder, by kind).

        Args:
            kind: the entry's kind.
            key: the entry's key, from [`key`][key].

        Returns:
            ``<path>/<kind>/<first two characters of key>/<key>``; JSON and tensor entries add a
            suffix, image entries are this folder.
        """
        return self.path / kind / key[:2] / key

    # -- JSON ----------------------------------------------------------------------------------

    def get_json(self, kind: str, key: str) -> Any | None:
        """Read a JSON entry.

        Args:
            kind: the entry's kind.
            key: the entry's key.

        Returns:
            The value stored, or ``None`` when the entry is missing, cannot be read, has no
            checksum or does not match it (such an entry is deleted, with a
            [`CacheWarning`][CacheWarning]).
        """
        path = self.entry(kind, key).with_suffix(".json")
        try:
            value = _read_json(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            self._discard(path, err)
            return None
        _touch(path)
        return value

    def put_json(self, kind: str, key: str, value: Any, *, provenance: Any = None) -> None:
        """Write a JSON entry, atomically (a reader sees the old entry or the new one).

        Args:
            kind: the entry's kind.
            key: the entry's key.
            value: JSON-serialisable data; ``None`` reads back as a missing entry.
            provenance: JSON-serialisable notes kept beside the value (not read back).
        """
        atomic_write(self.entry(kind, key).with_suffix(".json"), _json_blob(value, provenance))

    # -- tensors -------------------------------------------------------------------------------

    def get_tensors(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        """Read a tensors entry (a safetensors file).

        Args:
            kind: the entry's kind.
            key: the entry's key.

        Returns:
            ``{name: tensor}`` on the CPU, or ``None`` when the entry is missing or cannot be
            read, or its tensors do not match their checksum (such an entry is deleted, with a
            [`CacheWarning`][CacheWarning]).
        """
        path = self.entry(kind, key).with_suffix(".safetensors")
        if not path.exists():
            return None
        try:
            tensors = _read_tensors(path)
        except Exception as err:  # truncated, flipped, foreign or old: treat as missing
            self._discard(path, err)
            return None
        _touch(path)
        return tensors

    def put_tensors(
        self,
        kind: str,
        key: str,
        tensors: Mapping[str, torch.Tensor],
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Write a tensors entry as a safetensors file, atomically.

        Args:
            kind: the entry's kind.
            key: the entry's key.
            tensors: ``{name: tensor}``; they are copied to the CPU and made contiguous.
            metadata: string metadata stored in the file's header.
        """
        from safetensors.torch import save

        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        blob = save(cpu, metadata={**dict(metadata or {}), _SUM_KEY: _tensors_sum(cpu)})
        atomic_write(self.entry(kind, key).with_suffix(".safetensors"), blob)

    # -- images --------------------------------------------------------------------------------

    def get_images(
        self, kind: str, key: str, *, lazy: bool = False
    ) -> tuple[list[Image.Image] | ImageList, dict] | None:
        """The images of an entry and its manifest, or ``None``.

        Every file is checked against the checksum its manifest records (its bytes are hashed,
        not decoded); a file named outside the entry's folder is refused. With ``lazy``, the
        images come as an [`ImageList`][failmodes.images.ImageList] of their files, decoded when
        indexed.

        Args:
            kind: the entry's kind.
            key: the entry's key.
            lazy: return the files unread instead of decoded RGB images.

        Returns:
            ``(images, manifest)``, or ``None`` when the entry is missing, cannot be read or does
            not match its checksums (such an entry is deleted, with a
            [`CacheWarning`][CacheWarning]).
        """
        folder = self.entry(kind, key)
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            return None
        try:
            manifest, paths = _read_image_entry(folder)
            if lazy:
                result: tuple = (ImageList(paths), manifest)
            else:
                images = []
                for path in paths:
                    with Image.open(path) as image:
                        images.append(image.convert("RGB"))
                result = (images, manifest)
        except Exception as err:
            self._discard(folder, err)
            return None
        _touch(manifest_path)
        return result

    def put_images(
        self, kind: str, key: str, images: Sequence[Image.Image], manifest: dict
    ) -> None:
        """Write images as PNG files with a ``manifest.json``, atomically (a folder rename).

        When another writer stored the same entry first, its entry is kept.

        Args:
            kind: the entry's kind.
            key: the entry's key.
            images: PIL images, written as ``0000.png``, ``0001.png``, ...
            manifest: JSON-serialisable data stored as ``manifest.json``; its ``"images"`` list,
                when given, has one dict per image (e.g. its seed), to which each file's name is
                added under ``"file"``.

        Raises:
            ValueError: if ``manifest["images"]`` does not have one entry per image.
        """
        folder = self.entry(kind, key)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=folder.parent))
        try:
            entries = [dict(item) for item in manifest.get("images") or [{} for _ in images]]
            for i, (image, item) in enumerate(zip(images, entries, strict=True)):
                item["file"] = f"{i:04d}.png"
                image.save(staging / item["file"], format="PNG")
                item[_SUM] = _file_sum(staging / item["file"])
            body = {**manifest, "images": entries}
            (staging / "manifest.json").write_text(  # written last: it commits the entry
                json.dumps({**body, _SUM: digest(body)}, sort_keys=True, indent=1)
            )
            _fsync_dir(staging)
            try:
                os.rename(staging, folder)  # atomic; fails if another writer got there first
            except OSError:
                if not (folder / "manifest.json").exists():
                    shutil.rmtree(folder, ignore_errors=True)
                    os.rename(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    # -- housekeeping --------------------------------------------------------------------------

    def _discard(self, path: Path, err: Exception) -> None:
        message = f"cache entry {path} cannot be used ({err}); it is removed and recomputed"
        if isinstance(err, _Unchecked):  # an older cache: announced once, each entry logged
            logger.info(message)
            if str(self.path) not in _OLD_CACHES_WARNED:
                _OLD_CACHES_WARNED.add(str(self.path))
                warnings.warn(
                    f"the cache {self.path} holds entries written by an older failmodes, "
                    "without checksums: each is recomputed when it is needed (this warning is "
                    "shown once; `failmodes cache verify --repair` removes them all now)",
                    CacheWarning,
                    stacklevel=3,
                )
        else:
            logger.warning(message)
            warnings.warn(message, CacheWarning, stacklevel=3)
        _remove(path)

    def entries(self) -> Iterator[CacheEntry]:
        """Every committed entry of the cache, kind by kind.

        Yields:
            A [`CacheEntry`][CacheEntry] per entry (files and folders of unfinished writes,
            whose names start with a dot, are left out).
        """
        if not self.path.is_dir():
            return
        for kind in _visible(self.path):
            for shard in _visible(kind):
                for item in _visible(shard, dirs=None):
                    yield _entry_of(kind.name, item)

    def verify(self, *, repair: bool = False) -> list[tuple[CacheEntry, str]]:
        """Check every entry against its checksums, as reading it would.

        Args:
            repair: remove the damaged entries (each is then recomputed when next needed).
                Safe while a run uses the cache: a damaged entry is one the run would not use.

        Returns:
            ``[(entry, why it is damaged), ...]``.
        """
        damaged = []
        for entry in self.entries():
            reason = _damage(entry)
            if reason is not None:
                damaged.append((entry, reason))
                if repair:
                    _remove(entry.path)
        return damaged

    def info(self) -> dict[str, Any]:
        """What the cache holds: entries and bytes per kind, and when entries were last used.

        Returns:
            ``{"path", "entries", "bytes", "kinds": {kind: {"entries", "bytes"}},
            "oldest_use", "newest_use"}`` (times as POSIX timestamps; ``None`` when empty).
        """
        kinds: dict[str, dict[str, int]] = {}
        uses = []
        for entry in self.entries():
            row = kinds.setdefault(entry.kind, {"entries": 0, "bytes": 0})
            row["entries"] += 1
            row["bytes"] += entry.size
            uses.append(entry.last_used)
        return {
            "path": str(self.path),
            "entries": sum(r["entries"] for r in kinds.values()),
            "bytes": sum(r["bytes"] for r in kinds.values()),
            "kinds": dict(sorted(kinds.items())),
            "oldest_use": min(uses, default=None),
            "newest_use": max(uses, default=None),
        }

    def prune(
        self, *, older_than: float | None = None, max_bytes: int | None = None
    ) -> list[CacheEntry]:
        """Remove entries by last use, by age or to fit a size.

        First the entries unused for ``older_than`` seconds, then the least recently used until
        the cache holds at most ``max_bytes``. A read records a use (the entry's modification
        time), so entries a run is using are the most recently used; each removal renames the
        entry out of the way first.

        Args:
            older_than: seconds since the last use; ``None`` for no age limit.
            max_bytes: the size to shrink the cache to; ``None`` for no size limit.

        Returns:
            The removed entries, least recently used first.

        Raises:
            ValueError: if neither limit is given, or one is negative.
        """
        if older_than is None and max_bytes is None:
            raise ValueError("prune needs older_than or max_bytes (or both)")
        for name, value in (("older_than", older_than), ("max_bytes", max_bytes)):
            if value is not None:
                check_number(value, name, minimum=0)
        entries = sorted(self.entries(), key=lambda e: e.last_used)
        now = time.time()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            too_old = older_than is not None and now - entry.last_used > older_than
            too_big = max_bytes is not None and total > max_bytes
            if not (too_old or too_big):
                continue
            _remove(entry.path)
            total -= entry.size
            removed.append(entry)
        return removed

    def files(self) -> Iterator[Path]:
        """Every committed file of the cache (temporary files of unfinished writes excluded).

        Yields:
            Paths of the files under [`path`][path], sorted.
        """
        if not self.path.exists():
            return
        for path in sorted(self.path.rglob("*")):
            if path.is_file() and not any(part.startswith(".") for part in path.parts[-3:]):
                yield path


def atomic_write(path: Path, blob: bytes) -> None:
    """Write ``blob`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@dataclass(frozen=True)
class CacheEntry:
    """One entry of a cache, as [`Cache.entries`][Cache.entries] lists it.

    Attributes:
        kind: the entry's kind (``"features"``, ``"generated"``, ...).
        key: its key.
        path: its file (JSON or safetensors) or folder (images).
        size: its bytes on disk.
        last_used: when it was last written or read, as a POSIX timestamp.
    """

    kind: str
    key: str
    path: Path
    size: int
    last_used: float


def _visible(folder: Path, dirs: bool | None = True) -> list[Path]:
    """The entries of ``folder`` whose names do not start with a dot (only folders if ``dirs``)."""
    return [
        p for p in sorted(folder.iterdir())
        if not p.name.startswith(".") and (dirs is None or p.is_dir() == dirs)
    ]  # fmt: skip


def _entry_of(kind: str, item: Path) -> CacheEntry:
    if item.is_dir():
        files = [p for p in item.rglob("*") if p.is_file()]
        stamp = item / "manifest.json"
        used = stamp.stat().st_mtime if stamp.exists() else item.stat().st_mtime
        return CacheEntry(kind, item.name, item, sum(p.stat().st_size for p in files), used)
    stat = item.stat()
    return CacheEntry(kind, item.name.split(".")[0], item, stat.st_size, stat.st_mtime)


def _damage(entry: CacheEntry) -> str | None:
    """Why an entry cannot be used, or ``None`` when it is whole."""
    try:
        if entry.path.is_dir():
            if not (entry.path / "manifest.json").exists():
                return "no manifest (an unfinished or foreign folder)"
            _read_image_entry(entry.path)
        elif entry.path.suffix == ".json":
            _read_json(entry.path)
        elif entry.path.suffix == ".safetensors":
            _read_tensors(entry.path)
        else:
            return f"not a cache file ({entry.path.suffix or 'no suffix'})"
    except Exception as err:
        return str(err) or type(err).__name__
    return None


class CacheWarning(UserWarning):
    """A cache entry was damaged, incomplete or written by an older failmodes: it is recomputed."""


_SUM = "sha256"  # the checksum's key in JSON entries and image manifests
_SUM_KEY = "failmodes.sha256"  # the checksum's key in a safetensors file's metadata


class _Damaged(ValueError):
    """An entry whose content is not what its checksum says (or that has none)."""


class _Unchecked(_Damaged):
    """An entry without a checksum: written by a failmodes from before checksums."""


_OLD_CACHES_WARNED: set[str] = set()  # caches whose entries without checksums were announced


def _json_blob(value: Any, provenance: Any) -> bytes:
    body = {"value": value, "provenance": provenance}
    return json.dumps({**body, _SUM: digest(body)}, sort_keys=True, indent=1).encode()


def _read_json(path: Path) -> Any:
    """The value of a JSON entry, verified against its checksum."""
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict) or _SUM not in data:
        raise _Unchecked("it has no checksum (written by an older failmodes)")
    body = {"value": data["value"], "provenance": data.get("provenance")}
    if digest(body) != data[_SUM]:
        raise _Damaged("its content does not match its checksum")
    return data["value"]


def _tensors_sum(tensors: Mapping[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name]
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors entry, verified against the checksum in its metadata."""
    from safetensors.torch import load

    blob = path.read_bytes()
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    expected = (header.get("__metadata__") or {}).get(_SUM_KEY)
    if expected is None:
        raise _Unchecked("it has no checksum (written by an older failmodes)")
    tensors = load(blob)
    if _tensors_sum(tensors) != expected:
        raise _Damaged("its tensors do not match their checksum")
    return tensors


def _file_sum(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_image_entry(folder: Path) -> tuple[dict, list[Path]]:
    """The manifest and files of an image entry, verified against their checksums."""
    manifest = json.loads((folder / "manifest.json").read_bytes())
    if not isinstance(manifest, dict) or _SUM not in manifest:
        raise _Unchecked("its manifest has no checksum (written by an older failmodes)")
    body = {k: v for k, v in manifest.items() if k != _SUM}
    if digest(body) != manifest[_SUM]:
        raise _Damaged("its manifest does not match its checksum")
    paths = []
    for item in body["images"]:
        path = file_inside(folder, item["file"], f"the manifest of {folder}")
        if _file_sum(path) != item.get(_SUM):
            raise _Damaged(f"{item['file']} does not match its checksum")
        paths.append(path)
    return body, paths


def _touch(path: Path) -> None:
    """Record a use of an entry (its file's modification time), for ``prune``."""
    with contextlib.suppress(OSError):
        os.utime(path)


def _remove(path: Path) -> None:
    """Remove an entry: renamed out of the way first, so readers never see half of it."""
    with contextlib.suppress(OSError):
        trash = path.with_name(f".trash-{path.name}.{uuid.uuid4().hex}")
        os.rename(path, trash)
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink()


def _fsync_dir(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())


def resolve_cache(cache: bool | str | Path | Cache | None) -> Cache | None:
    """``Debugger``'s ``cache`` argument as a [`Cache`][Cache] (``None``: caching is off).

    Args:
        cache: ``True`` for the default folder (``$FAILMODES_CACHE`` or the user cache folder),
            ``False`` or ``None`` for no cache, a folder, or a [`Cache`][Cache] (returned as it
            is).

    Returns:
        The cache, or ``None`` for no cache.

    Raises:
        TypeError: if ``cache`` is none of the above.

    Examples:
        >>> from failmodes.cache import resolve_cache
        >>> resolve_cache(False) is None, resolve_cache("/tmp/failmodes-cache")
        (True, Cache('/tmp/failmodes-cache'))
    """
    if cache is None or cache is False:
        return None
    if cache is True:
        return Cache()
    if isinstance(cache, Cache):
        return cache
    if isinstance(cache, str | os.PathLike):
        return Cache(cache)
    raise TypeError(f"cache must be True, False, a folder or a Cache, got {type(cache).__name__}")


def cache_spec(**parts: Any) -> dict | None:
    """The spec of a cache entry from its parts, or ``None`` when a part is unknown.

    A part is ``None`` when it could not be described (a component without a
    [`fingerprint`][fingerprint], data without a [`data_fingerprint`][data_fingerprint]);
    such a step is then computed and not cached.

    Args:
        **parts: what the entry depends on, JSON-ready.

    Returns:
        ``parts`` as a dict, or ``None``.

    Examples:
        >>> from failmodes.cache import cache_spec
        >>> cache_spec(extractor={"class": "X"}, data=None) is None
        True
    """
    return None if any(v is None for v in parts.values()) else parts


def cached(
    cache: Cache | None, kind: str, spec: Any, compute: Callable[[], Any], *, as_json: bool
) -> Any:
    """``compute()``, or its cached result for ``spec``; not cached when ``spec`` is ``None``.

    Args:
        cache: the cache, or ``None`` for none.
        kind: the entry's kind.
        spec: what the result depends on (see [`cache_spec`][cache_spec]).
        compute: makes the result: JSON-ready data, or ``{name: tensor}``.
        as_json: store the result as JSON (else as tensors).

    Returns:
        The cached or computed result.
    """
    if cache is None or spec is None:
        return compute()
    key = cache.key(kind, spec)
    get, put = (
        (cache.get_json, cache.put_json) if as_json else (cache.get_tensors, cache.put_tensors)
    )
    hit = get(kind, key)
    if hit is not None:
        logger.debug("cache hit: %s %s", kind, key[:12])
        return hit
    value = compute()
    put(kind, key, value)
    return value
