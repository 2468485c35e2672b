"""The course JupyterHub (hub/) started on loopback for a test, and what a test does with it.

`running_hub` starts `jupyterhub -f hub/jupyterhub_config.py` in trial mode on free ports with
a roster, waits (bounded) for it to answer, and stops it — and every process it started — at the
end. `start_servers` asks the hub for users' servers; `run_in_kernel` runs code in a kernel on a
user's server over its websocket, as JupyterLab does. Used by tests/test_jupyterhub.py and
tests/test_hub_shared_model.py.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
from _lab_server import execute_on_channels

from dspy_workbook.net import free_port, stop_process, wait_for_http

ROOT = Path(__file__).resolve().parents[1]
HUB_DIR = ROOT / "hub"
SERVER_START_SECONDS = 180


@dataclass
class Hub:
    url: str
    state: Path
    process: subprocess.Popen
    passwords: dict[str, str]
    tokens: dict[str, str] = field(default_factory=dict)
    # Every process the hub started (proxy, servers, grading kernels): stopped by id at the end.
    started: set[psutil.Process] = field(default_factory=set)

    def log_tail(self, chars: int = 4000) -> str:
        return (self.state / "hub.log").read_text(errors="replace")[-chars:]

    def track(self) -> None:
        """Remember the hub's descendants now (servers run in sessions of their own, so they
        are not in the hub's process group, and outlive it if it dies)."""
        try:
            self.started.update(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass

    def call(self, user: str, method: str, path: str, **kwargs: object) -> requests.Response:
        """`method path` through the proxy, authenticated with `user`'s token."""
        kwargs.setdefault("timeout", 60)
        headers = {"Authorization": f"token {self.tokens[user]}"}
        return requests.request(method, self.url + path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def login(self, user: str, password: str) -> requests.Response:
        """Ask the hub for a token with a user name and password (the Authenticator decides)."""
        body = {"auth": {"username": user, "password": password}, "note": "test"}
        return requests.post(f"{self.url}/hub/api/users/{user}/tokens", json=body, timeout=60)


def _stop(hub: Hub) -> None:
    """SIGTERM to the hub (it stops the servers and the proxy), then kill whatever it left."""
    hub.track()
    stop_process(hub.process, grace=30)
    _, alive = psutil.wait_procs(hub.started, timeout=15)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=10)


@contextmanager
def running_hub(
    state: Path,
    venv_env: Mapping[str, str],
    *,
    instructors: list[str],
    students: list[str],
    env: Mapping[str, str] | None = None,
    hub_class: type[Hub] = Hub,
) -> Iterator[Hub]:
    """The hub in trial mode, its state in `state`, with these rosters and extra `env`."""
    (state / "instructors.txt").write_text("".join(f"{name}\n" for name in instructors))
    (state / "students.txt").write_text("# the class\n" + "\n".join(students) + "\n")
    passwords = {name: secrets.token_urlsafe(12) for name in ("student", "instructor")}
    passwords["instructor"] += secrets.token_urlsafe(24)  # the hub wants 32 characters at least
    full_env = {
        **venv_env,
        "WORKBOOK_HUB_MODE": "trial",
        "WORKBOOK_HUB_DIR": str(state),
        "WORKBOOK_HUB_STUDENT_PASSWORD": passwords["student"],
        "WORKBOOK_HUB_INSTRUCTOR_PASSWORD": passwords["instructor"],
        **(env or {}),
    }
    public, hub_port, proxy_api = free_port(), free_port(), free_port()
    with (state / "hub.log").open("w") as log:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "jupyterhub"),
                "-f",
                str(HUB_DIR / "jupyterhub_config.py"),
                f"--JupyterHub.bind_url=http://127.0.0.1:{public}",
                f"--JupyterHub.hub_port={hub_port}",
                f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{proxy_api}",
            ],
            cwd=state,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    hub = hub_class(f"http://127.0.0.1:{public}", state, process, passwords)
    try:
        try:
            wait_for_http(f"{hub.url}/hub/health", 90)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{hub.log_tail()}") from error
        hub.track()
        yield hub
    finally:
        _stop(hub)


def start_servers(hub: Hub, users: list[str]) -> None:
    for user in users:
        response = hub.call(user, "POST", f"/hub/api/users/{user}/server")
        assert response.status_code in (201, 202), f"{user}: {response.text}\n{hub.log_tail()}"
    waiting = set(users)
    deadline = time.monotonic() + SERVER_START_SECONDS
    while waiting and time.monotonic() < deadline:
        for user in sorted(waiting):
            model = hub.call(user, "GET", f"/hub/api/users/{user}").json()
            if model["servers"].get("", {}).get("ready"):
                waiting.discard(user)
        time.sleep(0.5)
    hub.track()
    assert not waiting, f"not ready in {SERVER_START_SECONDS} s: {waiting}\n{hub.log_tail()}"


def run_in_kernel(hub: Hub, user: str, code: str, timeout: float = 300) -> str:
    """Start a kernel on `user`'s server, run `code` there, return its stdout; shut it down.

    The kernel is driven over its websocket through the hub's proxy, as JupyterLab drives it.
    """
    import websocket

    base = f"/user/{user}/api/kernels"
    started = hub.call(user, "POST", base, json={"name": "python3"})
    assert started.status_code == 201, f"{user}: kernel not started: {started.text[:500]}"
    kernel = started.json()["id"]
    hub.track()
    ws = websocket.create_connection(
        f"{hub.url.replace('http', 'ws', 1)}{base}/{kernel}/channels",
        header=[f"Authorization: token {hub.tokens[user]}"],
        timeout=timeout,
    )
    try:
        return execute_on_channels(ws, code, timeout, username=user)
    finally:
        ws.close()
        hub.call(user, "DELETE", f"{base}/{kernel}")
