"""`make lab` as a student runs it: the server, a kernel opened through it, what the kernel gets.

The server is started by `make lab` itself (extra flags through `LAB_ARGS`: a free loopback port,
a token, no browser), from an environment with no `WORKBOOK_*` variables — a student's shell.
A kernel is opened through the server's REST API and driven over its websocket, as JupyterLab
does, so anything the server's configuration leaks into kernels (nbgrader_config.py is loaded by
the nbgrader server extension) shows up here; nbval never goes through the server.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket
from _lab_server import TOKEN, execute_on_channels, running_lab
from _lab_server import get as _get

pytestmark = pytest.mark.slow


def _execute(base: str, code: str, timeout: float = 120) -> str:
    """Start a kernel through the server, run `code`, return its stdout; shut the kernel down."""
    request = urllib.request.Request(
        f"{base}/api/kernels?token={TOKEN}",
        method="POST",
        data=b'{"name": "python3"}',
        headers={"Content-Type": "application/json"},
    )
    kernel_id = json.loads(urllib.request.urlopen(request, timeout=30).read())["id"]
    ws = websocket.create_connection(
        f"{base.replace('http', 'ws')}/api/kernels/{kernel_id}/channels?token={TOKEN}",
        timeout=timeout,
    )
    try:
        return execute_on_channels(ws, code, timeout)
    finally:
        ws.close()
        urllib.request.urlopen(
            urllib.request.Request(
                f"{base}/api/kernels/{kernel_id}?token={TOKEN}", method="DELETE"
            ),
            timeout=30,
        )


def _serve(root: Path, venv_env: dict[str, str], target: str) -> Iterator[str]:
    gradebook = root / "gradebook.db"
    had_gradebook = gradebook.exists()
    with running_lab(root, venv_env, target) as lab:
        yield lab.base
    if target == "lab":
        assert had_gradebook or not gradebook.exists(), (
            "the student's JupyterLab created gradebook.db"
        )


@pytest.fixture(scope="module")
def lab(root: Path, venv_env: dict[str, str]):
    yield from _serve(root, venv_env, "lab")


@pytest.fixture(scope="module")
def instructor_lab(root: Path, venv_env: dict[str, str]):
    """The instructor's JupyterLab loads nbgrader_config.py through Formgrader."""
    yield from _serve(root, venv_env, "instructor-lab")


def test_the_server_is_rooted_at_the_notebooks_and_serves_the_start_notebook(lab: str) -> None:
    notebook = json.loads(_get(f"{lab}/api/contents/00_start_here.ipynb?token={TOKEN}"))
    assert notebook["content"]["cells"][0]["source"].startswith("# Chapter 7")
    listing = json.loads(_get(f"{lab}/api/contents?token={TOKEN}"))
    names = {item["name"] for item in listing["content"]}
    assert "source" not in names and "solutions" not in names, names  # students see notebooks only


@pytest.mark.parametrize("server", ["lab", "instructor_lab"])
def test_a_kernel_opened_through_the_server_builds_the_local_model(
    server: str, request: pytest.FixtureRequest
) -> None:
    """Grading's backend (sim) must never leak from nbgrader_config.py into a kernel of a server."""
    out = _execute(
        request.getfixturevalue(server),
        (
            "import os\n"
            "print('LM setting:', os.environ.get('WORKBOOK_LM'))\n"
            "print('latency setting:', os.environ.get('WORKBOOK_SIM_LATENCY'))\n"
            "import dspy_workbook as wb\n"
            "lm = wb.setup(quiet=True)\n"
            "print('backend:', wb.describe(lm).name)\n"
        ),
    )
    assert "LM setting: None" in out, out
    assert "latency setting: None" in out, out
    assert "backend: local" in out, out


def test_students_get_validate_but_not_the_instructor_tools(lab: str) -> None:
    page = _get(f"{lab}/lab?token={TOKEN}").decode()
    config = json.loads(
        page.split('id="jupyter-config-data" type="application/json">', 1)[1].split("</script>", 1)[
            0
        ]
    )
    disabled = set(config.get("disabledExtensions", []))
    assert {
        "@jupyter/nbgrader:create-assignment",
        "@jupyter/nbgrader:menu",
        "@jupyter/nbgrader:assignment-list",
        "@jupyter/nbgrader:course-list",
    } <= disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled
    assert "@jupyter/nbgrader" in page, "the nbgrader JupyterLab extension is not installed"
    with pytest.raises(urllib.error.HTTPError) as missing:
        _get(f"{lab}/formgrader?token={TOKEN}")
    assert missing.value.code == 404


def test_a_notebook_opens_with_its_kernels_language_info(lab: str) -> None:
    """JupyterLab writes the kernel's `language_info` into an opened notebook and marks it
    modified when that differs from what was served: served and kernel's must be equal."""
    notebook = json.loads(_get(f"{lab}/api/contents/01_caching.ipynb?token={TOKEN}"))
    served = notebook["content"]["metadata"]["language_info"]
    kernel = json.loads(
        _execute(lab, "import json; print(json.dumps(get_ipython().kernel.language_info))")
    )
    assert served == kernel
