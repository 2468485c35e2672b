"""Run the real Prometheus (Debian's `prometheus` package) on loopback, and its `promtool`.

`PrometheusServer` starts `prometheus` with the shipped `monitoring/prometheus.yml`, rewritten
for the run: your targets, a short scrape interval, a temporary storage folder, a free port on
127.0.0.1. `query("…PromQL…")` asks its HTTP API. Stop it with `close()` (or use `with`): the
process and its storage are removed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from ..net import free_port, stop_process

__all__ = ["CONFIG_DIR", "PrometheusServer", "PrometheusUnavailable", "promtool"]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "monitoring"  # prometheus.yml, alerts.yml, …
INSTALL_HINT = "install Debian's Prometheus (it includes promtool): apt-get install -y prometheus"


class PrometheusUnavailable(RuntimeError):
    """The `prometheus` or `promtool` binary is not installed."""


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PrometheusUnavailable(f"`{name}` is not on PATH — {INSTALL_HINT}")
    return path


def promtool(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run `promtool ARGS…` (e.g. `check rules alerts.yml`, `test rules alerts_test.yml`)."""
    return subprocess.run(
        [_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=CONFIG_DIR,
    )


class PrometheusServer:
    """A Prometheus scraping `targets` every `scrape_interval`, on 127.0.0.1, temporary storage."""

    def __init__(
        self,
        targets: list[str],
        *,
        scrape_interval: str = "1s",
        rules: bool = True,
        config: Path = CONFIG_DIR / "prometheus.yml",
        startup_timeout: float = 30,
    ) -> None:
        binary = _binary("prometheus")
        self._dir = Path(tempfile.mkdtemp(prefix="workbook-prometheus-"))
        settings = yaml.safe_load(config.read_text())
        settings["global"]["scrape_interval"] = scrape_interval
        settings["global"]["evaluation_interval"] = scrape_interval
        settings["scrape_configs"][0]["static_configs"] = [{"targets": list(targets)}]
        settings["rule_files"] = (
            [str(config.parent / f) for f in settings.get("rule_files", [])] if rules else []
        )
        (self._dir / "prometheus.yml").write_text(yaml.safe_dump(settings))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(self._dir / "prometheus.log", "wb")  # noqa: SIM115 (closed in close())
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={self._dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(startup_timeout)
        except BaseException:
            self.close()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._process.returncode}: {self.log()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"prometheus was not ready after {timeout} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self._dir / "prometheus.log").read_text(errors="replace")

    def api(self, path: str, **params: str) -> Any:
        """GET `/api/v1/<path>` and return its `data` (raises on an error status)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            payload = json.load(response)
        if payload.get("status") != "success":
            raise RuntimeError(f"prometheus API error for {path}: {payload}")
        return payload["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` gives now: `[{"metric": {...}, "value": [t, "v"]}, …]`."""
        return self.api("query", query=promql)["result"]

    def value(self, promql: str) -> float | None:
        """The single number `promql` evaluates to now, or None when the result is empty."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, predicate, timeout: float = 30) -> float:
        """Poll until `predicate(value)` holds for `promql`'s value; TimeoutError otherwise."""
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = self.value(promql)
            if value is not None and predicate(value):
                return value
            time.sleep(0.25)
        raise TimeoutError(f"{promql} was {value} after {timeout} s")

    def close(self) -> None:
        stop_process(self._process, grace=15)
        self._log.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
