"""Features in shards: sets too large to hold, read one piece at a time.

[`FeatureShards`][failmodes.shards.FeatureShards] is a sequence of ``(features, labels)`` shards
whose features are loaded only when a shard is asked for; its labels (one integer per row, a
small fraction of the features' size) are held. It is written to a folder with
[`FeatureShards.write`][failmodes.shards.FeatureShards.write], read back with
[`FeatureShards.open`][failmodes.shards.FeatureShards.open], or built over any loaders (cache
entries, another store) with the constructor.
[`LinearHeadTrainer.fit`][failmodes.heads.linear.LinearHeadTrainer.fit] fits from it without
holding every row in memory.

A folder of shards holds:

```text
shard-00000.safetensors ...   the features, rows_per_shard rows each (the last may be shorter)
labels.safetensors            every row's label, int64
manifest.json                 n, d, dtype, the files with their rows and sha256; written last
```

Every file is written to a temporary name and renamed, and the manifest comes last, so a folder
whose writing was interrupted has no manifest and does not open.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from failmodes._checks import check_number
from failmodes._stores import atomic_write
from failmodes.data import as_labels
from failmodes.results import Features

__all__ = ["MANIFEST", "SHARD_DTYPES", "FeatureShards"]

MANIFEST = "manifest.json"
"""The name of a shards folder's manifest, the file written last."""

SHARD_DTYPES = {"float32": torch.float32, "float16": torch.float16}
"""The dtypes features are stored in, by name: float32 (default) or float16 (half the size)."""

_FORMAT = "failmodes-feature-shards"
_VERSION = 1
_LABELS = "labels.safetensors"
_MAX_HEADER = 100_000_000  # safetensors' own limit on a header
_STORED = {"F32": torch.float32, "F16": torch.float16, "I64": torch.int64}  # safetensors' names


