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

The cache can also live at an fsspec URL (``s3://bucket/path``, ``gs://...``, ``file://...``),
so that workers on several machines share one store. Object stores cannot rename atomically,
but an object appears whole when its upload ends: a JSON or tensors entry is one object, and
an image entry's files are uploaded first and its ``manifest.json`` last, which commits it; an
entry without a manifest is never read. Checksums catch anything else.

The cache lives in ``$FAILMODES_CACHE`` (a folder or a URL) when set, else in the user cache
folder that ``platformdirs`` gives (``~/.cache/failmodes`` on Linux). A
[`Debugger`][failmodes.debugger.Debugger] uses it by default; ``Debugger(cache=False)`` turns it off
and ``Debugger(cache="path")`` points it elsewhere.

A cache is marked by a ``CACHEDIR.TAG`` file at its root (the [Cache Directory Tagging
Specification](https://bford.info/cachedir/), which also keeps backup tools out), written with
its first entry. [`Cache.info`][Cache.info], [`verify`][Cache.verify] and [`prune`][Cache.prune]
refuse a folder without one, so that they never list or remove a user's own files; an untagged
cache of an earlier failmodes is recognised by its files (see
[`check_is_cache`][Cache.check_is_cache]) and tagged then.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
from PIL import Image

from failmodes._checks import check_number
from failmodes._stores import COMMIT, is_url, open_store
from failmodes._urls import url_credentials
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


UNFINISHED_GRACE = 3600.0
"""Seconds an image entry at a URL may stay without its manifest before verify calls it damaged."""

TAG = "CACHEDIR.TAG"
"""The file at a cache's root that marks it as one (https://bford.info/cachedir/)."""

_TAG_TEXT = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by failmodes: the folder holds its cache.\n"
    b"# For information about cache directory tags, see https://bford.info/cachedir/\n"
)


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
    """A content-addressed store of JSON, tensors and images under one folder or URL.

    Entries are grouped by ``kind`` (``"features"``, ``"captions"``, ...) and found by a key
    from [`key`][key]; a ``get_*`` of an entry that is missing, or cannot be read, returns
    ``None``. A cache sent to another process (a Ray worker) carries its root and options
    only; each process opens the store itself.

    Args:
        root: the folder, or an fsspec URL (``s3://bucket/path``, ``gs://...``,
            ``file:///scratch/cache``; the protocol's package, e.g. ``s3fs``, must be
            installed); ``None`` uses ``$FAILMODES_CACHE``, else the user cache folder. A
            password in the URL (``ftp://me:secret@host/cache``) is shown as ``***`` in
            [`location`][location], ``repr`` and messages.
        storage_options: options of the fsspec filesystem of a URL (credentials,
            ``endpoint_url``, ...); they travel with the cache to workers.

    Raises:
        TypeError: if ``root`` is not a folder path, a URL or ``None``.
        ValueError: if ``root`` is an empty path (which would be the current folder).

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
        >>> shared = Cache("memory://failmodes-example")  # any fsspec URL
        >>> shared.put_json("proposals", key, ["on a glacier"])
        >>> shared.get_json("proposals", key), shared.location
        (['on a glacier'], 'memory://failmodes-example')
    """

    def __init__(
        self, root: str | Path | None = None, *, storage_options: Mapping[str, Any] | None = None
    ):
        _check_root(root)
        self.root = root
        self.storage_options = dict(storage_options or {})
        self._store: Any = None
        self._tagged = False

    def __getstate__(self) -> dict[str, Any]:
        # a cache travels to workers as its root and options; each process opens its own store
        return {
            "root": self.root,
            "storage_options": self.storage_options,
            "_store": None,
            "_tagged": False,
        }

    def __repr__(self) -> str:
        return f"Cache({self.location!r})"

    @property
    def location(self) -> str:
        """The cache in use: its folder, or its URL (a password in it shown as ``***``)."""
        return self.store.location

    @property
    def is_local(self) -> bool:
        """Whether the cache is a folder on this machine (not a URL)."""
        return not _url_like(self._root())

    @property
    def path(self) -> Path:
        """The cache folder in use.

        Raises:
            ValueError: if the cache is at a URL (use [`location`][location]).
        """
        root = self._root()
        if is_url(root):
            shown = url_credentials(root)[0]
            raise ValueError(f"the cache {shown} is at a URL, not a folder; use Cache.location")
        return Path(root).expanduser()

    @property
    def store(self) -> Any:
        """Where the bytes go: a local folder, or an fsspec location (opened on first use).

        Raises:
            NotADirectoryError: if the cache's folder is a file.
            ValueError: for a URL that names no place.
        """
        if self._store is None:
            self._store = open_store(self._root(), self.storage_options)
        return self._store

    def _root(self) -> str | Path:
        if self.root is not None:
            return self.root if _url_like(self.root) else Path(self.root)
        env = os.environ.get("FAILMODES_CACHE")
        if env:
            return env if _url_like(env) else Path(env)
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
        """Where an entry lives in a cache folder (a file stem or a folder, by kind).

        Args:
            kind: the entry's kind.
            key: the entry's key, from [`key`][key].

        Returns:
            ``<path>/<kind>/<first two characters of key>/<key>``; JSON and tensor entries add a
            suffix, image entries are this folder.

        Raises:
            ValueError: if the cache is at a URL.
        """
        return self.path / _rel(kind, key)

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
        rel, store = _rel(kind, key, ".json"), self.store
        try:
            value = _read_json(store.read(rel))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as err:
            self._discard(rel, err)
            return None
        store.touch(rel)
        return value

    def put_json(self, kind: str, key: str, value: Any, *, provenance: Any = None) -> None:
        """Write a JSON entry, atomically (a reader sees the old entry or the new one).

        Args:
            kind: the entry's kind.
            key: the entry's key.
            value: JSON-serialisable data; ``None`` reads back as a missing entry.
            provenance: JSON-serialisable notes kept beside the value (not read back).
        """
        self._tag()
        self.store.write(_rel(kind, key, ".json"), _json_blob(value, provenance))

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
        rel, store = _rel(kind, key, ".safetensors"), self.store
        try:
            blob = store.read(rel)
        except FileNotFoundError:
            return None
        try:
            tensors = _read_tensors(blob)
        except Exception as err:  # truncated, flipped, foreign or old: treat as missing
            self._discard(rel, err)
            return None
        store.touch(rel)
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
        self._tag()
        self.store.write(_rel(kind, key, ".safetensors"), blob)

    # -- images --------------------------------------------------------------------------------

    def get_images(
        self, kind: str, key: str, *, lazy: bool = False
    ) -> tuple[list[Image.Image] | ImageList, dict] | None:
        """The images of an entry and its manifest, or ``None``.

        Every file is checked against the checksum its manifest records (its bytes are hashed,
        not decoded); a file named outside the entry's folder is refused. With ``lazy``, the
        images of a cache folder come as an [`ImageList`][failmodes.images.ImageList] of their
        files, decoded when indexed (a cache at a URL gives them decoded).

        Args:
            kind: the entry's kind.
            key: the entry's key.
            lazy: return the files unread instead of decoded RGB images.

        Returns:
            ``(images, manifest)``, or ``None`` when the entry is missing, cannot be read or does
            not match its checksums (such an entry is deleted, with a
            [`CacheWarning`][CacheWarning]).
        """
        rel = _rel(kind, key)
        if not self.store.exists(f"{rel}/{COMMIT}"):
            return None
        try:
            manifest, files = _read_image_entry(self.store, rel)
            paths = [self.store.local(f"{rel}/{name}") for name, _ in files]
            if lazy and None not in paths:
                result: tuple = (ImageList(paths), manifest)
            else:
                result = ([_decode(blob) for _, blob in files], manifest)
        except Exception as err:
            self._discard(rel, err)
            return None
        self.store.touch(f"{rel}/{COMMIT}")
        return result

    def put_images(
        self, kind: str, key: str, images: Sequence[Image.Image], manifest: dict
    ) -> None:
        """Write images as PNG files with a ``manifest.json`` written last, which commits them.

        In a cache folder the entry is built under a temporary name and renamed into place; at
        a URL its files are uploaded first and the manifest last. When another writer stored
        the same entry first, its entry is kept.

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
        entries = [dict(item) for item in manifest.get("images") or [{} for _ in images]]
        files = []
        for i, (image, item) in enumerate(zip(images, entries, strict=True)):
            item["file"] = f"{i:04d}.png"
            blob = _png(image)
            item[_SUM] = hashlib.sha256(blob).hexdigest()
            files.append((item["file"], blob))
        body = {**manifest, "images": entries}
        commit = json.dumps({**body, _SUM: digest(body)}, sort_keys=True, indent=1).encode()
        self._tag()
        self.store.write_folder(_rel(kind, key), files, commit)

    # -- housekeeping --------------------------------------------------------------------------

    def _tag(self) -> None:
        """Write the cache's ``CACHEDIR.TAG`` before its first entry (once per Cache object)."""
        if not self._tagged:
            if not self.store.exists(TAG):
                self.store.write(TAG, _TAG_TEXT)
            self._tagged = True

    def _discard(self, rel: str, err: Exception) -> None:
        where, why = self.store.show(rel), self.store.hide(str(err))
        message = f"cache entry {where} cannot be used ({why}); it is removed and recomputed"
        if isinstance(err, _Unchecked):  # an older cache: announced once, each entry logged
            logger.info(message)
            if self.location not in _OLD_CACHES_WARNED:
                _OLD_CACHES_WARNED.add(self.location)
                warnings.warn(
                    f"the cache {self.location} holds entries written by an older failmodes, "
                    "without checksums: each is recomputed when it is needed (this warning is "
                    "shown once; `failmodes cache verify --repair` removes them all now)",
                    CacheWarning,
                    stacklevel=3,
                )
        else:
            logger.warning(message)
            warnings.warn(message, CacheWarning, stacklevel=3)
        try:
            self.store.remove(rel)
        except OSError as removal:  # a read-only cache: the entry stays, and is not read
            shown = self.store.hide(str(removal))
            logger.warning("cache entry %s could not be removed (%s)", where, shown)

    def exists(self) -> bool:
        """Whether the cache's folder (or location) is there.

        Returns:
            ``True`` when it exists, even empty.
        """
        return self.store.is_dir("")

    def check_writable(self) -> None:
        """Make sure entries can be written here, by writing and removing a small file.

        Raises:
            OSError: naming the folder or URL, when it cannot be written (a file in the way, no
                permission, an unreachable store).
        """
        store, probe = self.store, f".failmodes-check-{uuid.uuid4().hex}"
        try:
            store.write(probe, b"")
            store.remove(probe)
        except Exception as err:  # fsspec backends raise their own kinds
            reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
            raise OSError(f"cannot write to {self.location} ({store.hide(reason)})") from err

    def check_is_cache(self) -> None:
        """Make sure this folder (or URL) is a failmodes cache before listing or removing entries.

        A cache has a ``CACHEDIR.TAG`` at its root, written with its first entry. One without
        (a cache of an earlier failmodes) is recognised when every file in it lies in an entry
        failmodes names (``<kind>/<key[:2]>/<key>.json``, ``.safetensors`` or an image folder
        ``<key>/``, ``key`` a 64-character hex digest); it is tagged then. A missing or empty
        folder passes, and is left as it is.

        Raises:
            ValueError: naming the folder, when it has no tag and holds a file that is not
                part of an entry (the first such file is named).
            NotADirectoryError: if the cache's folder is a file.
        """
        store = self.store
        if self._tagged or store.exists(TAG):
            return
        files = [rel for rel in store.files() if rel != TAG]
        stray = next((rel for rel in files if not _in_old_entry(rel)), None)
        if stray is not None:
            raise ValueError(
                f"{self.location} is not a failmodes cache (it has no {TAG}, and {stray} is "
                "not a cache entry); failmodes writes one when it creates a cache"
            )
        if files:  # a cache of an earlier failmodes: tagged now, if it can be written
            with contextlib.suppress(OSError):
                store.write(TAG, _TAG_TEXT)
                self._tagged = True

    def entries(self) -> Iterator[CacheEntry]:
        """Every committed entry of the cache, kind by kind.

        Only what failmodes writes is an entry: ``<kind>/<key[:2]>/<key>`` with the suffix of
        a JSON or tensors entry, or an image entry's folder; other files are left out, as are
        files and folders of unfinished writes, whose names start with a dot.

        Returns:
            An iterator of [`CacheEntry`][CacheEntry], one per entry.

        Raises:
            ValueError: if the folder is not a failmodes cache ([`check_is_cache`][check_is_cache]).
        """
        self.check_is_cache()
        return self._walk()

    def _walk(self) -> Iterator[CacheEntry]:
        store = self.store
        for kind in store.children(""):
            for shard in store.children(kind):
                for name in store.children(f"{kind}/{shard}", dirs=None):
                    rel = f"{kind}/{shard}/{name}"
                    key = _entry_key(shard, name, folder="." not in name and store.is_dir(rel))
                    if key is None:
                        continue
                    try:
                        size, used = store.usage(rel)
                    except FileNotFoundError:  # another process removed it meanwhile
                        continue
                    yield CacheEntry(kind, key, store.show(rel), size, used)

    def verify(
        self, *, repair: bool = False, grace: float = UNFINISHED_GRACE
    ) -> list[tuple[CacheEntry, str]]:
        """Check every entry against its checksums, as reading it would.

        An image entry at a URL is uploaded file by file, its manifest last: a folder without
        its manifest whose newest file is younger than ``grace`` seconds is a write in flight,
        neither reported nor removed; an older one was abandoned, and is damaged.

        Args:
            repair: remove the damaged entries (each is then recomputed when next needed).
                Safe while a run uses the cache: a damaged entry is one the run would not use.
            grace: seconds an image entry may stay without its manifest while it is written.

        Returns:
            ``[(entry, why it is damaged), ...]``.

        Raises:
            ValueError: if the folder is not a failmodes cache ([`check_is_cache`][check_is_cache]).
            OSError: with ``repair``, when some entries could not be removed (a read-only
                cache), saying how many; the others are removed.
        """
        check_number(grace, "grace", minimum=0)
        damaged = []
        now = time.time()
        for entry in self.entries():
            reason = _damage(self.store, _entry_rel(entry))
            in_flight = reason == _NO_MANIFEST and now - entry.last_used < grace
            if reason is not None and not in_flight:
                damaged.append((entry, reason))
        if repair:
            self._remove([entry for entry, _ in damaged])
        return damaged

    def info(self) -> dict[str, Any]:
        """What the cache holds: entries and bytes per kind, and when entries were last used.

        Returns:
            ``{"path", "entries", "bytes", "kinds": {kind: {"entries", "bytes"}},
            "oldest_use", "newest_use"}`` (``path`` is the folder or URL; times as POSIX
            timestamps; ``None`` when empty).

        Raises:
            ValueError: if the folder is not a failmodes cache ([`check_is_cache`][check_is_cache]).
        """
        kinds: dict[str, dict[str, int]] = {}
        uses = []
        for entry in self.entries():
            row = kinds.setdefault(entry.kind, {"entries": 0, "bytes": 0})
            row["entries"] += 1
            row["bytes"] += entry.size
            uses.append(entry.last_used)
        return {
            "path": self.location,
            "entries": sum(r["entries"] for r in kinds.values()),
            "bytes": sum(r["bytes"] for r in kinds.values()),
            "kinds": dict(sorted(kinds.items())),
            "oldest_use": min(uses, default=None),
            "newest_use": max(uses, default=None),
        }

    def prune(
        self,
        *,
        older_than: float | None = None,
        max_bytes: int | None = None,
        dry_run: bool = False,
    ) -> list[CacheEntry]:
        """Remove entries by last use, by age or to fit a size.

        First the entries unused for ``older_than`` seconds, then the least recently used until
        the cache holds at most ``max_bytes``. In a cache folder a read records a use (the
        entry's modification time), so entries a run is using are the most recently used; each
        removal renames the entry out of the way first. At a URL, last use is the write time.

        Args:
            older_than: seconds since the last use; ``None`` for no age limit.
            max_bytes: the size to shrink the cache to; ``None`` for no size limit.
            dry_run: remove nothing; return what would be removed.

        Returns:
            The removed entries (with ``dry_run``, those that would be), least recently used
            first.

        Raises:
            ValueError: if neither limit is given, or one is negative, or the folder is not a
                failmodes cache ([`check_is_cache`][check_is_cache]).
            OSError: when some entries could not be removed (a read-only cache), saying how
                many; the others are removed.
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
            total -= entry.size
            removed.append(entry)
        if not dry_run:
            self._remove(removed)
        return removed

    def _remove(self, entries: list[CacheEntry]) -> None:
        """Remove every entry it can; an OSError at the end names how many it could not."""
        failed = []
        for entry in entries:
            try:
                self.store.remove(_entry_rel(entry))
            except OSError as err:
                failed.append(self.store.hide(str(err)))
        if failed:
            raise OSError(
                f"could not remove {len(failed)} of {len(entries)} entries of {self.location} "
                f"(the first: {failed[0]}); the others are removed"
            )

    def files(self) -> Iterator[Path | str]:
        """Every committed file of the cache's entries.

        ``CACHEDIR.TAG`` and the temporary files of unfinished writes are left out.

        Yields:
            Paths of the files (URLs, for a cache at a URL), sorted.
        """
        for rel in self.store.files():
            if rel != TAG:
                yield self.store.show(rel)


@dataclass(frozen=True)
class CacheEntry:
    """One entry of a cache, as [`Cache.entries`][Cache.entries] lists it.

    Attributes:
        kind: the entry's kind (``"features"``, ``"generated"``, ...).
        key: its key.
        path: its file (JSON or safetensors) or folder (images); a URL for a cache at a URL.
        size: its bytes on disk.
        last_used: when it was last written or read, as a POSIX timestamp.
    """

    kind: str
    key: str
    path: Path | str
    size: int
    last_used: float


def _check_root(root: Any) -> None:
    """Refuse a cache root that is neither a folder path, a URL nor ``None``, or is empty."""
    if root is not None and (isinstance(root, bool) or not isinstance(root, str | os.PathLike)):
        raise TypeError(
            "cache must be a folder path or an fsspec URL (None: $FAILMODES_CACHE or the user "
            f"cache folder), got {type(root).__name__}"
        )
    if isinstance(root, str) and not root.strip():
        raise ValueError(
            "cache: an empty path is the current folder, not a cache; give a folder path or an "
            "fsspec URL"
        )


def _url_like(root: Any) -> bool:
    """Whether a root reads as a URL, a broken one included (the store says what is wrong)."""
    return isinstance(root, str) and "://" in root


def _rel(kind: str, key: str, suffix: str = "") -> str:
    """An entry's place under the cache's root: ``<kind>/<key[:2]>/<key><suffix>``."""
    return f"{kind}/{key[:2]}/{key}{suffix}"


_SUFFIXES = (".json", ".safetensors")  # of a JSON and a tensors entry; an image entry is a folder
_HEX_KEY = re.compile(r"[0-9a-f]{64}")  # a key from Cache.key


def _entry_key(shard: str, name: str, folder: bool) -> str | None:
    """The key of ``<kind>/<shard>/<name>`` when failmodes names an entry so, else ``None``."""
    key, dot, suffix = name.partition(".")
    named = not dot if folder else f"{dot}{suffix}" in _SUFFIXES
    return key if named and key and key[:2] == shard else None


def _in_old_entry(rel: str) -> bool:
    """Whether a file lies in an entry as failmodes writes them, under a key of its own making."""
    parts = rel.split("/")
    if len(parts) not in (3, 4):
        return False
    key = _entry_key(parts[1], parts[2], folder=len(parts) == 4)
    return key is not None and _HEX_KEY.fullmatch(key) is not None


_NO_MANIFEST = "no manifest (an abandoned write or a foreign folder)"


def _entry_rel(entry: CacheEntry) -> str:
    name = str(entry.path).replace("\\", "/").rsplit("/", 1)[-1]
    return f"{entry.kind}/{entry.key[:2]}/{name}"


def _damage(store: Any, rel: str) -> str | None:
    """Why an entry cannot be used, or ``None`` when it is whole."""
    try:
        if store.is_dir(rel):
            if not store.exists(f"{rel}/{COMMIT}"):
                return _NO_MANIFEST
            _read_image_entry(store, rel)
        elif rel.endswith(".json"):
            _read_json(store.read(rel))
        else:
            _read_tensors(store.read(rel))
    except Exception as err:
        return store.hide(str(err)) or type(err).__name__
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


def _read_json(blob: bytes) -> Any:
    """The value of a JSON entry, verified against its checksum."""
    data = json.loads(blob)
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


def _read_tensors(blob: bytes) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors entry, verified against the checksum in its metadata."""
    from safetensors.torch import load

    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    expected = (header.get("__metadata__") or {}).get(_SUM_KEY)
    if expected is None:
        raise _Unchecked("it has no checksum (written by an older failmodes)")
    tensors = load(blob)
    if _tensors_sum(tensors) != expected:
        raise _Damaged("its tensors do not match their checksum")
    return tensors


def _read_image_entry(store: Any, rel: str) -> tuple[dict, list[tuple[str, bytes]]]:
    """The manifest and ``(name, bytes)`` of an image entry's files, verified."""
    manifest = json.loads(store.read(f"{rel}/{COMMIT}"))
    if not isinstance(manifest, dict) or _SUM not in manifest:
        raise _Unchecked("its manifest has no checksum (written by an older failmodes)")
    body = {k: v for k, v in manifest.items() if k != _SUM}
    if digest(body) != manifest[_SUM]:
        raise _Damaged("its manifest does not match its checksum")
    files = []
    for item in body["images"]:
        name = _inside(store, rel, item["file"])
        blob = store.read(f"{rel}/{name}")
        if hashlib.sha256(blob).hexdigest() != item.get(_SUM):
            raise _Damaged(f"{item['file']} does not match its checksum")
        files.append((name, blob))
    return body, files


def _inside(store: Any, rel: str, name: Any) -> str:
    """``name`` as a file of the entry ``rel``; a name reaching outside it is refused."""
    what = f"the manifest of {store.show(rel)}"
    folder = store.local(rel)
    if folder is not None:  # symbolic links are followed
        return file_inside(folder, name, what).relative_to(folder).as_posix()
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or parts[0] == "/" or ".." in parts:
        raise ValueError(f"{what} names {name!r}, which is not a file inside it")
    return "/".join(parts)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _decode(blob: bytes) -> Image.Image:
    with Image.open(io.BytesIO(blob)) as image:
        return image.convert("RGB")


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
        ValueError: for an empty path (the current folder), or a URL that names no place.
        NotADirectoryError: for a folder that is a file; checked here, before any work.

    Examples:
        >>> from failmodes.cache import resolve_cache
        >>> resolve_cache(False) is None, resolve_cache("/tmp/failmodes-cache")
        (True, Cache('/tmp/failmodes-cache'))
    """
    if cache is None or cache is False:
        return None
    if isinstance(cache, bool | str | os.PathLike):
        found = Cache(None if cache is True else cache)
    elif isinstance(cache, Cache):
        found = cache
    else:
        raise TypeError(
            f"cache must be True, False, a folder, a URL or a Cache, got {type(cache).__name__}"
        )
    found.store  # noqa: B018 (opened now: a file in the folder's place is refused before any work)
    return found


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
