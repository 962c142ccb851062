"""The page that [`RunResult.report`][failmodes.results.RunResult.report] writes.

One HTML file, images inline, no script. The page is the Jinja2 template
``templates/report.html.j2`` (shipped with the package, rendered with autoescaping, so every
class name, value and prompt is escaped); this module only gathers what it shows.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

from failmodes.attributes import get_attribute
from failmodes.images import png_bytes, thumbnail
from failmodes.methods import METHODS, shown_splits
from failmodes.methods import SPLITS as ALL_SPLITS
from failmodes.ranking import get_ranking
from failmodes.summary import kept_original, ladder_sentence

if TYPE_CHECKING:
    from failmodes.results import RunResult

__all__ = ["render"]

PAPER = "https://arxiv.org/abs/2312.05464"
THUMB = 96  # displayed thumbnail side, CSS pixels
DIGITS = 3
"""Decimals of every accuracy the page prints (and of their changes); settings print as set."""

SPLITS = {
    **{name: text for name, text in ALL_SPLITS.items() if name != "validation"},
    "worst_group_test": "the lowest test accuracy over the attribute's values (when the data "
    "names each sample's value).",
    "guard": "in-distribution images no repair trained on: a candidate that loses more than the "
    "guard tolerance here is refused (a guard of yours, or a held-out share of the training "
    "data, a proxy).",
}
EXTRA_SPLIT = "a set of yours (run(..., extra=...)), for reporting only."
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
"""The chart's colours, one per split in turn."""


def render(result: RunResult, *, generated_per_mode: int = 4, max_classes: int | None = 50) -> str:
    """The report page of ``result``, as one HTML string."""
    import jinja2

    _check_count(generated_per_mode, "generated_per_mode")
    if max_classes is not None:
        _check_count(max_classes, "max_classes", "or None")
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("failmodes", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["num"] = _fmt
    environment.filters["signed"] = _signed
    template = environment.get_template("report.html.j2")
    return template.render(
        result=result,
        paper=PAPER,
        thumb=THUMB,
        version=str(result.config.get("version", "")),
        header=_header(result),
        accuracy=_accuracy(result),
        chart=_chart(result),
        modes=_modes(result, generated_per_mode, max_classes),
        selection=_selection(result),
        groups=_groups(result),
        config=[
            (str(key), json.dumps(value, default=str))
            for key, value in sorted(result.config.items(), key=lambda kv: str(kv[0]))
        ],
    )


def _check_count(value: Any, name: str, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        also = f" {alternative}" if alternative else ""
        raise ValueError(f"{name} must be an integer >= 0{also}, got {value!r}")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: Any) -> str:
    """A number as the page writes it: ``DIGITS`` decimals, a dash when missing, yes/no."""
    if _missing(value):
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{DIGITS}f}"
    return str(value)


def _signed(delta: float) -> str:
    """A change of accuracy, signed, with ``DIGITS`` decimals."""
    return f"{delta:+.{DIGITS}f}"


def _trend(delta: float) -> str:
    """``up``, ``down`` or ``muted``: whether a change shows at ``DIGITS`` decimals."""
    half = 0.5 * 10.0**-DIGITS
    return "up" if delta > half else "down" if delta < -half else "muted"


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def _header(result: RunResult) -> dict[str, Any]:
    cfg = result.config
    settings = []
    for label, key, grid in (
        ("k", "k", "k_grid"),
        ("\u03bb", "lam", "lam_grid"),
        ("images per mode", "images_per_mode", "images_per_mode_grid"),
        ("seed", "seed", None),
        ("failmodes", "version", None),
    ):
        if key in cfg:
            candidates = cfg.get(grid) if grid else None
            many = isinstance(candidates, list) and len(candidates) > 1
            settings.append((label, str(cfg[key]), ", ".join(map(str, candidates)) if many else ""))
    failures, generated = result.failures, result.generated
    stats = [
        (len(failures.seed) + len(failures.heldout), "failures"),
        (len(failures.seed), "debug_seed"),
        (len(failures.heldout), "debug_heldout"),
        (len(failures.validation), "validation samples"),
        (len(generated), "generated images"),
    ]
    if generated.n_filtered_out is not None:
        stats.append((generated.n_filtered_out, "filtered out"))
    if result.caption_accuracy is not None:
        stats.append((f"{result.caption_accuracy:.1%}", "caption accuracy"))
    if result.seconds:
        stats.append((f"{result.seconds:.0f} s", "run time"))
    n_modes = sum(len(v) for v in result.modes.modes.values())
    return {
        "settings": settings,
        "stats": stats,
        "n_modes": n_modes,
        "ladder": ladder_sentence(result),
        "guard_limit": cfg.get("guard_limit", cfg.get("guard_tolerance", "the guard tolerance")),
        "kept": sorted(kept_original(result)),
    }


