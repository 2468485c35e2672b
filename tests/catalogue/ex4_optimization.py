"""Exercise 4 (performance): answers a student could hand in, right and wrong.

`SUBMISSIONS` covers the two graded tasks and runs through `tests/_kit.py` (self-check and graded
cell must agree). Each wrong entry breaks one stated behaviour and keeps the others; each right
entry is a different style from the master's. `OPTIONAL` covers the going-further regression
guard, which has a self-check but no graded cell: `tests/test_ex4_performance.py` runs it through
the self-check (its two ambiguities — noise from both runs, a note only on other hardware — are
decided in the task text, and each has a wrong entry here).
"""

from __future__ import annotations

from tests.catalogue import Submission

MASTER = "04_optimization"

# -- Task 1: the profiler ---------------------------------------------------------------------
_GIVEN_TAIL = '''
    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)
'''


def _profiler(profile: str, head: str = "") -> str:
    """The whole Task 1 cell: the given constructor, the student's `profile`, the given rest."""
    start = '''
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[Any] = []  # one entry per open profile, innermost last: yours to design
'''
    return (
        head.strip("\n")
        + "\n"
        + start.strip("\n")
        + "\n\n"
        + profile.strip("\n")
        + "\n\n"
        + _GIVEN_TAIL.strip("\n")
        + "\n"
    )


# The master's `profile`, with named lines that each mistake below replaces.
_ENTER_TRACING = """\
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()"""
_FOLD_BEFORE = """\
        if self._open:
            self._open[-1] = max(self._open[-1], peak_so_far)
        tracemalloc.reset_peak()"""
_CLOCKS = "start, cpu = time.perf_counter(), time.process_time()"
_READ_CLOCKS = "seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu"
_STOP = """\
            if started_here:
                tracemalloc.stop()"""
_PEAK = "peak - base"
_RSS = "perf.rss_bytes()"
_DEPTH = "len(self._open)"


def _master_profile(
    *,
    enter_tracing: str = _ENTER_TRACING,
    fold_before: str = _FOLD_BEFORE,
    clocks: str = _CLOCKS,
    read_clocks: str = _READ_CLOCKS,
    stop: str = _STOP,
    peak: str = _PEAK,
    rss: str = _RSS,
    depth: str = _DEPTH,
    before_yield: str = "",
) -> str:
    return f"""
    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        \"\"\"Measure the `with` block as `name` (see the task for what to record).\"\"\"
{enter_tracing}
        base, peak_so_far = tracemalloc.get_traced_memory()
{fold_before}
        self._open.append(base)
        {before_yield}{clocks}
        try:
            yield
        finally:
            {read_clocks}
            peak = max(self._open.pop(), tracemalloc.get_traced_memory()[1])
            if self._open:
                self._open[-1] = max(self._open[-1], peak)
{stop}
            self.records.append(
                perf.ProfileRecord(name, seconds, cpu_seconds, {peak}, {rss}, {depth})
            )
"""


