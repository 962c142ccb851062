"""``RunResult.report``: one self-contained, escaped HTML page, from a real small run."""

from __future__ import annotations

import io
import re
import sys
from dataclasses import asdict, replace

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from PIL import Image

from failmodes import (
    Caption,
    Debugger,
    FailureModes,
    FailureSet,
    GeneratedSet,
    GenerationRequest,
    RunResult,
)
from failmodes.results import FailureExample
from failmodes.thumbnails import failure_examples
from failmodes.toyworld import ToyWorld, demo_components

PAPER = "https://arxiv.org/abs/2312.05464"


@pytest.fixture(scope="module")
def small_run():
    """A real run of the demo's components on a small world (about 10 s on one core)."""
    pytest.importorskip("open_clip")
    world = ToyWorld(seed=11)
    debug = world.debug(1000)
    dbg = Debugger(**demo_components(world, k=2, lam=[0.5, 1.0], images_per_mode=5, cache=False))
    result = dbg.run(world.train(20), debug, world.test(400), seed=0)
    if not result.examples:
        result.examples = failure_examples(debug, result.modes)
    return debug, result


def _external_references(page: str) -> list[str]:
    """Every ``src``/``href``/``url()`` that is neither inline data, an anchor nor the paper."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page)
    refs += re.findall(r"url\(\s*['\"]?([^'\")]+)", page)
    return [r for r in refs if not r.startswith(("data:image/png;base64,", "#")) and r != PAPER]


def test_report_is_one_self_contained_page(small_run, tmp_path):
    _, result = small_run
    path = result.report(tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert _external_references(page) == []
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "<iframe" not in page.lower() and "@import" not in page


def test_report_shows_settings_counts_accuracy_and_modes(small_run, tmp_path):
    _, result = small_run
    page = result.report(tmp_path / "report.html").read_text(encoding="utf-8")
    cfg = result.config
    for text in (f"k <b>{cfg['k']}</b>", f"seed <b>{cfg['seed']}</b>", cfg["version"]):
        assert str(text) in page
    assert f"<b>{len(result.failures.seed)}</b><span>debug_seed</span>" in page
    assert f"<b>{len(result.generated)}</b><span>generated images</span>" in page
    assert f"{result.caption_accuracy:.1%}" in page
    frame = result.to_frame()
    for method in ("before", "failmodes", "random", "uniform", "refit"):
        for split in ("test", "debug_seed", "debug_heldout", "worst_group_test"):
            assert f"<b>{frame.loc[method, split]:.3f}</b>" in page, (method, split)
    for split in ("test", "debug_seed", "debug_heldout", "worst_group_test"):
        assert f"<dt>{split}</dt>" in page
    for line in result.modes.describe():
        assert f"<h4>{escape(line)}</h4>" in page  # as Jinja2 escapes it
    for request in result.generated.requests:
        if any(result.generated.request_index == result.generated.requests.index(request)):
            assert f"\u201c{request.prompt}\u201d" in page
    assert '<tr class="chosen">' in page  # the chosen candidate of the search
    m = result.mode_accuracy  # ToyWorld's debug set knows each image's true value
    assert f"{m.n_in} of {m.n_in + m.n_out} debug_heldout failures" in page
    row = "".join(
        f'<td class="main">{m.accuracy["uniform"][side]:.3f}</td>'
        for side in ("in_modes", "out_of_modes")
    )
    assert f'<td class="l"><b>uniform</b></td>{row}' in page


def test_report_embeds_failure_thumbnails(small_run, tmp_path):
    _, result = small_run
    page = result.report(tmp_path / "report.html", generated_per_mode=2).read_text("utf-8")
    figures = re.findall(r"<figure>(.*?)</figure>", page)
    failures = [f for f in figures if "true: " in f]
    assert len(failures) == len(result.examples) > 0
    assert all('src="data:image/png;base64,' in f for f in failures)
    n_modes = sum(len(v) for v in result.modes.modes.values())
    assert len(figures) - len(failures) <= 2 * n_modes
    names = result.class_names
    example = result.examples[0]
    assert f"true: <b>{names[example.label]}</b><br>pred: <b>{names[example.prediction]}" in page


def test_failure_examples_are_few_small_and_deterministic(small_run):
    debug, result = small_run
    examples = failure_examples(debug, result.modes, per_mode=3, size=16)
    per_mode: dict = {}
    for e in examples:
        per_mode[(e.label, e.value)] = per_mode.get((e.label, e.value), 0) + 1
        name = result.class_names[e.label]
        assert e.value in result.modes.modes[name]
        assert e.index in set(result.modes.indices.tolist())
        assert e.prediction != e.label
        with Image.open(io.BytesIO(e.png)) as image:
            assert image.format == "PNG" and max(image.size) <= 16
    assert set(per_mode.values()) <= {1, 2, 3}
    assert len(per_mode) == sum(len(v) for v in result.modes.modes.values())
    again = failure_examples(debug, result.modes, per_mode=3, size=16)
    assert [asdict(e) for e in again] == [asdict(e) for e in examples]
    assert failure_examples(debug, result.modes, per_mode=0) == []
    with pytest.raises(ValueError, match="per_mode"):
        failure_examples(debug, result.modes, per_mode=-1)


def test_report_shows_images_for_the_classes_with_most_failures(small_run, tmp_path):
    _, result = small_run
    page = result.report(tmp_path / "report.html", max_classes=2).read_text(encoding="utf-8")
    assert page.count('<section class="cls">') == 2
    per_class = np.bincount(result.modes.labels, minlength=len(result.class_names))
    shown = re.findall(r'<section class="cls"><header><h3>(.*?)</h3>', page)
    counts = [per_class[result.class_names.index(n)] for n in shown]
    assert min(counts) == sorted(per_class, reverse=True)[1]
    for line in result.modes.describe():  # the other classes' modes, in words
        assert escape(line) in page


def test_report_without_examples_says_so(small_run, tmp_path):
    _, result = small_run
    bare = replace(result, examples=[])
    page = bare.report(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "holds no failure images" in page
    assert "true: " not in page
    for line in result.modes.describe():
        assert escape(line) in page


def test_chart_without_matplotlib_is_drawn_in_html(small_run, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    _, result = small_run
    page = result.report(tmp_path / "with.html").read_text(encoding="utf-8")
    assert 'alt="bar chart of accuracy' in page and 'class="bars"' not in page
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    page = result.report(tmp_path / "without.html").read_text(encoding="utf-8")
    assert 'class="bars"' in page and 'alt="bar chart of accuracy' not in page
    heldout = result.accuracy["failmodes"]["debug_heldout"]
    assert f"width:{heldout * 100:.1f}%" in page


def _user_result(name: str, value: str) -> RunResult:
    """A small hand-made result whose class name and value need escaping."""
    names = [name, "fox"]
    modes = FailureModes.from_captions(
        class_names=names,
        attribute="background",
        indices=np.array([0, 1, 2]),
        labels=np.array([0, 0, 1]),
        predictions=np.array([1, 1, 0]),
        captions=[Caption(value, 0.9), Caption(value, 0.8), Caption(None, 0.1)],
        candidates={name: [value, "on ice"], "fox": ["at sea"]},
        k=1,
    )
    failures = FailureSet(
        labels=np.array([0, 0, 1, 0, 1, 1]),
        predictions=np.array([1, 1, 0, 1, 1, 1]),
        validation=np.array([4, 5]),
        seed=np.array([0, 1, 2]),
        heldout=np.array([3]),
    )
    request = GenerationRequest(0, name, value, f"a photo of a {name} {value}", 2, seed=1)
    tile = Image.new("RGB", (8, 8), (200, 40, 40))
    generated = GeneratedSet.from_outputs([request], [[tile, tile]])
    png = io.BytesIO()
    tile.save(png, format="PNG")
    accuracy = {
        "before": {"test": 0.5, "debug_seed": 0.0, "debug_heldout": 0.0, "validation": 0.5},
        "failmodes": {"test": 0.75, "debug_seed": 1.0, "debug_heldout": float("nan")},
    }
    return RunResult(
        class_names=names,
        attribute="background",
        accuracy=accuracy,
        group_accuracy={},
        failures=failures,
        modes=modes,
        generated=generated,
        selection=pd.DataFrame(
            [
                {
                    "method": "failmodes",
                    "k": 1,
                    "images_per_mode": 2,
                    "lam": 0.5,
                    "val_acc": 0.5,
                    "chosen": True,
                }
            ]
        ),
        config={"k": 1, "lam": 0.5, "images_per_mode": 2, "seed": 0, "version": "test"},
        examples=[FailureExample(0, 0, 1, value, 0.9, png.getvalue())],
    )


def test_user_strings_are_escaped(tmp_path):
    from markupsafe import escape

    name, value = "<b>&wallet", 'in a "jungle" <i>'
    page = _user_result(name, value).report(tmp_path / "report.html").read_text("utf-8")
    assert name not in page and "<i>" not in page.replace("<i>no caption</i>", "")
    assert "&lt;b&gt;&amp;wallet" in page
    assert f"{escape(name)} {escape(value)} \u2192 predicted fox" in page
    assert "&lt;b&gt;&amp;wallet in a &#34;jungle&#34; &lt;i&gt;" in page
    assert "a photo of a &lt;b&gt;&amp;wallet" in page  # the prompt
    assert '<tr class="chosen">' in page
    assert "<b>\u2013</b>" in page  # a missing accuracy
    assert _external_references(page) == []


def test_a_script_in_a_class_name_comes_out_as_text(tmp_path):
    name, value = "<script>alert(1)</script>", "<script>x()</script>"
    page = _user_result(name, value).report(tmp_path / "report.html").read_text("utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("&lt;script&gt;alert(1)") >= 4  # heading, mode, captions, prompt, alt text


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"generated_per_mode": -1}, "generated_per_mode"), ({"max_classes": 1.5}, "max_classes")],
)
def test_report_options_are_counts(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        _user_result("wallet", "on ice").report(tmp_path / "r.html", **kw)


def test_failure_examples_read_tensors_and_arrays():
    torch = pytest.importorskip("torch")
    generator = torch.Generator().manual_seed(0)
    debug = [
        (torch.rand(3, 40, 40, generator=generator), 0),  # floats in [0, 1]
        (torch.randn(3, 40, 40, generator=generator), 0),  # normalised floats
        (np.full((40, 40, 3), 7, dtype=np.uint8), 0),  # an (H, W, C) array
        ("not an image", 0),
    ]
    modes = FailureModes.from_captions(
        class_names=["wallet", "fox"],
        attribute="background",
        indices=np.arange(4),
        labels=np.zeros(4, dtype=np.int64),
        predictions=np.ones(4, dtype=np.int64),
        captions=[Caption("on ice", 0.5)] * 4,
        candidates={"wallet": ["on ice"], "fox": []},
        k=1,
    )
    examples = failure_examples(debug, modes, per_mode=4, size=20)
    assert [e.index for e in examples] == [0, 1, 2]  # the string is skipped
    for e in examples:
        with Image.open(io.BytesIO(e.png)) as image:
            assert image.size == (20, 20) and image.mode == "RGB"
    with Image.open(io.BytesIO(examples[2].png)) as image:
        assert image.getpixel((3, 3)) == (7, 7, 7)


# ---------------------------------------------------------------- the configuration grid wraps
WRAPPING = re.compile(r"overflow-wrap\s*:\s*(anywhere|break-word)|word-break\s*:\s*break-all")
LONGEST = 40  # characters without a break that a config cell may show without a wrapping rule


def _css_rules(page: str) -> list[tuple[list[str], str]]:
    """``(selectors, declarations)`` of every rule of the page's style, media queries aside."""
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    style = re.sub(r"@media[^{]*\{((?:[^{}]*\{[^{}]*\})*)\s*\}", "", style)
    return [
        ([s.strip() for s in selectors.split(",")], body)
        for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", style)
    ]