class FeatureShards:
    """Features of ``n`` rows in shards, each ``(features (rows, d), labels (rows,))``.

    A shard's features are read only when it is asked for ([`load`][load] or iterating), and
    nothing keeps them afterwards, so a pass over the shards holds one shard at a time. As for
    [`Features`][failmodes.results.Features], ``len()`` is the number of rows; iterating gives
    the shards, in order.

    The constructor builds shards over loaders: shard ``i`` is what ``loaders[i]()`` returns,
    an ``(rows[i], d)`` tensor or a mapping with one under ``"features"`` (a tensors entry of
    the cache, ``lambda: cache.get_tensors(kind, key)``), and its labels are
    ``labels[offset:offset + rows[i]]``. Nothing is loaded until a shard is asked for.

    Args:
        loaders: one callable per shard, returning its features.
        labels: ``(n,)`` integer labels of all rows, shard after shard.
        rows: the number of rows of each shard.
        dim: the features' dimension; ``None`` reads it from the first shard when asked.

    Attributes:
        loaders: the loaders, as a tuple.
        labels: the ``(n,)`` int64 labels.
        rows: the rows of each shard, as a tuple.
        path: the folder the shards were opened from, or ``None``.
        dtype: the features' stored dtype (``"float32"`` or ``"float16"``) when known.

    Raises:
        ValueError: if ``labels`` is not one integer label per row of the shards, or ``rows``
            has a negative count or not one count per loader.

    Examples:
        >>> import tempfile, torch
        >>> from failmodes import FeatureShards
        >>> x, y = torch.randn(10, 4), torch.arange(10) % 2
        >>> folder = tempfile.TemporaryDirectory()
        >>> shards = FeatureShards.write(f"{folder.name}/train", x, y, rows_per_shard=4)
        >>> len(shards), shards.dim, shards.num_shards, shards.rows
        (10, 4, 3, (4, 4, 2))
        >>> features, labels = shards.load(2)
        >>> torch.equal(features, x[8:]), labels.tolist()
        (True, [0, 1])
        >>> again = FeatureShards.open(f"{folder.name}/train")
        >>> torch.equal(torch.cat([f for f, _ in again]), x)
        True
        >>> folder.cleanup()
    """

    def __init__(
        self,
        loaders: Sequence[Callable[[], Any]],
        labels: Any,
        *,
        rows: Sequence[int],
        dim: int | None = None,
    ) -> None:
        self.loaders = tuple(loaders)
        self.rows = tuple(check_number(r, "rows", minimum=0, integer=True) for r in rows)
        if len(self.rows) != len(self.loaders):
            raise ValueError(
                f"rows has {len(self.rows)} counts for {len(self.loaders)} loaders; give one "
                "count per shard"
            )
        self.labels = torch.from_numpy(as_labels(labels))
        if len(self.labels) != sum(self.rows):
            raise ValueError(
                f"{len(self.labels)} labels for {sum(self.rows)} rows of shards; give one label "
                "per row"
            )
        self._dim = dim
        self._starts = [0, *itertools.accumulate(self.rows)]
        self.path: Path | None = None
        self.dtype: str | None = None

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"FeatureShards(n={len(self)}, shards={self.num_shards}{where})"

    def __len__(self) -> int:
        """The number of rows, over all shards."""
        return len(self.labels)

    @property
    def num_shards(self) -> int:
        """The number of shards."""
        return len(self.loaders)

    @property
    def dim(self) -> int:
        """The features' dimension ``d`` (read from the first shard if it was not given)."""
        if self._dim is None:
            if not self.loaders:
                raise ValueError("there are no shards to read the features' dimension from")
            self._features(0)
        return self._dim

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``, as a tensor of all the rows would have."""
        return (len(self), self.dim)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Read shard ``index``.

        Args:
            index: which shard, from 0.

        Returns:
            ``(features, labels)``: a ``(rows, d)`` floating tensor in the stored dtype and its
            ``(rows,)`` int64 labels, on the CPU.

        Raises:
            IndexError: if there is no such shard.
            FileNotFoundError: if the shard's file is missing.
            ValueError: if the shard is damaged (its checksum, dtype or shape is not the one
                recorded), or its loader returns nothing or something other than features.
        """
        if not 0 <= index < self.num_shards:
            raise IndexError(f"shard {index} of {self.num_shards}")
        start = self._starts[index]
        return self._features(index), self.labels[start : start + self.rows[index]]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Each shard's ``(features, labels)``, read one at a time."""
        for index in range(self.num_shards):
            yield self.load(index)

    def _features(self, index: int) -> torch.Tensor:
        value = self.loaders[index]()
        where = f"shard {index}" if self.path is None else f"shard {index} of {self.path}"
        if isinstance(value, Mapping):
            value = value.get("features")
        if not isinstance(value, torch.Tensor) or value.ndim != 2 or not value.is_floating_point():
            got = "nothing" if value is None else _describe(value)
            raise ValueError(f"{where}: its loader gave {got}, not a 2-D floating tensor")
        if self._dim is None:  # the first shard read fixes it for the others
            self._dim = int(value.shape[1])
        if tuple(value.shape) != (self.rows[index], self._dim):
            raise ValueError(
                f"{where} has features of shape {tuple(value.shape)}; expected "
                f"({self.rows[index]}, {self._dim})"
            )
        return value

    @classmethod
    def open(cls, path: str | Path) -> FeatureShards:
        """Open a folder written by [`write`][write], checking its manifest.

        Shard files are read with plain reads (no memory map, whose pages would count in the
        process's memory), each checked against the manifest's checksum the first time this
        object reads it.

        Args:
            path: the folder.

        Returns:
            The shards; the labels are read now, the features when a shard is asked for.

        Raises:
            FileNotFoundError: if the folder has no manifest (it is not a shards folder, or its
                writing did not finish) or a file the manifest names is missing.
            ValueError: if the manifest is not one this version writes, or is inconsistent, or
                the labels file is damaged; the message names the file and what is wrong.
        """
        folder = Path(path)
        manifest = _read_manifest(folder)
        dtype, dim = manifest["dtype"], manifest["d"]
        loaders, rows = [], []
        for item in manifest["shards"]:
            shard = folder / item["file"]
            if not shard.is_file():
                raise FileNotFoundError(f"{shard} is missing; {folder / MANIFEST} lists it")
            loaders.append(_ShardFile(shard, item["sha256"], dtype))
            rows.append(item["rows"])
        labels_file = _ShardFile(folder / manifest["labels"]["file"], manifest["labels"]["sha256"])
        labels = labels_file.read("labels")
        if labels.shape != (manifest["n"],):
            raise ValueError(
                f"{labels_file.path} holds labels of shape {tuple(labels.shape)}; the manifest "
                f"says n={manifest['n']}"
            )
        shards = cls(loaders, labels, rows=rows, dim=dim)
        shards.path, shards.dtype = folder, dtype
        return shards

    @classmethod
    def write(
        cls,
        path: str | Path,
        features: Any,
        labels: Any = None,
        *,
        rows_per_shard: int = 8192,
        dtype: str = "float32",
    ) -> FeatureShards:
        """Write features to a new folder of shards and open it.

        Args:
            path: the folder; it must not exist or be empty.
            features: an ``(n, d)`` tensor or array with ``labels``;
                [`Features`][failmodes.results.Features]; or an iterable of ``(x, y)``
                batches (``labels`` ``None``), consumed once, holding at most one shard and
                one batch at a time.
            labels: the ``(n,)`` labels of a tensor of features; ``None`` otherwise.
            rows_per_shard: rows of each shard (the last one may have fewer).
            dtype: ``"float32"`` (default) or ``"float16"`` (half the size and precision).

        Returns:
            The shards, opened from ``path``.

        Raises:
            FileExistsError: if ``path`` is a folder that is not empty.
            ValueError: if there are no rows, features and labels do not match in length,
                batches differ in dimension, a value is NaN or infinite (or too large for
                float16), ``dtype`` is not a stored dtype, or ``rows_per_shard`` is not a
                positive integer.
        """
        if dtype not in SHARD_DTYPES:
            raise ValueError(f"dtype must be one of {tuple(SHARD_DTYPES)}, got {dtype!r}")
        step = check_number(rows_per_shard, "rows_per_shard", minimum=1, integer=True)
        folder = Path(path)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise FileExistsError(f"{folder} exists and is not an empty folder")
        writer = _Writer(folder, SHARD_DTYPES[dtype])
        for x, y in _rechunk(_batches(features, labels), step):
            writer.add(x, y)
        writer.finish(dtype)
        return cls.open(folder)


