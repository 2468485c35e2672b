"""Run the app with uvicorn in a background thread: a real server on loopback, inside a notebook.

    server = start_background(app, port=8000)     # 8000 if free, else the next free port
    httpx.get(server.url + "/health")
    server.stop()

Starting again under the same `name` stops the previous server first, so re-running a notebook
cell never leaves a second server or a busy port. The thread is a daemon: restarting the kernel
ends it and frees the port. Only 127.0.0.1 by default — nothing outside this machine can connect.
"""

from __future__ import annotations

import atexit
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn

__all__ = ["BackgroundServer", "find_free_port", "running_servers", "start_background"]

_RUNNING: dict[str, BackgroundServer] = {}
_LOCK = threading.Lock()


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def find_free_port(host: str = "127.0.0.1", preferred: int = 8000, tries: int = 50) -> int:
    """`preferred` if nothing listens there, else the next free port above it."""
    for port in range(preferred, preferred + tries):
        if _port_is_free(host, port):
            return port
    raise OSError(f"no free port in {preferred}..{preferred + tries - 1} on {host}")


@dataclass
class BackgroundServer:
    """A uvicorn server running in a daemon thread."""

    name: str
    host: str
    port: int
    requested_port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.thread.is_alive() and self.server.started

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit (finishing requests in flight) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():  # requests still running: close connections now
            self.server.force_exit = True
            self.thread.join(timeout)
        with _LOCK:
            if _RUNNING.get(self.name) is self:
                del _RUNNING[self.name]

    def __repr__(self) -> str:
        moved = (
            "" if self.port == self.requested_port else f" (port {self.requested_port} was busy)"
        )
        state = "running" if self.running else "stopped"
        return f"<server {self.name!r} at {self.url}{moved}, {state}>"


def running_servers() -> dict[str, BackgroundServer]:
    """The servers started by this process that are still registered."""
    with _LOCK:
        return dict(_RUNNING)


def start_background(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str = "default",
    timeout: float = 30.0,
    **config: Any,
) -> BackgroundServer:
    """Serve `app` on `host:port` (or the next free port) and return once it accepts requests."""
    with _LOCK:
        previous = _RUNNING.pop(name, None)
    if previous is not None:
        previous.stop()
    chosen = find_free_port(host, port)
    config.setdefault("log_level", "warning")
    config.setdefault("access_log", False)  # the app writes its own JSON access log
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=chosen, **config))
    thread = threading.Thread(target=server.run, name=f"uvicorn-{name}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{chosen} stopped while starting; see the log")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise TimeoutError(f"the server on {host}:{chosen} was not ready within {timeout:g} s")
        time.sleep(0.02)
    running = BackgroundServer(name, host, chosen, port, server, thread)
    with _LOCK:
        _RUNNING[name] = running
    return running


@atexit.register
def _stop_all() -> None:
    for server in list(running_servers().values()):
        server.stop(timeout=2.0)
