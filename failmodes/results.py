"""Result types: plain dataclasses with ``to_frame()`` (pandas) and JSON-friendly summaries."""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from failmodes.attributes import phrase
from failmodes.interfaces import Caption, GenerationRequest

__all__ = ["FailureModes", "FailureSet", "GeneratedSet", "RunResult"]


@dataclass
class FailureSet:
    """The debug set's failures, split per class into ``debug_seed`` and ``debug_heldout``.

    Indices refer to the debug set. Samples of the debug set's validation part (used to choose
    hyper-parameters) are in ``validation`` and never among the failures.

    Attributes:
        labels: true label of every debug sample.
        predictions: the model's prediction for every debug sample.
        validation: indices of the validation part of the debug set.
        seed: indices of the failures used for debugging.
        heldout: indices of the failures never used (an unbiased measure).
    """

    labels: np.ndarray
    predictions: np.ndarray
    validation: np.ndarray
    seed: np.ndarray
    heldout: np.ndarray

    @property
    def failures(self) -> np.ndarray:
        """All failure indices outside the validation part, sorted."""
        return np.sort(np.concatenate([self.seed, self.heldout]))

    def to_frame(self) -> pd.DataFrame:
        """One row per failure: ``index``, ``label``, ``prediction``, ``part``."""
        rows = [(int(i), "debug_seed") for i in self.seed] + [
            (int(i), "debug_heldout") for i in self.heldout
        ]
        rows.sort()
        idx = np.array([r[0] for r in rows], dtype=np.int64)
        return pd.DataFrame(
            {
                "index": idx,
                "label": self.labels[idx],
                "prediction": self.predictions[idx],
                "part": [r[1] for r in rows],
            }
        )


@dataclass
class FailureModes:
    """Captions of the ``debug_seed`` failures and, per class, the top-k values.

    Attributes:
        class_names: all class names, by label index.
        attribute: the spurious attribute.
        indices: debug-set indices of the captioned failures.
        labels: their true labels.
        predictions: the model's predictions for them.
        captions: one :class:`~failmodes.Caption` per failure.
        candidates: the values each class's failures were captioned among.
        modes: ``{class_name: [value, ...]}``, the top-k values by frequency per class.
    """

    class_names: list[str]
    attribute: str
    indices: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    captions: list[Caption]
    candidates: dict[str, list[str]]
    modes: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_captions(
        cls,
        *,
        class_names: Sequence[str],
        attribute: str,
        indices: np.ndarray,
        labels: np.ndarray,
        predictions: np.ndarray,
        captions: Sequence[Caption],
        candidates: dict[str, list[str]],
        k: int,
    ) -> FailureModes:
        """Count the captions per class and keep the ``k`` most frequent values.

        Ties are broken by the order of the class's candidates, so the result is deterministic.
        """
        if k < 1:
            raise ValueError(f"k must be a positive number of modes per class, got {k}")
        result = cls(
            list(class_names),
            attribute,
            np.asarray(indices),
            np.asarray(labels),
            np.asarray(predictions),
            list(captions),
            dict(candidates),
        )
        result.modes = result.top_k(k)
        return result

    def counts(self) -> dict[str, Counter]:
        """``{class_name: Counter(value -> number of failures)}``; uncaptioned ones excluded."""
        out: dict[str, Counter] = {}
        for label, cap in zip(self.labels, self.captions, strict=True):
            if cap.value is not None:
                out.setdefault(self.class_names[int(label)], Counter())[cap.value] += 1
        return out

    def top_k(self, k: int) -> dict[str, list[str]]:
        """The ``k`` most frequent values per class (classes without captions are left out)."""
        modes = {}
        for name, counter in self.counts().items():
            order = {v: i for i, v in enumerate(self.candidates.get(name, []))}
            ranked = sorted(counter, key=lambda v: (-counter[v], order.get(v, len(order)), v))
            modes[name] = ranked[:k]
        return modes

    def top_prediction(self, class_name: str, value: str) -> str | None:
        """The class most often predicted for failures of ``class_name`` captioned ``value``."""
        label = self.class_names.index(class_name)
        preds = [
            int(p)
            for y, p, c in zip(self.labels, self.predictions, self.captions, strict=True)
            if int(y) == label and c.value == value
        ]
        if not preds:
            return None
        return self.class_names[Counter(preds).most_common(1)[0][0]]

    def describe(self) -> list[str]:
        """Readable failure modes: ``"wallet in a jungle -> predicted mushroom (12 failures)"``."""
        counts = self.counts()
        lines = []
        for name in self.class_names:
            for value in self.modes.get(name, []):
                pred = self.top_prediction(name, value)
                lines.append(
                    f"{phrase(name, value, self.attribute)} \u2192 predicted {pred} "
                    f"({counts[name][value]} failures)"
                )
        return lines

    def to_frame(self) -> pd.DataFrame:
        """One row per captioned failure: index, class, prediction, value, score, is_mode."""
        names = [self.class_names[int(y)] for y in self.labels]
        return pd.DataFrame(
            {
                "index": self.indices,
                "class": names,
                "predicted": [self.class_names[int(p)] for p in self.predictions],
                "value": [c.value for c in self.captions],
                "score": [c.score for c in self.captions],
                "is_mode": [
                    c.value is not None and c.value in self.modes.get(n, [])
                    for n, c in zip(names, self.captions, strict=True)
                ],
            }
        )


