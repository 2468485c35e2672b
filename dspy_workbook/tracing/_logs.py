"""Send finished spans to two logs: JSON lines for machines, one readable line for people."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._span import Span, span_record

__all__ = ["LOG_DIR", "LogSink", "read_jsonl", "redact_all"]

LOG_DIR = Path(".workbook_cache") / "traces"  # relative to the notebook; ignored by git and nbgrader


def redact_all(value: Any, redact: Callable[[str], str]) -> Any:
    """Apply `redact` to every string inside JSON-ready data (dict keys included)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_all(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_all(v, redact) for v in value]
    return value


class LogSink:
    """A tracer sink: writes each finished span to a JSONL logger and a human-readable logger."""

    def __init__(self, json_logger: logging.Logger, text_logger: logging.Logger,
                 redact: Callable[[str], str] = lambda text: text) -> None:
        self.json_logger, self.text_logger, self.redact = json_logger, text_logger, redact

    def __call__(self, span: Span) -> None:
        """Log one span; redaction runs on the serialised record, so nothing escapes it."""
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
        self.text_logger.log(level, self.redact(line))


    def _json_line(self, span: Span) -> str:
        """The span as one redacted JSON line.

        Redacting the serialised line is one regex pass instead of one per string (several
        times faster); if a custom pattern broke the JSON syntax, redact string by string instead.
        """
        record = span_record(span)
        line = self.redact(json.dumps(record, ensure_ascii=False))
        try:
            json.loads(line)
        except ValueError:
            line = json.dumps(redact_all(record, self.redact), ensure_ascii=False)
        return line


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a JSONL log (an empty list if the file does not exist yet)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
