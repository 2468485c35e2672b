"""What to tell the instructor about a submission before nbgrader runs it.

A notebook that is not valid JSON would make nbgrader abandon the student's whole assignment (and
every other notebook's feedback with it): it is set aside as `NAME.ipynb.invalid` (content kept),
so nbgrader scores that notebook zero and grades the others. Read-only cells a student edited are
named: nbgrader puts the originals back before grading, which the log should say.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

__all__ = ["precheck"]


def _locked_sources(nb: dict) -> dict[str, str]:
    sources = {}
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("locked") and meta.get("grade_id"):
            source = cell.get("source", "")
            sources[meta["grade_id"]] = "".join(source) if isinstance(source, list) else source
    return sources


def precheck(submitted: Path, release: Path) -> list[str]:
    """Notes on the notebooks in `submitted` (one student's folder); sets invalid ones aside."""
    notes = [
        f"{path.stem} was set aside earlier as not a valid notebook: scores 0"
        for path in sorted(submitted.glob("*.ipynb.invalid"))
    ]
    for path in sorted(submitted.glob("*.ipynb")):
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # any unreadable notebook: JSON, encoding, nbformat errors
            path.rename(path.with_name(path.name + ".invalid"))
            notes.append(
                f"{path.name} is not a valid notebook ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:80] if str(exc) else 'unreadable'}): "
                f"set aside as {path.name}.invalid, scores 0"
            )
            continue
        released = release / path.name
        if not released.is_file():
            continue
        original = _locked_sources(json.loads(released.read_text()))
        edited = sorted(
            gid
            for gid, src in _locked_sources(nb).items()
            if gid in original and src != original[gid]
        )
        if edited:
            notes.append(
                f"{path.name}: edited read-only cell(s) {', '.join(edited)} "
                "(nbgrader restores the originals before grading)"
            )
    return notes
