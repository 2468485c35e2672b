"""The readiness probe: does the LM answer a tiny prompt, without polluting the logs?

`GET /ready` is polled (by a load balancer, Kubernetes, a test) every few seconds, so its result
is reused for `READY_CACHE_SECONDS`, and DSPy's "response was truncated" warning — expected for
an 8-token answer — is dropped for the probe's own call only (a context variable marks it).
"""

import asyncio
import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import dspy

__all__ = ["READY_CACHE_SECONDS", "probe_lm"]

READY_CACHE_SECONDS = 5.0
_PROBING = contextvars.ContextVar("readiness_probe", default=False)


class _QuietProbe(logging.Filter):
    """Drop DSPy's "response was truncated" warning for the readiness probe's short answer."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_PROBING.get() and "truncated" in record.getMessage())


_PROBE_FILTER = _QuietProbe()


@contextmanager
def _probing() -> Iterator[None]:
    """Mark the calls made inside as the probe's, for `_QuietProbe` (installed once)."""
    dspy_log = logging.getLogger("dspy.clients.lm")
    if _PROBE_FILTER not in dspy_log.filters:
        dspy_log.addFilter(_PROBE_FILTER)
    token = _PROBING.set(True)
    try:
        yield
    finally:
        _PROBING.reset(token)


async def probe_lm(lm: dspy.LM, seconds: float) -> None:
    """Ask `lm` for one word within `seconds`, bypassing DSPy's cache; raise if it cannot."""
    with _probing():
        async with asyncio.timeout(seconds):
            with dspy.context(lm=lm):
                await lm.acall("Reply with the word ready.", max_tokens=8, cache=False)
