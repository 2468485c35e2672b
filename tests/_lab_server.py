"""Start JupyterLab with the workbook's own `make` targets, as a student or instructor does.

`make lab` (or `make instructor-lab`) runs from a plain shell's environment — no `WORKBOOK_*` or
`JUPYTER_*` variables, no virtualenv on PATH — with extra flags through `LAB_ARGS`: a free
loopback port, a token, no browser. Two things differ from a student's machine, both so that a
test leaves nothing behind: Jupyter's runtime folder (connection files, the browser-open page)
and JupyterLab's user settings and workspaces live in a temporary folder. Every kernel the server
started is shut down through the API, and any kernel process that outlives its server is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from dspy_workbook.net import free_port

__all__ = [
    "execute_on_channels",
    "TOKEN",
    "Lab",
    "StatusPolls",
    "cleared_copy",
    "get",
    "polling_status",
    "running_lab",
    "student_checkout",
    "student_env",
]

TOKEN = "workbook-test"
START_SECONDS = 90  # the first start after an install compiles nothing, but imports a lot


@dataclass(frozen=True)
class Lab:
    """A running JupyterLab: its base URL, the folder `make` ran in, its runtime folder."""

    base: str
    folder: Path
    runtime_dir: Path

    def url(self, path: str) -> str:
        """`path` on this server, with the token."""
        joiner = "&" if "?" in path else "?"
        return f"{self.base}{path}{joiner}token={TOKEN}"

    def browser_open_page(self) -> Path:
        """The page `make lab` would open in the student's browser (it redirects to the file
        given on the command line, `notebooks/00_start_here.ipynb`)."""
        pages = sorted(self.runtime_dir.glob("jpserver-file-to-run-*-open.html"))
        assert len(pages) == 1, f"expected one browser-open page, found {pages}"
        return pages[0]


def student_env(venv_env: dict[str, str]) -> dict[str, str]:
    """A plain shell's environment: no workbook settings, no virtualenv on PATH, and no
    matplotlib backend (the tests' `Agg` would keep charts out of JupyterLab)."""
    env = {k: v for k, v in venv_env.items() if not k.startswith(("WORKBOOK_", "JUPYTER_"))}
    env.pop("MPLBACKEND", None)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.pop("PYTHONPATH", None)
    return env


def cleared_copy(master: Path, target: Path) -> None:
    """Copy a notebook without outputs, execution counts or saved widget state: whatever shows
    afterwards was produced by the test's run."""
    notebook = nbformat.read(master, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, target)


def student_checkout(root: Path, folder: Path, notebooks: Mapping[str, Path] | None = None) -> Path:
    """A student's checkout in `folder`: the repository's Makefile, `student.mk`, settings and
    virtualenv (linked, so `make lab` is the real command) and a copy of its notebooks, with
    `notebooks[name]` (cleared of outputs) in place of, or beside, the released ones."""
    for name in ("Makefile", "student.mk", "etc", ".venv"):
        (folder / name).symlink_to(root / name)
    (folder / "notebooks").mkdir()
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        shutil.copy(notebook, folder / "notebooks" / notebook.name)
    for name, source in (notebooks or {}).items():
        cleared_copy(source, folder / "notebooks" / name)
    return folder


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read()


@dataclass
class StatusPolls:
    """What the server answered to `/api/status` while something ran: each poll's latency in
    seconds, or None when it gave no answer within the poll's timeout."""

    latencies: list[float | None] = field(default_factory=list)

    @property
    def unanswered(self) -> int:
        return sum(1 for s in self.latencies if s is None)

    @property
    def slowest(self) -> float:
        return max((s for s in self.latencies if s is not None), default=0.0)

    def summary(self) -> str:
        return (
            f"{len(self.latencies)} polls of /api/status, {self.unanswered} unanswered, "
            f"slowest answer {self.slowest:.2f} s"
        )


@contextmanager
def polling_status(
    url: str, headers: Mapping[str, str] | None = None, every: float = 0.5, timeout: float = 5
) -> Iterator[StatusPolls]:
    """GET `url` (a server's `/api/status`) every `every` s, from a thread, while the block runs."""
    polls, stop = StatusPolls(), threading.Event()
    request = urllib.request.Request(url, headers=dict(headers or {}))

    def poll() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=timeout) as reply:
                    reply.read()
                polls.latencies.append(time.monotonic() - start)
            except OSError:
                polls.latencies.append(None)
            stop.wait(every)

    thread = threading.Thread(target=poll, name="status-poller", daemon=True)
    thread.start()
    try:
        yield polls
    finally:
        stop.set()
        thread.join(timeout + every + 1)


