"""A run as files, written and read back: JSON, safetensors and PNG, never a pickle.

[`RunResult.save`][failmodes.results.RunResult.save] and
[`RunResult.load`][failmodes.results.RunResult.load] use these. A saved run is a folder:

```text
run.json            the format, every field as JSON (tables as columns, dtypes and rows), and
                    the list of the files written
arrays.safetensors  the failures' and captions' index arrays, the generated sets' labels
heads.safetensors   each method's head: <method>.weight and <method>.bias
examples/NNNN.png   the failure thumbnails the report shows
generated/<set>/    each generated set's images (failmodes, random, uniform) as
                    GeneratedSet.export writes them; with images=True only
```

What is not kept as it was: without ``images``, the generated images themselves (each set
keeps its requests, labels, values and ids, and reads back with ``None`` for each image);
values that are not JSON (a config value, a dictionary key) as their text, tuples as lists;
NaN and infinities as ``null`` (read back as NaN where a number belongs); a
[`Ranking`][failmodes.ranking.Ranking] object by its name (register it before reporting on the
loaded run); a table's index (tables read back with a fresh one).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from failmodes._checks import check_instance
from failmodes.images import ImageList, file_inside
from failmodes.interfaces import Caption, GenerationRequest

if TYPE_CHECKING:
    from failmodes.results import FailureModes, GeneratedSet, RunResult

__all__ = ["FORMAT", "output_path", "read_run", "write_run"]

FORMAT = "failmodes.RunResult/1"
"""The ``format`` of ``run.json``: the kind of file and the version of its layout."""

RUN = "run.json"
ARRAYS = "arrays.safetensors"
HEADS = "heads.safetensors"
_FAILURE_ARRAYS = ("labels", "predictions", "validation", "seed", "heldout")
_MODE_ARRAYS = ("indices", "labels", "predictions", "success_indices", "success_labels")


# ------------------------------------------------------------------------------ writing
def write_run(result: RunResult, folder: str | Path, *, images: bool = True) -> Path:
    """Write ``result`` into ``folder`` as [`read_run`][read_run] reads it back.

    A run saved there before is replaced whole or not at all: the new run is written into a
    temporary folder beside it, which takes its place once complete (so the folder's parent
    must be writable too). A save that fails leaves the folder as it was.

    Args:
        result: the run.
        folder: where to write: a new or empty folder (it is created), or one that holds a run
            saved before, which is replaced.
        images: write the generated images too, as image folders; ``False`` keeps everything
            else of the generated sets.

    Returns:
        ``folder``, as a ``Path``.

    Raises:
        FileExistsError: if ``folder`` is a file, or holds a file that is not one of a run
            saved there.
        NotADirectoryError: if a folder above ``folder`` is a file.
        PermissionError: if ``folder`` holds a saved run but is read-only.
        TypeError: if ``images`` is not a bool, or a head is not an ``nn.Linear`` (heads are
            kept as their weights).
    """
    check_instance(images, "images", bool, "True or False")
    heads = _head_tensors(result.heads)  # before anything is written
    folder = Path(folder)
    if not _holds_run(folder):
        _write_new(result, folder, heads, images)
        return folder
    real = Path(os.path.realpath(folder))  # a link to the folder stays a link to the new run
    staging = _beside(real, "saving")
    staging.mkdir()
    try:
        _write_files(result, staging, heads, images)
        shutil.copymode(real, staging)
        _swap(staging, real)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _write_new(result: RunResult, folder: Path, heads: dict[str, Any], images: bool) -> None:
    """Write into a missing or empty folder; what was written is removed if it fails."""
    folder.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(folder))  # empty folders at most
    try:
        _write_files(result, folder, heads, images)
    except BaseException:
        for name in set(os.listdir(folder)) - before:
            path = folder / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
        raise


def _write_files(result: RunResult, folder: Path, heads: dict[str, Any], images: bool) -> None:
    """Every file of the run, into ``folder``; ``run.json`` last."""
    files: list[str] = [ARRAYS]
    arrays = _arrays(result)
    document = {
        "format": FORMAT,
        **_run_fields(result),
        "modes": _modes(result.modes),
        "selection": _table(result.selection),
        "generated": _generated(result.generated, "failmodes", folder, arrays, images, files),
        "baseline_generated": {
            name: _generated(part, name, folder, arrays, images, files)
            for name, part in result.baseline_generated.items()
        },
        "examples": _examples(result.examples, folder, files),
        "heads": list(result.heads),
    }
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, folder / ARRAYS)
    if heads:
        from safetensors.torch import save_file as save_tensors

        save_tensors(heads, folder / HEADS)
        files.append(HEADS)
    document["files"] = sorted([*files, RUN])
    text = json.dumps(_plain(document), indent=1, allow_nan=False)
    (folder / RUN).write_text(text + "\n", encoding="utf-8")  # last: the run is complete


def _run_fields(result: RunResult) -> dict[str, Any]:
    mode_accuracy = result.mode_accuracy
    return {
        "class_names": list(result.class_names),
        "attribute": result.attribute,
        "accuracy": result.accuracy,
        "group_accuracy": result.group_accuracy,
        "config": result.config,
        "caption_accuracy": result.caption_accuracy,
        "mode_accuracy": None
        if mode_accuracy is None
        else {
            "n_in": mode_accuracy.n_in,
            "n_out": mode_accuracy.n_out,
            "accuracy": mode_accuracy.accuracy,
        },
        "seconds": result.seconds,
        "chosen": result.chosen,
        "n_real": result.n_real,
    }


def _arrays(result: RunResult) -> dict[str, np.ndarray]:
    """The failures' and the captions' index arrays, by name."""
    arrays = {f"failures.{n}": np.asarray(getattr(result.failures, n)) for n in _FAILURE_ARRAYS}
    arrays.update((f"modes.{n}", np.asarray(getattr(result.modes, n))) for n in _MODE_ARRAYS)
    return arrays


def _modes(modes: FailureModes) -> dict[str, Any]:
    rank = modes.rank if isinstance(modes.rank, str) else modes.rank.name
    return {
        "class_names": list(modes.class_names),
        "attribute": modes.attribute,
        "captions": [[c.value, c.score] for c in modes.captions],
        "success_captions": [[c.value, c.score] for c in modes.success_captions],
        "candidates": modes.candidates,
        "modes": modes.modes,
        "usual": modes.usual,
        "rank": rank,
        "significant": modes.significant,
    }


def _generated(
    generated: GeneratedSet | None,
    name: str,
    folder: Path,
    arrays: dict[str, np.ndarray],
    images: bool,
    files: list[str],
) -> dict[str, Any] | None:
    """One generated set's fields; its images exported under ``generated/<name>``."""
    if generated is None:
        return None
    arrays[f"generated.{name}.labels"] = np.asarray(generated.labels)
    arrays[f"generated.{name}.request_index"] = np.asarray(generated.request_index)
    where = None
    if images and _all_images(generated.images):
        where = f"generated/{name}"
        generated.export(folder / where)
        files.extend(f"{where}/{path}" for path in _files_in(folder / where))
    return {
        "requests": [request.identity() for request in generated.requests],
        "values": list(generated.values),
        "filter_report": _table(generated.filter_report),
        "image_ids": generated.image_ids,
        "generator": generated.generator,
        "images": where,
    }


