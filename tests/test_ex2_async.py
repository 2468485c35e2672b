"""Exercise 2 (async DSPy): the support code measures right; the self-checks tell right from wrong.

Everything runs on the simulated provider with small latencies; each async test is bounded in time.
The graded tasks' right and wrong answers live in `tests/catalogue/ex2_async.py` and are graded by
`tests/test_agreement.py`; the going-further tasks' entries (self-checks only) are run here.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time

import dspy
import pytest

import dspy_workbook as wb
from dspy_workbook import concurrency as cc
from dspy_workbook.checks import ex2
from tools.answer_key import load_solutions


def run(coro, seconds: float = 30):
    """Run a coroutine on a fresh loop, failing instead of hanging."""
    return asyncio.run(asyncio.wait_for(coro, seconds))


async def together(*awaitables):
    """`asyncio.gather`, but created inside the running loop."""
    return await asyncio.gather(*awaitables)


@pytest.fixture(autouse=True)
def json_adapter():
    with dspy.context(adapter=dspy.JSONAdapter(), lm=wb.sim_lm(latency=0.01, cache=False)):
        yield


# -- the answers: the master's own solution cells, and the wrong variants the checks must catch ----
KEY = load_solutions(
    "02_async",
    "run_bounded",
    "token_bucket",
    "timeout",
    "as_completed",
    "stream_answer",
)
run_bounded = KEY.run_bounded
TokenBucket = KEY.TokenBucket
ask_with_timeout = KEY.ask_with_timeout
answers_as_completed = KEY.answers_as_completed
stream_answer = KEY.stream_answer


async def naive_stream_answer(program: dspy.Module, question: str):
    """Yields straight from streamify: closing it early leaves DSPy's task group to another task."""
    streaming = dspy.streamify(
        program,
        is_async_program=True,
        stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")],
    )
    async for item in streaming(question=question):
        if isinstance(item, dspy.streaming.StreamResponse):
            yield item.chunk


# -- statistics and windows ---------------------------------------------------------------------


def test_a_concurrent_measurement_reports_its_latency_percentiles() -> None:
    row = run(
        cc.measure_concurrent(
            run_bounded, dspy.Predict("question -> answer"), cc.distinct_questions(6, "ls"), 3
        )
    )
    assert 0 < row.p50 <= row.p95 and row.requests_per_second == pytest.approx(6 / row.seconds)


def test_max_per_window_uses_half_open_windows() -> None:
    assert cc.max_per_window([0.0, 0.5, 0.99, 1.0, 1.5], 1.0) == 3
    assert cc.max_per_window([], 1.0) == 0
    assert cc.max_per_window([2.0, 2.0, 2.0], 0.1) == 3
    for window in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="window"):
            cc.max_per_window([1.0], window)


def test_max_per_window_matches_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(50):
        times = [rng.uniform(0, 5) for _ in range(rng.randint(1, 40))]
        brute = max(sum(start <= t < start + 1.0 for t in times) for start in times)
        assert cc.max_per_window(times, 1.0) == brute


def test_in_flight_counts_overlap() -> None:
    counter = cc.InFlight()

    async def hold(seconds: float) -> None:
        async with counter:
            await asyncio.sleep(seconds)

    run(together(*(hold(0.02) for _ in range(5))))
    assert (counter.current, counter.peak, counter.total) == (0, 5, 5)


# -- the test programs -------------------------------------------------------------------------


def test_flaky_qa_fails_exactly_the_marked_questions() -> None:
    results = run(run_bounded(cc.FlakyQA(), ["ok 0", "FAIL 1", "ok 2"], 3))
    assert isinstance(results[1], dspy.LMServerError)
    assert results[0].answer.endswith("ok 0") and results[2].answer.endswith("ok 2")
    with pytest.raises(dspy.LMServerError):
        cc.FlakyQA()(question="FAIL sync")


