"""The student's server fills in the kernel's `language_info` as a notebook is served (so opening
it does not mark it modified); `tests/test_lab_starts.py` checks it against a real kernel."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dspy_workbook.lab_metadata import kernel_language_info, with_kernel_language_info


def _model(metadata: dict) -> dict:
    return {"type": "notebook", "content": {"metadata": metadata, "cells": []}}


def test_a_python_notebook_gets_this_pythons_language_info() -> None:
    model = with_kernel_language_info(_model({"language_info": {"name": "python"}}))
    info = model["content"]["metadata"]["language_info"]
    assert info == kernel_language_info()
    assert info["version"] == sys.version.split()[0] and info["name"] == "python"
    bare = with_kernel_language_info(_model({}))
    assert bare["content"]["metadata"]["language_info"] == kernel_language_info()


def test_other_languages_files_and_listings_are_left_alone() -> None:
    other = _model({"language_info": {"name": "julia", "version": "1.10"}})
    assert with_kernel_language_info(other)["content"]["metadata"]["language_info"]["name"] == (
        "julia"
    )
    text = {"type": "file", "content": "x"}
    assert with_kernel_language_info(dict(text)) == text
    unloaded = {"type": "notebook", "content": None}
    assert with_kernel_language_info(dict(unloaded)) == unloaded


def test_the_students_settings_enable_it(root: Path) -> None:
    for settings in ("etc/jupyter-student", "hub/jupyter/student"):
        server = json.loads((root / settings / "jupyter_server_config.json").read_text())
        manager = server["ServerApp"]["contents_manager_class"]
        assert manager == "dspy_workbook.lab_metadata.StudentContentsManager"
