"""Every master runs top to bottom in a fresh kernel — and again, in the same folder, identically.

The second run starts where the first left its files (caches, logs), which is where a student's
"Restart & Run All" starts. Output that legitimately varies is tagged `nbval-ignore-output` and
left out of the comparison; every other cell must print the same thing both times.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dspy_workbook.grading import grading_env
from tools.build import master_notebooks

pytestmark = pytest.mark.slow
MASTERS = master_notebooks()
VOLATILE = ("execution_count", "metadata", "transient")


def _comparable(outputs: list) -> list[dict]:
    """Outputs without volatile fields or images, consecutive stream pieces joined (as nbval does):
    how stdout is split into messages depends on timing, what it says does not."""
    merged: list[dict] = []
    for out in outputs:
        out = {k: v for k, v in out.items() if k not in VOLATILE}
        if "image/png" in out.get("data", {}):
            continue
        if (
            merged
            and out.get("output_type") == "stream"
            and merged[-1].get("output_type") == "stream"
            and merged[-1]["name"] == out["name"]
        ):
            merged[-1] = {**merged[-1], "text": merged[-1]["text"] + out["text"]}
        else:
            merged.append(out)
    return merged


def _run(path: Path) -> list[list[dict]]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return [
        [] if "nbval-ignore-output" in cell.metadata.get("tags", []) else _comparable(cell.outputs)
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


@pytest.mark.parametrize("master", MASTERS, ids=[m.stem for m in MASTERS])
def test_master_runs_twice_in_a_fresh_kernel_with_the_same_output(
    master: Path, tmp_path: Path, venv_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in grading_env(venv_env).items():
        monkeypatch.setenv(key, value)
    copy = tmp_path / master.name
    shutil.copy(master, copy)
    first = _run(copy)
    second = _run(copy)
    changed = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b]
    assert not changed, (
        f"{master.name}: code cells {changed} printed something else on the second run"
    )
