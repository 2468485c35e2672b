"""`make lab`'s server really starts and serves the start notebook (loopback only, bounded)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_jupyterlab_serves_the_start_notebook_with_nbgrader(root: Path, venv_env: dict[str, str]) -> None:
    port, token = _free_port(), "workbook-test"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", "notebooks/00_start_here.ipynb"],
        cwd=root, env=venv_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, notebook = time.monotonic() + 90, None
        while time.monotonic() < deadline and notebook is None:
            try:
                with urllib.request.urlopen(
                    f"{base}/api/contents/00_start_here.ipynb?token={token}"  # root = notebooks/, timeout=5
                ) as reply:
                    notebook = json.load(reply)
            except OSError:
                assert server.poll() is None, "jupyter lab exited during start-up"
                time.sleep(1)
        assert notebook is not None, "jupyter lab did not answer within 90 s"
        assert notebook["content"]["cells"][0]["source"].startswith("# Chapter 7")
        with urllib.request.urlopen(f"{base}/lab?token={token}", timeout=10) as reply:
            page = reply.read().decode()
        assert "@jupyter/nbgrader" in page, "the nbgrader JupyterLab extension is not enabled"
    finally:
        server.terminate()
        server.wait(timeout=30)
