"""Loopback helpers shared by the servers the workbook starts (API, Prometheus) and its tests."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping

__all__ = ["free_port", "stop_process", "wait_for_http"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free on `host` right now (bind to port 0, read it back)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def wait_for_http(
    url: str,
    seconds: float = 60,
    interval: float = 0.1,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Return once GET `url` (with `headers`, e.g. an API key) answers 200; `TimeoutError`
    naming the URL after `seconds`.

    Any answer but 200 (a refused connection while the server starts, a 503 while it warms up)
    counts as not yet.
    """
    request = urllib.request.Request(url, headers=dict(headers or {}))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def stop_process(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM, up to `grace` seconds to exit cleanly, then SIGKILL: never waits unbounded."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
