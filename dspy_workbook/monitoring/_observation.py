"""One observed prediction (what a metrics collector records per request), and the state a
collector keeps for a prediction while it runs."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ._prices import answer_cost, price_of

__all__ = ["Observation", "PredictionState", "observations_frame"]


@dataclass(frozen=True)
class Observation:
    """A finished prediction: when, how long, what it used and cost, how good it was."""

    latency: float  # seconds, start to end of the top-level module call
    input_tokens: int = 0  # billed prompt tokens over all LM calls of the prediction
    output_tokens: int = 0  # billed completion tokens
    lm_calls: int = 0  # LM calls made (cache hits included)
    cache_hit: bool = False  # every LM call of the prediction was served by DSPy's cache
    error: str | None = None  # exception type name when the prediction failed
    quality: float | None = None  # 0..1 against a label, None when the question has no label
    confidence: float | None = None  # 0..1 as reported by the program, None when it reports none
    cost: float = 0.0  # dollars for the billed tokens (NaN: the model is not in the price table)
    model: str = ""  # the LM that answered
    at: float = field(default_factory=time.time)  # wall clock when it finished: for display
    # A monotonic clock when it finished: for ordering and time windows. The wall clock can step
    # back (NTP, suspend/resume); this one never does.
    clock: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        """True when the prediction returned an answer."""
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


COLUMNS = [f.name for f in fields(Observation)]


def monotonic_index(wall: Any, clock: Any):
    """A DatetimeIndex that is ordered like `clock` (monotonic seconds) and reads like wall time.

    It is anchored on the most recent sample's wall time and counts back along the monotonic
    clock, so a wall clock that stepped back between samples cannot make it go backwards (which
    pandas' time-based rolling windows refuse: "index values must be monotonic").
    """
    import pandas as pd

    if len(clock) == 0:
        return pd.DatetimeIndex([], tz="UTC", name="time")
    anchor_wall, anchor_clock = float(wall.iloc[-1]), float(clock.iloc[-1])
    seconds = anchor_wall + (clock.astype(float) - anchor_clock)
    index = pd.DatetimeIndex(pd.to_datetime(seconds, unit="s", utc=True))
    index.name = "time"
    return index


def observations_frame(observations):
    """A pandas DataFrame, one row per observation, in the order of the monotonic `clock`.

    The index is a time (UTC) ordered by that clock (see `monotonic_index`); the `at` column keeps
    the wall clock each prediction recorded.
    """
    import pandas as pd

    rows = [o.as_dict() for o in observations]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame.sort_values("clock", kind="stable").reset_index(drop=True)
    frame.index = monotonic_index(frame["at"], frame["clock"])
    return frame


@dataclass
class PredictionState:
    """What a collector knows about one prediction while it runs (mutable; one per prediction)."""

    started: float  # time.perf_counter() at the start
    inputs: dict  # the prediction's inputs by name, e.g. {"question": "…"}
    token: Any = None  # the ContextVar token to reset when the prediction ends
    call_id: str = ""  # the top-level module call's id, if you want to keep it here
    lm_calls: int = 0
    hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    model: str = ""

    def add(self, usage: Any) -> None:
        """Count one finished LM call of this prediction (a `CallUsage`): tokens, hit, model."""
        self.lm_calls += 1
        self.hits += bool(usage.cache_hit)
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.model = usage.model or self.model

    @property
    def cost(self) -> float:
        """Dollars for this prediction's tokens: 0.0 with no LM call, NaN for an unpriced model."""
        if not self.model:
            return 0.0
        if price_of(self.model) is None:
            return math.nan
        return answer_cost(self.model, self.input_tokens, self.output_tokens)

    def observation(
        self,
        *,
        latency: float,
        error: str | None = None,
        quality: float | None = None,
        confidence: float | None = None,
    ) -> Observation:
        """The finished prediction: what you measured, plus the tokens, LM calls, cache hit (every
        LM call was one), model and cost this state counted."""
        return Observation(
            latency=latency,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            lm_calls=self.lm_calls,
            cache_hit=self.lm_calls > 0 and self.hits == self.lm_calls,
            error=error,
            quality=quality,
            confidence=confidence,
            cost=self.cost,
            model=self.model,
        )
