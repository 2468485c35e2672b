"""Support code for Exercise 1 (caching): cache folders, query streams, timing and charts.

The answers (cache key, disk cache, cached module, similarity lookup) are the student's; this
package only provides the scaffolding around them.
"""

from ..progress import progress_enabled
from ..progress import track as progress
from ._charts import show_figure, stream_figure
from ._dspy_cache import use_dspy_disk_cache, use_dspy_memory_cache
from ._paths import fresh_cache_dir
from ._streams import COURSE_QUESTIONS, zipf_stream
from ._timing import CallRecord, ManualClock, hit_rate_curve, run_stream, time_calls

__all__ = [
    "COURSE_QUESTIONS",
    "CallRecord",
    "ManualClock",
    "fresh_cache_dir",
    "hit_rate_curve",
    "progress",
    "progress_enabled",
    "run_stream",
    "show_figure",
    "stream_figure",
    "time_calls",
    "use_dspy_disk_cache",
    "use_dspy_memory_cache",
    "zipf_stream",
]