def _examples(examples: Sequence[Any], folder: Path, files: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, example in enumerate(examples):
        name = f"examples/{i:04d}.png"
        (folder / "examples").mkdir(exist_ok=True)
        (folder / name).write_bytes(example.png)
        files.append(name)
        fields = ("index", "label", "prediction", "value", "score")
        out.append({**{f: getattr(example, f) for f in fields}, "file": name})
    return out


def _all_images(images: Sequence[Any]) -> bool:
    """Whether every image is there (a run loaded without its images has ``None`` each)."""
    return isinstance(images, ImageList) or all(image is not None for image in images)


def _head_tensors(heads: Mapping[str, Any]) -> dict[str, Any]:
    """Each head's weight and bias, as ``<method>.weight`` and ``<method>.bias``."""
    tensors = {}
    for method, head in heads.items():
        weight, bias = getattr(head, "weight", None), getattr(head, "bias", None)
        if weight is None or getattr(weight, "ndim", None) != 2:
            raise TypeError(
                f"the head of {method!r} is a {type(head).__name__}, not an nn.Linear; a saved "
                "run keeps heads as their weight and bias"
            )
        tensors[f"{method}.weight"] = weight.detach().cpu().clone().contiguous()
        if bias is not None:
            tensors[f"{method}.bias"] = bias.detach().cpu().clone().contiguous()
    return tensors


def _table(frame: pd.DataFrame | None) -> dict[str, Any] | None:
    """A table as its columns, their dtypes and its rows (its index is not kept)."""
    if frame is None:
        return None
    return {
        "columns": [str(c) for c in frame.columns],
        "dtypes": [str(t) for t in frame.dtypes],
        "rows": frame.to_numpy(dtype=object).tolist(),
    }


def _plain(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars as Python ones, NaN as ``None``, others as text."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


# ------------------------------------------------------------------------------ the folder
def _files_in(folder: Path) -> list[str]:
    """Every file (and link) under ``folder``, as relative POSIX paths; links are not followed."""
    out = []
    for root, dirs, names in os.walk(folder):
        links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
        for name in [*names, *links]:
            out.append(Path(root, name).relative_to(folder).as_posix())
    return sorted(out)


def _holds_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run saved before, and nothing else.

    Raises:
        FileExistsError, NotADirectoryError, PermissionError, ValueError: where no run can be
            saved (see [`write_run`][write_run]).
    """
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"folder {folder} is a file; save the run into a folder")
    _not_under_a_file(folder, "folder")
    present = _files_in(folder) if folder.exists() else []
    if not present:
        return False
    listed = _listed(folder)
    stray = [name for name in present if name not in listed]
    if stray:
        raise FileExistsError(
            f"{folder} is not empty and {folder / stray[0]} is not a file of a run saved "
            "there; save into a new or empty folder"
        )
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"cannot replace the run saved in {folder}: the folder is read-only")
    if Path.cwd().resolve().is_relative_to(folder.resolve()):
        raise ValueError(
            f"cannot replace the run saved in {folder} from inside it (the current folder): "
            "the new run takes the folder's place"
        )
    return True


def _beside(folder: Path, what: str) -> Path:
    """A new hidden name in ``folder``'s parent: ``.<name>.<what>-<random>``."""
    return folder.with_name(f".{folder.name}.{what}-{secrets.token_hex(4)}")


def _swap(staging: Path, folder: Path) -> None:
    """Put ``staging`` in the place of ``folder``; the old folder is removed only after."""
    old = _beside(folder, "old")
    os.replace(folder, old)
    try:
        os.replace(staging, folder)
    except BaseException:
        os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)
    if old.exists():
        warnings.warn(
            f"the run saved in {folder} was replaced, but the old one could not be removed "
            f"from {old}; remove that folder",
            stacklevel=4,
        )


def _not_under_a_file(path: Path, name: str) -> None:
    """Refuse ``path`` (argument ``name``) when the nearest existing folder above is a file."""
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise NotADirectoryError(
                    f"{name} {path} lies under {above}, which is a file, not a folder"
                )
            return


def output_path(path: str | Path, name: str = "path") -> Path:
    """``path`` checked as a file to write: not a folder, and not under a file.

    The caller creates the missing folders above it when it writes (as
    [`RunResult.save`][failmodes.results.RunResult.save] creates its folder).

    Args:
        path: the file to write.
        name: the argument that gave it, for the error.

    Returns:
        ``path``, as a ``Path``.

    Raises:
        IsADirectoryError: if ``path`` is a folder.
        NotADirectoryError: if a folder above ``path`` is a file.

    Examples:
        >>> from failmodes.run_files import output_path
        >>> output_path("reports/run.html").as_posix()
        'reports/run.html'
        >>> output_path(".")
        Traceback (most recent call last):
            ...
        IsADirectoryError: path . is a folder, not a file; give the path of a file to write
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"{name} {path} is a folder, not a file; give the path of a file to write"
        )
    _not_under_a_file(path, name)
    return path


def _listed(folder: Path) -> set[str]:
    """The files the ``run.json`` in ``folder`` lists (none when it is not a saved run's)."""
    try:
        document = json.loads((folder / RUN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return set()
    return {name for name in document.get("files", []) if isinstance(name, str)}


# ------------------------------------------------------------------------------ reading
def read_run(folder: str | Path) -> dict[str, Any]:
    """The parts of a run [`write_run`][write_run] wrote, as the result types take them.

    Args:
        folder: the folder it wrote.

    Returns:
        ``{"run": RunResult's plain fields, heads and selection included, "failures": ...,
        "modes": ..., "generated": ..., "baseline_generated": {...}, "mode_accuracy": ...,
        "examples": [...]}``, each a dictionary of the matching type's fields (``None`` for
        a part the run did not have).

    Raises:
        FileNotFoundError: if the folder, its ``run.json`` or a file it lists is missing; the
            message names the path.
        ValueError: if ``run.json`` is not a saved run's (another format, not JSON) or a part
            is missing or damaged; the message names the file and the part.
    """
    saved = _Saved(Path(folder))
    run = {
        key: saved.get(key)
        for key in ("class_names", "attribute", "config", "caption_accuracy", "chosen", "n_real")
    }
    run.update(
        accuracy=_nested_floats(saved.get("accuracy", kind=dict)),
        group_accuracy=_nested_floats(saved.get("group_accuracy", kind=dict)),
        seconds=float(saved.get("seconds") or 0.0),
        selection=_read_table(saved, "selection"),
        heads=_read_heads(saved),
    )
    mode_accuracy = saved.get("mode_accuracy")
    if mode_accuracy is not None:
        mode_accuracy = {
            "n_in": int(saved.get("mode_accuracy", "n_in")),
            "n_out": int(saved.get("mode_accuracy", "n_out")),
            "accuracy": _nested_floats(saved.get("mode_accuracy", "accuracy", kind=dict)),
        }
    baselines = saved.get("baseline_generated", kind=dict)
    return {
        "run": run,
        "failures": {name: saved.array(f"failures.{name}") for name in _FAILURE_ARRAYS},
        "modes": _read_modes(saved),
        "generated": _read_generated(saved, "generated"),
        "baseline_generated": {
            name: _read_generated(saved, "baseline_generated", name) for name in baselines
        },
        "mode_accuracy": mode_accuracy,
        "examples": [_read_example(saved, i) for i in range(len(saved.get("examples", kind=list)))],
    }


class _Saved:
    """A saved run's folder: its ``run.json`` checked, its parts read with errors that name them."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / RUN
        self.document = _document(folder)
        self._arrays: dict[str, np.ndarray] | None = None

    def get(self, *keys: str | int, kind: type | None = None) -> Any:
        """The part at ``keys`` of ``run.json``; a ValueError naming it when it is missing."""
        value: Any = self.document
        for depth, key in enumerate(keys):
            if not _has(value, key):
                raise self.damaged(f"it has no {_part(keys[: depth + 1])}")
            value = value[key]
        if kind is not None and not isinstance(value, kind):
            raise self.damaged(f"its {_part(keys)} is a {type(value).__name__}")
        return value

    def array(self, name: str) -> np.ndarray:
        """The array ``name`` of ``arrays.safetensors``."""
        if self._arrays is None:
            self._arrays = self._tensors(ARRAYS, "numpy")
        if name not in self._arrays:
            raise ValueError(f"{self.folder / ARRAYS} is damaged: it has no array {name!r}")
        return self._arrays[name]

    def _tensors(self, name: str, framework: str) -> dict[str, Any]:
        path = self.folder / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the saved run in {self.folder} is damaged")
        from safetensors import safe_open

        try:
            with safe_open(path, framework=framework) as tensors:
                return {key: tensors.get_tensor(key) for key in tensors.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error for a damaged file
            raise ValueError(f"{path} is damaged: not readable as safetensors ({err})") from err

    def heads(self) -> dict[str, Any]:
        """The tensors of ``heads.safetensors``."""
        return self._tensors(HEADS, "pt")

    def file(self, name: Any, what: str) -> Path:
        """The file ``name`` that ``run.json`` lists for ``what``, checked to exist."""
        path = file_inside(self.folder, name, str(self.path))
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: {what} of the saved run in {self.folder}")
        return path

    def damaged(self, what: str) -> ValueError:
        """The error for a damaged ``run.json``."""
        return ValueError(f"{self.path} is damaged: {what}; save the run again")


def _has(value: Any, key: str | int) -> bool:
    if isinstance(value, dict):
        return key in value
    return isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value)


def _part(keys: Sequence[str | int]) -> str:
    return repr(".".join(str(k) for k in keys))


def _document(folder: Path) -> dict[str, Any]:
    """``run.json`` of ``folder``, checked to be a saved run of this format."""
    path = folder / RUN
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: no saved run there")
    if not path.is_file():
        raise FileNotFoundError(f"{folder} holds no saved run: {path} is missing{_hint(folder)}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a saved run: it is not JSON ({err})") from err
    found = document.get("format") if isinstance(document, dict) else None
    if found != FORMAT:
        other = isinstance(found, str) and found.startswith(FORMAT.split("/")[0] + "/")
        why = "another version of failmodes wrote it" if other else "it is not a saved run"
        raise ValueError(f"{path} has format {found!r}, not {FORMAT!r}: {why}")
    return document


def _hint(folder: Path) -> str:
    """Where the run is, when ``folder`` is a command's output folder."""
    if (folder / "run" / RUN).is_file():
        return f" (the run that failmodes demo or run saved is in {folder / 'run'})"
    if (folder / "summary.json").is_file():
        return " (a summary.json alone cannot be read back as a run; RunResult.save writes one)"
    return " (RunResult.save writes it)"


def _nested_floats(table: dict[str, Any]) -> dict[str, Any]:
    """``{key: {key: number}}`` with ``None`` (NaN when written) as NaN again."""
    return {
        key: _nested_floats(value) if isinstance(value, dict) else _number(value)
        for key, value in table.items()
    }


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _read_table(saved: _Saved, *keys: str) -> pd.DataFrame | None:
    """A table [`_table`][_table] wrote; numeric and boolean columns get their dtype back."""
    if saved.get(*keys) is None:
        return None
    columns = saved.get(*keys, "columns", kind=list)
    dtypes = saved.get(*keys, "dtypes", kind=list)
    rows = saved.get(*keys, "rows", kind=list)
    if len(dtypes) != len(columns) or any(len(row) != len(columns) for row in rows):
        raise saved.damaged(f"its table {_part(keys)} has rows or dtypes of other lengths")
    frame = pd.DataFrame(rows, columns=columns)
    for column, dtype in zip(columns, dtypes, strict=True):
        try:
            numeric = np.dtype(dtype).kind in "biufc"
        except TypeError:  # an extension dtype (pandas' strings): as pandas reads it
            numeric = False
        if numeric:
            frame[column] = frame[column].astype(dtype)
    return frame


def _read_heads(saved: _Saved) -> dict[str, Any]:
    methods = saved.get("heads", kind=list)
    if not methods:
        return {}
    import torch

    tensors = saved.heads()
    heads = {}
    for method in methods:
        weight, bias = tensors.get(f"{method}.weight"), tensors.get(f"{method}.bias")
        if weight is None:
            raise ValueError(f"{saved.folder / HEADS} is damaged: it has no {method}.weight")
        head = torch.nn.Linear(
            weight.shape[1], weight.shape[0], bias=bias is not None, dtype=weight.dtype
        )
        with torch.no_grad():
            head.weight.copy_(weight)
            if bias is not None:
                head.bias.copy_(bias)
        heads[method] = head
    return heads


def _read_modes(saved: _Saved) -> dict[str, Any]:
    out: dict[str, Any] = {name: saved.array(f"modes.{name}") for name in _MODE_ARRAYS}
    for key in ("class_names", "attribute", "candidates", "modes", "usual", "rank", "significant"):
        out[key] = saved.get("modes", key)
    for key, index in (("captions", "indices"), ("success_captions", "success_indices")):
        pairs = saved.get("modes", key, kind=list)
        if len(pairs) != len(out[index]):
            raise saved.damaged(f"{len(pairs)} modes.{key} for {len(out[index])} modes.{index}")
        out[key] = [Caption(value, _number(score)) for value, score in pairs]
    return out


def _read_generated(saved: _Saved, *keys: str) -> dict[str, Any] | None:
    """The fields of the generated set at ``keys`` (``None`` when the run had none)."""
    if saved.get(*keys) is None:
        return None
    name = keys[-1] if len(keys) > 1 else "failmodes"
    labels = saved.array(f"generated.{name}.labels")
    request_index = saved.array(f"generated.{name}.request_index")
    values = saved.get(*keys, "values", kind=list)
    if not len(values) == len(labels) == len(request_index):
        raise saved.damaged(f"the generated set {name!r} has values or labels missing")
    try:
        requests = [GenerationRequest(**r) for r in saved.get(*keys, "requests", kind=list)]
    except TypeError as err:  # not the fields of a request
        raise saved.damaged(f"a request of the generated set {name!r} is not one ({err})") from err
    return {
        "requests": requests,
        "images": _read_images(saved, saved.get(*keys, "images"), len(labels), name),
        "labels": labels,
        "values": values,
        "request_index": request_index,
        "filter_report": _read_table(saved, *keys, "filter_report"),
        "image_ids": saved.get(*keys, "image_ids"),
        "generator": saved.get(*keys, "generator"),
    }


def _read_images(saved: _Saved, where: Any, count: int, name: str) -> Sequence[Any]:
    """The images of a generated set, unread (``None`` each when they were not saved)."""
    if where is None:
        return [None] * count
    from failmodes.generated_files import FORMAT as IMAGES

    folder = file_inside(saved.folder, where, str(saved.path))
    manifest = saved.file(f"{where}/manifest.json", f"the manifest of the {name!r} images")
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{manifest} is damaged: it is not JSON ({err})") from err
    if not isinstance(entries, dict) or entries.get("format") != IMAGES:
        raise ValueError(f"{manifest} is not the manifest of a generated set ({IMAGES})")
    files = [file_inside(folder, e["file"], str(manifest)) for e in entries.get("images", [])]
    if len(files) != count:
        raise ValueError(f"{manifest} lists {len(files)} images; the set has {count}")
    missing = next((path for path in files if not path.is_file()), None)
    if missing is not None:
        raise FileNotFoundError(f"{missing} is missing: an image of the {name!r} set")
    return ImageList(files)


def _read_example(saved: _Saved, i: int) -> dict[str, Any]:
    entry = saved.get("examples", i, kind=dict)
    fields = {key: saved.get("examples", i, key) for key in ("index", "label", "prediction")}
    path = saved.file(saved.get("examples", i, "file"), "a failure thumbnail")
    return {
        **fields,
        "value": entry.get("value"),
        "score": _number(entry.get("score")),
        "png": path.read_bytes(),
    }
