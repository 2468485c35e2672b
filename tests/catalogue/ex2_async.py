"""Exercise 2 (async): answers a student could hand in, right and wrong.

`SUBMISSIONS` covers the two graded tasks and runs through `tests/_kit.py` (self-check and graded
cell must agree). Each wrong entry breaks one stated behaviour and keeps the others; each right
entry is a different style from the master's. `OPTIONAL` covers the going-further tasks, which
have self-checks but no graded cells: `tests/test_ex2_async.py` runs them through the self-checks.
"""

from __future__ import annotations

from tests.catalogue import Submission

MASTER = "02_async"

# The given part of Task 2's cell: the constructor a student keeps (a few entries change it).
_BUCKET_INIT = '''
class TokenBucket:
    """Let `rate` acquisitions per second through on average, and up to `burst` at once."""

    def __init__(
        self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number of requests per second, got {rate!r}")
        if not (isinstance(burst, int) and burst >= 1):
            raise ValueError(f"burst must be a whole number of at least 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.clock = clock  # seconds; read the time only through it
        self.tokens = float(burst)  # start full: the first `burst` requests need not wait
        self.updated = clock()
        self.lock = asyncio.Lock()
'''


def _bucket(acquire: str, init: str = _BUCKET_INIT) -> str:
    """The whole Task 2 cell: the given constructor, then the student's `acquire`."""
    return init.strip("\n") + "\n\n" + acquire.strip("\n") + "\n"


# The loop the master's `acquire` runs, with one line changed by each mistake below.
_REFILL = "self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)"
_MASTER_ACQUIRE = f"""
    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = self.clock()
                {_REFILL}
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)
"""