class _ShardFile:
    """The one tensor of a safetensors file, read with plain reads straight into a new tensor.

    Neither ``safetensors.torch.load_file`` (a memory map, whose pages count in the process's
    memory) nor ``load`` (the file's bytes, then a copy of them): the header says where the
    tensor's bytes lie and they are read into the tensor, so a read holds one copy. The file is
    checked against its checksum the first time this object reads it.
    """

    def __init__(self, path: Path, sha256: str, dtype: str | None = None) -> None:
        self.path, self.sha256, self.dtype = path, sha256, dtype
        self.verified = False

    def __call__(self) -> torch.Tensor:
        return self.read("features")

    def read(self, name: str) -> torch.Tensor:
        try:
            with open(self.path, "rb") as f:
                tensor, digest = self._read(f, name)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.path} is missing") from None
        if digest is not None and digest != self.sha256:
            raise ValueError(f"{self.path} is damaged: it does not match its checksum")
        self.verified = True
        if self.dtype is not None and tensor.dtype != SHARD_DTYPES[self.dtype]:
            raise ValueError(f"{self.path} holds {tensor.dtype}, not the manifest's {self.dtype}")
        return tensor

    def _read(self, f: Any, name: str) -> tuple[torch.Tensor, str | None]:
        """The tensor, and the file's sha256 when it is not verified yet (else ``None``)."""
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else -1
        header = f.read(size) if 0 <= size <= _MAX_HEADER else b""
        try:
            info = json.loads(header)[name]
            shape, dtype = [int(n) for n in info["shape"]], _STORED[info["dtype"]]
            start, stop = (int(n) for n in info["data_offsets"])
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{self.path} is damaged: its header cannot be read ({err!r})"
            ) from None
        file_size = os.fstat(f.fileno()).st_size
        if stop - start != math.prod(shape) * dtype.itemsize or 8 + size + stop > file_size:
            raise ValueError(f"{self.path} is damaged: it is shorter than its header says")
        tensor = torch.empty(shape, dtype=dtype)
        data = tensor.view(-1).view(torch.uint8).numpy()
        f.seek(8 + size + start)
        if f.readinto(data) != len(data):
            raise ValueError(f"{self.path} changed while it was read")
        if self.verified:
            return tensor, None
        if start != 0 or file_size != 8 + size + stop:
            return tensor, ""  # the file holds more than the tensor: not the file written
        digest = hashlib.sha256(head)
        digest.update(header)
        digest.update(data)
        return tensor, digest.hexdigest()


