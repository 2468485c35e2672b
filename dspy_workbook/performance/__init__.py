"""Support code for Exercise 4 (performance): machine facts, memory, workload, profiles, llama.cpp.

The answers (timing, the profiler, the optimised program, the regression guard) are the
student's; this package measures around them:

* `machine_info()` — the CPU, cores, load, llama.cpp's build and the thread count of a figure;
* `rss_bytes()` — what the operating system sees, beside tracemalloc's Python-only view;
* `Timing`, `RegressionCheck`, `save_baseline`/`load_baseline` — results that can be kept;
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
from ._charts import quantization_figure, split_figure
from ._compare import compare_runs, technique_table
from ._llama import (
    ProbeResult,
    QuantizedModel,
    probe_model,
    quantization_row,
    quantize_model,
    shipped_model_path,
)
from ._machine import MachineInfo, cpu_model, llama_system_info, machine_info
from ._memory import MB, ProfileRecord, profile_table, rss_bytes, to_mb
from ._prompts import long_system_prompt
from ._split import ProfileRun, profile_calls, time_split, top_functions
from ._timing import BaselineError, RegressionCheck, Timing, load_baseline, save_baseline
from ._workload import LMUsage, WorkloadRun, agreement, lm_usage_since, run_workload, workload

__all__ = [
    "BaselineError",
    "LMUsage",
    "MB",
    "MachineInfo",
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
    "lm_usage_since",
    "load_baseline",
    "long_system_prompt",
    "machine_info",
    "probe_model",
    "profile_calls",
    "profile_table",
    "progress",
    "quantization_figure",
    "quantization_row",
    "quantize_model",
    "rss_bytes",
    "run_workload",
    "save_baseline",
    "shipped_model_path",
    "show_figure",
    "split_figure",
    "technique_table",
    "time_split",
    "to_mb",
    "top_functions",
    "workload",
]