@dataclass
class GeneratedSet:
    """Images made for a list of requests, flattened, with their label and value.

    Attributes:
        requests: the generation jobs.
        images: all images, request by request.
        labels: the class index of each image.
        values: the attribute value of each image (``None`` for bare-class requests).
        request_index: for each image, the index of its request.
        filter_report: with an image filter, one row per request: ``requested``, ``kept`` and
            ``dropped_<reason>`` counts (``None`` without a filter).
    """

    requests: list[GenerationRequest]
    images: list[Any]
    labels: np.ndarray
    values: list[str | None]
    request_index: np.ndarray
    filter_report: pd.DataFrame | None = field(default=None, repr=False)

    @classmethod
    def from_outputs(
        cls,
        requests: Sequence[GenerationRequest],
        outputs: Sequence[Sequence[Any]],
        *,
        filter_report: pd.DataFrame | None = None,
    ) -> GeneratedSet:
        """Flatten a generator's per-request outputs, checking their number and count.

        Each request must have exactly ``count`` images, or at most ``count`` when a
        ``filter_report`` says that a filter dropped some.
        """
        if len(outputs) != len(requests):
            raise ValueError(
                f"the generator returned {len(outputs)} image lists for {len(requests)} requests"
            )
        images, labels, values, owner = [], [], [], []
        for j, (req, imgs) in enumerate(zip(requests, outputs, strict=True)):
            if len(imgs) != req.count and not (filter_report is not None and len(imgs) < req.count):
                raise ValueError(
                    f"the generator returned {len(imgs)} images for request {j} "
                    f"({req.prompt!r}) that asked for count={req.count}"
                )
            images.extend(imgs)
            labels.extend([req.class_index] * len(imgs))
            values.extend([req.value] * len(imgs))
            owner.extend([j] * len(imgs))
        return cls(
            list(requests),
            images,
            np.asarray(labels, dtype=np.int64),
            values,
            np.asarray(owner, dtype=np.int64),
            filter_report,
        )

    def __len__(self) -> int:
        return len(self.images)

    def export(self, folder: str | Path) -> Path:
        """Write the images as an image folder, ``<class>/<value>/NNNN.png``, with a manifest.

        ``manifest.json`` lists every request (class, value, prompt, count, seed) and every
        image (its file, request, index in the request and seed), so that a debugging set can
        be shared, inspected and read back with :meth:`load`. Bare-class images go in a
        ``_none`` folder. The folder must not exist yet or be empty.
        """
        from dataclasses import asdict

        folder = Path(folder)
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty; export into a new folder")
        offsets = _offsets(self.request_index)
        entries = []
        for i, image in enumerate(self.images):
            request = self.requests[int(self.request_index[i])]
            value = "_none" if self.values[i] is None else _safe_name(self.values[i])
            sub = Path(_safe_name(request.class_name)) / value
            (folder / sub).mkdir(parents=True, exist_ok=True)
            name = sub / f"{i:04d}.png"
            image.save(folder / name, format="PNG")
            entries.append(
                {
                    "file": name.as_posix(),
                    "request": int(self.request_index[i]),
                    "index": int(offsets[i]),
                    "seed": request.image_seed(int(offsets[i])),
                }
            )
        manifest = {
            "format": "failmodes.GeneratedSet/1",
            "requests": [asdict(r) for r in self.requests],
            "images": entries,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> GeneratedSet:
        """Read a set written by :meth:`export`."""
        from PIL import Image

        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        requests = [GenerationRequest(**r) for r in manifest["requests"]]
        images, owner = [], []
        for entry in manifest["images"]:
            with Image.open(folder / entry["file"]) as image:
                images.append(image.convert("RGB"))
            owner.append(int(entry["request"]))
        owner_array = np.asarray(owner, dtype=np.int64)
        return cls(
            requests,
            images,
            np.asarray([requests[j].class_index for j in owner], dtype=np.int64),
            [requests[j].value for j in owner],
            owner_array,
        )

    @property
    def n_filtered_out(self) -> int | None:
        """How many images the filter dropped in all (``None`` without a filter)."""
        if self.filter_report is None:
            return None
        dropped = [c for c in self.filter_report.columns if c.startswith("dropped_")]
        return int(self.filter_report[dropped].to_numpy().sum())

    def to_frame(self) -> pd.DataFrame:
        """One row per image: label, class, value, prompt, request job id and seed."""
        reqs = [self.requests[int(j)] for j in self.request_index]
        offsets = _offsets(self.request_index)
        return pd.DataFrame(
            {
                "label": self.labels,
                "class": [r.class_name for r in reqs],
                "value": self.values,
                "prompt": [r.prompt for r in reqs],
                "job_id": [r.job_id for r in reqs],
                "seed": [r.image_seed(int(o)) for r, o in zip(reqs, offsets, strict=True)],
            }
        )


METHODS = ("before", "failmodes", "random", "uniform", "refit")
SPLITS = ("test", "debug_seed", "debug_heldout", "validation")


@dataclass
class RunResult:
    """Everything one :meth:`failmodes.Debugger.run` measured.

    Attributes:
        accuracy: ``{method: {split: accuracy}}`` for methods ``before`` (the original head),
            ``failmodes`` (targeted repair), ``random`` (bare-class images), ``uniform`` (values
            drawn uniformly) and ``refit`` (the head refit on train alone), on splits ``test``,
            ``debug_seed``, ``debug_heldout`` and ``validation``.
        group_accuracy: per method, the test accuracy per attribute value (when known).
        failures: the debug set's failures and their split.
        modes: the captions and failure modes.
        generated: the targeted generated set (at the chosen ``k`` and images per mode).
        baseline_generated: the ``random`` and ``uniform`` baselines' generated sets.
        selection: the hyper-parameter search on the validation part, one row per candidate.
        config: the chosen ``k``, ``lam``, ``images_per_mode`` and the run's settings.
        caption_accuracy: among captioned failures whose true value is a candidate, the share
            captioned with it (when true values are known).
        heads: the fitted heads, per method.
        seconds: wall-clock time of the run.
    """

    class_names: list[str]
    attribute: str
    accuracy: dict[str, dict[str, float]]
    group_accuracy: dict[str, dict[str, float]]
    failures: FailureSet
    modes: FailureModes
    generated: GeneratedSet
    selection: pd.DataFrame
    config: dict[str, Any]
    caption_accuracy: float | None = None
    baseline_generated: dict[str, GeneratedSet] = field(default_factory=dict, repr=False)
    heads: dict[str, Any] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    def worst_group(self, method: str) -> float | None:
        """The lowest per-value test accuracy of ``method``, when groups are known."""
        groups = self.group_accuracy.get(method)
        return min(groups.values()) if groups else None

    def to_frame(self) -> pd.DataFrame:
        """Accuracy per method (rows) and split (columns), with worst-group test accuracy."""
        frame = pd.DataFrame(self.accuracy).T.reindex(columns=list(SPLITS))
        frame.index.name = "method"
        if self.group_accuracy:
            frame["worst_group_test"] = [self.worst_group(m) for m in frame.index]
        return frame

    def summary(self) -> dict[str, Any]:
        """A flat JSON-ready summary (the keys of ``failmodes demo``'s ``summary.json``)."""
        acc = self.accuracy
        out: dict[str, Any] = {
            "test_acc_before": acc["before"]["test"],
            "test_acc_after": acc["failmodes"]["test"],
            "seed_acc_after": acc["failmodes"]["debug_seed"],
            "heldout_acc_after": acc["failmodes"]["debug_heldout"],
        }
        for method in ("random", "uniform", "refit"):
            if method not in acc:
                continue
            for split, key in (
                ("test", "test"),
                ("debug_seed", "seed"),
                ("debug_heldout", "heldout"),
            ):
                out[f"{method}_{key}_acc_after"] = acc[method][split]
        for method in METHODS:
            worst = self.worst_group(method)
            if worst is not None:
                out[f"{method}_worst_group_test_acc"] = worst
        out.update(
            n_failures=int(len(self.failures.seed) + len(self.failures.heldout)),
            n_seed=int(len(self.failures.seed)),
            n_heldout=int(len(self.failures.heldout)),
            n_generated=len(self.generated),
            n_filtered_out=self.generated.n_filtered_out,
            caption_accuracy=self.caption_accuracy,
            failure_modes=self.modes.modes,
            descriptions=self.modes.describe(),
            config=self.config,
            seconds=self.seconds,
        )
        return out

    def save_summary(self, path: str | Path) -> Path:
        """Write :meth:`summary` as JSON."""
        path = Path(path)
        path.write_text(json.dumps(self.summary(), indent=2, sort_keys=True) + "\n")
        return path

    def report(self, path: str | Path) -> Path:
        """Write a self-contained HTML page with the accuracy table and the failure modes."""
        path = Path(path)
        table = self.to_frame().to_html(float_format=lambda x: f"{x:.3f}", border=0)
        modes = "".join(f"<li>{html.escape(line)}</li>" for line in self.modes.describe())
        selection = (
            self.selection.to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0)
            if len(self.selection)
            else ""
        )
        cfg = html.escape(json.dumps(self.config, indent=2, sort_keys=True))
        path.write_text(
            "<!doctype html><html><head><meta charset='utf-8'><title>failmodes report</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
            "table{border-collapse:collapse}td,th{padding:.2em .6em;text-align:right}"
            "</style></head><body>"
            f"<h1>failmodes report</h1><h2>Accuracy</h2>{table}"
            f"<h2>Failure modes ({html.escape(self.attribute)})</h2><ul>{modes}</ul>"
            f"<h2>Hyper-parameter selection (validation part of the debug set)</h2>{selection}"
            f"<h2>Configuration</h2><pre>{cfg}</pre></body></html>\n"
        )
        return path


def _offsets(request_index: np.ndarray) -> np.ndarray:
    """For each image, its index within its request."""
    offsets = np.zeros(len(request_index), dtype=np.int64)
    for j in np.unique(request_index):
        where = np.flatnonzero(request_index == j)
        offsets[where] = np.arange(len(where))
    return offsets


def _safe_name(text: str) -> str:
    """A folder name from a class or value: spaces to underscores, no path separators."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in text.strip())
    return cleaned.strip("._") or "_"