def test_scripted_qa_finishes_by_delay_and_counts_overlap() -> None:
    scripted = cc.ScriptedQA({"a?": 0.06, "b?": 0.02, "c?": 0.04}, fail={"c?"})

    async def ask(q: str):
        try:
            return await scripted.acall(question=q)
        except cc.ScriptedFailure as exc:
            return exc

    results = run(together(*(ask(q) for q in ("a?", "b?", "c?"))), 10)
    assert scripted.finished == ["b?", "c?", "a?"]
    assert (scripted.in_flight.peak, scripted.in_flight.current) == (3, 0)
    assert results[0].answer == "Answer to: a?" and isinstance(results[2], cc.ScriptedFailure)
    assert scripted(question="b?").answer == "Answer to: b?"  # the sync path too
    with pytest.raises(ValueError):
        cc.ScriptedQA({"x": -1})


# -- measuring ---------------------------------------------------------------------------------


def test_measure_concurrent_reports_peak_and_errors() -> None:
    lm = wb.sim_lm(latency=0.02, cache=False)
    row = run(
        cc.measure_concurrent(
            run_bounded,
            dspy.Predict("question -> answer"),
            cc.distinct_questions(12, "m"),
            4,
            lm=lm,
        )
    )
    assert (row.n, row.concurrency, row.peak_in_flight, row.errors) == (12, 4, 4, 0)
    assert row.p50 <= row.p95
    flaky = run(cc.measure_concurrent(run_bounded, cc.FlakyQA(), ["a", "FAIL b", "c"], 3))
    assert flaky.errors == 1


def test_measure_concurrent_rejects_a_runner_that_drops_results() -> None:
    async def lossy(program, questions, limit):
        return []

    with pytest.raises(ValueError, match="0 results for 3 questions"):
        run(cc.measure_concurrent(lossy, dspy.Predict("question -> answer"), ["a", "b", "c"], 2))


def test_measure_sequential_runs_one_at_a_time() -> None:
    lm = wb.sim_lm(latency=0.005, cache=False)
    row = cc.measure_sequential(
        dspy.Predict("question -> answer"), cc.distinct_questions(5, "s"), lm=lm
    )
    assert (row.n, row.concurrency, row.peak_in_flight) == (5, None, 1)
    assert lm.engine.stats.calls == 5


def test_table_and_chart_render() -> None:
    pytest.importorskip("matplotlib").use("Agg")
    rows = [
        cc.ThroughputRow("sequential", None, 10, 2.0, 5.0, 0.2, 0.25, 0, 1),
        cc.ThroughputRow("concurrency 10", 10, 10, 0.25, 40.0, 0.2, 0.25, 0, 10),
    ]
    table = cc.format_table(rows)
    assert "8.0×" in table and table.count("\n") == 2
    fig = cc.plot_throughput(rows)
    assert len(fig.axes) == 2


def test_distinct_questions_never_repeat() -> None:
    questions = cc.distinct_questions(100, "x")
    assert len(set(questions)) == 100
    with pytest.raises(ValueError):
        cc.distinct_questions(-1)


# -- the behaviour the notebook teaches -----------------------------------------------------------


def test_provider_rate_limits_are_retried_until_every_answer_arrives() -> None:
    lm = wb.sim_lm(latency=0.005, rate_limit=20, cache=False)
    with dspy.context(lm=lm):
        results = run(
            run_bounded(dspy.Predict("question -> answer"), cc.distinct_questions(30, "r"), 30)
        )
    assert all(isinstance(r, dspy.Prediction) for r in results)
    assert lm.engine.stats.rate_limited > 0


def test_without_retries_rate_limit_errors_stay_in_place() -> None:
    lm = wb.sim_lm(latency=0.005, rate_limit=5, num_retries=0, cache=False)
    questions = cc.distinct_questions(8, "n")
    with dspy.context(lm=lm):
        results = run(run_bounded(dspy.Predict("question -> answer"), questions, 8))
    failed = [r for r in results if isinstance(r, Exception)]
    assert failed and all(isinstance(r, dspy.LMRateLimitError) for r in failed)
    pairs = zip(questions, results, strict=True)
    answered = [(q, r) for q, r in pairs if not isinstance(r, Exception)]
    assert all(q in r.answer for q, r in answered)


