"""Exercise 2's graded cells give zero to wrong submissions, and full marks to the reference.

Each wrong submission below is what a student could write in a task's solution cell: plausible
code that does not keep the task's promise (a bucket whose refill has no cap, an "as completed"
that runs one call at a time, a stream that awaits the whole answer and cuts it up, a runner that
accepts `limit=2.5` …). `grade_cell` runs a graded cell's code — visible and hidden tests, exactly
as nbgrader's autograder would — after the task's solution cell was replaced by that submission,
in a namespace built like the notebook's (the master's imports, then the solution cell). A cell
scores its points if it runs without an exception, and zero otherwise.
"""

from __future__ import annotations

import ast
import asyncio
import sys
from pathlib import Path

import dspy
import jupytext
import pytest
from answer_key import blank_solutions, load_solutions  # tools/ is on sys.path: see conftest

from dspy_workbook import concurrency as cc

MASTER = Path(__file__).resolve().parents[1] / "source" / "ch07" / "02_async.py"
CELL_SECONDS = 90  # nbgrader allows 120 s; a wrong submission that hangs still fails in time


def graded_cell_source(grade_id: str, master: Path = MASTER) -> str:
    """The code of graded cell `test_<grade_id>`, visible and hidden tests, markers removed."""
    for cell in jupytext.read(master, fmt="py:percent").cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == f"test_{grade_id}":
            markers = {"### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"}
            return "\n".join(
                line for line in cell.source.splitlines() if line.strip() not in markers
            )
    raise LookupError(f"{master.name} has no graded cell test_{grade_id}")


