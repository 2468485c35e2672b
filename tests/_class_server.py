"""The course model behind llama-cpp-python's OpenAI-compatible server, for the hosted-path tests.

One server per test session (`class_server`), started on a free loopback port with a random API
key and served under a name no price table or model catalogue knows (`MODEL_ALIAS`), so nothing
can special-case it. `kernel_env` points a kernel (or any subprocess) at it the way a student
points the workbook at a provider. Import the fixture into a test module
(``from tests._class_server import class_server``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from dspy_workbook.lm.class_server import ClassServer, student_env

__all__ = ["MODEL", "MODEL_ALIAS", "class_server", "kernel_env"]

MODEL_ALIAS = "course-model"
MODEL = f"openai/{MODEL_ALIAS}"
# One request at a time (the server queues the rest) on one thread: on a busy 2-core machine two
# llama.cpp threads wait for each other at every layer (a 322-token prompt: 5 s on 1 thread, 16 s
# on 2, at a load average of 7); the kernels' own Python work then has the other core.
THREADS = 1


@pytest.fixture(scope="session")
def class_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClassServer]:
    log = tmp_path_factory.mktemp("class-server") / "server.log"
    with ClassServer(alias=MODEL_ALIAS, n_threads=THREADS, log_path=log) as running:
        yield running


def kernel_env(base: Mapping[str, str], base_url: str, api_key: str) -> dict[str, str]:
    """`base` with the workbook pointed at the OpenAI-compatible server at `base_url` (the
    variables of `student_env`). ``OPENAI_BASE_URL`` is dropped: LiteLLM prefers it to
    ``OPENAI_API_BASE``."""
    env = {k: v for k, v in base.items() if k != "OPENAI_BASE_URL"}
    return {**env, **student_env(base_url, api_key, MODEL_ALIAS)}