def test_token_bucket_in_front_of_the_provider_keeps_it_within_its_limit() -> None:
    lm = wb.sim_lm(latency=0.005, rate_limit=10, cache=False)
    bucket, predict = TokenBucket(rate=8, burst=1), dspy.Predict("question -> answer")

    async def throttled(question: str) -> dspy.Prediction:
        await bucket.acquire()
        return await predict.acall(question=question)

    with dspy.context(lm=lm):
        run(together(*(throttled(q) for q in cc.distinct_questions(15, "tb"))))
    assert cc.max_per_window(lm.engine.stats.started_at, 1.0) <= 10
    assert lm.engine.stats.calls == 15


def test_asyncify_is_capped_by_async_max_workers() -> None:
    lm = wb.sim_lm(latency=0.05, cache=False)
    program = dspy.asyncify(dspy.Predict("question -> answer"))
    with dspy.context(lm=lm):
        run(together(*(program(question=q) for q in cc.distinct_questions(16, "az"))))
    assert lm.engine.stats.max_in_flight <= dspy.settings.async_max_workers


def test_dspy_streamify_abandoned_midway_errors_in_another_task() -> None:
    """DSPy 3.4.1 behaviour the notebook warns about; if this starts failing, update Section 8."""

    async def scenario() -> list:
        errors: list = []
        asyncio.get_running_loop().set_exception_handler(
            lambda _l, ctx: errors.append(ctx.get("exception"))
        )
        with dspy.context(lm=wb.sim_lm(latency=0.2, cache=False)):
            stream = naive_stream_answer(dspy.Predict("question -> answer"), "abandon me")
            await anext(stream)
            await stream.aclose()
            del stream
            try:
                gc.collect()
                await asyncio.sleep(0.1)
            except asyncio.CancelledError as exc:  # the stray cancel scope cancels this task too
                errors.append(exc)
        return errors

    errors = run(scenario(), 10)
    assert any("cancel scope" in str(e) for e in errors), errors


# -- the self-checks: correct answers pass, typical mistakes get a specific message ---------------


def test_checks_accept_the_reference_answers() -> None:
    results = [
        ex2.check_run_bounded(run_bounded),
        ex2.check_token_bucket(TokenBucket),
        ex2.check_timeout(ask_with_timeout),
        ex2.check_as_completed(answers_as_completed),
        ex2.check_stream(stream_answer),
    ]
    assert all(r.outcome == "correct" for r in results), results


def test_checks_report_untouched_starters_as_not_attempted() -> None:
    class StarterBucket(TokenBucket):
        async def acquire(self) -> None:
            raise NotImplementedError()

    async def starter(*args):
        raise NotImplementedError()

    assert ex2.check_run_bounded(starter).outcome == "not attempted"
    assert ex2.check_token_bucket(StarterBucket).outcome == "not attempted"
    assert ex2.check_timeout(starter).outcome == "not attempted"
    assert ex2.check_as_completed(starter).outcome == "not attempted"
    assert ex2.check_stream(starter).outcome == "not attempted"


@pytest.mark.parametrize("answer", [None, ..., "run_bounded", 42])
def test_an_answer_that_is_not_a_function_yet_is_not_attempted(answer) -> None:
    for check in (
        ex2.check_run_bounded,
        ex2.check_token_bucket,
        ex2.check_timeout,
        ex2.check_as_completed,
        ex2.check_stream,
    ):
        result = check(answer)
        assert result.outcome == "not attempted", (check.__name__, result)


def test_a_sync_function_returning_a_coroutine_is_judged_by_what_it_does() -> None:
    def not_async_def(program, questions, limit):  # returns an awaitable: a fair answer
        return run_bounded(program, questions, limit)

    def returns_list(program, questions, limit):
        return []

    assert ex2.check_run_bounded(not_async_def).outcome == "correct"
    result = ex2.check_run_bounded(returns_list)
    assert result.outcome == "incorrect" and "not something to `await`" in result.message


def test_checks_want_async_generators_where_results_stream() -> None:
    async def returns_list(program, questions, limit):
        return await run_bounded(program, questions, limit)

    result = ex2.check_as_completed(returns_list)
    assert result.outcome == "incorrect" and "async generator" in result.message