async def _run_cell(source: str, namespace: dict) -> None:
    code = compile(source, "<graded cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, namespace)  # a coroutine when the cell awaits at top level
    if asyncio.iscoroutine(result):
        await result


def grade_cell(grade_id: str, submission: str | None, master: Path = MASTER) -> tuple[bool, str]:
    """Run graded cell `test_<grade_id>` with `submission` as the task's solution cell.

    `submission=None` keeps the master's own solution. Returns (full marks?, what failed).
    """
    key = load_solutions(master.stem, grade_id, masters_dir=master.parent)
    namespace = dict(vars(key))
    namespace["__name__"] = "__main__"
    namespace["qa"] = dspy.Predict("question -> answer")
    if submission is not None:
        exec(compile(submission, f"<submission for {grade_id}>", "exec"), namespace)
    source = graded_cell_source(grade_id, master)

    async def bounded() -> None:
        await asyncio.wait_for(_run_cell(source, namespace), CELL_SECONDS)

    try:
        asyncio.run(bounded())
    except BaseException as exc:  # noqa: BLE001 — any failure of a graded cell scores zero
        if isinstance(exc, KeyboardInterrupt):
            raise
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


# -- wrong submissions, one solution cell each ---------------------------------------------------

WRONG: dict[str, dict[str, str]] = {
    "aforward": {
        "blocks the loop": """
class DraftThenPolish(dspy.Module):
    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.polish = dspy.Predict("question, draft -> answer")

    def forward(self, question):
        draft = self.draft(question=question).answer
        return self.polish(question=question, draft=draft)

    async def aforward(self, question):
        return self.forward(question)
""",
    },
    "run_bounded": {
        "float limit accepted (only `limit < 1` refused)": """
async def run_bounded(program, questions, limit):
    if limit < 1:
        raise ValueError("limit must be at least 1")
    semaphore = asyncio.Semaphore(limit)

    async def answer(question):
        async with semaphore:
            return await program.acall(question=question)

    return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
""",
        "no validation (limit=0 waits forever)": """
async def run_bounded(program, questions, limit):
    semaphore = asyncio.Semaphore(limit)

    async def answer(question):
        async with semaphore:
            return await program.acall(question=question)

    return await asyncio.gather(*(answer(q) for q in questions), return_exceptions=True)
""",
        "unbounded gather": """
async def run_bounded(program, questions, limit):
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("bad limit")
    return await asyncio.gather(*(program.acall(question=q) for q in questions),
                                return_exceptions=True)
""",
        "one failure sinks the batch": """
async def run_bounded(program, questions, limit):
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("bad limit")
    semaphore = asyncio.Semaphore(limit)

    async def answer(question):
        async with semaphore:
            return await program.acall(question=question)

    return await asyncio.gather(*(answer(q) for q in questions))
""",
    },
    "token_bucket": {
        "refill without a cap": """
class TokenBucket:
    def __init__(self, rate, burst=1):
        self.rate, self.burst, self.tokens = float(rate), burst, float(burst)
        self.updated, self.lock = time.monotonic(), asyncio.Lock()

    async def acquire(self):
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens += (now - self.updated) * self.rate
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)
""",
        "time.sleep freezes the event loop": """
class TokenBucket:
    def __init__(self, rate, burst=1):
        self.rate, self.burst, self.tokens = float(rate), burst, float(burst)
        self.updated, self.lock = time.monotonic(), asyncio.Lock()

    async def acquire(self):
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                time.sleep((1 - self.tokens) / self.rate)
""",
        "fixed sleep(0.05): never bursts": """
class TokenBucket:
    def __init__(self, rate, burst=1):
        self.rate, self.burst, self.lock = float(rate), burst, asyncio.Lock()

    async def acquire(self):
        async with self.lock:
            await asyncio.sleep(0.05)
""",
        "no limit, and the measuring helper replaced": """
cc.max_per_window = lambda times, window=1.0: 0


class TokenBucket:
    def __init__(self, rate, burst=1):
        self.rate, self.burst = float(rate), burst

    async def acquire(self):
        return None
""",
    },
    "timeout": {
        "raises instead of returning": """
async def ask_with_timeout(program, question, seconds):
    async with asyncio.timeout(seconds):
        return await program.acall(question=question)
""",
        "gives up waiting but leaves the call running": """
async def ask_with_timeout(program, question, seconds):
    task = asyncio.ensure_future(program.acall(question=question))
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        return task.result()
    return TimeoutError(f"no answer to {question!r} within {seconds} s")
""",
    },
    "as_completed": {
        "one call at a time, in question order": """
async def answers_as_completed(program, questions, limit):
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("bad limit")
    for index, question in enumerate(questions):
        try:
            yield index, await program.acall(question=question)
        except Exception as exc:
            yield index, exc
""",
        "one at a time, 'slow' questions last": """
async def answers_as_completed(program, questions, limit):
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("bad limit")
    order = sorted(range(len(questions)), key=lambda i: questions[i].startswith("slow"))
    for index in order:
        try:
            yield index, await program.acall(question=questions[index])
        except Exception as exc:
            yield index, exc
""",
        "waits for all, then yields in finishing order": """
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
        "does not cancel the rest when closed early": """
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
    },
    "stream_answer": {
        "awaits the whole answer, then cuts it up": """
async def stream_answer(program, question):
    answer = (await program.acall(question=question)).answer
    for start in range(0, len(answer), 6):
        yield answer[start:start + 6]
""",
        "awaits the whole answer, then fakes a stream with sleeps": """
async def stream_answer(program, question):
    answer = (await program.acall(question=question)).answer
    for start in range(0, len(answer), 6):
        await asyncio.sleep(0.1)
        yield answer[start:start + 6]
""",
        "yields straight from streamify (unclean close)": """
async def stream_answer(program, question):
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    streaming = dspy.streamify(program, stream_listeners=[listener], is_async_program=True)
    async for item in streaming(question=question):
        if isinstance(item, dspy.streaming.StreamResponse):
            yield item.chunk
""",
    },
}

CASES = [(task, name) for task, wrongs in WRONG.items() for name in wrongs]


@pytest.fixture
def restore_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    """A submission may reassign `cc.…` names: put the real ones back after the test."""
    for name in cc.__all__:
        monkeypatch.setattr(cc, name, getattr(cc, name))


@pytest.mark.parametrize(("task", "name"), CASES, ids=[f"{t}: {n}" for t, n in CASES])
def test_a_wrong_submission_scores_zero_on_its_cell(
    task: str, name: str, restore_concurrency: None
) -> None:
    full, why = grade_cell(task, WRONG[task][name])
    assert not full, f"{task}: the wrong submission {name!r} got full marks"
    assert why  # the failure a student would see in the feedback


@pytest.mark.parametrize("task", list(WRONG))
def test_the_reference_scores_full_marks_on_its_cell(task: str) -> None:
    full, why = grade_cell(task, None)
    assert full, f"{task}: the master's own solution fails its graded cell: {why}"


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
@pytest.mark.parametrize("task", list(WRONG))
def test_the_blank_starter_scores_zero_on_its_cell(task: str) -> None:
    cell = next(
        c
        for c in jupytext.read(MASTER, fmt="py:percent").cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == task
    )
    full, why = grade_cell(task, blank_solutions(cell.source))
    # A blank async generator is a plain coroutine: `async for` over it is a TypeError (the
    # notebook says so); every other starter raises NotImplementedError.
    assert not full and ("NotImplementedError" in why or "__aiter__" in why), why


if __name__ == "__main__":  # print every case's verdict against a given master (before/after)
    master = Path(sys.argv[1]) if len(sys.argv) > 1 else MASTER
    for task, name in CASES:
        real = {n: getattr(cc, n) for n in getattr(cc, "__all__", [])}
        full, why = grade_cell(task, WRONG[task][name], master)
        for n, value in real.items():
            setattr(cc, n, value)
        print(f"{task:<14} {'FULL' if full else 'zero':<5} {name}  {why[:90]}", flush=True)
