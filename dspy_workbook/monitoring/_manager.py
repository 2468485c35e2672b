"""From "this value is odd" to "someone should look": alerts worth reading.

A detector gives a verdict per observation. While a provider is slow, *every* request is
anomalous; an alert per request would be hundreds of messages nobody reads. `AlertManager` turns
the verdicts of each rule into incidents:

* **confirmation** (`pending`): an alert opens only after `pending` anomalous verdicts in a row,
  so one odd request (a GC pause, a noisy neighbour) wakes nobody — Prometheus calls it `for:`;
* **de-duplication**: while an incident is open, more anomalies only raise its `count`;
* **resolution** (`clear_after`): `clear_after` normal verdicts in a row end it, and a
  "resolved" message follows, so people know when to stop looking;
* **severity**: "warning" is looked at in working hours, "critical" pages someone now.

Sending is `dispatcher.send(alert)`: it queues and returns at once; the dispatcher's thread
delivers to the sinks, so a slow or broken sink never slows a prediction.

`BatchMeans` turns a noisy 0/1 signal (one answer right or wrong) into one value per batch, which
is what a quality detector can watch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ._alerts import Alert, AlertDispatcher, LogSink

__all__ = ["AlertManager", "BatchMeans"]

_default: AlertDispatcher | None = None
_default_lock = threading.Lock()


def _default_dispatcher() -> AlertDispatcher:
    """One shared log dispatcher for every manager created without one: re-running a cell that
    makes `AlertManager()` does not start a new delivery thread each time."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AlertDispatcher([LogSink()])
        return _default


class AlertManager:
    """Turns detector verdicts into alerts: confirmed, de-duplicated, resolved, dispatched."""

    def __init__(
        self,
        dispatcher: AlertDispatcher | None = None,
        *,
        pending: int = 1,
        clear_after: int = 5,
        clock: Callable[[], float] = time.time,
        history: int = 1000,
    ) -> None:
        if pending < 1 or clear_after < 1 or history < 1:
            raise ValueError(
                "pending, clear_after and history count observations (>= 1), got "
                f"{pending}, {clear_after}, {history}"
            )
        self.dispatcher = dispatcher if dispatcher is not None else _default_dispatcher()
        self.pending, self.clear_after, self.clock = pending, clear_after, clock
        self.active: dict[str, Alert] = {}  # rule -> its open incident
        self.history: list[Alert] = []  # incidents opened, the most recent `history` of them
        self._keep = history
        self._streak: dict[str, int] = {}  # rule -> anomalous verdicts in a row
        self._calm: dict[str, int] = {}  # rule -> normal verdicts in a row while it is open

    def evaluate(
        self,
        rule: str,
        anomalous: bool,
        *,
        severity: str = "warning",
        value: float | None = None,
        message: str = "",
    ) -> Alert | None:
        """Feed one verdict for `rule`; the alert when one was sent (opened or resolved)."""
        if anomalous:
            self._streak[rule] = self._streak.get(rule, 0) + 1
            self._calm[rule] = 0
            if rule in self.active:  # the incident is already open: count, do not repeat
                self.active[rule].count += 1
                return None
            if self._streak[rule] < self.pending:
                return None
            alert = Alert(
                rule,
                severity,
                started_at=self.clock(),
                value=value,
                count=self._streak[rule],
                message=message,
            )
            self.active[rule] = alert
            self.history.append(alert)
            del self.history[: -self._keep]
            self.dispatcher.send(alert)
            return alert
        self._streak[rule] = 0
        alert = self.active.get(rule)
        if alert is None:
            return None
        self._calm[rule] = self._calm.get(rule, 0) + 1
        if self._calm[rule] < self.clear_after:
            return None
        alert.status, alert.resolved_at = "resolved", self.clock()
        del self.active[rule]
        self._calm[rule] = 0
        self.dispatcher.send(alert)
        return alert


class BatchMeans:
    """The mean of each batch of `size` values (None values are skipped): one value per batch."""

    def __init__(self, size: int = 10) -> None:
        if size < 1:
            raise ValueError(f"a batch holds at least one value, got size={size}")
        self.size = size
        self._values: list[float] = []

    def add(self, value: float | None) -> float | None:
        """Take one value; the batch's mean when this value completes a batch, else None."""
        if value is None:
            return None
        self._values.append(float(value))
        if len(self._values) < self.size:
            return None
        mean = sum(self._values) / self.size
        self._values = []
        return mean
