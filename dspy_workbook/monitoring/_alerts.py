"""Alerts and where they go: the record, pluggable sinks, and a dispatcher that never blocks.

An alert is delivered to *sinks* (a log, a Python callback, an HTTP webhook to a chat tool or a
pager). Delivery must never hurt the thing being watched: a sink that is slow, down or raising
must not slow or break a prediction. `AlertDispatcher.send` therefore only puts the alert on a
bounded queue and returns; one background thread delivers, with a time-out per webhook, counting
failures and, if the queue is full, dropping (and counting) rather than waiting.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["Alert", "AlertDispatcher", "CallbackSink", "LogSink", "Sink", "WebhookSink"]

Severity = Literal["info", "warning", "critical"]
logger = logging.getLogger("dspy_workbook.alerts")


@dataclass
class Alert:
    """One incident: opened when a rule starts firing, resolved when it stops."""

    rule: str  # what fired, e.g. "latency_spike"
    severity: str  # "info", "warning" or "critical"
    status: str = "firing"  # "firing" or "resolved"
    started_at: float = field(default_factory=time.time)
    resolved_at: float | None = None
    value: float | None = None  # the value that opened the incident
    count: int = 1  # anomalous observations seen during the incident
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        value = "" if self.value is None else f" (value {self.value:.4g})"
        return (
            f"[{self.severity.upper()}] {self.rule} {self.status}{value} — {self.message}".rstrip(
                " —"
            )
        )


class Sink(Protocol):
    """Anything with `deliver(alert_dict)`; may be slow or raise — the dispatcher copes."""

    def deliver(self, alert: dict[str, Any]) -> None: ...


class LogSink:
    """Writes each alert to a `logging` logger (warning for firing, info for resolved)."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logger

    def deliver(self, alert: dict[str, Any]) -> None:
        level = logging.INFO if alert.get("status") == "resolved" else logging.WARNING
        self.log.log(
            level,
            "alert %s %s severity=%s value=%s",
            alert.get("rule"),
            alert.get("status"),
            alert.get("severity"),
            alert.get("value"),
        )


class CallbackSink:
    """Calls `fn(alert_dict)`: a list's `append`, a notebook display, your own code."""

    def __init__(self, fn: Callable[[dict[str, Any]], Any]) -> None:
        self.fn = fn

    def deliver(self, alert: dict[str, Any]) -> None:
        self.fn(alert)


class WebhookSink:
    """POSTs the alert as JSON to `url` with a time-out (Slack, PagerDuty, Alertmanager-style)."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"a webhook URL starts with http:// or https://, got {url!r}")
        self.url, self.timeout = url, timeout

    def deliver(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (http(s) only)
            if response.status >= 300:
                raise OSError(f"webhook answered HTTP {response.status}")


class AlertDispatcher:
    """Delivers alerts to sinks from one background thread; `send` never waits on a sink."""

    def __init__(self, sinks: Iterable[Sink] = (), *, queue_size: int = 1000) -> None:
        self.sinks = list(sinks)
        self.delivered = 0
        self.failures: list[str] = []  # "sink: error", most recent last (bounded below)
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)
        self._thread.start()

    def send(self, alert: Alert | dict[str, Any]) -> bool:
        """Queue `alert` for every sink; False (and counted in `dropped`) if the queue is full."""
        record = alert.as_dict() if isinstance(alert, Alert) else dict(alert)
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False

    def _run(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                self._queue.task_done()
                return
            for sink in self.sinks:
                try:
                    sink.deliver(record)
                    with self._lock:
                        self.delivered += 1
                except Exception as exc:  # a broken sink is reported, never propagated
                    with self._lock:
                        self.failures.append(f"{type(sink).__name__}: {type(exc).__name__}: {exc}")
                        del self.failures[:-100]
            self._queue.task_done()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was handed to the sinks; False on time-out."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to `timeout`), then stop the thread."""
        self.flush(timeout)
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        self._thread.join(timeout)
