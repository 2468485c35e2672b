"""Send finished spans to two logs: JSON lines for machines, one readable line for people."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..paths import workbook_dir
from ._span import Span, span_record

__all__ = ["LogSink", "read_jsonl", "redact_all", "trace_log_dir"]


def trace_log_dir() -> Path:
    """The folder for trace logs: `traces/` in the workbook's cache folder (never `source/`).

    `$WORKBOOK_CACHE_DIR` is honoured (read at each call, so a test can point it elsewhere).
    """
    return workbook_dir("traces")


_MAX_DEPTH = 64  # deeper data is redacted as one piece of text (no recursion limit to hit)


def _embedded_json(text: str) -> Any:
    """The JSON document `text` holds (an LM's reply in JSON mode is one), or None."""
    stripped = text.strip()
    if not (stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]")):
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def redact_all(value: Any, redact: Callable[[str], str], _depth: int = 0) -> Any:
    """Apply `redact` to every string inside JSON-ready data (dict keys included).

    A string that is itself a JSON document — the raw reply of an LM in JSON mode — is decoded and
    redacted value by value, then encoded again: inside it a tab or a line break is written `\\t`
    or `\\n`, and `é` may be `\\u00e9`, which patterns such as `Bearer\\s+` or `\\w+@` would
    not match.
    """
    if _depth > _MAX_DEPTH:
        return redact(json.dumps(value, ensure_ascii=False))
    if isinstance(value, str):
        document = _embedded_json(value)
        if isinstance(document, (dict, list)):
            return json.dumps(redact_all(document, redact, _depth + 1), ensure_ascii=False)
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_all(v, redact, _depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_all(v, redact, _depth + 1) for v in value]
    return value


_APPEND_LOCK = threading.Lock()  # one writer at a time, whichever sink or thread writes


class _AppendFile:
    """A log target that appends one line per record to a file (opened per write: nothing is left
    open, and running a notebook cell twice cannot add a second writer)."""

    def __init__(self, path: str | Path, stamped: bool) -> None:
        self.path, self.stamped = Path(path), stamped

    def log(self, level: int, line: str) -> None:
        if self.stamped:
            line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {logging.getLevelName(level)} {line}"
        with _APPEND_LOCK:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")


def _target(log: logging.Logger | str | Path, stamped: bool) -> logging.Logger | _AppendFile:
    return log if isinstance(log, logging.Logger) else _AppendFile(log, stamped)


class LogSink:
    """A tracer sink: writes each finished span to a JSONL log and a human-readable log.

    Each target is a `logging.Logger` or a file path. A path is appended to directly: the JSONL
    file gets the bare JSON line, the text log a time stamp and level in front.
    """

    def __init__(
        self,
        json_log: logging.Logger | str | Path,
        text_log: logging.Logger | str | Path,
        redact: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.json_logger = _target(json_log, stamped=False)
        self.text_logger = _target(text_log, stamped=True)
        self.redact = redact

    def __call__(self, span: Span) -> None:
        """Log one span, every string redacted before it is written."""
        level = logging.INFO if span.ok else logging.ERROR
        self.json_logger.log(level, self._json_line(span))
        took = "running" if span.duration is None else f"{span.duration * 1000:.1f} ms"
        line = f"{span.kind:<6} {span.name} [{span.id[:8]} <- {(span.parent_id or '-')[:8]}] {took}"
        if span.tokens:
            line += f" tokens={span.tokens.get('total_tokens')}"
        if span.cache_hit:
            line += " cache=hit"
        if not span.ok:
            line += f" FAILED {type(span.error).__name__}: {span.error}"
        # Redact first (a pattern may span a line break), then keep one line per span.
        self.text_logger.log(level, self.redact(line).replace("\r", "\\r").replace("\n", "\\n"))

    def _json_line(self, span: Span) -> str:
        """The span as one JSON line, each string value redacted *before* encoding.

        Redacting the encoded line instead would miss secrets JSON rewrites: a tab or newline
        inside `Bearer\\t<token>` or a pattern like `Project\\s+Nightingale` is `\\t`/`\\n` there,
        and `\\s` no longer matches.
        """
        return json.dumps(redact_all(span_record(span), self.redact), ensure_ascii=False)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSONL log (an empty list if the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
