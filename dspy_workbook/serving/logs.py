"""Structured JSON logs: one object per line, so a log pipeline can filter by request id.

Every access line carries `request_id`, `method`, `path`, `status`, `latency_ms` and the client's
*name* (never its key). Failures log the exception's type and message, never the request body or
a header.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["LOGGER_NAME", "JsonFormatter", "capture_logs", "service_logger"]

LOGGER_NAME = "dspy_workbook.serving"
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """`{"ts": ..., "level": ..., "logger": ..., "msg": ..., **extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        return json.dumps(entry, default=str)


def service_logger() -> logging.Logger:
    """The service's logger, writing JSON lines to stderr once (calling this again adds nothing)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_workbook_json", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler._workbook_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:  # keep a level the notebook (or operator) chose
            logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Collect the service's log entries (as dicts) instead of printing them, for a while."""
    logger = service_logger()
    entries: list[dict[str, Any]] = []
    formatter = JsonFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            entries.append(json.loads(formatter.format(record)))

    saved = logger.handlers[:], logger.level
    logger.handlers = [Collect()]
    logger.setLevel(logging.INFO)
    try:
        yield entries
    finally:
        logger.handlers, level = saved
        logger.setLevel(level)