def test_check_run_bounded_catches_an_unbounded_or_fragile_runner() -> None:
    async def unbounded(program, questions, limit):
        return await asyncio.gather(
            *(program.acall(question=q) for q in questions), return_exceptions=True
        )

    async def fragile(program, questions, limit):
        semaphore = asyncio.Semaphore(limit)

        async def answer(q):
            async with semaphore:
                return await program.acall(question=q)

        return await asyncio.gather(*(answer(q) for q in questions))

    assert "in flight at once" in ex2.check_run_bounded(unbounded).message
    assert "return_exceptions" in ex2.check_run_bounded(fragile).message


def test_check_run_bounded_names_the_students_line_when_their_code_raises() -> None:
    async def broken(program, questions, limit):
        return {}["missing"]

    result = ex2.check_run_bounded(broken)
    assert result.outcome == "incorrect"
    assert "`run_bounded` raised KeyError" in result.message and "your line" in result.message


def test_check_token_bucket_catches_a_bucket_that_never_waits() -> None:
    class NoLimit(TokenBucket):
        async def acquire(self) -> None:
            return None

    result = ex2.check_token_bucket(NoLimit)
    assert result.outcome == "incorrect" and "budget" in result.message


def test_check_timeout_wants_the_error_returned() -> None:
    async def raises(program, question, seconds):
        async with asyncio.timeout(seconds):
            return await program.acall(question=question)

    assert "return the `TimeoutError`" in ex2.check_timeout(raises).message


def test_check_as_completed_catches_gather_then_yield() -> None:
    async def all_then_yield(program, questions, limit):
        results = await run_bounded(program, questions, limit)
        for pair in enumerate(results):
            yield pair

    result = ex2.check_as_completed(all_then_yield)
    assert result.outcome == "incorrect" and "as it finishes" in result.message


def test_check_stream_catches_an_unclean_close() -> None:
    result = ex2.check_stream(naive_stream_answer)
    assert result.outcome == "incorrect" and "left an error behind" in result.message


# -- the going-further tasks' catalogue: self-checks only (no graded cells) ---------------------

from tests.catalogue.ex2_async import OPTIONAL  # noqa: E402


@pytest.mark.parametrize("entry", OPTIONAL, ids=[f"{e.task}: {e.name}" for e in OPTIONAL])
def test_each_going_further_entry_gets_the_verdict_it_deserves(
    entry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for attr in cc.__all__:  # a submission may reassign `cc.…`: restore them afterwards
        monkeypatch.setattr(cc, attr, getattr(cc, attr))
    namespace = dict(vars(load_solutions("02_async", entry.task)))
    exec(compile(entry.source, f"<{entry.task}: {entry.name}>", "exec"), namespace)
    registered = ex2.ex.tasks[entry.task]
    assert not registered.core and registered.points == 0  # optional work carries no points
    result = registered.run(*(namespace[n] for n in registered.needs))
    if entry.correct:
        assert result.outcome == "correct", result
    else:
        assert result.outcome in {"incorrect", "error"}, result
        assert "did not finish" not in result.message, result  # a specific message, not a hang


def test_check_all_reports_core_and_optional_tasks_with_points() -> None:
    namespace = {"run_bounded": run_bounded, "TokenBucket": TokenBucket}
    summary = ex2.check_all(namespace)
    verdicts = {task.key: (result.outcome, task.core, task.points) for task, result in summary.rows}
    assert verdicts == {
        "run_bounded": ("correct", True, 3),
        "token_bucket": ("correct", True, 3),
        "timeout": ("not attempted", False, 0),
        "as_completed": ("not attempted", False, 0),
        "stream_answer": ("not attempted", False, 0),
    }
    assert summary and "core: 6/6" in repr(summary)
    assert "going further (optional): 0 of 3 self-checks pass" in repr(summary)


def test_hints_come_in_levels_for_every_task() -> None:
    for key, task in ex2.ex.tasks.items():
        assert len(task.hints) == 3, key
        task.hints_shown = 0
        levels = [ex2.hint(key).level for _ in range(4)]
        assert levels == [1, 2, 3, 3]  # the last hint stays the last
        task.hints_shown = 0


def test_a_hanging_submission_costs_the_self_checks_own_short_bound() -> None:
    async def hangs(program, questions, limit):
        await asyncio.Event().wait()

    result = ex2.check_run_bounded(hangs)
    assert result.outcome == "incorrect" and "did not finish in 15 s" in result.message


def test_a_timeout_error_raised_by_student_code_is_not_mistaken_for_a_hang() -> None:
    async def raises(program, questions, limit):
        raise TimeoutError("my own timeout")

    result = ex2.check_run_bounded(raises)
    assert result.outcome == "incorrect"
    assert "raised TimeoutError: my own timeout" in result.message


# -- refusing limits that cannot work ---------------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1, 2.5, float("nan"), float("inf"), "3", None])
def test_run_bounded_refuses_a_limit_that_cannot_work_before_any_call(limit) -> None:
    lm = wb.sim_lm(latency=0.01, cache=False)
    with dspy.context(lm=lm), pytest.raises(ValueError, match="limit"):
        run(run_bounded(dspy.Predict("question -> answer"), ["a", "b"], limit), 5)
    assert lm.engine.stats.calls == 0


@pytest.mark.parametrize("limit", [0, -1, 2.5, float("nan")])
def test_answers_as_completed_refuses_a_limit_that_cannot_work(limit) -> None:
    stream = answers_as_completed(cc.ScriptedQA({"a": 0.0}), ["a"], limit)
    with pytest.raises(ValueError, match="limit"):
        run(anext(stream), 5)


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 1), (-1, 1), (float("nan"), 1), (float("inf"), 1), ("5", 1), (5, 0), (5, 1.5), (5, -2)],
)
def test_token_bucket_refuses_settings_that_cannot_work(rate, burst) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_fast_forward_skips_idle_waits_but_not_blocking_work() -> None:
    async def scenario() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(30)  # skipped: nothing else to do meanwhile
        slept = loop.time() - start
        start = loop.time()
        time.sleep(0.05)  # blocks the thread: real time, and the loop's clock sees it
        return slept, loop.time() - start

    real = time.perf_counter()
    slept, blocked = cc.run_fast_forward(scenario, timeout=10)
    assert time.perf_counter() - real < 2
    assert slept == pytest.approx(30, abs=0.05) and blocked >= 0.05


