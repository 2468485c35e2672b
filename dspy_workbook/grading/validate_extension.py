"""The Validate button, without freezing JupyterLab: a Jupyter server extension.

nbgrader's own handler for the button runs the whole notebook inside the server's event loop
(jupyter/nbgrader#1232): for as long as it runs, the server answers nothing (no saving, no other
tab; JupyterLab fails to load its own scripts), and it runs with the student's model, going
further included: 5 min 38 s for the solved Exercise 4 on the local model. This handler serves
the same two URLs the button calls (`/assignments/validate`, `/nbgrader_version`) and awaits a
subprocess (`python -m dspy_workbook.grading.validate`) that validates the way autograde grades:
the grading model, graded cells only, the grading limits — seconds, and the grader's verdict.

The student's Jupyter settings (`etc/jupyter-student/`, `hub/jupyter/student/`) enable
`dspy_workbook.grading.validate_extension` and turn nbgrader's `validate_assignment` off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from nbgrader.server_extensions.validate_assignment.handlers import NbGraderVersionHandler
from tornado import web

from .limits import STUDENT_SECONDS

__all__ = ["VALIDATE_SECONDS", "ValidateHandler", "run_validation"]

# One notebook's execution bound, plus starting nbgrader and the kernel: past it, the run is
# stopped and the dialog says so.
VALIDATE_SECONDS = STUDENT_SECONDS + 60
_TAIL = 3000  # characters of a failed run's output shown in the dialog


async def run_validation(notebook: Path, seconds: float = VALIDATE_SECONDS) -> dict[str, Any]:
    """Validate `notebook` in a subprocess (its own process group, killed after `seconds`, or
    when the caller is cancelled); nbgrader's Validate reply."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dspy_workbook.grading.validate",
        str(notebook),
        cwd=notebook.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), seconds)
    except (TimeoutError, asyncio.CancelledError) as stopped:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        if isinstance(stopped, asyncio.CancelledError):
            raise
        return {
            "success": False,
            "value": f"Validate was stopped after {seconds:g} s: a cell kept running. The grader "
            "stops such cells too (they score zero): look for a loop that never ends.",
        }
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        reply = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        detail = err.decode(errors="replace")[-_TAIL:]
        return {
            "success": False,
            "value": f"Validate failed (exit status {process.returncode}):\n{detail}",
        }
    return reply


class ValidateHandler(JupyterHandler):
    """POST /assignments/validate?path=NB: nbgrader's reply, computed off the event loop."""

    _lock: asyncio.Lock | None = None  # one validation at a time per server (two cores)

    def initialize(self, root_dir: str) -> None:
        self.root_dir = Path(root_dir).resolve()
        self._task: asyncio.Task[dict[str, Any]] | None = None

    @web.authenticated
    async def post(self) -> None:
        path = self.get_argument("path", None)
        if path is None:
            path = (self.get_json_body() or {}).get("path")
        if not path:
            raise web.HTTPError(400, "name the notebook to validate: ?path=NOTEBOOK.ipynb")
        target = (self.root_dir / path).resolve()
        if not target.is_relative_to(self.root_dir):
            raise web.HTTPError(403, "Access denied: path outside allowed directory")
        if not target.is_file():
            raise web.HTTPError(404, f"no such notebook: {path}")
        if ValidateHandler._lock is None:
            ValidateHandler._lock = asyncio.Lock()
        start = time.monotonic()
        async with ValidateHandler._lock:
            self._task = asyncio.ensure_future(run_validation(target))
            try:
                reply = await self._task
            except asyncio.CancelledError:
                self.log.info("Validate of %s stopped: the page went away", path)
                return
        self.log.info("Validated %s in %.1f s", path, time.monotonic() - start)
        self.finish(json.dumps(reply))

    def on_connection_close(self) -> None:
        """The student left (closed the tab, reloaded): stop their validation."""
        if self._task is not None and not self._task.done():
            self._task.cancel()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "dspy_workbook.grading.validate_extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(
        ".*$",
        [
            (
                url_path_join(base_url, "/assignments/validate"),
                ValidateHandler,
                {"root_dir": serverapp.root_dir},
            ),
            (url_path_join(base_url, "/nbgrader_version"), NbGraderVersionHandler),
        ],
    )
    serverapp.log.info("Validate runs as the grader does, off the event loop (dspy_workbook)")
