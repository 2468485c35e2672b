"""Answer key for 02_async.ipynb — generated from source/ch07/02_async.py by tools/build.py; do not edit.

Run: python solutions/exercise2_async.py  (backend: $WORKBOOK_LM, default local)
"""

import asyncio


async def _main() -> None:
    # # Exercise 2 — Async DSPy: concurrency, rate limits, retries and streaming
    import dspy_workbook as wb

    lm = wb.setup()

    import asyncio
    import contextlib
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
    print("run_in_executor sees dspy.context(lm=...):", in_executor)
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
        result = await DraftThenPolish().acall(question="What is DSPy?")
    calls = provider.engine.stats.calls
    assert isinstance(result, dspy.Prediction), f"acall returned {type(result).__name__}"
    assert calls == 2, f"expected a draft call and a polish call, saw {calls}"
    provider = wb.sim_lm(latency=0.05, cache=False)
    with dspy.context(lm=provider):
        results = await asyncio.gather(
            *(DraftThenPolish().acall(question=q) for q in cc.distinct_questions(5, "t1")))
    assert all("t1" in r.answer for r in results)
    assert provider.engine.stats.max_in_flight == 5, "calls did not overlap: does aforward block?"

    # ## 3. A concurrency limit that holds — and keeps every result
    # ### Task 2 — `run_bounded` (3 points)
    async def run_bounded(program: dspy.Module, questions: Sequence[str], limit: int) -> list:
        """Answer with at most `limit` calls in flight; results in order, failures as exceptions."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        semaphore = asyncio.Semaphore(limit)

        async def answer(question: str) -> dspy.Prediction:
            async with semaphore:
                return await program.acall(question=question)

        return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)

    ex2.check_run_bounded(run_bounded)

    provider = wb.sim_lm(latency=0.02, cache=False)
    questions = cc.distinct_questions(12, "t2")
    with dspy.context(lm=provider):
        results = await run_bounded(qa, questions, 4)
    assert len(results) == len(questions), f"{len(results)} results for {len(questions)} questions"
    peak = provider.engine.stats.max_in_flight
    assert peak <= 4, f"{peak} calls in flight, limit 4"
    assert all(q in r.answer for q, r in zip(questions, results)), "results are not in question order"
    assert peak == 4, "the limit was never reached: calls did not overlap"
    provider = wb.sim_lm(latency=0.02, cache=False)
    with dspy.context(lm=provider):
        results = await run_bounded(qa, questions[:5], 1)
    assert provider.engine.stats.max_in_flight == 1
    assert [q in r.answer for q, r in zip(questions, results)] == [True] * 5
    mixed = ["ok 0", "FAIL 1", "ok 2", "FAIL 3", "ok 4"]
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        results = await run_bounded(cc.FlakyQA(), mixed, 2)
    assert [isinstance(r, Exception) for r in results] == [False, True, False, True, False]
    assert all(q in r.answer for q, r in zip(mixed, results) if not isinstance(r, Exception))
    assert await run_bounded(qa, [], 3) == []
    try:
        await run_bounded(qa, questions, 0)
        raise AssertionError("limit=0 was accepted")
    except ValueError:
        pass

    # ## 4. Throughput, measured and charted
    N = 30
    rows = [cc.measure_sequential(qa, cc.distinct_questions(N, "seq"), lm=remote_lm())]
    for limit in (1, 2, 5, 10, 20):
        rows.append(await cc.measure_concurrent(run_bounded, qa, cc.distinct_questions(N, f"c{limit}"),
                                                limit, lm=remote_lm()))
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
    print(f"{answered}/{len(results)} answered in {seconds:.1f} s; "
          f"the provider refused {limited.engine.stats.rate_limited} calls, which DSPy retried")

    strict = remote_lm(latency=0.01, jitter=0.0, rate_limit=10, num_retries=0)
    with dspy.context(lm=strict):
        results = await run_bounded(qa, cc.distinct_questions(15, "strict"), 15)
    failures = [type(r).__name__ for r in results if isinstance(r, Exception)]
    print(f"{len(results) - len(failures)} answered, {len(failures)} failed: {sorted(set(failures))}")

    # ### Task 3 — `TokenBucket` (2 points)
    class TokenBucket:
        """Let `rate` acquisitions per second through on average, and up to `burst` at once."""

        def __init__(self, rate: float, burst: int = 1) -> None:
            if rate <= 0 or burst < 1:
                raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
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
    assert cc.max_per_window(passed_at, 0.5) <= 20 * 0.5 + 4
    bucket = TokenBucket(rate=50, burst=1)
    passed_at = []
    async with asyncio.timeout(15):
        await asyncio.gather(*(take() for _ in range(60)))
    assert cc.max_per_window(passed_at, 1.0) <= 51
    assert cc.max_per_window(passed_at, 0.2) <= 11

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
    print(f"{sum(not isinstance(r, Exception) for r in results)}/20 answered in {seconds:.1f} s; "
          f"refused by the provider: {stats.rate_limited}; "
          f"most requests in any 1 s window: {cc.max_per_window(stats.started_at, 1.0)} (limit 10)")

    # ## 6. Timeouts per call
    # ### Task 4 — `ask_with_timeout` (1 point)
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
    assert slow.engine.stats.in_flight == 0, "the timed-out call is still running"
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        fast = await ask_with_timeout(qa, "Quick one?", 2.0)
    assert isinstance(fast, dspy.Prediction) and "Quick one?" in fast.answer

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
        outcomes = await asyncio.gather(*(ask_with_timeout(program, q, 0.5)
                                          for q in ["First?", "Second (stuck)?", "Third?"]))
    for outcome in outcomes:
        print(f"{type(outcome).__name__:>11}: {getattr(outcome, 'answer', outcome)}")

    # ## 7. Results in order, or as they arrive
    jittery = remote_lm(latency=LATENCY, jitter=LATENCY * 0.9)
    order_questions = cc.distinct_questions(6, "order")
    with dspy.context(lm=jittery):
        in_order = await asyncio.gather(*(qa.acall(question=q) for q in order_questions))
        positions = [i for r in in_order for i, q in enumerate(order_questions) if q in r.answer]
        print("gather:       ", positions)

        async def tagged(i: int, q: str) -> tuple[int, dspy.Prediction]:
            return i, await qa.acall(question=q)

        arrival = [await next_done for next_done in
                   asyncio.as_completed([tagged(i, q) for i, q in enumerate(order_questions)])]
        print("as_completed: ", [i for i, _ in arrival])

    # ### Task 5 — `answers_as_completed` (2 points)
    async def answers_as_completed(program: dspy.Module, questions: Sequence[str],
                                   limit: int) -> AsyncIterator[tuple[int, object]]:
        """Yield `(index, prediction or exception)` for each question as soon as its call finishes."""
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

    # GatedQA holds questions starting with "slow" until .release(): the fast answers must come first.
    gated = cc.GatedQA()
    gated_questions = ["slow 0", "fast 1", "fast 2", "slow 3"]
    seen: list[int] = []
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        async with asyncio.timeout(10):
            async for index, result in answers_as_completed(gated, gated_questions, 3):
                seen.append(index)
                assert gated_questions[index] in result.answer
                if len(seen) == 2:
                    gated.release()
    assert sorted(seen[:2]) == [1, 2], f"the fast answers did not come first: {seen}"
    assert sorted(seen) == [0, 1, 2, 3]
    assert gated.in_flight.peak <= 3
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        got = [pair async for pair in answers_as_completed(cc.FlakyQA(), ["ok 0", "FAIL 1", "ok 2"], 2)]
    assert sorted(i for i, _ in got) == [0, 1, 2]
    failed = [isinstance(r, Exception) for _, r in sorted(got, key=lambda p: p[0])]
    assert failed == [False, True, False]
    gated = cc.GatedQA()
    with dspy.context(lm=wb.sim_lm(latency=0.01, cache=False)):
        stream = answers_as_completed(gated, ["fast 0", "slow 1", "slow 2"], 3)
        async with asyncio.timeout(10):
            first = await anext(stream)
            await stream.aclose()
        await asyncio.sleep(0.05)
    assert first[0] == 0 and gated.in_flight.current == 0, "closing the generator left calls running"

    with dspy.context(lm=remote_lm(jitter=LATENCY * 0.9)):
        start = time.perf_counter()
        async for index, result in answers_as_completed(qa, cc.distinct_questions(5, "live"), 5):
            elapsed = time.perf_counter() - start
            print(f"{elapsed:5.2f} s  #{index}: {getattr(result, 'answer', result)}")

    # ## 8. Token streaming
    # ### Task 6 — `stream_answer` (2 points)
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


asyncio.run(_main())