def _accuracy(result: RunResult) -> dict[str, Any]:
    frame = result.to_frame()
    columns = shown_splits(list(frame.columns))
    rows = []
    for method in frame.index:
        cells = []
        for column in columns:
            value, delta = frame.loc[method, column], None
            if method != "before" and "before" in frame.index:
                base = frame.loc["before", column]
                if not (_missing(value) or _missing(base)):
                    delta = float(value) - float(base)
            trend = None if delta is None else _trend(delta)
            cells.append({"value": value, "delta": delta, "trend": trend})
        rows.append({"method": str(method), "cells": cells})
    methods = [(m, METHODS[m]) for m in frame.index if m in METHODS]
    return {
        "columns": columns,
        "rows": rows,
        "methods": methods,
        "splits": [(c, SPLITS.get(c, EXTRA_SPLIT)) for c in columns],
    }


def _chart(result: RunResult) -> dict[str, Any] | None:
    """Accuracy per method on test and debug_heldout: matplotlib if installed, else HTML bars."""
    methods = list(result.accuracy)
    named = ["test", "debug_heldout", *shown_splits(list(result.to_frame().columns))]
    splits = [s for s in dict.fromkeys(named) if all(s in result.accuracy[m] for m in methods)]
    splits = [s for s in splits if s not in ("debug_seed", "worst_group_test")]
    if not methods or not splits:
        return None
    png = _matplotlib_chart(result, methods, splits)
    if png is not None:
        return {"png": _b64(png), "groups": []}
    groups = []
    for split in splits:
        bars = []
        for method in methods:
            value = result.accuracy[method][split]
            width = 0.0 if _missing(value) else max(0.0, min(1.0, float(value))) * 100
            bars.append({"method": method, "width": f"{width:.1f}", "value": value})
        groups.append({"split": split, "color": _color(splits, split), "bars": bars})
    return {"png": None, "groups": groups}


def _color(splits: list[str], split: str) -> str:
    return PALETTE[splits.index(split) % len(PALETTE)]