_PROFILER_RIGHT = [
    Submission(
        "profiler",
        "a stack of dicts {base, peak}",
        _profiler("""
    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        owner = not tracemalloc.is_tracing()
        if owner:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        if self._open:
            self._open[-1]["peak"] = max(self._open[-1]["peak"], peak)
        tracemalloc.reset_peak()
        frame = {"base": current, "peak": current}
        self._open.append(frame)
        depth = len(self._open) - 1
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            t1, c1 = time.perf_counter(), time.process_time()
            frame["peak"] = max(frame["peak"], tracemalloc.get_traced_memory()[1])
            self._open.pop()
            if self._open:
                self._open[-1]["peak"] = max(self._open[-1]["peak"], frame["peak"])
            if owner:
                tracemalloc.stop()
            record = perf.ProfileRecord(
                name=name,
                seconds=t1 - t0,
                cpu_seconds=c1 - c0,
                python_peak=max(0, frame["peak"] - frame["base"]),
                rss=perf.rss_bytes(),
                depth=depth,
            )
            self.records.append(record)
"""),
        True,
    ),
    Submission(
        "profiler",
        "a class-based context manager, os.times() for CPU, monotonic clock",
        """
import os


class _Block:
    \"\"\"One open profile, entered and left by hand instead of with @contextmanager.\"\"\"

    def __init__(self, owner: "Profiler", name: str) -> None:
        self.owner, self.name = owner, name

    def __enter__(self) -> "_Block":
        self.started = not tracemalloc.is_tracing()
        if self.started:
            tracemalloc.start()
        self.base, peak = tracemalloc.get_traced_memory()
        for frame in self.owner._open[-1:]:
            frame.peak = max(frame.peak, peak)
        tracemalloc.reset_peak()
        self.peak = self.base
        self.depth = len(self.owner._open)
        self.owner._open.append(self)
        times = os.times()
        self.cpu0, self.t0 = times.user + times.system, time.monotonic()
        return self

    def __exit__(self, *exc_info: object) -> bool:
        times = os.times()
        cpu, wall = times.user + times.system - self.cpu0, time.monotonic() - self.t0
        self.peak = max(self.peak, tracemalloc.get_traced_memory()[1])
        self.owner._open.remove(self)
        for frame in self.owner._open[-1:]:
            frame.peak = max(frame.peak, self.peak)
        if self.started:
            tracemalloc.stop()
        self.owner.records.append(
            perf.ProfileRecord(
                self.name, wall, cpu, self.peak - self.base, perf.rss_bytes(), self.depth
            )
        )
        return False  # never swallow the block's exception


class Profiler:
    \"\"\"Time and memory of code blocks; profiles may nest.\"\"\"

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[Any] = []  # one entry per open profile, innermost last: yours to design

    def profile(self, name: str) -> _Block:
        \"\"\"Measure the `with` block as `name` (see the task for what to record).\"\"\"
        return _Block(self, name)
"""
        + "\n"
        + _GIVEN_TAIL.strip("\n")
        + "\n",
        True,
    ),
    Submission(
        "profiler",
        "(base, peak) tuples on the stack, resource.getrusage for CPU",
        _profiler(
            """
    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        mine = False
        if not tracemalloc.is_tracing():
            tracemalloc.start()
            mine = True
        now, high = tracemalloc.get_traced_memory()
        if self._open:
            outer_base, outer_peak = self._open[-1]
            self._open[-1] = (outer_base, max(outer_peak, high))
        tracemalloc.reset_peak()
        self._open.append((now, now))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_start = usage.ru_utime + usage.ru_stime
        wall_start = time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - wall_start
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime - cpu_start
            base, running = self._open.pop()
            running = max(running, tracemalloc.get_traced_memory()[1])
            if self._open:
                outer_base, outer_peak = self._open[-1]
                self._open[-1] = (outer_base, max(outer_peak, running))
            if mine:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, wall, cpu, running - base, perf.rss_bytes(), len(self._open)
                )
            )
""",
            head="import resource\n\n",
        ),
        True,
    ),
]