def _tail(log: Path | None, lines: int = 20) -> str:
    """The end of the server's log, for a failure message."""
    if log is None or not log.exists():
        return ""
    return ":\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _kernel_pids(runtime_dir: Path) -> list[int]:
    """Processes whose command line names a connection file in `runtime_dir`: this server's
    kernels (they run in their own session, so signalling the server's group misses them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(runtime_dir) in cmdline:
            pids.append(int(proc.name))
    return pids


def _shut_down_kernels(lab: Lab) -> None:
    """Ask the server to shut every kernel down, as *Kernel → Shut Down All Kernels* does."""
    try:
        kernels = json.loads(get(lab.url("/api/kernels")))
    except OSError:
        return  # the server is gone already; its kernels are handled by the caller
    for kernel in kernels:
        request = urllib.request.Request(lab.url(f"/api/kernels/{kernel['id']}"), method="DELETE")
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except OSError:
            pass


@contextmanager
def running_lab(
    folder: Path,
    venv_env: dict[str, str],
    target: str = "lab",
    *,
    make_flags: Sequence[str] = (),
    log: Path | None = None,
) -> Iterator[Lab]:
    """`make <target>` in `folder` on a free loopback port; yields once its API answers.

    `make_flags` go to `make` itself; `log` receives the server's output (else it is dropped).
    """
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="workbook-lab-") as scratch:
        scratch_dir = Path(scratch)
        runtime_dir = scratch_dir / "runtime"
        args = (
            f"--no-browser --ServerApp.port={port} --IdentityProvider.token={TOKEN} "
            f"--LabApp.user_settings_dir={scratch_dir / 'user-settings'} "
            f"--LabApp.workspaces_dir={scratch_dir / 'workspaces'}"
        )
        env = {**student_env(venv_env), "JUPYTER_RUNTIME_DIR": str(runtime_dir)}
        output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below)
        server = subprocess.Popen(
            ["make", "--no-print-directory", *make_flags, target, f"LAB_ARGS={args}"],
            cwd=folder,
            env=env,
            start_new_session=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        lab = Lab(f"http://127.0.0.1:{port}", folder, runtime_dir)
        try:
            deadline = time.monotonic() + START_SECONDS
            while True:
                try:
                    get(lab.url("/api/status"), timeout=5)
                    break
                except OSError:
                    assert server.poll() is None, (
                        f"`make {target}` exited during start-up{_tail(log)}"
                    )
                    assert time.monotonic() < deadline, (
                        f"`make {target}` did not answer within {START_SECONDS} s{_tail(log)}"
                    )
                    time.sleep(1)
            yield lab
        finally:
            _shut_down_kernels(lab)
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
            for pid in _kernel_pids(runtime_dir):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if output is not subprocess.DEVNULL:
                output.close()


def execute_on_channels(ws: Any, code: str, timeout: float, username: str = "test") -> str:
    """Run `code` in the kernel behind `ws` (its open `/channels` websocket), as JupyterLab
    sends a cell; its stdout once the kernel is idle again. A raised error or `timeout`
    seconds without finishing fail the test."""
    msg_id = uuid.uuid4().hex
    header = {"msg_id": msg_id, "msg_type": "execute_request", "username": username}
    content = {"code": code, "silent": False, "store_history": False, "allow_stdin": False}
    ws.send(
        json.dumps(
            {
                "header": {**header, "session": uuid.uuid4().hex, "version": "5.3"},
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {**content, "user_expressions": {}, "stop_on_error": True},
            }
        )
    )
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError(
                f"the kernel raised {msg['content']['ename']}: {msg['content']['evalue']}"
            )
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)
    raise AssertionError(f"the kernel did not finish within {timeout} s")
