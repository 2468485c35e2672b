"""Tables that put runs side by side: speed, model calls, tokens — and whether answers changed."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from ._workload import WorkloadRun, agreement

__all__ = ["compare_runs", "technique_table"]


def _same(reference: Sequence[str], answers: Sequence[str]) -> str:
    equal = round(agreement(reference, answers) * len(reference))
    return f"{equal}/{len(reference)}"


def compare_runs(runs: Mapping[str, Sequence[WorkloadRun]]):
    """One row per program: median/min/max seconds over its runs, model calls and tokens of its
    first run, and how many answers equal the first program's (run by run, all must agree)."""
    import pandas as pd

    if not runs or any(not r for r in runs.values()):
        raise ValueError("pass at least one run per program")
    reference = next(iter(runs.values()))[0].answers
    rows = {}
    for name, program_runs in runs.items():
        seconds = [r.seconds for r in program_runs]
        rows[name] = {
            "runs": len(program_runs),
            "median s": round(statistics.median(seconds), 3),
            "min s": round(min(seconds), 3),
            "max s": round(max(seconds), 3),
            "model calls": program_runs[0].usage.calls,
            "tokens": program_runs[0].usage.tokens,
            "same answers": min(
                (_same(reference, r.answers) for r in program_runs),
                key=lambda text: int(text.split("/")[0]),
            ),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "program"
    return frame


def technique_table(reference: WorkloadRun, candidates: Sequence[WorkloadRun]):
    """The reference and each candidate technique: time, speed-up, calls, tokens, same answers."""
    import pandas as pd

    rows = {}
    for run in [reference, *candidates]:
        rows[run.label] = {
            "seconds": round(run.seconds, 3),
            "speed-up": round(reference.seconds / run.seconds, 2) if run.seconds else float("inf"),
            "model calls": run.usage.calls,
            "tokens": run.usage.tokens,
            "same answers": _same(reference.answers, run.answers),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "technique"
    return frame
