"""Support code for Exercise 4 (performance): machine facts, memory, workload, profiles, llama.cpp.

The answers (the profiler, the faster program, the regression guard) are the student's; this
package measures around them:

* `machine_info()` — the CPU, cores, load, llama.cpp's build and the thread count of a figure;
* `rss_bytes()` — what the operating system sees, beside tracemalloc's Python-only view;
* `time_call`, `Timing`, `RegressionCheck`, `save_baseline`/`load_baseline` — timings with
  warm-up and repeats, and results that can be kept;
* `ProfileRecord`, `profile_table`, `stage_table`, `no_profile` — what a profiler records, and
  the tables that show where a program's time goes and whether it waited or computed;
* `retrieve`, `PASSAGES` — the small document store of the exercise's program;
* `like_a_cell` — call a program the way a notebook cell does (an event loop running);
* `workload()`, `run_workload()` — a fixed question set with repeats, one measured pass with
  the LM calls and tokens it cost;
* `profile_calls`, `top_functions`, `time_split` — cProfile reduced to what matters;
* `quantize_model`, `probe_model`, `shipped_model_path` — llama.cpp's own quantizer and a clean
  per-process measurement of a model file;
* `compare_runs`, `technique_table` — runs side by side, answers compared;
* `progress()` — a bar in JupyterLab, plain lines in CI.
"""

from ..caching import show_figure
from ..progress import track as progress
from ._cell import like_a_cell
from ._charts import quantization_figure, split_figure
from ._compare import compare_runs, technique_table
from ._corpus import PASSAGES, retrieve
from ._llama import (
    ProbeResult,
    QuantizedModel,
    probe_model,
    quantization_row,
    quantize_model,
    shipped_model_path,
)
from ._machine import MachineInfo, cpu_model, llama_system_info, machine_info
from ._memory import (
    MB,
    ProfileRecord,
    no_profile,
    profile_table,
    rss_bytes,
    stage_table,
    to_mb,
)
from ._prompts import long_system_prompt
from ._split import ProfileRun, profile_calls, time_split, top_functions
from ._timing import (
    BaselineError,
    RegressionCheck,
    Timing,
    load_baseline,
    save_baseline,
    time_call,
)
from ._workload import LMUsage, WorkloadRun, agreement, lm_usage_since, run_workload, workload

__all__ = [
    "BaselineError",
    "LMUsage",
    "MB",
    "MachineInfo",
    "PASSAGES",
    "ProbeResult",
    "ProfileRecord",
    "ProfileRun",
    "QuantizedModel",
    "RegressionCheck",
    "Timing",
    "WorkloadRun",
    "agreement",
    "compare_runs",
    "cpu_model",
    "llama_system_info",
    "like_a_cell",
    "lm_usage_since",
    "load_baseline",
    "long_system_prompt",
    "machine_info",
    "no_profile",
    "probe_model",
    "profile_calls",
    "profile_table",
    "progress",
    "quantization_figure",
    "quantization_row",
    "quantize_model",
    "retrieve",
    "rss_bytes",
    "run_workload",
    "save_baseline",
    "shipped_model_path",
    "show_figure",
    "split_figure",
    "stage_table",
    "technique_table",
    "time_call",
    "time_split",
    "to_mb",
    "top_functions",
    "workload",
]
