"""Code blocks of the Markdown docs, as the docs tests read them.

A fenced ``python`` block runs, in order with the page's other blocks, in one namespace per
page (as a notebook would), in an empty working folder, offline. A block that cannot run here
(a GPU, a download, an API key, a user's own data) is preceded by a comment that says why::

    <!-- docs-test: skip (needs a GPU and downloads Stable Diffusion) -->

A skipped block must still compile, and the names it imports from failmodes must exist. A page
whose blocks take long (a full demo run) carries ``<!-- docs-test: slow -->``, which marks its
test ``slow`` (CI runs those too). A ``text`` block preceded by ``<!-- docs-test: output -->``
is what the Python block before it prints, and the test compares them (trailing spaces
aside), so printed figures in the docs are the ones the code gives. ``bash`` lines that call
``failmodes`` are parsed by the command line's own parser.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*(?:\((?P<why>[^)]*)\))?\s*-->")
SLOW = "<!-- docs-test: slow -->"
OUTPUT = "<!-- docs-test: output -->"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})\s*(?P<lang>[\w+-]*)")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None  # the reason, when the block is not run
    expected: str | None = None  # what it prints, when the page shows it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    """The README and every page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``, in order."""
    lines = page.read_text().splitlines()
    out: list[Block] = []
    i, previous = 0, ""
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, ticks, lang = match["indent"], match["ticks"], match["lang"].lower()
        body, j = [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(ticks):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        code = textwrap.dedent("\n".join(body)) + "\n"
        if previous == OUTPUT:
            if not out or out[-1].lang not in ("python", "py") or out[-1].skip is not None:
                raise ValueError(f"{page}:{i + 1}: an output block must follow a Python block")
            out[-1].expected = code
            previous, i = "", j + 1
            continue
        skip = SKIP.fullmatch(previous)
        if skip is not None and not skip["why"]:
            raise ValueError(f"{page}:{i + 1}: a skipped block must say why: skip (reason)")
        out.append(Block(page, i + 1, lang, code, skip["why"] if skip else None))
        previous, i = "", j + 1
    return out


def is_slow(page: Path) -> bool:
    return SLOW in page.read_text()