def _config_cells(page: str) -> list[tuple[str, str]]:
    """``(tag, text)`` of every cell of the configuration grid."""
    grid = re.search(r'<dl class="([^"]*\bconfig\b[^"]*)">(.*?)</dl>', page, re.S)
    assert grid is not None, "no configuration grid"
    return re.findall(r"<(dt|dd)>(.*?)</\1>", grid.group(2), re.S)


def _wraps(page: str, tag: str) -> bool:
    """Whether a rule that matches a ``tag`` of the configuration grid wraps long words."""
    classes = re.search(r'<dl class="([^"]*\bconfig\b[^"]*)">', page).group(1).split()
    grids = {"dl", *(f".{c}" for c in classes), *(f"dl.{c}" for c in classes)}
    grids.add("dl" + "".join(f".{c}" for c in classes))
    matching = {tag, *(f"{g} {tag}" for g in grids), *(f"{g}>{tag}" for g in grids)}
    return any(
        set(selectors) & matching and WRAPPING.search(body) for selectors, body in _css_rules(page)
    )


def test_long_config_values_wrap_within_the_page(tmp_path):
    long_path = "/data/" + "/".join(f"folder_{i:02d}" for i in range(20)) + "/images.parquet"
    result = _user_result("wallet", "on ice")
    result = replace(
        result,
        config={
            **result.config,
            "cache": long_path,
            "lam_grid": [0.125 * i for i in range(40)],
            "a_setting_name_that_is_rather_long": "x" * 80,
        },
    )
    page = result.report(tmp_path / "report.html").read_text("utf-8")
    cells = _config_cells(page)
    assert any(long_path in text for _, text in cells)
    unbroken = [(tag, word) for tag, text in cells for word in text.split() if len(word) > LONGEST]
    assert unbroken, "the test needs a value without a break"
    for tag in {tag for tag, _ in unbroken}:
        assert _wraps(page, tag), f"a config <{tag}> holds a word of more than {LONGEST} characters"
    # the value columns may shrink below their longest word (a bare 1fr keeps it as a minimum)
    grid_rules = [body for selectors, body in _css_rules(page) if "dl.config" in selectors]
    columns = [re.search(r"grid-template-columns:([^;}]*)", b) for b in grid_rules]
    tracks = " ".join(c.group(1) for c in columns if c)
    assert "fr" in tracks and not re.search(r"(?<!minmax\(0,)\b\d*fr", tracks), tracks


