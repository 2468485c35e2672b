"""One observed prediction: what a metrics collector records per request."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["Observation", "PredictionState", "observations_frame"]


@dataclass(frozen=True)
class Observation:
    """A finished prediction: when, how long, what it used and cost, how good it was."""

    at: float  # wall clock (time.time()) when the prediction finished
    latency: float  # seconds, start to end of the top-level module call
    input_tokens: int = 0  # billed prompt tokens over all LM calls of the prediction
    output_tokens: int = 0  # billed completion tokens
    lm_calls: int = 0  # LM calls made (cache hits included)
    cache_hit: bool = False  # every LM call of the prediction was served by DSPy's cache
    error: str | None = None  # exception type name when the prediction failed
    quality: float | None = None  # 0..1 against a label, None when the question has no label
    confidence: float | None = None  # 0..1 as reported by the program, None when it reports none
    cost: float = 0.0  # dollars for the billed tokens
    model: str = ""  # the LM that answered

    @property
    def ok(self) -> bool:
        """True when the prediction returned an answer."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = [f.name for f in fields(Observation)]


def observations_frame(observations):
    """A pandas DataFrame, one row per observation, indexed by time (`at` as a UTC timestamp)."""
    import pandas as pd

    rows = [o.as_dict() for o in observations]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame.index = pd.to_datetime(frame["at"], unit="s", utc=True)
    frame.index.name = "time"
    return frame


@dataclass
class PredictionState:
    """What a collector knows about one prediction while it runs (mutable; one per prediction)."""

    started: float  # time.perf_counter() at the start
    inputs: dict  # the prediction's keyword inputs
    token: Any = None  # the ContextVar token to reset when the prediction ends
    lm_calls: int = 0
    hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""
