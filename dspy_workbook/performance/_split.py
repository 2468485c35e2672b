"""Where the time of a DSPy call goes: cProfile's top functions, and a four-way split.

cProfile records every Python function call in the profiled thread (deterministic profiling, so
it adds overhead to Python-heavy code and none to time spent waiting). The split reads the
cumulative time of a few functions DSPy 3.4 always goes through:

* the engine attempt (`dspy/clients/execution.py:_attempt`): the model itself, and for the local
  model the wait for its thread;
* prompt formatting (`Adapter.format` and the JSON adapter's response schema);
* output parsing (the adapters' `parse`);
* everything else: DSPy's LM plumbing (cache key, history, callbacks), module calls, our code.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ProfileRun", "profile_calls", "time_split", "top_functions"]

# (path suffix, function name) of the functions the split reads; see the module docstring.
_ENGINE = (("dspy/clients/execution.py", "_attempt"),)
_FORMAT = (
    ("dspy/adapters/base.py", "format"),
    ("dspy/adapters/json_adapter.py", "_prepare_response_format"),
)
_PARSE = (("dspy/adapters/json_adapter.py", "parse"), ("dspy/adapters/chat_adapter.py", "parse"))


@dataclass(frozen=True)
class ProfileRun:
    """A profiled run: the wall time and cProfile's statistics."""

    seconds: float
    calls: int
    stats: pstats.Stats


def profile_calls(fn: Callable[[], Any], calls: int = 5) -> ProfileRun:
    """Run `fn` `calls` times under cProfile (in this thread) and keep the statistics."""
    if calls < 1:
        raise ValueError(f"calls must be >= 1, got {calls}")
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    try:
        for _ in range(calls):
            fn()
    finally:
        profiler.disable()
    return ProfileRun(time.perf_counter() - start, calls, pstats.Stats(profiler))


def _where(filename: str, line: int, name: str) -> str:
    short = filename.split("site-packages/")[-1]
    return f"{name} ({short}:{line})" if line else name


def top_functions(run: ProfileRun, n: int = 10, *, by: str = "own"):
    """The `n` functions with the most time (`by="own"`: in the function itself; "cumulative":
    including what it called) as a DataFrame, in ms per profiled call."""
    import pandas as pd

    if by not in ("own", "cumulative"):
        raise ValueError(f"by is 'own' or 'cumulative', got {by!r}")
    rows = []
    for (filename, line, name), (_, ncalls, own, cumulative, _) in run.stats.stats.items():
        rows.append(
            {
                "function": _where(filename, line, name),
                "calls": ncalls // run.calls,
                "own ms": own * 1000 / run.calls,
                "cumulative ms": cumulative * 1000 / run.calls,
            }
        )
    frame = pd.DataFrame(rows).sort_values(f"{by} ms", ascending=False).head(n)
    return frame.round(2).reset_index(drop=True)


def _cumulative(run: ProfileRun, wanted: tuple[tuple[str, str], ...]) -> float:
    total = 0.0
    for (filename, _, name), (_, _, _, cumulative, _) in run.stats.stats.items():
        if any(filename.replace("\\", "/").endswith(path) and name == fn for path, fn in wanted):
            total += cumulative
    return total


def time_split(run: ProfileRun) -> dict[str, float]:
    """Seconds per profiled call: model (engine), DSPy formatting, DSPy parsing, everything else."""
    engine, fmt, parse = (_cumulative(run, w) / run.calls for w in (_ENGINE, _FORMAT, _PARSE))
    per_call = run.seconds / run.calls
    return {
        "LM engine (model + waiting for it)": engine,
        "DSPy: prompt formatting": fmt,
        "DSPy: output parsing": parse,
        "rest: DSPy plumbing, modules, our code": max(0.0, per_call - engine - fmt - parse),
    }
