"""Support code for Exercise 1 (caching): files, keys, program descriptions, streams and charts.

The answers (cache key, the disk cache's `get` and expiry, the cached module's `forward`, the
similarity lookup) are the student's; this package only provides the given code around them.
"""

from ..progress import progress_enabled
from ..progress import track as progress
from ._charts import show_figure, stream_figure
from ._dspy_cache import use_dspy_disk_cache, use_dspy_memory_cache
from ._files import ORPHAN_SECONDS, read_json_entry, remove_orphans, write_json_atomic
from ._keys import tag_types
from ._memory import DictCache
from ._paths import fresh_cache_dir
from ._programs import decode_outputs, describe_program, encode_outputs, lm_in_use
from ._streams import COURSE_QUESTIONS, zipf_stream
from ._timing import (
    CallRecord,
    ManualClock,
    check_seconds,
    hit_rate_curve,
    run_stream,
    time_calls,
)

__all__ = [
    "COURSE_QUESTIONS",
    "ORPHAN_SECONDS",
    "CallRecord",
    "DictCache",
    "ManualClock",
    "check_seconds",
    "decode_outputs",
    "describe_program",
    "encode_outputs",
    "fresh_cache_dir",
    "hit_rate_curve",
    "lm_in_use",
    "progress",
    "progress_enabled",
    "read_json_entry",
    "remove_orphans",
    "run_stream",
    "show_figure",
    "stream_figure",
    "tag_types",
    "time_calls",
    "use_dspy_disk_cache",
    "use_dspy_memory_cache",
    "write_json_atomic",
    "zipf_stream",
]