_PROFILER_WRONG = [
    Submission(
        "profiler",
        "the seed's profiler: starts and stops tracemalloc unconditionally",
        _profiler("""
    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        tracemalloc.start()
        depth = len(self._open)
        self._open.append(name)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            self._open.pop()
            self.records.append(
                perf.ProfileRecord(name, seconds, cpu_seconds, peak, perf.rss_bytes(), depth)
            )
"""),
        False,
    ),
    Submission(
        "profiler",
        "always reports the same two peaks (15 MB outer, 8 MB inner)",
        _profiler(_master_profile(peak="15_000_000 if not self._open else 8_000_000")),
        False,
    ),
    Submission(
        "profiler",
        "no reset_peak: an inner block counts what the outer one held before it",
        _profiler(_master_profile(fold_before="")),
        False,
    ),
    Submission(
        "profiler",
        "reset_peak without keeping the outer peak: nesting loses it",
        _profiler(_master_profile(fold_before="        tracemalloc.reset_peak()")),
        False,
    ),
    Submission(
        "profiler",
        "an inner profile's peak is not folded into the enclosing one when it ends (3 levels)",
        _profiler(
            _master_profile().replace(
                """            if self._open:
                self._open[-1] = max(self._open[-1], peak)
""",
                "",
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "python_peak is the absolute peak, not above the block's start",
        _profiler(_master_profile(peak="peak")),
        False,
    ),
    Submission(
        "profiler",
        "cpu_seconds from time.thread_time(): misses the model's own threads",
        _profiler(
            _master_profile(
                clocks="start, cpu = time.perf_counter(), time.thread_time()",
                read_clocks=(
                    "seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - cpu"
                ),
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "cpu_seconds is the wall time",
        _profiler(
            _master_profile(
                read_clocks=("seconds = cpu_seconds = time.perf_counter() - start  # cpu unused"),
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "seconds from the CPU clock: a waiting block takes no time",
        _profiler(
            _master_profile(
                read_clocks=("seconds = cpu_seconds = time.process_time() - cpu  # start unused"),
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "seconds in milliseconds",
        _profiler(
            _master_profile(
                read_clocks=(
                    "seconds, cpu_seconds = 1000 * (time.perf_counter() - start), "
                    "time.process_time() - cpu"
                ),
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "RSS read when the block starts",
        _profiler(
            _master_profile(
                before_yield="rss_at_start = perf.rss_bytes()\n        ", rss="rss_at_start"
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "every record has depth 0",
        _profiler(_master_profile(depth="0")),
        False,
    ),
    Submission(
        "profiler",
        "the outermost profile stops tracing someone else started",
        _profiler(
            _master_profile(
                stop="""\
            if not self._open:
                tracemalloc.stop()"""
            )
        ),
        False,
    ),
    Submission(
        "profiler",
        "no finally: a block that raises is not recorded (and tracing stays on)",
        _profiler("""
    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        started_here = not tracemalloc.is_tracing()
        if started_here:
            tracemalloc.start()
        base, peak_so_far = tracemalloc.get_traced_memory()
        if self._open:
            self._open[-1] = max(self._open[-1], peak_so_far)
        tracemalloc.reset_peak()
        self._open.append(base)
        start, cpu = time.perf_counter(), time.process_time()
        yield
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        peak = max(self._open.pop(), tracemalloc.get_traced_memory()[1])
        if self._open:
            self._open[-1] = max(self._open[-1], peak)
        if started_here:
            tracemalloc.stop()
        self.records.append(
            perf.ProfileRecord(
                name, seconds, cpu_seconds, peak - base, perf.rss_bytes(), len(self._open)
            )
        )
"""),
        False,
    ),
    Submission(
        "profiler",
        "records a failing block but swallows its exception",
        _profiler(
            _master_profile().replace(
                "        try:\n            yield\n        finally:",
                "        try:\n            yield\n        except Exception:\n            pass\n"
                "        finally:",
            )
        ),
        False,
    ),
]

# -- Task 2: overlap the waiting -------------------------------------------------------------
_FAST_HEAD = '''
class FastNotesQA(NotesQA):
    """NotesQA's answer from the same model requests, with a question's note calls overlapped."""
'''


def _fast(forward: str, head: str = "") -> str:
    """The whole Task 2 cell: the given class line and docstring, then the student's code."""
    return (
        (head.strip("\n") + "\n\n\n" if head else "")
        + _FAST_HEAD.strip("\n")
        + "\n\n"
        + forward.strip("\n")
        + "\n"
    )


def _notes_with(notes: str, *, passages: str = "perf.retrieve(question, k=self.k)") -> str:
    """A `forward` with NotesQA's retrieve and answer steps around the given notes step."""
    return f"""
    def forward(self, question: str) -> dspy.Prediction:
        with self.stage("retrieve"):
            passages = {passages}
        with self.stage("notes"):
{notes}
        with self.stage("answer"):
            return self.respond(question=question, notes=notes)
"""


_OVERLAP_RIGHT = [
    Submission(
        "overlap",
        "Module.batch over Examples",
        _fast(
            _notes_with("""\
            examples = [
                dspy.Example(passage=p, question=question).with_inputs("passage", "question")
                for p in passages
            ]
            results = self.note.batch(
                examples, num_threads=len(examples), disable_progress_bar=True
            )
            notes = [r.note for r in results]""")
        ),
        True,
    ),
    Submission(
        "overlap",
        "ThreadPoolExecutor.map, each call in a copy of the context",
        _fast(
            _notes_with("""\
            def take_note(passage: str) -> str:
                return self.note(passage=passage, question=question).note

            with ThreadPoolExecutor(max_workers=len(passages)) as pool:
                contexts = [contextvars.copy_context() for _ in passages]
                notes = list(pool.map(lambda c, p: c.run(take_note, p), contexts, passages))"""),
            head="import contextvars\nfrom concurrent.futures import ThreadPoolExecutor",
        ),
        True,
    ),
    Submission(
        "overlap",
        "threads started by hand, results by index",
        _fast(
            _notes_with("""\
            notes = [None] * len(passages)

            def take_note(i: int, passage: str) -> None:
                notes[i] = self.note(passage=passage, question=question).note

            threads = [
                threading.Thread(target=contextvars.copy_context().run, args=(take_note, i, p))
                for i, p in enumerate(passages)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()"""),
            head="import contextvars\nimport threading",
        ),
        True,
    ),
    Submission(
        "overlap",
        "acall and gather, on a loop in a helper thread (wb.threads.run_async)",
        _fast(
            _notes_with("""\
            async def all_notes() -> list[str]:
                predictions = await asyncio.gather(
                    *(self.note.acall(passage=p, question=question) for p in passages)
                )
                return [p.note for p in predictions]

            notes = run_async(all_notes)"""),
            head="import asyncio\n\nfrom dspy_workbook.threads import run_async",
        ),
        True,
    ),
    Submission(
        "overlap",
        "no stage blocks (they are not graded)",
        _fast("""
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        pairs = [(self.note, {"passage": p, "question": question}) for p in passages]
        predictions = dspy.Parallel(num_threads=self.k, disable_progress_bar=True)(pairs)
        return self.respond(question=question, notes=[p.note for p in predictions])
"""),
        True,
    ),
]

_OVERLAP_WRONG = [
    Submission(
        "overlap",
        "plain ThreadPoolExecutor: the calls lose dspy.context and go to the global LM",
        _fast(
            _notes_with("""\
            with ThreadPoolExecutor(max_workers=len(passages)) as pool:
                futures = [
                    pool.submit(self.note, passage=p, question=question) for p in passages
                ]
                notes = [f.result().note for f in futures]"""),
            head="from concurrent.futures import ThreadPoolExecutor",
        ),
        False,
    ),
    Submission(
        "overlap",
        "asyncio.run inside forward: fails where a loop already runs (a notebook cell)",
        _fast(
            _notes_with("""\
            async def all_notes() -> list[str]:
                predictions = await asyncio.gather(
                    *(self.note.acall(passage=p, question=question) for p in passages)
                )
                return [p.note for p in predictions]

            notes = asyncio.run(all_notes())"""),
            head="import asyncio",
        ),
        False,
    ),
    Submission(
        "overlap",
        "notes sorted before the answer: the answer's request changes",
        _fast(
            _notes_with("""\
            calls = [(self.note, {"passage": p, "question": question}) for p in passages]
            parallel = dspy.Parallel(num_threads=len(calls), disable_progress_bar=True)
            notes = sorted(prediction.note for prediction in parallel(calls))""")
        ),
        False,
    ),
    Submission(
        "overlap",
        "two worker threads: not all notes wait together",
        _fast(
            _notes_with("""\
            calls = [(self.note, {"passage": p, "question": question}) for p in passages]
            parallel = dspy.Parallel(num_threads=2, disable_progress_bar=True)
            notes = [prediction.note for prediction in parallel(calls)]""")
        ),
        False,
    ),
    Submission(
        "overlap",
        "three threads, whatever k is",
        _fast(
            _notes_with("""\
            calls = [(self.note, {"passage": p, "question": question}) for p in passages]
            parallel = dspy.Parallel(num_threads=3, disable_progress_bar=True)
            notes = [prediction.note for prediction in parallel(calls)]""")
        ),
        False,
    ),
    Submission(
        "overlap",
        "still one note after another",
        _fast(
            _notes_with("""\
            notes = [self.note(passage=p, question=question).note for p in passages]""")
        ),
        False,
    ),
    Submission(
        "overlap",
        "no note calls: the passages go to the answer as they are",
        _fast(
            _notes_with("""\
            notes = list(passages)""")
        ),
        False,
    ),
    Submission(
        "overlap",
        "a new note predictor with its inputs in another order: other prompts",
        _fast(
            _notes_with("""\
            other = dspy.Predict("question, passage -> note", cache=False)
            calls = [(other, {"passage": p, "question": question}) for p in passages]
            parallel = dspy.Parallel(num_threads=len(calls), disable_progress_bar=True)
            notes = [prediction.note for prediction in parallel(calls)]""")
        ),
        False,
    ),
    Submission(
        "overlap",
        "always k=3 passages, whatever self.k is",
        _fast(
            _notes_with(
                """\
            calls = [(self.note, {"passage": p, "question": question}) for p in passages]
            parallel = dspy.Parallel(num_threads=len(calls), disable_progress_bar=True)
            notes = [prediction.note for prediction in parallel(calls)]""",
                passages="perf.retrieve(question, k=3)",
            )
        ),
        False,
    ),
    Submission(
        "overlap",
        "returns the answer's text instead of the prediction",
        _fast(
            _notes_with("""\
            calls = [(self.note, {"passage": p, "question": question}) for p in passages]
            parallel = dspy.Parallel(num_threads=len(calls), disable_progress_bar=True)
            notes = [prediction.note for prediction in parallel(calls)]""").replace(
                "return self.respond(question=question, notes=notes)",
                "return self.respond(question=question, notes=notes).answer",
            )
        ),
        False,
    ),
]

# -- Found by the student trial of the rewritten core (each breaks one stated behaviour) ---
_TRIAL = [
    Submission(
        "profiler",
        "peak folded in before each reset only (the traced peak runs on until the next)",
        '''
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[
            Any
        ] = []  # one entry per open profile, innermost last: yours to design

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        for (
            entry
        ) in self._open:  # fold the peak so far into the open profiles before resetting it
            entry["peak"] = max(entry["peak"], peak)
        tracemalloc.reset_peak()
        mine = {"start": current, "peak": current}
        depth = len(self._open)
        self._open.append(mine)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            _, peak = tracemalloc.get_traced_memory()
            self._open.pop()
            mine["peak"] = max(mine["peak"], peak)
            if started:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, seconds, cpu, mine["peak"] - mine["start"], perf.rss_bytes(), depth
                )
            )

    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)
''',
        True,
    ),
    Submission(
        "profiler",
        "records appended when a block starts: the outer one before the inner",
        '''
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[
            Any
        ] = []  # one entry per open profile, innermost last: yours to design

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        for (
            entry
        ) in self._open:  # fold the peak so far into the open profiles before resetting it
            entry["peak"] = max(entry["peak"], peak)
        tracemalloc.reset_peak()
        mine = {"start": current, "peak": current}
        depth = len(self._open)
        rec_index = len(self.records)
        self.records.append(None)
        self._open.append(mine)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            _, peak = tracemalloc.get_traced_memory()
            self._open.pop()
            mine["peak"] = max(mine["peak"], peak)
            for entry in self._open:
                entry["peak"] = max(entry["peak"], mine["peak"])
            if started:
                tracemalloc.stop()
            self.records[rec_index] = perf.ProfileRecord(
                name, seconds, cpu, mine["peak"] - mine["start"], perf.rss_bytes(), depth
            )

    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)
''',
        False,
    ),
    Submission(
        "profiler",
        "python_peak in MiB, not bytes",
        '''
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[
            Any
        ] = []  # one entry per open profile, innermost last: yours to design

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        for (
            entry
        ) in self._open:  # fold the peak so far into the open profiles before resetting it
            entry["peak"] = max(entry["peak"], peak)
        tracemalloc.reset_peak()
        mine = {"start": current, "peak": current}
        depth = len(self._open)
        self._open.append(mine)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            _, peak = tracemalloc.get_traced_memory()
            self._open.pop()
            mine["peak"] = max(mine["peak"], peak)
            for entry in self._open:
                entry["peak"] = max(entry["peak"], mine["peak"])
            if started:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name,
                    seconds,
                    cpu,
                    (mine["peak"] - mine["start"]) / 2**20,
                    perf.rss_bytes(),
                    depth,
                )
            )

    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)
''',
        False,
    ),
    Submission(
        "profiler",
        "python_peak from the growth of RSS",
        '''
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[
            Any
        ] = []  # one entry per open profile, innermost last: yours to design

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        for (
            entry
        ) in self._open:  # fold the peak so far into the open profiles before resetting it
            entry["peak"] = max(entry["peak"], peak)
        tracemalloc.reset_peak()
        mine = {"start": current, "peak": current}
        depth = len(self._open)
        self._open.append(mine)
        rss0 = perf.rss_bytes()
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            _, peak = tracemalloc.get_traced_memory()
            self._open.pop()
            mine["peak"] = max(mine["peak"], peak)
            for entry in self._open:
                entry["peak"] = max(entry["peak"], mine["peak"])
            if started:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, seconds, cpu, max(0, perf.rss_bytes() - rss0), perf.rss_bytes(), depth
                )
            )

    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)
''',
        False,
    ),
    Submission(
        "profiler",
        "clear_traces() instead of reset_peak()",
        '''
class Profiler:
    """Wall and CPU time, Python peak memory and process RSS of code blocks; profiles may nest."""

    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[
            Any
        ] = []  # one entry per open profile, innermost last: yours to design

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        """Measure the `with` block as `name` (see the task for what to record)."""
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        current, peak = tracemalloc.get_traced_memory()
        for (
            entry
        ) in self._open:  # fold the peak so far into the open profiles before resetting it
            entry["peak"] = max(entry["peak"], peak)
        tracemalloc.clear_traces()
        mine = {"start": current, "peak": current}
        depth = len(self._open)
        self._open.append(mine)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            _, peak = tracemalloc.get_traced_memory()
            self._open.pop()
            mine["peak"] = max(mine["peak"], peak)
            for entry in self._open:
                entry["peak"] = max(entry["peak"], mine["peak"])
            if started:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name, seconds, cpu, mine["peak"] - mine["start"], perf.rss_bytes(), depth
                )
            )

    def profile_function(self, name: str, func: Callable[..., Any], *args: Any, **kwargs: Any):
        """`func(*args, **kwargs)` measured as `name` (the seed's interface); returns its result."""
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        """One row per record, in the order the blocks ended (inner ones first)."""
        return perf.profile_table(self.records)
''',
        False,
    ),
    Submission(
        "profiler",
        "one set of attributes on self: a nested profile overwrites the outer's start",
        """
class Profiler:
    def __init__(self) -> None:
        self.records: list[perf.ProfileRecord] = []
        self._open: list[Any] = []

    @contextlib.contextmanager
    def profile(self, name: str) -> Iterator[None]:
        self._started = not tracemalloc.is_tracing()
        if self._started:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._start_mem = tracemalloc.get_traced_memory()[0]
        self._open.append(name)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            depth = len(self._open) - 1
            self._open.pop()
            peak = tracemalloc.get_traced_memory()[1] - self._start_mem
            if self._started and not self._open:
                tracemalloc.stop()
            self.records.append(
                perf.ProfileRecord(
                    name,
                    time.perf_counter() - t0,
                    time.process_time() - c0,
                    peak,
                    perf.rss_bytes(),
                    depth,
                )
            )

    def profile_function(self, name, func, *args, **kwargs):
        with self.profile(name):
            return func(*args, **kwargs)

    def report(self) -> pd.DataFrame:
        return perf.profile_table(self.records)
""",
        False,
    ),
    Submission(
        "overlap",
        "submit each call in a copy of the context, results in the passages' order",
        '''
import contextvars
from concurrent.futures import ThreadPoolExecutor


class FastNotesQA(NotesQA):
    """NotesQA's answer from the same model requests, with a question's note calls overlapped."""

    def forward(self, question: str) -> dspy.Prediction:
        with self.stage("retrieve"):
            passages = perf.retrieve(question, k=self.k)
        with self.stage("notes"):
            with ThreadPoolExecutor(max_workers=max(1, len(passages))) as pool:
                futures = [
                    pool.submit(
                        contextvars.copy_context().run, self.note, passage=p, question=question
                    )
                    for p in passages
                ]
                notes = [f.result().note for f in futures]
        with self.stage("answer"):
            return self.respond(question=question, notes=notes)
''',
        True,
    ),
    Submission(
        "overlap",
        "asyncio.run of acall+gather on a pool thread, in a copy of the context",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        import asyncio, contextvars
        from concurrent.futures import ThreadPoolExecutor

        async def gather():
            return await asyncio.gather(
                *(self.note.acall(passage=p, question=question) for p in passages)
            )

        with ThreadPoolExecutor(1) as pool:
            results = pool.submit(
                contextvars.copy_context().run, asyncio.run, gather()
            ).result()
        notes = [r.note for r in results]
        return self.respond(question=question, notes=notes)
""",
        True,
    ),
    Submission(
        "overlap",
        "notes in the order the calls finish (as_completed)",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        from concurrent.futures import ThreadPoolExecutor, as_completed
        import contextvars

        with ThreadPoolExecutor(max_workers=max(1, len(passages))) as pool:
            futs = [
                pool.submit(
                    contextvars.copy_context().run, self.note, passage=p, question=question
                )
                for p in passages
            ]
            notes = [f.result().note for f in as_completed(futs)]
        return self.respond(question=question, notes=notes)
""",
        False,
    ),
    Submission(
        "overlap",
        "a new Predict with the same signature: the module's demos are lost",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        from concurrent.futures import ThreadPoolExecutor
        import contextvars

        note = dspy.Predict("passage, question -> note")
        with ThreadPoolExecutor(max_workers=max(1, len(passages))) as pool:
            futs = [
                pool.submit(contextvars.copy_context().run, note, passage=p, question=question)
                for p in passages
            ]
            notes = [f.result().note for f in futs]
        return self.respond(question=question, notes=notes)
""",
        False,
    ),
    Submission(
        "overlap",
        "answers memoised per question: a repeated question makes no calls",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        cache = self.__dict__.setdefault("_memo", {})
        if question in cache:
            return cache[question]
        from concurrent.futures import ThreadPoolExecutor
        import contextvars

        with ThreadPoolExecutor(max_workers=max(1, len(passages))) as pool:
            futs = [
                pool.submit(
                    contextvars.copy_context().run, self.note, passage=p, question=question
                )
                for p in passages
            ]
            notes = [f.result().note for f in futs]
        cache[question] = self.respond(question=question, notes=notes)
        return cache[question]
""",
        False,
    ),
    Submission(
        "overlap",
        "run_until_complete on the running loop",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        import asyncio

        async def gather():
            return await asyncio.gather(
                *(self.note.acall(passage=p, question=question) for p in passages)
            )

        notes = [r.note for r in asyncio.get_event_loop().run_until_complete(gather())]
        return self.respond(question=question, notes=notes)
""",
        False,
    ),
    Submission(
        "overlap",
        "the answer sent together with the notes, without them",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        from concurrent.futures import ThreadPoolExecutor
        import contextvars

        with ThreadPoolExecutor(max_workers=len(passages) + 1) as pool:
            futs = [
                pool.submit(
                    contextvars.copy_context().run, self.note, passage=p, question=question
                )
                for p in passages
            ]
            ans = pool.submit(
                contextvars.copy_context().run, self.respond, question=question, notes=[]
            )
            notes = [f.result().note for f in futs]
        return ans.result()
""",
        False,
    ),
    Submission(
        "overlap",
        "a pool of k threads, but each result awaited right after its submit",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        from concurrent.futures import ThreadPoolExecutor
        import contextvars

        with ThreadPoolExecutor(max_workers=max(1, len(passages))) as pool:
            notes = [
                pool.submit(
                    contextvars.copy_context().run, self.note, passage=p, question=question
                )
                .result()
                .note
                for p in passages
            ]
        return self.respond(question=question, notes=notes)
""",
        False,
    ),
    Submission(
        "overlap",
        "the module's own note predictor with the cache on: a repeated question skips its notes",
        """
class FastNotesQA(NotesQA):
    def forward(self, question: str) -> dspy.Prediction:
        passages = perf.retrieve(question, k=self.k)
        calls = [
            (self.note, {"passage": p, "question": question, "config": {"cache": True}})
            for p in passages
        ]
        parallel = dspy.Parallel(num_threads=max(1, len(calls)), disable_progress_bar=True)
        notes = [prediction.note for prediction in parallel(calls)]
        return self.respond(question=question, notes=notes)
""",
        False,
    ),
]

SUBMISSIONS = _PROFILER_RIGHT + _PROFILER_WRONG + _OVERLAP_RIGHT + _OVERLAP_WRONG + _TRIAL

# -- Task 3 (optional, no graded cell): the regression guard, through its self-check only ------
_GUARD_HEAD = '''
def compare_to_baseline(
    baseline: perf.Timing,
    current: perf.Timing,
    *,
    noise_factor: float = 2.0,
    min_slowdown: float = 0.05,
) -> perf.RegressionCheck:
    """Is `current` slower than `baseline` by more than noise (and by more than `min_slowdown`)?"""
'''


def _guard(body: str) -> str:
    return _GUARD_HEAD.strip("\n") + "\n" + body.strip("\n") + "\n"


_NOTE = """\
    notes = []
    if baseline.machine and current.machine and not baseline.machine.same_hardware(current.machine):
        notes.append(f"the baseline came from other hardware ({baseline.machine})")"""


def _guard_with(*, noise: str = "max(baseline.spread, current.spread)", note: str = _NOTE) -> str:
    return _guard(f"""
    noise = {noise}
    slowdown = current.median - baseline.median
    regression = slowdown > noise_factor * noise and slowdown > min_slowdown * baseline.median
{note}
    return perf.RegressionCheck(baseline.median, current.median, noise, regression, tuple(notes))
""")


OPTIONAL = [
    Submission("regression", "the master's guard, rewritten", _guard_with(), True),
    Submission(
        "regression",
        "a dataclass-free guard with early returns",
        _guard("""
    noise = max(baseline.spread, current.spread)
    notes = ()
    if baseline.machine is not None and current.machine is not None:
        if not baseline.machine.same_hardware(current.machine):
            notes = ("other hardware: " + str(baseline.machine),)
    args = (baseline.median, current.median, noise)
    if current.median - baseline.median <= noise_factor * noise:
        return perf.RegressionCheck(*args, False, notes)
    if current.median <= baseline.median * (1 + min_slowdown):
        return perf.RegressionCheck(*args, False, notes)
    return perf.RegressionCheck(*args, True, notes)
"""),
        True,
    ),
    Submission(
        "regression", "noise from the baseline only", _guard_with(noise="baseline.spread"), False
    ),
    Submission(
        "regression", "noise from the current run only", _guard_with(noise="current.spread"), False
    ),
    Submission(
        "regression",
        "a hardware note on every run",
        _guard_with(note='    notes = [f"baseline machine: {baseline.machine}"]'),
        False,
    ),
    Submission(
        "regression",
        "no hardware note ever",
        _guard_with(note="    notes = []"),
        False,
    ),
    Submission(
        "regression",
        "any slower median is a regression",
        _guard("""
    noise = max(baseline.spread, current.spread)
    regression = current.median > baseline.median
    return perf.RegressionCheck(baseline.median, current.median, noise, regression, ())
"""),
        False,
    ),
    Submission(
        "regression",
        "min_slowdown ignored",
        _guard("""
    noise = max(baseline.spread, current.spread)
    regression = current.median - baseline.median > noise_factor * noise
    return perf.RegressionCheck(baseline.median, current.median, noise, regression, ())
"""),
        False,
    ),
]