SUBMISSIONS = [
    # -- Task 1: run_bounded — right, in other styles ------------------------------------------
    Submission(
        "run_bounded",
        "TaskGroup with a semaphore, each failure caught in its task",
        """
        async def run_bounded(program, questions, limit):
            if type(limit) is not int or limit < 1:
                raise ValueError(f"limit must be an int >= 1, not {limit!r}")
            gate = asyncio.Semaphore(limit)
            results = [None] * len(questions)

            async def one(i, question):
                async with gate:
                    try:
                        results[i] = await program.acall(question=question)
                    except Exception as exc:
                        results[i] = exc

            async with asyncio.TaskGroup() as group:
                for i, question in enumerate(questions):
                    group.create_task(one(i, question))
            return results
        """,
        True,
    ),
    Submission(
        "run_bounded",
        "a queue served by `limit` workers",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise ValueError("limit must be a whole number >= 1")
            queue = asyncio.Queue()
            for item in enumerate(questions):
                queue.put_nowait(item)
            results = [None] * len(questions)

            async def worker():
                while not queue.empty():
                    i, question = queue.get_nowait()
                    try:
                        results[i] = await program.acall(question=question)
                    except Exception as exc:
                        results[i] = exc

            await asyncio.gather(*(worker() for _ in range(min(limit, len(questions)))))
            return results
        """,
        True,
    ),
    Submission(
        "run_bounded",
        "a sliding window with asyncio.wait(FIRST_COMPLETED)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError(f"bad limit {limit!r}")
            results, running, waiting = [None] * len(questions), {}, list(enumerate(questions))
            while waiting or running:
                while waiting and len(running) < limit:
                    i, question = waiting.pop(0)
                    running[asyncio.ensure_future(program.acall(question=question))] = i
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    i = running.pop(task)
                    results[i] = task.exception() or task.result()
            return results
        """,
        True,
    ),
    Submission(
        "run_bounded",
        "a plain def that returns gather's awaitable",
        """
        def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("limit must be an int of at least 1")
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            return asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        True,
    ),
    # -- Task 1: run_bounded — wrong, one behaviour each ----------------------------------------
    Submission(
        "run_bounded",
        "unbounded gather (never more than `limit`)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            calls = (program.acall(question=q) for q in questions)
            return await asyncio.gather(*calls, return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "a new semaphore for every call (never more than `limit`)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")

            async def answer(question):
                async with asyncio.Semaphore(limit):
                    return await program.acall(question=question)

            return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "one call at a time behind a lock (exactly `limit` in flight)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            lock = asyncio.Lock()

            async def answer(question):
                async with lock:
                    return await program.acall(question=question)

            return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "results in finishing order (same order as `questions`)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore, results = asyncio.Semaphore(limit), []

            async def answer(question):
                async with semaphore:
                    try:
                        results.append(await program.acall(question=question))
                    except Exception as exc:
                        results.append(exc)

            await asyncio.gather(*(answer(q) for q in questions))
            return results
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "one failure sinks the batch (failures in place)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            return await asyncio.gather(*(answer(q) for q in questions))
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "failures dropped from the list (failures in place)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            results = await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
            return [r for r in results if not isinstance(r, Exception)]
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "no questions gives None (empty list)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            if not questions:
                return None
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "returns a tuple (a list)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            return tuple(
                await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
            )
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "float limit accepted: only `limit < 1` refused (refuse bad limits)",
        """
        async def run_bounded(program, questions, limit):
            if limit < 1:
                raise ValueError("limit must be at least 1")
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "no validation: limit=0 waits forever (refuse bad limits)",
        """
        async def run_bounded(program, questions, limit):
            semaphore = asyncio.Semaphore(limit)

            async def answer(question):
                async with semaphore:
                    return await program.acall(question=question)

            return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "limit checked inside each call: the ValueError becomes a result (refuse bad limits)",
        """
        async def run_bounded(program, questions, limit):
            async def answer(question):
                if not isinstance(limit, int) or limit < 1:
                    raise ValueError("bad limit")
                async with semaphore:
                    return await program.acall(question=question)

            semaphore = asyncio.Semaphore(limit if isinstance(limit, int) and limit > 0 else 1)
            return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "gaming: answers made from the question text, no LM call",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            return [dspy.Prediction(answer=f"Simulated answer to: {q}") for q in questions]
        """,
        False,
    ),
    # -- Task 2: TokenBucket — right, in other styles -------------------------------------------
    Submission(
        "token_bucket",
        "no lock: nothing can run between reading and taking a token",
        _bucket(
            f"""
    async def acquire(self) -> None:
        while True:
            now = self.clock()
            {_REFILL}
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)
"""
        ),
        True,
    ),
    Submission(
        "token_bucket",
        "GCRA: one theoretical arrival time instead of a token count",
        _bucket(
            """
    async def acquire(self) -> None:
        async with self.lock:
            step = 1 / self.rate
            arrival = max(getattr(self, "arrival", 0.0), self.clock())
            wait = arrival - (self.burst - 1) * step - self.clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self.arrival = arrival + step
"""
        ),
        True,
    ),
    Submission(
        "token_bucket",
        "take the token first, then sleep off the debt",
        _bucket(
            f"""
    async def acquire(self) -> None:
        async with self.lock:
            now = self.clock()
            {_REFILL}
            self.updated = now
            self.tokens -= 1
            if self.tokens < 0:
                await asyncio.sleep(-self.tokens / self.rate)
"""
        ),
        True,
    ),
    Submission(
        "token_bucket",
        "the event loop's clock instead of self.clock",
        _bucket(
            """
    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        async with self.lock:
            if not hasattr(self, "last"):
                self.last = loop.time()
            while True:
                now = loop.time()
                self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)
"""
        ),
        True,
    ),
    # -- Task 2: TokenBucket — wrong, one promise each ------------------------------------------
    Submission(
        "token_bucket",
        "refill without a cap (the budget after idling)",
        _bucket(
            _MASTER_ACQUIRE.replace(_REFILL, "self.tokens += (now - self.updated) * self.rate")
        ),
        False,
    ),
    Submission(
        "token_bucket",
        "time.sleep freezes the event loop (nothing else stops)",
        _bucket(
            _MASTER_ACQUIRE.replace(
                "await asyncio.sleep((1 - self.tokens) / self.rate)",
                "time.sleep((1 - self.tokens) / self.rate)",
            )
        ),
        False,
    ),
    Submission(
        "token_bucket",
        "a fixed sleep per request: never bursts (a burst is allowed)",
        _bucket(
            """
    async def acquire(self) -> None:
        async with self.lock:
            await asyncio.sleep(1 / self.rate)
