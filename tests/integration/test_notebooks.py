"""Every notebook in examples/ runs from top to bottom, offline, in a fresh kernel.

A notebook whose metadata holds ``{"failmodes": {"slow": true}}`` runs in the slow pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _notebooks():
    for path in sorted(EXAMPLES.glob("*.ipynb")):
        slow = json.loads(path.read_text()).get("metadata", {}).get("failmodes", {}).get("slow")
        yield pytest.param(path, id=path.name, marks=[pytest.mark.slow] if slow else [])


def test_there_are_notebooks():
    assert list(_notebooks())


@pytest.mark.parametrize("path", list(_notebooks()))
def test_notebook_runs(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("open_clip")
    # the kernel inherits these: offline, a headless plot backend, one thread, the test cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = nbformat.read(path, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{path.name} is committed with outputs; clear them"
    )
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute(env={**os.environ})
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
