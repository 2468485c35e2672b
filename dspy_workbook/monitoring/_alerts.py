"""Alerts and where they go: the record, pluggable sinks, and a dispatcher that never blocks.

An alert is delivered to *sinks* (a log, a Python callback, an HTTP webhook to a chat tool or a
pager). Delivery must never hurt the thing being watched: a sink that is slow, down or raising
must not slow or break a prediction. `AlertDispatcher.send` therefore only puts the alert on a
bounded queue and returns, counting failures and, if a queue is full, dropping (and counting)
rather than waiting. Three properties an adversarial review asked for:

* **Each sink has its own queue and delivery thread**, so a pager that hangs delays only the
  pager's alerts, never the log's or the chat's.
* **A delivery thread exists only while there is work**: it starts on the first `send` and ends
  after `idle_seconds` without any. A notebook cell that builds a dispatcher, run 200 times,
  leaves no thread behind (a thread started in `__init__` and never stopped would stay forever).
* **A webhook's time-out bounds the whole delivery**, not each socket read: a receiver that
  trickles one byte a second would otherwise hold a 2-second time-out for as long as it likes.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import socket
import threading
import time
import urllib.parse
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
    """POSTs the alert as JSON to `url` (Slack, PagerDuty, Alertmanager-style); `timeout` seconds
    bound the whole delivery — connect, send, and reading the answer — not each socket read."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a webhook URL starts with http:// or https://, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout is in seconds (> 0), got {timeout!r}")
        self.url, self.timeout, self._parts = url, float(timeout), parts

    def deliver(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert).encode()
        parts = self._parts
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = kind(parts.hostname, parts.port, timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        # A socket time-out applies to each read: a trickling receiver resets it with every byte.
        # The watchdog shuts the socket down at the deadline, which ends any read in progress.
        expired = threading.Event()
        watchdog = threading.Timer(self.timeout, _cut, (connection, expired))
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.connect()
            if time.monotonic() >= deadline:
                raise TimeoutError
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read(65536)  # a short answer; anything longer is not read
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            if expired.is_set() or time.monotonic() >= deadline or isinstance(exc, TimeoutError):
                raise TimeoutError(
                    f"webhook {self.url} did not answer within {self.timeout:g} s"
                ) from None
            raise
        finally:
            watchdog.cancel()
            connection.close()
        if status >= 300:
            raise OSError(f"webhook answered HTTP {status}")


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """Deadline reached: shut the socket down, so that a blocked read returns at once."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Stats:
    """Counters shared by a dispatcher's lanes (the lanes, not the dispatcher, are what the
    delivery threads hold, so a dispatcher nobody uses any more can be garbage-collected)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered = 0
        self.dropped = 0
        self.failures: list[str] = []  # "sink: error", most recent last (bounded)

    def failed(self, sink: Sink, exc: BaseException) -> None:
        with self.lock:
            self.failures.append(f"{type(sink).__name__}: {type(exc).__name__}: {exc}")
            del self.failures[:-100]


_STOP = object()


class _Lane:
    """One sink's queue, and its delivery thread while the queue has work."""

    def __init__(self, sink: Sink, stats: _Stats, queue_size: int, idle_seconds: float) -> None:
        self.sink, self.stats, self.idle_seconds = sink, stats, idle_seconds
        self.queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, record: Any) -> bool:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            return False
        with (
            self.lock
        ):  # (re)start the thread if it has ended; it ends only when the queue is empty
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self.run, name=f"alert-{type(self.sink).__name__}", daemon=True
                )
                self.thread.start()
        return True

    def run(self) -> None:
        while True:
            try:
                record = self.queue.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self.lock:
                    if self.queue.empty():  # idle: end; the next `put` starts a new thread
                        self.thread = None
                        return
                continue
            if record is _STOP:
                self.queue.task_done()
                with self.lock:
                    self.thread = None
                return
            try:
                self.sink.deliver(record)
                with self.stats.lock:
                    self.stats.delivered += 1
            except Exception as exc:  # a broken sink is reported, never propagated
                self.stats.failed(self.sink, exc)
            finally:
                self.queue.task_done()


class AlertDispatcher:
    """Delivers alerts to sinks, one queue and thread per sink; `send` never waits on a sink.

    A sink's thread runs only while it has work (it ends after `idle_seconds` without any), so
    creating dispatchers again and again — a re-run notebook cell — leaks no thread.
    """

    def __init__(
        self, sinks: Iterable[Sink] = (), *, queue_size: int = 1000, idle_seconds: float = 1.0
    ) -> None:
        self.sinks = list(sinks)
        self._stats = _Stats()
        self._lanes = [_Lane(sink, self._stats, queue_size, idle_seconds) for sink in self.sinks]
        self._closed = False

    @property
    def delivered(self) -> int:
        """Deliveries that succeeded (one per alert and sink)."""
        return self._stats.delivered

    @property
    def dropped(self) -> int:
        """Deliveries dropped because a sink's queue was full (or the dispatcher closed)."""
        return self._stats.dropped

    @property
    def failures(self) -> list[str]:
        """The last 100 failed deliveries, as "Sink: Error: message"."""
        return self._stats.failures

    def send(self, alert: Alert | dict[str, Any]) -> bool:
        """Queue `alert` for every sink; False (and counted in `dropped`) if a queue was full or
        the dispatcher is closed."""
        record = alert.as_dict() if isinstance(alert, Alert) else dict(alert)
        if self._closed:
            with self._stats.lock:
                self._stats.dropped += len(self._lanes)
            return False
        queued = 0
        for lane in self._lanes:
            if lane.put(record):
                queued += 1
            else:
                with self._stats.lock:
                    self._stats.dropped += 1
        return queued == len(self._lanes)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was handed to the sinks; False on time-out."""
        deadline = time.monotonic() + timeout
        while any(lane.queue.unfinished_tasks for lane in self._lanes):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (within `timeout` seconds in all), then stop every delivery
        thread; later `send`s are dropped. A sink still busy at the deadline finishes its current
        delivery on its own (daemon) thread, then stops."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._closed = True
        threads = []
        for lane in self._lanes:
            with lane.lock:
                thread = lane.thread
            if thread is not None:
                try:
                    lane.queue.put_nowait(_STOP)
                except queue.Full:
                    continue
                threads.append(thread)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