"""
        ),
        False,
    ),
    Submission(
        "token_bucket",
        "starts with an empty bucket (a burst is allowed)",
        _bucket(
            _MASTER_ACQUIRE,
            _BUCKET_INIT.replace("self.tokens = float(burst)", "self.tokens = 0.0"),
        ),
        False,
    ),
    Submission(
        "token_bucket",
        "refills at half the rate (the rate is reached)",
        _bucket(
            _MASTER_ACQUIRE.replace(
                _REFILL,
                "self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate / 2)",
            ).replace("(1 - self.tokens) / self.rate", "2 * (1 - self.tokens) / self.rate")
        ),
        False,
    ),
    Submission(
        "token_bucket",
        "takes a token when any fraction is left (the budget)",
        _bucket(_MASTER_ACQUIRE.replace("if self.tokens >= 1:", "if self.tokens > 0:")),
        False,
    ),
    Submission(
        "token_bucket",
        "reads time.monotonic(), not self.clock() (read the time with self.clock)",
        _bucket(_MASTER_ACQUIRE.replace("now = self.clock()", "now = time.monotonic()")),
        False,
    ),
    Submission(
        "token_bucket",
        "gaming: no limit, and the measuring helpers replaced",
        _bucket(
            """
    async def acquire(self) -> None:
        return None


cc.max_per_window = lambda times, window=1.0: 0
""",
        ),
        False,
    ),
]

# -- from the student trial (Dec 2026): the trial's answers and what it tried next ------------
_LOOP = """
    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = self.clock()
                self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep({wait})