class _Writer:
    """Writes shard files one by one, then the labels and the manifest, last."""

    def __init__(self, folder: Path, dtype: torch.dtype) -> None:
        self.folder, self.dtype = folder, dtype
        self.shards: list[dict] = []
        self.labels: list[torch.Tensor] = []
        self.dim: int | None = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.dim is None:
            self.dim = x.shape[1]
        elif x.shape[1] != self.dim:
            raise ValueError(f"a batch has dimension {x.shape[1]} but the first had {self.dim}")
        stored = x.to(self.dtype)
        if not bool(torch.isfinite(stored).all()):
            where = f"rows {sum(s['rows'] for s in self.shards)} onwards"
            raise ValueError(f"features are NaN, infinite or too large for {self.dtype} ({where})")
        name = f"shard-{len(self.shards):05d}.safetensors"
        self.shards.append({"file": name, "rows": len(x), "sha256": self._put(name, stored)})
        self.labels.append(y)

    def _put(self, name: str, tensor: torch.Tensor) -> str:
        from safetensors.torch import save

        key = "features" if tensor.is_floating_point() else "labels"
        blob = save({key: tensor.contiguous()})
        atomic_write(self.folder / name, blob)
        return hashlib.sha256(blob).hexdigest()

    def finish(self, dtype: str) -> None:
        if not self.shards:
            raise ValueError("there are no rows to write")
        labels = torch.cat(self.labels)
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "n": len(labels),
            "d": self.dim,
            "dtype": dtype,
            "labels": {"file": _LABELS, "sha256": self._put(_LABELS, labels)},
            "shards": self.shards,
        }
        atomic_write(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())


def _batches(features: Any, labels: Any) -> Iterable[tuple[Any, Any]]:
    if isinstance(features, Features):
        if labels is not None:
            raise ValueError("labels must be None with Features, which carry their own")
        return [(features.features, features.labels)]
    if labels is not None:
        return [(features, labels)]
    if isinstance(features, torch.Tensor) or hasattr(features, "__array__"):
        raise ValueError("labels are required with a tensor or array of features")
    return features


def _rechunk(batches: Iterable[tuple[Any, Any]], step: int) -> Iterator[tuple[Any, Any]]:
    """The rows of ``batches`` again, ``step`` at a time (the last piece may be shorter)."""
    held_x: list[torch.Tensor] = []
    held_y: list[torch.Tensor] = []
    held = 0
    for x, y in batches:
        x, y = _as_batch(x, y)
        held_x.append(x)
        held_y.append(y)
        held += len(x)
        if held >= step:
            x, y = _joined(held_x), _joined(held_y)
            cut = held - held % step
            yield from zip(x[:cut].split(step), y[:cut].split(step), strict=True)
            rest = held > cut  # an empty remainder is not kept, so no copy is made later
            held_x, held_y, held = ([x[cut:]], [y[cut:]], held - cut) if rest else ([], [], 0)
    if held:
        yield _joined(held_x), _joined(held_y)


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    """The parts as one tensor; one part is returned as it is (no copy of a large tensor)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _as_batch(x: Any, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"features must be a (rows, d) floating array, got {_describe(x)}")
    y = torch.from_numpy(as_labels(y))
    if len(x) != len(y):
        raise ValueError(f"{len(x)} rows of features but {len(y)} labels; they must match")
    return x, y


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _read_manifest(folder: Path) -> dict:
    """The manifest of a shards folder, checked for the fields and files it must have."""
    path = folder / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{folder} has no {MANIFEST}: it is not a folder of feature shards, or their writing "
            "did not finish"
        )
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise ValueError(f"{path} is not a manifest of feature shards: {problem}")
    return manifest


def _manifest_problem(manifest: Any) -> str | None:
    """What is wrong with a manifest, or ``None``."""
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        return f"its format is not {_FORMAT!r}"
    if manifest.get("version") != _VERSION:
        return f"version {manifest.get('version')!r} (this failmodes reads {_VERSION})"
    if manifest.get("dtype") not in SHARD_DTYPES:
        return f"dtype {manifest.get('dtype')!r} is not one of {tuple(SHARD_DTYPES)}"
    if not all(_is_count(manifest.get(k)) for k in ("n", "d")):
        return "n and d must be counts"
    items = manifest.get("shards")
    if not isinstance(items, list) or not all(_is_file(i, rows=True) for i in items):
        return "shards must be a list of {file, rows, sha256}"
    if not _is_file(manifest.get("labels"), rows=False):
        return "labels must be {file, sha256}"
    if sum(item["rows"] for item in items) != manifest["n"]:
        return f"its shards' rows add up to {sum(i['rows'] for i in items)}, not n={manifest['n']}"
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_file(item: Any, *, rows: bool) -> bool:
    """A file entry: a plain file name in the folder, a sha256, and a row count if ``rows``."""
    if not isinstance(item, dict):
        return False
    name = item.get("file")
    return (
        isinstance(name, str)
        and Path(name).name == name
        and not name.startswith(".")
        and isinstance(item.get("sha256"), str)
        and (not rows or _is_count(item.get("rows")))
    )
