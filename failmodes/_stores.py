"""Where a cache keeps its bytes: a folder on this machine, or any fsspec URL.

Both stores speak in paths relative to the cache's root, with ``/`` between parts. An entry is
one file (JSON, safetensors) or one folder of files committed by its ``manifest.json``:

- [`LocalStore`][LocalStore] (a plain path) writes a file to a temporary name and renames it
  into place, and builds a folder under a temporary name and renames the whole folder: a
  reader sees a whole entry or none.
- [`UrlStore`][UrlStore] (``file://``, ``s3://``, ``gs://``, ``memory://``, ...) goes through
  ``fsspec``. Object stores have no atomic rename, but a single object appears whole when its
  upload ends: a file entry is one object, and a folder's files are written first and its
  manifest last, so an entry without a manifest is never read. Last use is the write time
  there (an object's time cannot be touched without writing it again).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from failmodes._imports import require
from failmodes._urls import hide_credentials, url_credentials

__all__ = ["COMMIT", "LocalStore", "UrlStore", "is_url", "open_store"]

COMMIT = "manifest.json"
"""The file written last into a folder entry: the entry exists once it does."""


def is_url(root: Any) -> bool:
    """Whether a cache root names an fsspec URL (``scheme://...``) rather than a folder."""
    return isinstance(root, str) and "://" in root and root.split("://", 1)[0].isidentifier()


def open_store(root: str | os.PathLike, options: dict[str, Any] | None = None) -> Any:
    """The store for a cache root: a [`UrlStore`][UrlStore] for a URL, else a local folder.

    Raises:
        ValueError: for a URL that names no place after its scheme (``s3://``, ``file://``),
            or a root that reads as a broken URL (``://x``).
        NotADirectoryError: for a folder that is a file.
    """
    text = str(root)
    if "://" in text:
        scheme, _, place = text.partition("://")
        if not scheme.isidentifier() or not place.strip("/"):
            raise ValueError(
                f"cache URL {url_credentials(text)[0]!r} names no place: give a scheme and a "
                "path after it, as in s3://bucket/failmodes or file:///home/me/cache (a plain "
                "folder needs no scheme)"
            )
        return UrlStore(text, options)
    folder = Path(root).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"cache: {folder} is a file, not a folder")
    return LocalStore(folder)


