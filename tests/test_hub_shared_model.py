"""The hub's shared course model (`WORKBOOK_HUB_SHARED_MODEL=1`) on loopback: a student's kernel
answers through the one model server the hub runs.

The hub (hub/jupyterhub_config.py, trial mode, `tests/_hub.py`) starts the model as its managed
service `course-model`; a student logs in, gets a server, and a kernel on it — opened through the
hub's proxy, as JupyterLab opens one — builds the course LM and asks it a question. That kernel
holds no model (llama.cpp is not imported and no GGUF file is mapped into it), the LM it built is
the hosted path, and the service's process, a child of the hub, is the one that answered: its
access log gains the kernel's request and it used CPU meanwhile. Tier: ``slow`` (a real hub,
a server and a kernel: about 1–2 minutes on a busy 2-core machine).
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from _hub import Hub, run_in_kernel, running_hub, start_servers

from dspy_workbook.net import free_port, wait_for_http

pytestmark = pytest.mark.slow

STUDENT = "ada"
SERVICE_START_SECONDS = 120
COMPLETIONS = '"POST /v1/chat/completions'  # a line of the server's (uvicorn's) access log

# Run in the student's kernel: the course LM as every notebook's first cell builds it, one call.
KERNEL_CODE = """
import json, os, sys
import dspy, psutil
import dspy_workbook as wb

lm = wb.setup(quiet=True)
prediction = dspy.Predict("question -> answer")(question="What is the capital of France?")
me = psutil.Process()
print(json.dumps({
    "lm": type(lm).__name__,
    "model": lm.model,
    "is_local": wb.is_local(lm),
    "base": os.environ.get("OPENAI_API_BASE"),
    "answer": prediction.answer,
    "usage": lm.history[-1]["usage"],
    "llama_cpp_imported": "llama_cpp" in sys.modules,
    "gguf_mapped": any(m.path.endswith(".gguf") for m in me.memory_maps()),
    "rss_mb": me.memory_info().rss / 2**20,
}))
"""


def _service_process(hub: Hub, port: int) -> psutil.Process:
    """The hub's descendant that listens on the model's port."""
    for process in psutil.Process(hub.process.pid).children(recursive=True):
        try:
            listening = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in listening):
            return process
    raise AssertionError(f"no process of the hub listens on {port}\n{hub.log_tail()}")


def _wait_for_service(hub: Hub, port: int, key: str) -> None:
    """Until the service answers `/v1/models` with the key (it loads the model first)."""
    url, auth = f"http://127.0.0.1:{port}/v1/models", {"Authorization": f"Bearer {key}"}
    try:
        wait_for_http(url, SERVICE_START_SECONDS, interval=0.5, headers=auth)
    except TimeoutError as error:
        raise AssertionError(f"the course-model service: {error}\n{hub.log_tail()}") from None


@pytest.fixture(scope="module")
def shared_hub(
    tmp_path_factory: pytest.TempPathFactory, venv_env: dict[str, str], hub_proxy_binary: Path
) -> Iterator[tuple[Hub, int]]:
    state = tmp_path_factory.mktemp("hub-shared-model")
    port = free_port()
    settings = {
        "WORKBOOK_HUB_SHARED_MODEL": "1",
        "WORKBOOK_HUB_MODEL_PORT": str(port),
        "WORKBOOK_HUB_MODEL_THREADS": "1",
    }
    with running_hub(
        state, venv_env, instructors=["grace"], students=[STUDENT], env=settings
    ) as hub:
        response = hub.login(STUDENT, hub.passwords["student"])
        assert response.status_code == 201, f"{response.text}\n{hub.log_tail()}"
        hub.tokens[STUDENT] = response.json()["token"]
        yield hub, port


def test_a_students_kernel_answers_through_the_hubs_model_service(
    shared_hub: tuple[Hub, int],
) -> None:
    hub, port = shared_hub
    key_file = hub.state / "model_api_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    _wait_for_service(hub, port, key)
    service = _service_process(hub, port)
    hub.track()
    assert "llama_cpp.server" in service.cmdline(), service.cmdline()
    assert key not in " ".join(service.cmdline()), "the model's key is on a command line"

    start_servers(hub, [STUDENT])
    served_before = hub.log_tail(10**9).count(COMPLETIONS)
    cpu_before = sum(service.cpu_times()[:2])
    output = run_in_kernel(hub, STUDENT, KERNEL_CODE)
    reply = json.loads(output.strip().splitlines()[-1])

    # The kernel took the hosted path to the hub's service, and holds no model of its own.
    assert reply["lm"] == "HostedLM" and reply["is_local"] is False, reply
    assert reply["base"] == f"http://127.0.0.1:{port}/v1", reply
    assert not reply["llama_cpp_imported"] and not reply["gguf_mapped"], reply
    # A real answer, with the tokens the server counted (not a cache hit).
    assert isinstance(reply["answer"], str) and reply["answer"].strip(), reply
    assert reply["usage"].get("completion_tokens", 0) > 0, reply
    # The service's process is the one that answered.
    served = hub.log_tail(10**9).count(COMPLETIONS) - served_before
    assert served >= 1, f"the service logged no completion\n{hub.log_tail()}"
    assert sum(service.cpu_times()[:2]) > cpu_before, "the service did not compute"
    print(f"\nstudent kernel RSS {reply['rss_mb']:.0f} MB; service answered {served} requests")
