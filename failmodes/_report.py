"""The page that [`RunResult.report`][failmodes.results.RunResult.report] writes.

One HTML file: images inline, no script."""

from __future__ import annotations

import base64
import io
import json
import math
from collections import Counter
from html import escape
from typing import TYPE_CHECKING, Any

from failmodes.attributes import get_attribute

if TYPE_CHECKING:
    from failmodes.results import FailureExample, RunResult

__all__ = ["render"]

PAPER = "https://arxiv.org/abs/2312.05464"
THUMB = 96  # displayed thumbnail side, CSS pixels

METHODS = {
    "before": "the model's original head, before any repair.",
    "failmodes": "the head refit on the training data plus images generated for the failure "
    "modes (the targeted repair).",
    "random": "the same number of images per class, generated from the bare class name "
    "(\u201ca photo of a {class}\u201d), so in the class's usual context.",
    "uniform": "the same number of images per class, with values drawn uniformly among all "
    "proposed values.",
    "refit": "the head refit on the training data alone (\u03bb = 0): what refitting by itself "
    "does.",
}
SPLITS = {
    "test": "the test set, used only for reporting.",
    "debug_seed": "the failures used for debugging: captioned, and their modes generated. "
    "0 before repair by construction.",
    "debug_heldout": "the failures never used: an unbiased measure of the repair. "
    "0 before repair by construction.",
    "worst_group_test": "the lowest test accuracy over the attribute's values (when the data "
    "names each sample's value).",
}
COLORS = {"test": "#4c72b0", "debug_heldout": "#dd8452"}

CSS = (
    """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1f2430;background:#fff;max-width:1200px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 2px}
h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:2px solid #e3e7ee}
h3{font-size:16px;margin:0}
h4{font-size:14px;font-weight:600;margin:0 0 8px}
a{color:#2f5fb3}
.muted{color:#5d6577}
.small{font-size:12px}
nav{margin:6px 0 0;font-size:13px}
nav a{margin-right:14px}
.settings{margin:14px 0 4px;display:flex;flex-wrap:wrap;gap:6px 8px}
.settings span{background:#f1f4f8;border-radius:4px;padding:3px 9px;font-size:13px}
.settings b{font-weight:600}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.stat{border:1px solid #dfe4ec;border-radius:6px;padding:8px 14px;min-width:118px}
.stat b{display:block;font-size:22px;font-weight:600}
.stat span{color:#5d6577;font-size:12px}
table{border-collapse:collapse;margin:8px 0 6px;font-variant-numeric:tabular-nums}
th,td{padding:5px 12px;border-bottom:1px solid #e6e9ef;text-align:right;vertical-align:top}
th{background:#f4f6f9;font-weight:600}
.l{text-align:left}
td.main b{font-weight:600}
.up{color:#1b7f3b}.down{color:#b3261e}
.delta{font-size:12px;margin-left:6px}
tr.chosen td{background:#fff6d8;font-weight:600}
.legends{display:flex;flex-wrap:wrap;gap:4px 40px;margin:14px 0 18px}
.legends>div{flex:1;min-width:380px}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0;
 font-size:13px}
dl.legend dt{font-weight:600;font-family:ui-monospace,Menlo,Consolas,monospace}
dl.legend dd{margin:0;color:#3c4353}
dl.config{grid-template-columns:max-content 1fr max-content 1fr max-content 1fr;gap:3px 14px}
dl.config dd{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.chart img{max-width:100%;height:auto}
.bars{display:flex;flex-wrap:wrap;gap:28px}
.bargroup{min-width:360px;flex:1}
.barrow{display:grid;grid-template-columns:80px 1fr 48px;align-items:center;gap:8px;margin:3px 0;
 font-size:13px}
.track{background:#eef1f5;height:16px;border-radius:3px;overflow:hidden}
.fill{height:100%}
.cls{border:1px solid #dfe4ec;border-radius:8px;padding:12px 16px;margin:14px 0}
.cls header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 12px;margin-bottom:6px}
.mode{border-top:1px solid #edf0f4;padding:10px 0 4px}
.pair{display:flex;flex-wrap:wrap;gap:10px 30px}
.label{font-size:12px;color:#5d6577;margin:0 0 4px;max-width:560px}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:"""
    + str(THUMB + 16)
    + """px}
figure img{width:"""
    + str(THUMB)
    + "px;height:"
    + str(THUMB)
    + """px;object-fit:contain;
 border:1px solid #cfd5df;border-radius:3px;background:#f7f8fa;display:block}
img.px{image-rendering:pixelated}
figcaption{font-size:11px;line-height:1.3;margin-top:3px;overflow-wrap:anywhere}
.note{background:#f4f6f9;border-left:3px solid #b8c2d3;padding:6px 10px;font-size:13px;
 color:#3c4353;margin:8px 0}
details{margin:10px 0}
summary{cursor:pointer;color:#2f5fb3}
footer{margin-top:40px;font-size:12px;color:#5d6577}
"""
)


