"""The course model behind an OpenAI-compatible HTTP API: one server for a class (or a test).

llama-cpp-python ships that server (``python -m llama_cpp.server``, its ``[server]`` extra). It
serves the workbook's own GGUF file; every kernel then reaches it the way it would reach a hosted
provider, through DSPy and LiteLLM:

    WORKBOOK_LM=openai/smollm2
    OPENAI_API_BASE=http://127.0.0.1:<port>/v1     # LiteLLM's openai provider reads this
    OPENAI_API_KEY=<the server's --api_key>

`server_command` builds the command line, `student_env` the variables a kernel needs,
`ClassServer` starts and stops one server on loopback (tests, bench), and
``python -m dspy_workbook.lm.class_server --port N`` (`main`) becomes the server — the hub's
managed service (hub/jupyterhub_config.py) runs that, with the key in ``API_KEY``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import BackendError
from ..env import LM
from ..net import free_port, stop_process
from .local.model_file import local_model_path

__all__ = ["DEFAULT_ALIAS", "ClassServer", "main", "server_command", "server_env", "student_env"]

DEFAULT_ALIAS = "smollm2"


def server_command(
    *,
    port: int,
    host: str = "127.0.0.1",
    alias: str = DEFAULT_ALIAS,
    model_path: str | Path | None = None,
    n_threads: int = 2,
    n_ctx: int = 4096,
    python: str = sys.executable,
) -> list[str]:
    """The argv of llama-cpp-python's OpenAI-compatible server for the course model.

    `n_ctx` 4096 as the embedded engine (a JSON-adapter prompt with demos needs more than the
    server's default 2048). Requests are served one at a time, as in one kernel's model, and queue
    rather than interrupt: the server's default (``interrupt_requests``) ends a stream the moment
    another request arrives, so one student's call would cut off another's answer. The API
    key is not on the command line (any local user can read that): pass it in the server's
    environment as ``API_KEY`` (`server_env`).
    """
    path = Path(model_path) if model_path is not None else local_model_path()
    return [
        python, "-m", "llama_cpp.server",
        "--model", str(path),
        "--model_alias", alias,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(n_ctx),
        "--n_threads", str(n_threads),
        "--n_threads_batch", str(n_threads),
        "--interrupt_requests", "False",
        "--verbose", "False",
    ]  # fmt: skip


def server_env(api_key: str) -> dict[str, str]:
    """The server's own settings from its environment (pydantic-settings): the API key."""
    return {"API_KEY": api_key}


def student_env(base_url: str, api_key: str, alias: str = DEFAULT_ALIAS) -> dict[str, str]:
    """The variables that point a student's kernel at an OpenAI-compatible server.

    ``OPENAI_API_BASE`` and ``OPENAI_API_KEY`` are what LiteLLM's openai provider reads (it also
    reads ``OPENAI_BASE_URL``); with a base set, DSPy routes the call through LiteLLM.
    """
    return {
        LM: f"openai/{alias}",
        "OPENAI_API_BASE": base_url.rstrip("/"),
        "OPENAI_API_KEY": api_key,
    }


@dataclass
class ClassServer:
    """One OpenAI-compatible server on loopback for the course model; a context manager.

    Starts on a free port with a random API key; `start` waits (bounded) until it answers.
    """

    alias: str = DEFAULT_ALIAS
    n_threads: int = 1
    port: int = 0
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    log_path: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self) -> dict[str, str]:
        """`student_env` for this server."""
        return student_env(self.base_url, self.api_key, self.alias)

    def start(self, timeout: float = 120) -> ClassServer:
        self.port = self.port or free_port()
        argv = server_command(port=self.port, alias=self.alias, n_threads=self.n_threads)
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, **server_env(self.api_key), "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(
            f"{self.base_url}/models", headers={"Authorization": f"Bearer {self.api_key}"}
        )
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendError(
                    f"the model server exited with code {self.process.returncode} while starting "
                    f"(is llama-cpp-python's [server] extra installed?){self._log_hint()}"
                )
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise BackendError(f"the model server did not answer within {timeout:g} s")

    def _log_hint(self) -> str:
        return f"; its log: {self.log_path}" if self.log_path else ""

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, grace=10)
            self.process = None

    def __enter__(self) -> ClassServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Become the course model's server: ``python -m dspy_workbook.lm.class_server --port N``.

    The key comes from ``API_KEY`` in the environment (required: an open server would serve any
    local user); the process is replaced by llama-cpp-python's server (signals reach it).
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--alias", default=DEFAULT_ALIAS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not os.environ.get("API_KEY"):
        raise SystemExit("class_server: set API_KEY in the environment (the key students use)")
    command = server_command(
        port=args.port, host=args.host, alias=args.alias, n_threads=args.threads
    )
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
