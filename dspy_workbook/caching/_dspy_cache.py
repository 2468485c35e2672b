"""Switch DSPy's built-in cache between the course default (memory only) and memory + disk."""

from __future__ import annotations

from pathlib import Path

import dspy

from ._paths import fresh_cache_dir

__all__ = ["use_dspy_disk_cache", "use_dspy_memory_cache"]


def use_dspy_disk_cache(name: str = "ex1/dspy_disk") -> Path:
    """Give DSPy an empty memory tier and an empty disk tier in `.workbook_cache/<name>`."""
    directory = fresh_cache_dir(name)
    dspy.configure_cache(
        enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(directory)
    )
    return directory


def use_dspy_memory_cache() -> None:
    """Back to what `wb.setup()` configures: a fresh, memory-only DSPy cache."""
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
