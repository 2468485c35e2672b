"""nbval compares each master with its stored outputs, so those outputs must be fresh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.build import master_notebooks

MASTERS = master_notebooks()


@pytest.mark.parametrize("master", MASTERS, ids=[m.stem for m in MASTERS])
def test_every_code_cell_has_been_executed_since_it_last_changed(master: Path) -> None:
    cells = [c for c in json.loads(master.read_text())["cells"] if c["cell_type"] == "code"]
    stale = [i for i, c in enumerate(cells) if c["execution_count"] is None]
    assert not stale, f"{master.name}: code cells {stale} changed since the last `make outputs`"
    assert any(c["outputs"] for c in cells), (
        f"{master.name} has no stored outputs: run `make outputs`"
    )