"""
SUBMISSIONS += [
    Submission(
        "run_bounded",
        "student trial: a semaphore around each acall, gather with return_exceptions",
        """
        async def run_bounded(program: dspy.Module, questions: Sequence[str], limit: int) -> list:
            if not isinstance(limit, int) or limit < 1:
                raise ValueError(f"limit must be an int of at least 1, got {limit!r}")
            semaphore = asyncio.Semaphore(limit)

            async def one(question: str):
                async with semaphore:
                    return await program.acall(question=question)

            return await asyncio.gather(*(one(q) for q in questions), return_exceptions=True)
        """,
        True,
    ),
    Submission(
        "run_bounded",
        "chunks of `limit` questions, each chunk gathered in turn",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("limit must be a whole number >= 1")
            results = []
            for start in range(0, len(questions), limit):
                chunk = questions[start : start + limit]
                results += await asyncio.gather(
                    *(program.acall(question=q) for q in chunk), return_exceptions=True
                )
            return results
        """,
        True,
    ),
    Submission(
        "run_bounded",
        "a sync `program(...)` inside the semaphore: it holds the event loop (calls overlap)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("limit must be a whole number >= 1")
            semaphore = asyncio.Semaphore(limit)

            async def one(question):
                async with semaphore:
                    return program(question=question)

            return await asyncio.gather(*(one(q) for q in questions), return_exceptions=True)
        """,
        False,
    ),
    Submission(
        "run_bounded",
        "failures turned into their messages (failures in place, as exceptions)",
        """
        async def run_bounded(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("limit must be a whole number >= 1")
            semaphore = asyncio.Semaphore(limit)

            async def one(question):
                async with semaphore:
                    try:
                        return await program.acall(question=question)
                    except Exception as exc:
                        return f"error: {exc}"

            return list(await asyncio.gather(*(one(q) for q in questions)))
        """,
        False,
    ),
    Submission(
        "token_bucket",
        "student trial: refill, take or sleep the exact wait, under the lock",
        _bucket(_LOOP.format(wait="(1 - self.tokens) / self.rate")),
        True,
    ),
    Submission(
        "token_bucket",
        "polls every millisecond instead of sleeping the exact wait",
        _bucket(_LOOP.format(wait="0.001")),
        True,
    ),
    Submission(
        "token_bucket",
        "sleeps a whole token's time (1 / rate), then looks again",
        _bucket(_LOOP.format(wait="1 / self.rate")),
        True,
    ),
]

# -- going further: self-checks only (no graded cells, no points) ------------------------------
OPTIONAL = [
    Submission(
        "timeout",
        "asyncio.wait_for",
        """
        async def ask_with_timeout(program, question, seconds):
            try:
                return await asyncio.wait_for(program.acall(question=question), seconds)
            except TimeoutError:
                return TimeoutError(f"{question!r}: no answer within {seconds} s")
        """,
        True,
    ),
    Submission(
        "timeout",
        "raises instead of returning",
        """
        async def ask_with_timeout(program, question, seconds):
            async with asyncio.timeout(seconds):
                return await program.acall(question=question)
        """,
        False,
    ),
    Submission(
        "timeout",
        "gives up waiting but leaves the call running",
        """
        async def ask_with_timeout(program, question, seconds):
            task = asyncio.ensure_future(program.acall(question=question))
            done, _ = await asyncio.wait({task}, timeout=seconds)
            if task in done:
                return task.result()
            return TimeoutError(f"no answer to {question!r} within {seconds} s")
        """,
        False,
    ),
    Submission(
        "as_completed",
        "an asyncio.Queue fed by the tasks",
        """
        async def answers_as_completed(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore, done = asyncio.Semaphore(limit), asyncio.Queue()

            async def answer(index, question):
                async with semaphore:
                    try:
                        done.put_nowait((index, await program.acall(question=question)))
                    except Exception as exc:
                        done.put_nowait((index, exc))

            tasks = [asyncio.create_task(answer(i, q)) for i, q in enumerate(questions)]
            try:
                for _ in tasks:
                    yield await done.get()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        """,
        True,
    ),
    Submission(
        "as_completed",
        "one call at a time, in question order",
        """
        async def answers_as_completed(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            for index, question in enumerate(questions):
                try:
                    yield index, await program.acall(question=question)
                except Exception as exc:
                    yield index, exc
        """,
        False,
    ),
    Submission(
        "as_completed",
        "waits for all, then yields in finishing order",
        """
        async def answers_as_completed(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore, finished = asyncio.Semaphore(limit), []

            async def answer(index, question):
                async with semaphore:
                    try:
                        result = await program.acall(question=question)
                    except Exception as exc:
                        result = exc
                    finished.append((index, result))

            await asyncio.gather(*(answer(i, q) for i, q in enumerate(questions)))
            for pair in finished:
                yield pair
        """,
        False,
    ),
    Submission(
        "as_completed",
        "does not cancel the rest when closed early",
        """
        async def answers_as_completed(program, questions, limit):
            if not isinstance(limit, int) or limit < 1:
                raise ValueError("bad limit")
            semaphore = asyncio.Semaphore(limit)

            async def answer(index, question):
                async with semaphore:
                    try:
                        return index, await program.acall(question=question)
                    except Exception as exc:
                        return index, exc

            tasks = [asyncio.create_task(answer(i, q)) for i, q in enumerate(questions)]
            for next_done in asyncio.as_completed(tasks):
                yield await next_done
        """,
        False,
    ),
    Submission(
        "stream_answer",
        "awaits the whole answer, then cuts it up",
        """
        async def stream_answer(program, question):
            answer = (await program.acall(question=question)).answer
            for start in range(0, len(answer), 6):
                yield answer[start:start + 6]
        """,
        False,
    ),
    Submission(
        "stream_answer",
        "yields straight from streamify (unclean close)",
        """
        async def stream_answer(program, question):
            listener = dspy.streaming.StreamListener(signature_field_name="answer")
            streaming = dspy.streamify(program, stream_listeners=[listener], is_async_program=True)
            async for item in streaming(question=question):
                if isinstance(item, dspy.streaming.StreamResponse):
                    yield item.chunk
        """,
        False,
    ),
]
