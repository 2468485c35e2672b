"""Answer key for 02_async.ipynb — generated from source/ch07/02_async.py by tools/build.py; do not edit.

Run: python solutions/exercise2_async.py  (backend: $WORKBOOK_LM, default local)
"""

import asyncio


async def _main() -> None:
    # # Exercise 2 — Async DSPy: concurrency, rate limits, timeouts and streaming
    import dspy_workbook as wb

    lm = wb.setup()

    import asyncio
    import contextlib
    import math
    import threading
    import time
    from collections.abc import AsyncIterator, Sequence

    import dspy
    from IPython.display import display

    from dspy_workbook import concurrency as cc
    from dspy_workbook.checks import ex2

    qa = dspy.Predict("question -> answer")
    LATENCY = cc.demo_latency()  # 0.2 s like a real provider; the autograder sets 0.01 s


    def remote_lm(**options) -> dspy.LM:
        """A fresh simulated provider with its own counters; DSPy's cache off, so every call is real."""
        options.setdefault("latency", LATENCY)
        options.setdefault("jitter", LATENCY / 4)
        return wb.sim_lm(cache=False, **options)


    print(f"simulated provider latency: {LATENCY:g} s ± {LATENCY / 4:g} s")

    # ## 1. The event loop is already running
    async def one_answer(question: str) -> str:
        """Ask one question without blocking the event loop."""
        return (await qa.acall(question=question)).answer


    print("top-level await:", await one_answer("What is an event loop?"))

    pending = one_answer("This coroutine is never run.")
    try:
        asyncio.run(pending)
    except RuntimeError as exc:
        print("asyncio.run in a notebook ->", exc)
    finally:
        pending.close()  # it was never awaited: close it so Python does not warn later

    # ### What is wrong with the classic "run it in an executor" starter
    probe = remote_lm()
    with dspy.context(lm=probe):
        loop = asyncio.get_running_loop()
        in_executor = await loop.run_in_executor(None, lambda: dspy.settings.lm is probe)
        in_to_thread = await asyncio.to_thread(lambda: dspy.settings.lm is probe)
        seen_by_thread: list[bool] = []
        plain = threading.Thread(target=lambda: seen_by_thread.append(dspy.settings.lm is probe))
        plain.start()
        plain.join()
    print("run_in_executor sees dspy.context(lm=...):  ", in_executor)
    print("threading.Thread sees dspy.context(lm=...): ", seen_by_thread[0])
    print("asyncio.to_thread sees dspy.context(lm=...):", in_to_thread)

    # ## 2. Three ways to run DSPy concurrently
    async def timed_fanout(label: str, make_call) -> None:
        """Send 20 distinct questions at once through `make_call` and report time and peak in flight."""
        provider = remote_lm()
        questions = cc.distinct_questions(20, tag=label)
        with dspy.context(lm=provider):
            start = time.perf_counter()
            await asyncio.gather(*(make_call(q) for q in questions))
            seconds = time.perf_counter() - start
        print(f"{label:<22} {seconds:5.2f} s   peak in flight: {provider.engine.stats.max_in_flight}")


    async_qa = dspy.asyncify(qa)
    await timed_fanout("native acall", lambda q: qa.acall(question=q))
    await timed_fanout("dspy.asyncify", lambda q: async_qa(question=q))
    await timed_fanout("asyncio.to_thread", lambda q: asyncio.to_thread(qa, question=q))

    # ### Task 1 — `aforward` for your own module (1 point)
    class OnlyForward(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.answer = dspy.Predict("question -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            return self.answer(question=question)


    try:
        await OnlyForward().acall(question="Does this work?")
    except AttributeError as exc:
        print(f"{type(exc).__name__}: {exc}")

    class DraftThenPolish(dspy.Module):
        """Answer in two steps: a draft, then a polished answer that sees the draft."""

        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.Predict("question -> answer")
            self.polish = dspy.Predict("question, draft -> answer")

        def forward(self, question: str) -> dspy.Prediction:
            draft = self.draft(question=question).answer
            return self.polish(question=question, draft=draft)

        async def aforward(self, question: str) -> dspy.Prediction:
            """The same two steps as `forward`, awaiting each LM call instead of blocking."""
            draft = (await self.draft.acall(question=question)).answer
            return await self.polish.acall(question=question, draft=draft)

    ex2.check_aforward(DraftThenPolish)

    provider = wb.sim_lm(latency=0.01, cache=False)
    with dspy.context(lm=provider):
        async with asyncio.timeout(20):
            result = await DraftThenPolish().acall(question="What is DSPy?")
    calls = provider.engine.stats.calls
    assert isinstance(result, dspy.Prediction), f"acall returned {type(result).__name__}"
    assert calls == 2, f"expected a draft call and a polish call, saw {calls}"
    provider = wb.sim_lm(latency=0.05, cache=False)
    with dspy.context(lm=provider):
        async with asyncio.timeout(20):
            results = await asyncio.gather(
                *(DraftThenPolish().acall(question=q) for q in cc.distinct_questions(5, "t1"))
            )
    assert all("t1" in r.answer for r in results)
    assert provider.engine.stats.max_in_flight == 5, "calls did not overlap: does aforward block?"

    # ## 3. A concurrency limit that holds — and keeps every result
    # ### Task 2 — `run_bounded` (3 points)
    # ex2.hint("run_bounded")  # uncomment and run for a hint; run again for the next one

    async def run_bounded(program: dspy.Module, questions: Sequence[str], limit: int) -> list:
        """Answer with at most `limit` calls in flight; results in order, failures as exceptions."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")
        semaphore = asyncio.Semaphore(limit)

        async def answer(question: str) -> dspy.Prediction:
            async with semaphore:
                return await program.acall(question=question)

        return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)

    ex2.check_run_bounded(run_bounded)

    provider = wb.sim_lm(latency=0.02, cache=False)
    questions = cc.distinct_questions(12, "t2")
    with dspy.context(lm=provider):
        async with asyncio.timeout(30):
            results = await run_bounded(qa, questions, 4)
    assert len(results) == len(questions), f"{len(results)} results for {len(questions)} questions"
    peak = provider.engine.stats.max_in_flight
    assert peak <= 4, f"{peak} calls in flight, limit 4"
    assert all(q in r.answer for q, r in zip(questions, results, strict=True)), "not in question order"
    assert peak == 4, "the limit was never reached: calls did not overlap"
    provider = wb.sim_lm(latency=0.02, cache=False)
    with dspy.context(lm=provider):
        async with asyncio.timeout(30):
            results = await run_bounded(qa, questions[:5], 1)
    assert provider.engine.stats.max_in_flight == 1
    assert [q in r.answer for q, r in zip(questions[:5], results, strict=True)] == [True] * 5
    mixed = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        async with asyncio.timeout(30):
            results = await run_bounded(cc.FlakyQA(), mixed, 2)
    assert [isinstance(r, Exception) for r in results] == [False, True, False, True, False]
    answered = [(q, r) for q, r in zip(mixed, results, strict=True) if not isinstance(r, Exception)]
    assert all(q in r.answer for q, r in answered)
    async with asyncio.timeout(10):
        assert await run_bounded(qa, [], 3) == []
    for bad_limit in (0, -1, 2.5, float("nan")):
        provider = wb.sim_lm(latency=0.01, cache=False)
        try:
            with dspy.context(lm=provider):
                async with asyncio.timeout(5):  # limit=0 must not wait forever
                    await run_bounded(qa, questions, bad_limit)
            raise AssertionError(f"limit={bad_limit!r} was accepted")
        except ValueError:
            pass
        except TimeoutError:
            raise AssertionError(f"limit={bad_limit!r}: waited 5 s instead of a ValueError") from None
        assert provider.engine.stats.calls == 0, f"limit={bad_limit!r}: calls were made before refusing"

    # ### The seed's program, done right
    seed_questions = [
        "What is DSPy?",
        "How do modules work?",
        "What is optimization?",
        "Why do language model calls benefit from async?",
        "What does a semaphore limit?",
    ]
    seed_results = await run_bounded(qa, seed_questions, 5)
    for seed_question, seed_result in zip(seed_questions, seed_results, strict=True):
        print(f"Q: {seed_question}")
        print(f"A: {getattr(seed_result, 'answer', seed_result)}\n")

    # ## 4. Throughput, measured and charted
    N = 30
    rows = [
        cc.measure_sequential(qa, cc.distinct_questions(N, "seq"), lm=remote_lm(), show_progress=True)
    ]
    for limit in (1, 2, 5, 10, 20):
        rows.append(
            await cc.measure_concurrent(
                run_bounded,
                qa,
                cc.distinct_questions(N, f"c{limit}"),
                limit,
                lm=remote_lm(),
                show_progress=True,
            )
        )
    print(cc.format_table(rows))
    display(cc.plot_throughput(rows, f"Simulated remote provider, {N} requests, latency {LATENCY:g} s"))

    if wb.describe(lm).name == "local":
        colours = [f"Name one colour ({i})." for i in range(6)]  # same kind of question in both runs
        local_rows = [
            cc.measure_sequential(qa, colours[:3], lm=lm.copy(cache=False)),
            await cc.measure_concurrent(run_bounded, qa, colours[3:], 3, lm=lm.copy(cache=False)),
        ]
        print(cc.format_table(local_rows))
    else:
        print(f"The course LM is {wb.describe(lm).name!r}, not the local model: skipped.")

    # ## 5. Rate limits: the provider's, and your own
    limited = remote_lm(latency=0.01, jitter=0.0, rate_limit=10)
    burst_questions = cc.distinct_questions(25, "burst")
    with dspy.context(lm=limited):
        start = time.perf_counter()
        results = await run_bounded(qa, burst_questions, 25)
        seconds = time.perf_counter() - start
    answered = sum(not isinstance(r, Exception) for r in results)
    print(
        f"{answered}/{len(results)} answered in {seconds:.1f} s; "
        f"the provider refused {limited.engine.stats.rate_limited} calls, which DSPy retried"
    )

    strict = remote_lm(latency=0.01, jitter=0.0, rate_limit=10, num_retries=0)
    with dspy.context(lm=strict):
        results = await run_bounded(qa, cc.distinct_questions(15, "strict"), 15)
    failures = [type(r).__name__ for r in results if isinstance(r, Exception)]
    print(f"{len(results) - len(failures)} answered, {len(failures)} failed: {sorted(set(failures))}")

    # ### Task 3 — `TokenBucket` (2 points)
    # ex2.hint("token_bucket")  # uncomment and run for a hint; run again for the next one

    class TokenBucket:
        """Let `rate` acquisitions per second through on average, and up to `burst` at once."""

        def __init__(self, rate: float, burst: int = 1) -> None:
            if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
                raise ValueError(f"rate must be a finite number of requests per second, got {rate!r}")
            if not (isinstance(burst, int) and burst >= 1):
                raise ValueError(f"burst must be a whole number of at least 1, got {burst!r}")
            self.rate = float(rate)
            self.burst = burst
            self.tokens = float(burst)  # start full: the first `burst` requests need not wait
            self.updated = time.monotonic()
            self.lock = asyncio.Lock()

        async def acquire(self) -> None:
            """Wait until a token is available, then take it."""
            async with self.lock:
                while True:
                    now = time.monotonic()
                    self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                    self.updated = now
                    if self.tokens >= 1:
                        self.tokens -= 1
                        return
                    await asyncio.sleep((1 - self.tokens) / self.rate)

    ex2.check_token_bucket(TokenBucket)

    bucket = TokenBucket(rate=20, burst=4)
    passed_at: list[float] = []


    async def take() -> None:
        await bucket.acquire()
        passed_at.append(time.monotonic())


    async with asyncio.timeout(15):
        await asyncio.gather(*(take() for _ in range(40)))
    assert len(passed_at) == 40
    worst = cc.max_per_window(passed_at, 1.0)
    assert worst <= 20 * 1.0 + 4, f"{worst} acquisitions in one second; the budget is 24"
    import importlib

    # A fresh copy of the measuring tool: a solution cell cannot change what the test measures with.
    most_in_window = importlib.reload(
        importlib.import_module("dspy_workbook.concurrency._windows")
    ).max_per_window


    async def flood(bucket: TokenBucket, n: int) -> tuple[float, list[float], float, float]:
        """`n` acquisitions at once: start, when each passed, the longest and the total loop stall."""
        times: list[float] = []
        lags: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:  # a task that should get a turn every ~10 ms
            while not done.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        async def one() -> None:
            await bucket.acquire()
            times.append(time.perf_counter())

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        start = time.perf_counter()
        try:
            async with asyncio.timeout(15):
                await asyncio.gather(*(one() for _ in range(n)))
        finally:
            done.set()
            await tick
        return start, times, max(lags, default=0.0), sum(lags) / max(time.perf_counter() - start, 1e-9)


    rate, burst = 20, 4
    bucket = TokenBucket(rate=rate, burst=burst)
    start_a, times_a, worst_lag_a, stuck_a = await flood(bucket, 30)
    await asyncio.sleep(1.0)  # idle: a bucket may refill to `burst`, never beyond
    start_b, times_b, worst_lag_b, stuck_b = await flood(bucket, 30)
    everything = times_a + times_b
    assert len(everything) == 60
    for window in (0.25, 0.5, 1.0):
        most, budget = most_in_window(everything, window), rate * window + burst
        assert most <= budget + 1, f"{most} passed within {window} s; the budget is {budget:g}"
    for start, times in ((start_a, times_a), (start_b, times_b)):
        assert sorted(times)[burst - 1] - start < 0.1, "no burst: the first requests had to wait"
        took = max(times) - start
        assert took < (30 - burst) / rate * 1.3 + 0.2, f"30 requests took {took:.2f} s: too slow"
    assert max(worst_lag_a, worst_lag_b) < 0.5, "the event loop froze while requests waited"
    assert max(stuck_a, stuck_b) < 0.5, "the event loop was blocked most of the time requests waited"

    class Throttled(dspy.Module):
        """Run `program` only when `bucket` lets a request through."""

        def __init__(self, program: dspy.Module, bucket: TokenBucket) -> None:
            super().__init__()
            self.program, self.bucket = program, bucket

        async def aforward(self, **inputs) -> dspy.Prediction:
            await self.bucket.acquire()
            return await self.program.acall(**inputs)


    limited = remote_lm(latency=0.01, jitter=0.0, rate_limit=10)
    with dspy.context(lm=limited):
        start = time.perf_counter()
        throttled = Throttled(qa, TokenBucket(rate=8, burst=1))
        results = await run_bounded(throttled, cc.distinct_questions(20, "tb"), 20)
        seconds = time.perf_counter() - start
    stats = limited.engine.stats
    print(
        f"{sum(not isinstance(r, Exception) for r in results)}/20 answered in {seconds:.1f} s; "
        f"refused by the provider: {stats.rate_limited}; "
        f"most requests in any 1 s window: {cc.max_per_window(stats.started_at, 1.0)} (limit 10)"
    )

    # ## 6. Timeouts per call
    # ### Task 4 — `ask_with_timeout` (1 point)
    # ex2.hint("timeout")  # uncomment and run for a hint; run again for the next one

    async def ask_with_timeout(
        program: dspy.Module, question: str, seconds: float
    ) -> dspy.Prediction | TimeoutError:
        """The answer to `question`, or a `TimeoutError` (returned, not raised) after `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                return await program.acall(question=question)
        except TimeoutError:
            return TimeoutError(f"no answer to {question!r} within {seconds:g} s")

    ex2.check_timeout(ask_with_timeout)

    slow = wb.sim_lm(latency=5.0, cache=False)
    async with asyncio.timeout(3):
        with dspy.context(lm=slow):
            outcome = await ask_with_timeout(qa, "Will this take forever?", 0.1)
    kind = type(outcome).__name__
    assert isinstance(outcome, TimeoutError), f"expected a returned TimeoutError, got {kind}"
    assert "Will this take forever?" in str(outcome), f"no question in the message: {outcome}"
    await asyncio.sleep(0.01)
    assert slow.engine.stats.in_flight == 0, "the timed-out call is still running"
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        async with asyncio.timeout(10):
            fast = await ask_with_timeout(qa, "Quick one?", 2.0)
    assert isinstance(fast, dspy.Prediction) and "Quick one?" in fast.answer
    failing_slowly = wb.sim_lm(latency=3.0, error_rate=1.0, cache=False)  # cancellation must win
    started = time.perf_counter()
    with dspy.context(lm=failing_slowly):
        async with asyncio.timeout(10):
            outcome = await ask_with_timeout(qa, "Fails slowly?", 0.1)
    took = time.perf_counter() - started
    assert isinstance(outcome, TimeoutError), f"a slow failing call gave {type(outcome).__name__}"
    assert took < 1.5 and failing_slowly.engine.stats.calls == 1, f"took {took:.1f} s, with retries"

    class SlowOn(dspy.Module):
        """Send questions with `marker` to a provider that takes 5 s, the rest to the current LM."""

        def __init__(self, marker: str) -> None:
            super().__init__()
            self.marker, self.predict = marker, dspy.Predict("question -> answer")
            self.slow_lm = wb.sim_lm(latency=5.0, cache=False)

        async def aforward(self, question: str) -> dspy.Prediction:
            with dspy.context(lm=self.slow_lm if self.marker in question else dspy.settings.lm):
                return await self.predict.acall(question=question)


    with dspy.context(lm=remote_lm(latency=0.01)):
        program = SlowOn("(stuck)")
        outcomes = await asyncio.gather(
            *(ask_with_timeout(program, q, 0.5) for q in ["First?", "Second (stuck)?", "Third?"])
        )
    for outcome in outcomes:
        print(f"{type(outcome).__name__:>11}: {getattr(outcome, 'answer', outcome)}")

    # ## Going further (optional, extra credit)
    # ## 7. Results in order, or as they arrive
    jittery = remote_lm(latency=LATENCY, jitter=LATENCY * 0.9)
    order_questions = cc.distinct_questions(6, "order")
    with dspy.context(lm=jittery):
        in_order = await asyncio.gather(*(qa.acall(question=q) for q in order_questions))
        positions = [i for r in in_order for i, q in enumerate(order_questions) if q in r.answer]
        print("gather:       ", positions)

        async def tagged(i: int, q: str) -> tuple[int, dspy.Prediction]:
            return i, await qa.acall(question=q)

        arrival = [
            await next_done
            for next_done in asyncio.as_completed([tagged(i, q) for i, q in enumerate(order_questions)])
        ]
        print("as_completed: ", [i for i, _ in arrival])

    # ### Task 5 — `answers_as_completed` (2 points, extra credit)
    # ex2.hint("as_completed")  # uncomment and run for a hint; run again for the next one

    async def answers_as_completed(
        program: dspy.Module, questions: Sequence[str], limit: int
    ) -> AsyncIterator[tuple[int, object]]:
        """Yield `(index, prediction or exception)` for each question as soon as its call finishes."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a whole number of at least 1, got {limit!r}")
        semaphore = asyncio.Semaphore(limit)

        async def answer(index: int, question: str) -> tuple[int, object]:
            async with semaphore:
                try:
                    return index, await program.acall(question=question)
                except Exception as exc:
                    return index, exc

        tasks = [asyncio.create_task(answer(i, q)) for i, q in enumerate(questions)]
        try:
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        finally:
            for task in tasks:
                task.cancel()  # no-op for finished tasks; stops the rest when the consumer left early
            await asyncio.gather(*tasks, return_exceptions=True)

    ex2.check_as_completed(answers_as_completed)

    # ScriptedQA answers each question after its own delay (no LM); `.finished` is the order the
    # calls completed in, which is the order an "as completed" generator must follow.
    delays = {"Which way is north?": 0.3, "How far is the sea?": 0.05, "Where is the key?": 0.15}
    scripted = cc.ScriptedQA(delays)
    seen: list[int] = []
    async with asyncio.timeout(10):
        async for index, result in answers_as_completed(scripted, list(delays), 3):
            assert list(delays)[index] in result.answer, f"index {index} came with {result!r}"
            seen.append(index)
    finished = [list(delays).index(q) for q in scripted.finished]
    assert seen == finished, f"yielded {seen}, but the calls finished in the order {finished}"
    assert scripted.in_flight.peak == 3, f"{scripted.in_flight.peak} call(s) at once, limit 3"
    import random
    import secrets


    class _Probe(dspy.Module):
        """Answers after a delay known only to the test; counts calls at once; some fail."""

        def __init__(self, wait: dict[str, float], broken: frozenset[str] = frozenset()) -> None:
            super().__init__()
            self._wait, self._broken = wait, broken
            self.done: list[str] = []
            self.now = self.most = 0

        async def aforward(self, question: str) -> dspy.Prediction:
            self.now += 1
            self.most = max(self.most, self.now)
            try:
                await asyncio.sleep(self._wait[question])
                self.done.append(question)
                if question in self._broken:
                    raise RuntimeError(f"no answer for {question}")
                return dspy.Prediction(answer=f"re: {question}")
            finally:
                self.now -= 1


    names = [f"{secrets.token_hex(4)}?" for _ in range(6)]
    waits = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    while waits == sorted(waits) or waits == sorted(waits, reverse=True):
        random.shuffle(waits)  # finishing order differs from question order (and from its reverse)
    plan = dict(zip(names, waits, strict=True))
    probe = _Probe(plan)
    got: list[tuple[int, object]] = []
    still_running: list[int] = []  # calls in flight each time an answer is handed out
    started = time.perf_counter()
    async with asyncio.timeout(10):
        async for pair in answers_as_completed(probe, names, 6):
            got.append(pair)
            still_running.append(probe.now)
    elapsed = time.perf_counter() - started
    assert still_running[0] > 0, "the first answer came only after every call had finished"
    assert [i for i, _ in got] == [names.index(q) for q in probe.done], "not in finishing order"
    assert all(names[i] in r.answer for i, r in got), "an answer came with the wrong index"
    assert probe.most == 6, f"only {probe.most} call(s) ran at once: the calls do not overlap"
    assert elapsed < 0.3 + 0.4, f"{elapsed:.2f} s for calls of at most 0.3 s: they ran one by one"
    probe = _Probe(plan)
    async with asyncio.timeout(10):
        got = [pair async for pair in answers_as_completed(probe, names, 2)]
    assert sorted(i for i, _ in got) == list(range(6)) and probe.most == 2, f"{probe.most} at once"
    probe = _Probe(plan, broken=frozenset(names[1:2]))
    async with asyncio.timeout(10):
        got = dict([pair async for pair in answers_as_completed(probe, names, 3)])
    assert sorted(got) == list(range(6)), f"indices {sorted(got)}: a failure ended the stream"
    assert [isinstance(got[i], Exception) for i in range(6)] == [i == 1 for i in range(6)]
    quick = min(names, key=plan.__getitem__)
    probe = _Probe({q: (0.02 if q == quick else 5.0) for q in names})
    stream = answers_as_completed(probe, names, 6)
    async with asyncio.timeout(10):
        first = await anext(stream)
        await stream.aclose()
    await asyncio.sleep(0.05)
    assert first[0] == names.index(quick) and probe.now == 0, "closing the generator left calls running"
    for bad_limit in (0, -1, 2.5):
        try:
            async with asyncio.timeout(5):  # limit=0 must not wait forever
                await anext(answers_as_completed(_Probe(plan), names, bad_limit))
            raise AssertionError(f"limit={bad_limit!r} was accepted")
        except ValueError:
            pass
        except TimeoutError:
            raise AssertionError(f"limit={bad_limit!r}: waited 5 s instead of a ValueError") from None

    with dspy.context(lm=remote_lm(jitter=LATENCY * 0.9)):
        start = time.perf_counter()
        async for index, result in answers_as_completed(qa, cc.distinct_questions(5, "live"), 5):
            elapsed = time.perf_counter() - start
            print(f"{elapsed:5.2f} s  #{index}: {getattr(result, 'answer', result)}")

    # ## 8. Token streaming
    # ### Task 6 — `stream_answer` (2 points, extra credit)
    # ex2.hint("stream_answer")  # uncomment and run for a hint; run again for the next one

    async def stream_answer(program: dspy.Module, question: str) -> AsyncIterator[str]:
        """Yield the text of `program`'s answer to `question` chunk by chunk, as the LM produces it."""
        listener = dspy.streaming.StreamListener(signature_field_name="answer")
        streaming = dspy.streamify(program, stream_listeners=[listener], is_async_program=True)
        queue: asyncio.Queue = asyncio.Queue()
        end = object()

        async def pump() -> None:
            streamed = False
            try:
                async for item in streaming(question=question):
                    if isinstance(item, dspy.streaming.StreamResponse):
                        streamed = True
                        queue.put_nowait(item.chunk)
                    elif isinstance(item, dspy.Prediction) and not streamed:
                        queue.put_nowait(item.answer)  # nothing streamed (a cache hit): send it whole
                queue.put_nowait(end)
            except Exception as exc:
                queue.put_nowait(exc)

        task = asyncio.create_task(pump())
        try:
            while (item := await queue.get()) is not end:
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            task.cancel()  # unwinds streamify's task group inside the task that entered it
            with contextlib.suppress(asyncio.CancelledError):
                await task

    ex2.check_stream(stream_answer)

    streaming_lm = wb.sim_lm(latency=0.05, cache=False)
    with dspy.context(lm=streaming_lm):
        async with asyncio.timeout(10):
            chunks = [chunk async for chunk in stream_answer(qa, "Stream this answer, please")]
    assert len(chunks) > 1, f"the answer arrived in {len(chunks)} chunk(s), not streamed"
    assert all(isinstance(c, str) for c in chunks), "chunks must be text"
    assert "Stream this answer, please" in "".join(chunks)
    timing_lm = wb.sim_lm(latency=0.6, cache=False)
    arrivals: list[float] = []
    busy_at_first = None
    with dspy.context(lm=timing_lm):
        started = time.perf_counter()
        async with asyncio.timeout(10):
            async for _chunk in stream_answer(qa, "When does the first chunk come?"):
                if busy_at_first is None:
                    busy_at_first = timing_lm.engine.stats.in_flight
                arrivals.append(time.perf_counter() - started)
        whole = time.perf_counter() - started
    assert len(arrivals) > 1 and busy_at_first == 1, "the first chunk came after the LM had finished"
    assert arrivals[0] < 0.75 * whole, f"first chunk at {arrivals[0]:.2f} s of {whole:.2f} s"
    loop_errors: list[dict] = []
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    try:
        tasks_before = asyncio.all_tasks()
        streaming_lm = wb.sim_lm(latency=0.4, cache=False)
        with dspy.context(lm=streaming_lm):
            chunks = stream_answer(qa, "Stop me midway")
            async with asyncio.timeout(10):
                first_chunk = await anext(chunks)
                await chunks.aclose()
            del chunks
            import gc

            gc.collect()
            await asyncio.sleep(0.1)
        assert isinstance(first_chunk, str)
        assert streaming_lm.engine.stats.in_flight == 0, "the LM call is still running after aclose()"
        assert all(t.done() for t in asyncio.all_tasks() - tasks_before - {asyncio.current_task()})
        assert not loop_errors, f"closing the stream left an error: {loop_errors[0].get('exception')!r}"
    finally:
        loop.set_exception_handler(previous_handler)
    with dspy.context(lm=wb.sim_lm(latency=0.01, error_rate=1.0, num_retries=0, cache=False)):
        try:
            async with asyncio.timeout(10):
                _ = [c async for c in stream_answer(qa, "This call fails")]
            raise AssertionError("the LM error was swallowed")
        except dspy.LMError:
            pass

    question = "Why do concurrent calls help with remote APIs?"
    async with contextlib.aclosing(stream_answer(qa, question)) as chunks:
        async for chunk in chunks:
            print(chunk, end="", flush=True)
    print()

    received = 0
    question = "Tell me a long story about event loops."
    async with contextlib.aclosing(stream_answer(qa, question)) as chunks:
        async for chunk in chunks:
            print(chunk, end="", flush=True)
            received += 1
            if received == 2:
                break  # aclosing closes the generator here; its finally cancels the stream's task
    print(f" … stopped after {received} chunks; nothing left running.")

    # ## Summary
    # ## Check your work
    ex2.check_all()

    # ## How to submit
    # ## Questionnaire
    # ## Further research


asyncio.run(_main())
