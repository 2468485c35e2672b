"""The pieces every exercise shares: latency summary, the workbook folder, threads with a bound."""

from __future__ import annotations

import asyncio
import contextvars
import math
import time

import numpy as np
import pytest

from dspy_workbook.paths import CACHE_DIR_ENV, workbook_dir
from dspy_workbook.stats import percentile, summarize_latencies, summary_table
from dspy_workbook.threads import run_async, run_with_timeout


def test_the_summary_uses_numpys_percentiles_for_every_field() -> None:
    samples = [0.1, 0.2, 0.3, 0.4, 1.0]
    summary = summarize_latencies(samples)
    assert summary.count == 5 and math.isclose(summary.mean, 0.4)
    for name, q in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99)):
        assert math.isclose(getattr(summary, name), float(np.percentile(samples, q)))
    assert summary.min == 0.1 and summary.max == 1.0
    assert math.isclose(summary.stdev, float(np.std(samples, ddof=1)))
    assert math.isclose(percentile(samples, 90), summary.p90)


def test_a_single_sample_has_no_spread_and_bad_samples_are_refused_clearly() -> None:
    assert summarize_latencies([0.5]).stdev == 0.0
    for bad, words in (([], "no samples"), ([0.1, float("nan")], "finite"), ([-1.0], ">= 0")):
        with pytest.raises(ValueError, match=words):
            summarize_latencies(bad)
    with pytest.raises(ValueError, match="percentage"):
        percentile([1.0], 101)


def test_the_summary_table_has_one_row_per_name_in_milliseconds() -> None:
    table = summary_table({"hit": [0.001, 0.002], "miss": [0.5, 0.7]})
    assert list(table.index) == ["hit", "miss"]
    assert table.loc["miss", "p50 ms"] == 600.0 and table.loc["hit", "count"] == 2


def test_the_workbook_folder_honours_the_environment_and_stays_inside(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "root"))
    folder = workbook_dir("ex4", "profiles")
    assert folder == tmp_path / "root" / "ex4" / "profiles" and folder.is_dir()
    for escape in ("../x", "/etc", ""):
        with pytest.raises(ValueError, match="stay inside"):
            workbook_dir(escape)


def test_run_with_timeout_returns_raises_and_keeps_context() -> None:
    var = contextvars.ContextVar("var", default="unset")
    var.set("caller")
    assert run_with_timeout(var.get, timeout=5) == "caller"
    with pytest.raises(ZeroDivisionError):
        run_with_timeout(lambda: 1 / 0, timeout=5)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="0.2 s"):
        run_with_timeout(time.sleep, 5, timeout=0.2)
    assert time.monotonic() - start < 2
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="positive"):
            run_with_timeout(print, timeout=bad)


def test_run_async_works_inside_a_running_event_loop() -> None:
    async def inner() -> int:
        await asyncio.sleep(0.01)
        return 7

    async def outer() -> int:  # as in a notebook cell: a loop is already running here
        return run_async(inner, timeout=5)

    assert asyncio.run(outer()) == 7
    with pytest.raises(TimeoutError, match="did not finish"):
        run_async(lambda: asyncio.sleep(5), timeout=0.2)


def test_progress_bars_show_only_where_someone_watches(monkeypatch) -> None:
    from dspy_workbook.progress import progress, progress_enabled, track

    for name in ("CI", "NBGRADER_EXECUTION", "WORKBOOK_PROGRESS", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "notebook.ipynb")  # a kernel of a Jupyter server
    assert progress_enabled()
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled() and progress(3, "quiet").disable
    monkeypatch.setenv("WORKBOOK_PROGRESS", "1")
    assert progress_enabled()
    monkeypatch.setenv("WORKBOOK_PROGRESS", "0")
    assert list(track(range(4), "count")) == [0, 1, 2, 3]


def test_a_timeout_error_raised_by_the_work_is_not_mistaken_for_the_bound() -> None:
    from dspy_workbook.checks import check
    from dspy_workbook.threads import BoundExceeded

    def raises_timeout() -> None:
        raise TimeoutError("the student's own timeout")

    with pytest.raises(TimeoutError, match="student's own") as caught:
        run_with_timeout(raises_timeout, timeout=5)
    assert not isinstance(caught.value, BoundExceeded)

    @check("Demo · own timeout", seconds=5)
    def check_own(fn) -> str:
        fn()
        return "ok"

    result = check_own(raises_timeout)
    assert result.outcome == "error" and "raised TimeoutError" in result.message