def _matplotlib_chart(result: RunResult, methods: list[str], splits: list[str]) -> bytes | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    figure = Figure(figsize=(9.5, 3.0), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / len(splits)
    for s, split in enumerate(splits):
        values = [result.accuracy[m][split] for m in methods]
        values = [0.0 if _missing(v) else float(v) for v in values]
        positions = [i + (s - (len(splits) - 1) / 2) * width for i in range(len(methods))]
        bars = axes.bar(positions, values, width * 0.92, label=split, color=_color(splits, split))
        axes.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
    axes.set_xticks(range(len(methods)), methods)
    axes.set_ylim(0, 1.12)
    axes.set_ylabel("accuracy")
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, ncols=len(splits), loc="upper left", fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _modes(result: RunResult, generated_per_mode: int, max_classes: int | None) -> dict:
    """Every class with failure modes: captions, predictions, failure and generated images."""
    modes, names = result.modes, result.class_names
    per_class = Counter(names[int(y)] for y in modes.labels)
    with_modes = [n for n in names if modes.modes.get(n)]
    with_modes.sort(key=lambda n: (-per_class[n], names.index(n)))
    rest = []
    if max_classes is not None and len(with_modes) > max_classes:
        with_modes, rest = with_modes[:max_classes], with_modes[max_classes:]
    described = modes.descriptions()
    generated = _generated_samples(result, generated_per_mode, {names.index(n) for n in with_modes})
    shown = {(names.index(n), v) for n in with_modes for v in modes.modes[n]}
    beyond = [(prompt, total) for key, (_, prompt, total) in generated.items() if key not in shown]
    return {
        "plural": get_attribute(result.attribute).plural or "values",
        "with_successes": modes.has_successes,
        "rule": get_ranking(modes.rank).explain(has_successes=modes.has_successes),
        "has_examples": bool(result.examples),
        "images_kept": _images_kept(result),
        "classes": [_class(result, name, per_class[name], generated) for name in with_modes],
        "rest": [described[(n, v)] for n in rest for v in modes.modes[n]],
        "n_rest": len(rest),
        "n_shown": len(with_modes),
        "without": [n for n in names if not modes.modes.get(n)],
        "beyond": beyond,
        "n_beyond": sum(total for _, total in beyond),
    }


def _images_kept(result: RunResult) -> bool:
    """Whether the generated images are there (a run saved without them has ``None`` each)."""
    images = result.generated.images
    return not isinstance(images, list) or not images or any(i is not None for i in images)


def _class(result: RunResult, name: str, n_failures: int, generated: dict) -> dict[str, Any]:
    """One class: how its failures were captioned, and one block per failure mode."""
    modes, names = result.modes, result.class_names
    label = names.index(name)
    captioned = modes.counts().get(name, Counter())
    spread = sorted(captioned.items(), key=lambda vc: (-vc[1], str(vc[0])))
    predicted: dict[str | None, Counter] = {}
    for y, pred, cap in zip(modes.labels, modes.predictions, modes.captions, strict=True):
        if int(y) == label:
            predicted.setdefault(cap.value, Counter())[names[int(pred)]] += 1
    described = modes.descriptions([(name, value) for value in modes.modes[name]])
    examples = [e for e in result.examples if e.label == label]
    blocks = []
    for value in modes.modes[name]:
        images, prompt, total = generated.get((label, value), ([], None, 0))
        blocks.append(
            {
                "description": described[(name, value)],
                "predicted": predicted.get(value, Counter()).most_common(),
                "failures": [_failure(e, names) for e in examples if e.value == value],
                "generated": [{"png": _b64(png), "small": _width(png) < THUMB} for png in images],
                "prompt": prompt,
                "total": total,
            }
        )
    return {
        "name": name,
        "n_failures": n_failures,
        "spread": spread,
        "uncaptioned": n_failures - sum(captioned.values()),
        "modes": blocks,
    }


def _failure(example: Any, names: list[str]) -> dict[str, Any]:
    return {
        "png": _b64(example.png),
        "small": _width(example.png) < THUMB,
        "true": names[example.label],
        "predicted": names[example.prediction],
        "value": "no caption" if example.value is None else example.value,
        "score": f"{example.score:.2f}",
    }


def _width(png: bytes) -> int:
    """The width of a PNG, from its header."""
    return int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" else THUMB


def _generated_samples(
    result: RunResult, per_mode: int, labels: set[int]
) -> dict[tuple[int, str | None], tuple[list[bytes], str | None, int]]:
    """``{(label, value): (first PNGs, prompt, images in all)}`` of the targeted generated set.

    Only images of ``labels`` are read and encoded.
    """
    generated = result.generated
    out: dict[tuple[int, str | None], tuple[list[bytes], str | None, int]] = {}
    for i in range(len(generated)):
        request = generated.requests[int(generated.request_index[i])]
        key = (int(generated.labels[i]), generated.values[i])
        pngs, _, total = out.get(key, ([], request.prompt, 0))
        if len(pngs) < per_mode and key[0] in labels:
            thumb = thumbnail(generated.images[i], THUMB)
            if thumb is not None:
                pngs.append(png_bytes(thumb))
        out[key] = (pngs, request.prompt, total + 1)
    return out


def _selection(result: RunResult) -> dict[str, Any] | None:
    frame = result.selection
    if frame is None or not len(frame):
        return None
    shown = [c for c in frame.columns if c != "chosen"]
    rows = []
    for _, row in frame.iterrows():
        cells = [(c == "method", _cell(c, _plain(row[c]))) for c in shown]
        rows.append({"chosen": bool(row.get("chosen", False)), "cells": cells})
    cfg = result.config
    return {
        "columns": [str(c) for c in shown],
        "rows": rows,
        "tolerance": cfg.get("tolerance", "the tolerance"),
        "guard_limit": cfg.get("guard_limit", cfg.get("guard_tolerance", "the guard tolerance")),
        "select_by": cfg.get("select_by", "accuracy"),  # runs saved before it chose by accuracy
    }


def _cell(column: Any, value: Any) -> str:
    """A score (named ``*_acc`` or ``*_loss``) as [`_fmt`][_fmt] writes it; a setting as is."""
    score = str(column).endswith(("_acc", "_loss"))
    if isinstance(value, float) and not score and not math.isnan(value):
        return f"{value:g}"
    return _fmt(value)


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one, so that it formats like one."""
    return value.item() if hasattr(value, "item") else value


def _groups(result: RunResult) -> dict[str, Any] | None:
    if not result.group_accuracy:
        return None
    methods = list(result.group_accuracy)
    values = sorted({g for m in methods for g in result.group_accuracy[m]})
    rows = [(v, [result.group_accuracy[m].get(v) for m in methods]) for v in values]
    return {"methods": methods, "rows": rows}