class LocalStore:
    """A folder on this machine; every write is a rename into place."""

    def __init__(self, root: Path):
        self.root = root

    @property
    def location(self) -> str:
        """The folder, as text."""
        return str(self.root)

    def show(self, rel: str) -> Path:
        """What to call an entry in messages: its path."""
        return self.root / rel

    def hide(self, text: str) -> str:
        """A message as it may be shown: a folder has no secret to hide."""
        return text

    def local(self, rel: str) -> Path:
        """A path this process can open for the file ``rel``."""
        return self.root / rel

    def read(self, rel: str) -> bytes:
        """The bytes of a file (``FileNotFoundError`` when there is none)."""
        return (self.root / rel).read_bytes()

    def write(self, rel: str, blob: bytes) -> None:
        """Write a file through a temporary file and a rename (never half-written)."""
        atomic_write(self.root / rel, blob)

    def write_folder(self, rel: str, files: Sequence[tuple[str, bytes]], commit: bytes) -> None:
        """Write a folder of files and its manifest, under a temporary name, renamed into place.

        When another writer stored the same folder first, its folder is kept.
        """
        folder = self.root / rel
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            for name, blob in [*files, (COMMIT, commit)]:  # the manifest last
                with open(staging / name, "wb") as f:
                    f.write(blob)
                    f.flush()
                    os.fsync(f.fileno())
            try:
                os.rename(staging, folder)  # atomic; fails if another writer got there first
            except OSError:
                if not (folder / COMMIT).exists():
                    shutil.rmtree(folder, ignore_errors=True)
                    os.rename(staging, folder)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def exists(self, rel: str) -> bool:
        """Whether a file or folder is there."""
        return (self.root / rel).exists()

    def is_dir(self, rel: str) -> bool:
        """Whether ``rel`` is a folder."""
        return (self.root / rel).is_dir()

    def touch(self, rel: str) -> None:
        """Record a use (the file's modification time), for pruning."""
        with contextlib.suppress(OSError):
            os.utime(self.root / rel)

    def remove(self, rel: str) -> None:
        """Remove a file or folder: renamed out of the way first, so no reader sees half.

        One already gone is no error.

        Raises:
            OSError: when it cannot be moved (a read-only folder), naming it.
        """
        path = self.root / rel
        trash = path.with_name(f".trash-{path.name}.{uuid.uuid4().hex}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        if trash.is_dir():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                trash.unlink()

    def children(self, rel: str, dirs: bool | None = True) -> list[str]:
        """Names in a folder not starting with a dot (only folders if ``dirs``; all if None)."""
        folder = self.root / rel
        if not folder.is_dir():
            return []
        return [
            p.name
            for p in sorted(folder.iterdir())
            if not p.name.startswith(".") and (dirs is None or p.is_dir() == dirs)
        ]

    def usage(self, rel: str) -> tuple[int, float]:
        """Bytes of a file or folder, and its last use (a folder's: its manifest's).

        Raises:
            FileNotFoundError: when another process removed it meanwhile.
        """
        path = self.root / rel
        if path.is_dir():
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            stamp = path / COMMIT
            return size, (stamp if stamp.exists() else path).stat().st_mtime
        stat = path.stat()
        return stat.st_size, stat.st_mtime

    def files(self) -> Iterator[str]:
        """Every committed file (temporary files of unfinished writes left out), sorted."""
        if not self.root.exists():
            return
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and not any(part.startswith(".") for part in path.parts[-3:]):
                yield path.relative_to(self.root).as_posix()


class UrlStore:
    """An fsspec location (``file://``, ``s3://``, ``gs://``, ``memory://``, ...).

    The filesystem is made when first used in each process, from the URL and the options, so
    a cache given to workers on other machines carries only text.
    """

    def __init__(self, url: str, options: dict[str, Any] | None = None):
        self.url = url.rstrip("/")
        self.options = dict(options or {})
        self._fs: Any = None
        self._root = ""

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "options": self.options, "_fs": None, "_root": ""}

    @property
    def fs(self) -> Any:
        """The fsspec filesystem (made on first use)."""
        if self._fs is None:
            fsspec = require("fsspec", feature="a cache at a URL")
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url, **self.options)
            except ImportError as err:
                protocol = self.url.split("://", 1)[0]
                how = (
                    'pip install "failmodes[s3]"'
                    if protocol in ("s3", "s3a")
                    else (f"install the fsspec package of {protocol}://")
                )
                raise ImportError(
                    f"the cache {self.location} needs a package that is not installed "
                    f"({self.hide(str(err))}): {how}"
                ) from err
        return self._fs

    @property
    def location(self) -> str:
        """The URL as it is shown: its user info's secret as ``***``."""
        return url_credentials(self.url)[0]

    def _full(self, rel: str) -> str:
        self.fs  # noqa: B018 (makes the root known)
        return f"{self._root}/{rel}" if rel else self._root

    def _fresh(self, rel: str) -> str:
        """The full path of ``rel``, any listing fsspec cached of it forgotten.

        Other processes write to the same store, so a cached listing may be out of date.
        """
        full = self._full(rel)
        self.fs.invalidate_cache(full)
        return full

    def show(self, rel: str) -> str:
        """What to call an entry in messages: its URL, as it is shown."""
        return f"{self.location}/{rel}"

    def hide(self, text: str) -> str:
        """A message as it may be shown: the URL's secret, wherever it is quoted, as ``***``."""
        return hide_credentials(text, self.url)

    def local(self, rel: str) -> None:
        """No path this process can open: files are read as bytes."""
        return None

    def read(self, rel: str) -> bytes:
        """The bytes of an object (``FileNotFoundError`` when there is none)."""
        return self.fs.cat_file(self._full(rel))

    def write(self, rel: str, blob: bytes) -> None:
        """Write one object (an upload appears whole or not at all)."""
        full = self._full(rel)
        self.fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(full, blob)

    def write_folder(self, rel: str, files: Sequence[tuple[str, bytes]], commit: bytes) -> None:
        """Write a folder's files, then its manifest, which commits it.

        When the manifest is there already (another writer committed the same entry), nothing
        is written.
        """
        if self.exists(f"{rel}/{COMMIT}"):
            return
        for name, blob in files:
            self.write(f"{rel}/{name}", blob)
        self.write(f"{rel}/{COMMIT}", commit)

    def exists(self, rel: str) -> bool:
        """Whether an object or folder is there."""
        return bool(self.fs.exists(self._fresh(rel)))

    def is_dir(self, rel: str) -> bool:
        """Whether ``rel`` is a folder (a common prefix, on object stores)."""
        return bool(self.fs.isdir(self._fresh(rel)))

    def touch(self, rel: str) -> None:
        """Nothing: an object's time is its write time."""

    def remove(self, rel: str) -> None:
        """Remove an object or a folder; an entry's manifest goes first, uncommitting it."""
        full = self._full(rel)
        with contextlib.suppress(FileNotFoundError):
            if self.fs.isdir(full):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(f"{full}/{COMMIT}")
                self.fs.rm(full, recursive=True)
            else:
                self.fs.rm_file(full)

    def children(self, rel: str, dirs: bool | None = True) -> list[str]:
        """Names in a folder not starting with a dot (only folders if ``dirs``; all if None)."""
        try:
            listing = self.fs.ls(self._fresh(rel), detail=True)
        except FileNotFoundError:
            return []
        names = []
        for item in listing:
            name = item["name"].rstrip("/").rsplit("/", 1)[-1]
            is_dir = item.get("type") == "directory"
            if not name.startswith(".") and (dirs is None or is_dir == dirs):
                names.append(name)
        return sorted(names)

    def usage(self, rel: str) -> tuple[int, float]:
        """Bytes of an object or folder, and its write time.

        A folder's is its manifest's; without one (an upload in flight, or abandoned), its
        newest file's.
        """
        full = self._fresh(rel)
        if self.fs.isdir(full):
            found = self.fs.find(full, detail=True)
            size = sum(int(info.get("size") or 0) for info in found.values())
            stamp = found.get(f"{full}/{COMMIT}")
            newest = max((_mtime(info) for info in found.values()), default=0.0)
            return size, _mtime(stamp) if stamp else newest
        info = self.fs.info(full)
        return int(info.get("size") or 0), _mtime(info)

    def files(self) -> Iterator[str]:
        """Every object of the cache, sorted, relative to its root."""
        root = self._fresh("")
        with contextlib.suppress(FileNotFoundError):
            for full in sorted(self.fs.find(root)):
                rel = full[len(root) :].lstrip("/")
                if not any(part.startswith(".") for part in rel.split("/")[-3:]):
                    yield rel


def _mtime(info: dict[str, Any]) -> float:
    """An fsspec listing's modification time, as a POSIX timestamp (0 when it has none)."""
    for field in ("mtime", "LastModified", "updated", "created"):
        value = info.get(field)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


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