def test_trial_bucket_measures_seconds_of_traffic_in_milliseconds() -> None:
    real = time.perf_counter()
    rounds = cc.trial_bucket(TokenBucket, rate=20, burst=4, n=30, idle=1.0)
    assert time.perf_counter() - real < 2
    for r in rounds:
        times = sorted(r.passed)
        assert times[3] - r.start < 0.01 and times[4] - r.start >= 0.04  # burst of 4, then waits
        assert r.took == pytest.approx(26 / 20, abs=0.02)
    assert rounds[1].start - rounds[0].start >= 2.3  # 1.3 s of traffic plus 1 s idle, skipped


def test_trial_bucket_says_why_when_a_bucket_ignores_its_clock() -> None:
    class RealTimeBucket(TokenBucket):
        async def acquire(self) -> None:
            while True:
                now = time.monotonic()  # not self.clock(): blind to the skipped waits
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)

    with pytest.raises(cc.FloodUnfinished, match=r"self\.clock\(\)"):
        cc.trial_bucket(RealTimeBucket, rate=20, burst=2, n=10, idle=0.1)
    result = ex2.check_token_bucket(RealTimeBucket)
    assert result.outcome == "incorrect" and "self.clock()" in result.message


def test_token_bucket_caps_its_refill_after_idling() -> None:
    async def scenario() -> list[float]:
        bucket, times = TokenBucket(rate=50, burst=3), []
        for _ in range(3):
            await bucket.acquire()
        await asyncio.sleep(0.3)  # 15 tokens' worth of idle time: only 3 may be saved
        start = asyncio.get_running_loop().time()

        async def one() -> None:
            await bucket.acquire()
            times.append(asyncio.get_running_loop().time() - start)

        await asyncio.gather(*(one() for _ in range(8)))
        return sorted(times)

    times = run(scenario(), 10)
    assert times[2] < 0.015 and times[3] >= 0.015  # three at once, the fourth waits ~20 ms


# -- what the prose claims about DSPy and Python -------------------------------------------------


