"""A metrics report: statistics per metric, and the business numbers people who pay ask for.

* `metric_stats(observations)` — count, mean, median, p95, p99, stdev, min, max for latency (ms,
  from the workbook's one latency summary), tokens, quality (labelled answers only) and cost
  (known prices only). Users feel the tail: service levels are written as percentiles, and a
  percentile means little without its count (with 20 requests the p99 is the maximum).
* `business_metrics(observations)` — answers served, error and cache-hit rates, total cost, cost
  per answer, money the cache saved (hits × the mean cost of a paid answer), the share of
  confident answers and the mean quality.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..stats import summarize_latencies
from ._observation import Observation

__all__ = ["STAT_COLUMNS", "business_metrics", "metric_stats"]

STAT_COLUMNS = ["count", "mean", "median", "p95", "p99", "stdev", "min", "max"]


def _row(values: Sequence[float]) -> dict[str, float]:
    data = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(data, [50, 95, 99])
    return {
        "count": int(data.size),
        "mean": float(data.mean()),
        "median": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "stdev": float(data.std(ddof=1)) if data.size > 1 else 0.0,
        "min": float(data.min()),
        "max": float(data.max()),
    }


def metric_stats(observations: Sequence[Observation]):
    """One row per metric that has values (a pandas DataFrame with `STAT_COLUMNS`)."""
    import pandas as pd

    rows: dict[str, dict[str, Any]] = {}
    if observations:
        s = summarize_latencies([o.latency for o in observations])
        rows["latency_ms"] = {
            "count": s.count,
            "mean": s.mean * 1000,
            "median": s.p50 * 1000,
            "p95": s.p95 * 1000,
            "p99": s.p99 * 1000,
            "stdev": s.stdev * 1000,
            "min": s.min * 1000,
            "max": s.max * 1000,
        }
    series = {
        "input_tokens": [o.input_tokens for o in observations],
        "output_tokens": [o.output_tokens for o in observations],
        "quality": [o.quality for o in observations if o.quality is not None],
        "cost_usd": [o.cost for o in observations if not math.isnan(o.cost)],
    }
    for name, values in series.items():
        if values:
            rows[name] = _row(values)
    return pd.DataFrame.from_dict(rows, orient="index", columns=STAT_COLUMNS)


def business_metrics(
    observations: Sequence[Observation], confidence_threshold: float = 0.7
) -> dict[str, Any]:
    """Answers served, error and hit rates, cost per answer, cache savings, confident share."""
    served = [o for o in observations if o.error is None]
    hits = [o for o in served if o.cache_hit]
    paid = [o.cost for o in served if not o.cache_hit and not math.isnan(o.cost)]
    total_cost = sum(o.cost for o in observations if not math.isnan(o.cost))
    confidences = [o.confidence for o in served if o.confidence is not None]
    qualities = [o.quality for o in served if o.quality is not None]
    n = len(observations)
    return {
        "answers_served": len(served),
        "error_rate": (n - len(served)) / n if n else 0.0,
        "cache_hit_rate": len(hits) / len(served) if served else 0.0,
        "total_cost": total_cost,
        "cost_per_answer": total_cost / len(served) if served else 0.0,
        "cost_saved_by_cache": len(hits) * (sum(paid) / len(paid)) if paid else 0.0,
        "confident_share": (
            sum(c >= confidence_threshold for c in confidences) / len(confidences)
            if confidences
            else None
        ),
        "mean_quality": sum(qualities) / len(qualities) if qualities else None,
    }