def render(result: RunResult, *, generated_per_mode: int = 4, max_classes: int | None = 50) -> str:
    """The report page of ``result``, as one HTML string."""
    _check_count(generated_per_mode, "generated_per_mode")
    if max_classes is not None:
        _check_count(max_classes, "max_classes", "or None")
    attribute = escape(result.attribute)
    body = [
        _header(result),
        '<h2 id="accuracy">Accuracy before and after repair</h2>',
        _accuracy_table(result),
        _chart(result),
        f'<h2 id="modes">Failure modes per class ({attribute})</h2>',
        _modes(result, generated_per_mode, max_classes),
        '<h2 id="selection">Hyper-parameter selection</h2>',
        _selection(result),
        _groups(result),
        '<h2 id="config">Configuration</h2>',
        _config(result),
        f"<footer>Written by failmodes {escape(str(result.config.get('version', '')))}. "
        "The method follows Chegini &amp; Feizi, \u201cIdentifying and Mitigating Model "
        "Failures through Few-shot CLIP-aided Diffusion Generation\u201d "
        f'(<a href="{PAPER}">arXiv 2312.05464</a>).</footer>',
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>failmodes report: {attribute}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _check_count(value: Any, name: str, alternative: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        also = f" {alternative}" if alternative else ""
        raise ValueError(f"{name} must be an integer >= 0{also}, got {value!r}")


# ---------------------------------------------------------------- pieces
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _header(result: RunResult) -> str:
    cfg = result.config

    def setting(name: str, key: str, grid: str | None = None) -> str:
        if key not in cfg:
            return ""
        text = f"<span>{escape(name)} <b>{escape(str(cfg[key]))}</b>"
        candidates = cfg.get(grid) if grid else None
        if isinstance(candidates, list) and len(candidates) > 1:
            text += ' <span class="muted">of ' + escape(", ".join(map(str, candidates))) + "</span>"
        return text + "</span>"

    settings = [
        f"<span>attribute <b>{escape(result.attribute)}</b></span>",
        setting("k", "k", "k_grid"),
        setting("\u03bb", "lam", "lam_grid"),
        setting("images per mode", "images_per_mode", "images_per_mode_grid"),
        setting("seed", "seed"),
        setting("failmodes", "version"),
    ]
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
    cards = "".join(f'<div class="stat"><b>{_fmt(v)}</b><span>{t}</span></div>' for v, t in stats)
    n_modes = sum(len(v) for v in result.modes.modes.values())
    return (
        "<header><h1>failmodes report</h1>"
        f'<div class="muted">{len(result.class_names)} classes \u00b7 {n_modes} failure modes '
        f"({escape(result.attribute)}) \u00b7 repaired by refitting the linear head</div>"
        '<nav><a href="#accuracy">accuracy</a><a href="#modes">failure modes</a>'
        '<a href="#selection">selection</a><a href="#config">configuration</a></nav>'
        f'<div class="settings">{"".join(settings)}</div>'
        f'<div class="stats">{cards}</div>'
        + (
            '<p class="muted small">Caption accuracy: among captioned debug_seed failures whose '
            "true value was a candidate, the share captioned with it.</p>"
            if result.caption_accuracy is not None
            else ""
        )
        + "</header>"
    )


def _accuracy_table(result: RunResult) -> str:
    frame = result.to_frame()
    columns = [c for c in ("test", "debug_seed", "debug_heldout", "worst_group_test") if c in frame]
    head = '<th class="l">method</th>' + "".join(f"<th>{c}</th>" for c in columns)
    rows = []
    for method in frame.index:
        cells = [f'<td class="l"><b>{escape(str(method))}</b></td>']
        for column in columns:
            value = frame.loc[method, column]
            text = f"<b>{_fmt(value)}</b>"
            if method != "before" and "before" in frame.index:
                base = frame.loc["before", column]
                if not (_missing(value) or _missing(base)):
                    delta = float(value) - float(base)
                    kind = "up" if delta > 5e-4 else "down" if delta < -5e-4 else "muted"
                    text += f'<span class="delta {kind}">{delta:+.3f}</span>'
            cells.append(f'<td class="main">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    methods = "".join(
        f"<dt>{escape(str(m))}</dt><dd>{escape(METHODS[m])}</dd>"
        for m in frame.index
        if m in METHODS
    )
    splits = "".join(f"<dt>{c}</dt><dd>{escape(SPLITS[c])}</dd>" for c in columns)
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="muted small">Accuracy in [0, 1]; the small numbers are the change from '
        "<b>before</b>.</p>"
        f'<div class="legends"><div><h4>Methods</h4><dl class="legend">{methods}</dl></div>'
        f'<div><h4>Splits</h4><dl class="legend">{splits}</dl></div></div>'
    )


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _chart(result: RunResult) -> str:
    """Accuracy per method on test and debug_heldout: matplotlib if installed, else HTML bars."""
    methods = [m for m in result.accuracy]
    splits = [s for s in ("test", "debug_heldout") if all(s in result.accuracy[m] for m in methods)]
    if not methods or not splits:
        return ""
    png = _matplotlib_chart(result, methods, splits)
    title = "<h3>Accuracy per method on test and debug_heldout</h3>"
    if png is not None:
        return (
            f'<div class="chart">{title}<img alt="bar chart of accuracy per method on test and '
            f'debug_heldout" src="data:image/png;base64,{base64.b64encode(png).decode()}"></div>'
        )
    groups = []
    for split in splits:
        rows = []
        for method in methods:
            value = result.accuracy[method][split]
            width = 0.0 if _missing(value) else max(0.0, min(1.0, float(value))) * 100
            rows.append(
                f'<div class="barrow"><span>{escape(method)}</span><div class="track">'
                f'<div class="fill" style="width:{width:.1f}%;background:{COLORS[split]}">'
                f"</div></div><span>{_fmt(value)}</span></div>"
            )
        groups.append(f'<div class="bargroup"><h4>{split}</h4>{"".join(rows)}</div>')
    return f'<div class="chart">{title}<div class="bars">{"".join(groups)}</div></div>'


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
        bars = axes.bar(positions, values, width * 0.92, label=split, color=COLORS[split])
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


def _modes(result: RunResult, generated_per_mode: int, max_classes: int | None) -> str:
    modes = result.modes
    names = result.class_names
    attribute = get_attribute(result.attribute)
    counts = modes.counts()
    described = modes.descriptions()
    per_class = Counter(names[int(y)] for y in modes.labels)
    examples: dict[tuple[int, str | None], list[FailureExample]] = {}
    for example in result.examples:
        examples.setdefault((example.label, example.value), []).append(example)
    parts = [
        f'<p class="muted">Each debug_seed failure is captioned with the most likely of its '
        f"class's proposed {escape(attribute.plural or 'values')}; per class, the most frequent "
        "ones are its failure modes. Classes are listed by their number of debug_seed failures, "
        "most first."
        + (
            " Failure thumbnails show the true and predicted class and the caption with its "
            "score; generated images are the first of their mode."
            if result.examples
            else ""
        )
        + "</p>"
    ]
    if not result.examples:
        parts.append(
            '<p class="note">This result holds no failure images (its <code>examples</code> '
            "are empty), so only the generated images are shown. To add failures, set "
            "<code>result.examples = failmodes.results.failure_examples(debug, result.modes)"
            "</code> and write the report again.</p>"
        )
    with_modes = [n for n in names if modes.modes.get(n)]
    with_modes.sort(key=lambda n: (-per_class[n], names.index(n)))
    if max_classes is not None and len(with_modes) > max_classes:
        with_modes, rest = with_modes[:max_classes], with_modes[max_classes:]
    else:
        rest = []
    shown = {names.index(n) for n in with_modes}
    generated = _generated_samples(result, generated_per_mode, shown)
    for name in with_modes:
        label = names.index(name)
        captioned = counts.get(name, Counter())
        n_failures = per_class[name]
        uncaptioned = n_failures - sum(captioned.values())
        spread = " \u00b7 ".join(
            f"{escape(v)} {c}"
            for v, c in sorted(captioned.items(), key=lambda vc: (-vc[1], str(vc[0])))
        )
        if uncaptioned:
            spread += f" \u00b7 <i>no caption</i> {uncaptioned}"
        predicted = {
            value: " \u00b7 ".join(
                f"{escape(p)} {c}"
                for p, c in Counter(
                    names[int(pred)]
                    for y, pred, cap in zip(
                        modes.labels, modes.predictions, modes.captions, strict=True
                    )
                    if int(y) == label and cap.value == value
                ).most_common()
            )
            for value in modes.modes[name]
        }
        blocks = [
            f'<section class="cls"><header><h3>{escape(name)}</h3>'
            f'<span class="muted">{n_failures} debug_seed failures</span></header>'
            f'<div class="label">Captions: {spread}</div>'
        ]
        for value in modes.modes[name]:
            shown = examples.get((label, value), [])
            failures = (
                '<div><div class="label">Failures (debug_seed)</div><div class="thumbs">'
                + (
                    "".join(_failure_figure(e, names) for e in shown)
                    or '<span class="muted small">no thumbnails</span>'
                )
                + "</div></div>"
                if result.examples
                else ""
            )
            images, prompt, total = generated.get((label, value), ([], None, 0))
            if prompt is None:
                made = '<span class="muted small">no generated images</span>'
                made_label = "Generated"
            else:
                made = "".join(
                    f"<figure>{_img(png, f'generated: {prompt}')}"
                    f'<figcaption class="muted">#{i + 1}</figcaption></figure>'
                    for i, png in enumerate(images)
                )
                made_label = (
                    f"Generated ({total} images, {len(images)} shown), prompt: "
                    f"\u201c{escape(prompt)}\u201d"
                )
            blocks.append(
                f'<div class="mode"><h4>{escape(described[(name, value)])}</h4>'
                f'<div class="label">Predicted as: {predicted[value]}</div>'
                f'<div class="pair">{failures}'
                f'<div><div class="label">{made_label}</div>'
                f'<div class="thumbs">{made}</div></div>'
                "</div></div>"
            )
        blocks.append("</section>")
        parts.append("".join(blocks))
    if rest:
        lines = "".join(
            f"<li>{escape(described[(n, v)])}</li>" for n in rest for v in modes.modes[n]
        )
        parts.append(
            f"<details><summary>The failure modes of {len(rest)} more classes, without images "
            f"(the page shows images for the {len(with_modes)} classes with the most "
            f"failures)</summary><ul>{lines}</ul></details>"
        )
    without = [n for n in names if not modes.modes.get(n)]
    if without:
        parts.append(
            '<p class="muted">Classes without failure modes (no captioned debug_seed '
            f"failures): {escape(', '.join(without))}.</p>"
        )
    return "".join(parts)


def _failure_figure(example: FailureExample, names: list[str]) -> str:
    true, predicted = names[example.label], names[example.prediction]
    value = "no caption" if example.value is None else example.value
    alt = f"{true} predicted as {predicted}, captioned {value}"
    return (
        f"<figure>{_img(example.png, alt)}<figcaption>"
        f"true: <b>{escape(true)}</b><br>pred: <b>{escape(predicted)}</b><br>"
        f'<span class="muted">{escape(value)} ({example.score:.2f})</span>'
        "</figcaption></figure>"
    )


def _img(png: bytes, alt: str) -> str:
    width = int.from_bytes(png[16:20], "big") if png[:8] == b"\x89PNG\r\n\x1a\n" else THUMB
    pixelated = ' class="px"' if width < THUMB else ""
    data = base64.b64encode(png).decode()
    return f'<img{pixelated} alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _generated_samples(
    result: RunResult, per_mode: int, labels: set[int]
) -> dict[tuple[int, str | None], tuple[list[bytes], str | None, int]]:
    """``{(label, value): (first PNGs, prompt, images in all)}`` of the targeted generated set.

    Only images of ``labels`` are encoded.
    """
    from failmodes.results import _png, _thumbnail

    generated = result.generated
    out: dict[tuple[int, str | None], tuple[list[bytes], str | None, int]] = {}
    for i in range(len(generated)):  # images are read only when shown
        request = generated.requests[int(generated.request_index[i])]
        key = (int(generated.labels[i]), generated.values[i])
        pngs, _, total = out.get(key, ([], request.prompt, 0))
        if len(pngs) < per_mode and key[0] in labels:
            thumb = _thumbnail(generated.images[i], THUMB)
            if thumb is not None:
                pngs.append(_png(thumb))
        out[key] = (pngs, request.prompt, total + 1)
    return out