def test_the_wrapping_check_finds_a_grid_that_does_not_wrap():
    page = (
        "<style>dl.config{grid-template-columns:max-content 1fr}dl.config dd{font-size:12px}"
        '</style><dl class="legend config"><dt>cache</dt><dd>' + "x" * 80 + "</dd></dl>"
    )
    assert not _wraps(page, "dd")
    assert _wraps(page.replace("font-size:12px", "overflow-wrap:anywhere"), "dd")


# ---------------------------------------------------------------- one rule for numbers
def test_every_score_of_the_selection_table_has_three_decimals_and_settings_are_as_set(tmp_path):
    result = _user_result("wallet", "on ice")
    row = {
        "method": "failmodes",
        "k": 1,
        "images_per_mode": 2,
        "lam": 1 / 3,
        "val_acc": 0.5,
        "val_failure_acc": 0.123456789,
        "val_failure_loss": 1.23456789,
        "guard_acc": 0.946666666,
        "eligible": True,
        "chosen": True,
    }
    result = replace(result, selection=pd.DataFrame([row]))
    page = result.report(tmp_path / "report.html").read_text("utf-8")
    table = page[page.index('id="selection"') :]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    assert cells == ["failmodes", "1", "2", "0.333333", "0.500", "0.123", "1.235", "0.947", "yes"]
    assert "0.946667" not in page


@pytest.mark.parametrize(
    ("select_by", "rule"),
    [("loss", "the lowest val_failure_loss"), ("accuracy", "the best val_failure_acc")],
)
def test_the_report_states_the_rule_the_run_chose_by(tmp_path, select_by, rule):
    result = _user_result("wallet", "on ice")
    result = replace(result, config={**result.config, "select_by": select_by})
    page = result.report(tmp_path / "report.html").read_text("utf-8")
    assert f"the eligible one with {rule} (if none" in page