def test_a_plain_thread_does_not_inherit_dspy_context() -> None:
    import threading

    probe, seen = wb.sim_lm(latency=0.0, cache=False), []
    with dspy.context(lm=probe):
        thread = threading.Thread(target=lambda: seen.append(dspy.settings.lm is probe))
        thread.start()
        thread.join()
    assert seen == [False]


def test_dspy_context_async_max_workers_resizes_one_process_wide_limiter() -> None:
    from dspy.utils.asyncify import get_limiter

    shared = get_limiter()
    before = shared.total_tokens
    program = dspy.asyncify(dspy.Predict("question -> answer"))
    with dspy.context(async_max_workers=3):
        run(program(question="resize me"))
        assert get_limiter() is shared and shared.total_tokens == 3  # the one limiter, resized
    try:
        assert shared.total_tokens == 3  # still 3 after the block, for every asyncify caller
    finally:
        get_limiter()  # the next call outside the block sizes it back
    assert shared.total_tokens == before


# -- progress bars -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        ({"JPY_SESSION_NAME": "x.ipynb"}, True),
        ({"JPY_SESSION_NAME": "x.ipynb", "CI": "true"}, False),
        ({"JPY_SESSION_NAME": "x.ipynb", "NBGRADER_EXECUTION": "autograde"}, False),
        ({}, False),  # pytest's captured stderr is not a terminal
        ({"WORKBOOK_PROGRESS": "1", "CI": "true"}, True),
        ({"WORKBOOK_PROGRESS": "0", "JPY_SESSION_NAME": "x.ipynb"}, False),
    ],
)
def test_progress_bars_show_only_where_someone_watches(
    env, shown, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JPY_SESSION_NAME", "CI", "NBGRADER_EXECUTION", "WORKBOOK_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cc.progress_enabled() is shown
    with cc.progress(3, "demo") as bar:
        assert bar.disable is not shown
    with cc.progress(3, "demo", show=False) as bar:
        assert bar.disable


# -- the notebook's shape: two graded core tasks, optional work without points -------------------


def test_master_grades_two_core_tasks_and_nothing_optional() -> None:
    import jupytext

    from tests._kit import MASTERS
    from tools.course_length import core_end

    master = MASTERS / "02_async.py"
    cells = jupytext.read(master, fmt="py:percent").cells
    first_optional = core_end(cells)
    assert first_optional < len(cells), "02_async has no Going further heading"
    graded = [
        (i, c.metadata["nbgrader"])
        for i, c in enumerate(cells)
        if c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert [g["grade_id"] for _, g in graded] == ["test_run_bounded", "test_token_bucket"]
    assert all(i < first_optional for i, _ in graded), "a graded cell in Going further"
    assert sum(g["points"] for _, g in graded) == sum(
        t.points for t in ex2.ex.tasks.values() if t.core
    ), "the notebook's points and the self-checks' points differ"
    text = master.read_text()
    assert "extra credit" not in text.lower() and "bonus" not in text.lower()
    assert text.rstrip().endswith("instructor asked."), "How to submit is the last cell"


def test_worst_overrun_holds_every_stretch_against_the_bucket_budget() -> None:
    # A correct 10/s bucket of 2: two at once, then one every 0.1 s.
    steady = [0.0, 0.0, 0.1, 0.2, 0.3, 0.4]
    assert cc.worst_overrun(steady, rate=10, burst=2) is None
    # One token too many on each refill: three at once is already over a burst of 2.
    greedy = [0.0, 0.0, 0.0, 0.2, 0.2, 0.4, 0.4]
    over = cc.worst_overrun(greedy, rate=10, burst=2)
    assert over is not None and over.count - over.allowed > 0.5
    assert "acquisitions passed within" in str(over)
    assert cc.worst_overrun([], rate=10, burst=2) is None


def test_worst_overrun_matches_brute_force() -> None:
    rng = random.Random(11)
    for _ in range(50):
        times = sorted(rng.uniform(0, 2) for _ in range(rng.randint(1, 25)))
        brute = max(
            (j - i + 1) - (3 + 10 * (times[j] - times[i]))
            for i in range(len(times))
            for j in range(i, len(times))
        )
        over = cc.worst_overrun(times, rate=10, burst=3)
        assert (over is not None) == (brute > 0.5)
        if over is not None:
            assert over.count - over.allowed == pytest.approx(brute)