def _selection(result: RunResult) -> str:
    frame = result.selection
    if frame is None or not len(frame):
        return '<p class="muted">No hyper-parameter search was recorded.</p>'
    cfg = result.config
    columns = list(frame.columns)
    head = "".join(
        f'<th class="{"l" if c == "method" else ""}">{escape(str(c))}</th>' for c in columns
    )
    rows = []
    chosen_marked = False
    for _, row in frame.iterrows():
        chosen = (
            not chosen_marked
            and row.get("method", "failmodes") == "failmodes"
            and all(k in row and k in cfg and row[k] == cfg[k] for k in ("k", "images_per_mode"))
            and "lam" in row
            and math.isclose(float(row["lam"]), float(cfg.get("lam", math.nan)))
        )
        chosen_marked |= chosen
        cells = "".join(
            f'<td class="{"l" if c == "method" else ""}">{_cell(c, _plain(row[c]))}</td>'
            for c in columns
        )
        rows.append(f'<tr class="chosen">{cells}</tr>' if chosen else f"<tr>{cells}</tr>")
    return (
        '<p class="muted">Every candidate is fitted and scored on the validation part of the '
        "debug set (never on debug_heldout or test). <b>val_acc</b>: accuracy on the "
        "validation part; <b>val_failure_acc</b>: accuracy on the original head's failures "
        "among it; <b>eligible</b>: val_acc at most the tolerance below the original head's. "
        "The eligible candidate with the best val_failure_acc is chosen (if none is eligible, "
        "the one with the best val_acc); it is highlighted for failmodes. The baselines "
        "choose their \u03bb the same way.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _cell(column: str, value: Any) -> str:
    """Scores with three decimals; settings (``lam``) as written."""
    if isinstance(value, float) and not column.startswith("val_") and not math.isnan(value):
        return escape(f"{value:g}")
    return _fmt(value)


def _config(result: RunResult) -> str:
    """Every setting of the run, lists written inline."""
    items = "".join(
        f"<dt>{escape(str(key))}</dt><dd>{escape(json.dumps(value, default=str))}</dd>"
        for key, value in sorted(result.config.items(), key=lambda kv: str(kv[0]))
    )
    return f'<dl class="legend config">{items}</dl>'


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones, so that they format like them."""
    return value.item() if hasattr(value, "item") else value


def _groups(result: RunResult) -> str:
    if not result.group_accuracy:
        return ""
    methods = list(result.group_accuracy)
    values = sorted({g for m in methods for g in result.group_accuracy[m]})
    head = '<th class="l">value</th>' + "".join(f"<th>{escape(m)}</th>" for m in methods)
    rows = "".join(
        f'<tr><td class="l">{escape(v) if v else "<i>unknown</i>"}</td>'
        + "".join(f"<td>{_fmt(result.group_accuracy[m].get(v))}</td>" for m in methods)
        + "</tr>"
        for v in values
    )
    return (
        f"<details><summary>Test accuracy per {escape(result.attribute)} value "
        f"({len(values)} values)</summary>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></details>"
    )
