"""A self-check never raises and tells the four outcomes apart."""

from __future__ import annotations

from dspy_workbook.checks import CheckResult, NotAttempted, check, expect


@check("Demo · double")
def check_double(double) -> str:
    got = double(2)
    expect(got is not None, "`double` returned None — did you forget `return`?")
    expect(got == 4, f"`double(2)` returned {got!r}")
    return "doubles."


def _stub(x):
    raise NotImplementedError()


def test_outcomes_are_told_apart() -> None:
    assert check_double(lambda x: 2 * x).outcome == "correct"
    assert check_double(_stub).outcome == "not attempted"
    assert (
        check_double(lambda x: None).message == "`double` returned None — did you forget `return`?"
    )
    assert check_double(lambda x: x + 1).message == "`double(2)` returned 3"
    error = check_double(lambda x: 1 / 0)
    assert error.outcome == "error" and "ZeroDivisionError" in error.message


def test_not_attempted_can_be_raised_explicitly() -> None:
    @check("Demo · placeholder")
    def check_placeholder(value) -> str:
        if value is ...:
            raise NotAttempted("replace `...` with your answer")
        return "ok"

    assert check_placeholder(...).message == "replace `...` with your answer"


def test_results_render_as_text_and_html_and_are_truthy_only_when_correct() -> None:
    good, bad = check_double(lambda x: 2 * x), check_double(lambda x: 0)
    assert bool(good) and not bool(bad)
    assert repr(good) == "✅ Demo · double: correct — doubles."
    assert "<b>Demo · double</b>" in bad._repr_html_() and "incorrect" in bad._repr_html_()
    assert isinstance(good, CheckResult)


# ---- the exercise registry: time bound, hints on demand, check_all ---------------------------


def _exercise():
    from dspy_workbook.checks import Exercise

    ex = Exercise("Demo exercise")

    @ex.task(
        "double",
        "Task 1 · double",
        points=2,
        needs=("double",),
        hints=("Multiply.", "`return 2 * x`"),
        seconds=1.0,
    )
    def check_double_task(double) -> str:
        expect(double(2) == 4, f"`double(2)` returned {double(2)!r}")
        return "doubles."

    @ex.task("halve", "Going further · halve", points=1, core=False, needs=("halve",))
    def check_halve(halve) -> str:
        expect(halve(4) == 2, "`halve(4)` is not 2")
        return "halves."

    return ex, check_double_task


def test_a_hanging_solution_is_reported_within_the_checks_own_bound() -> None:
    import threading
    import time

    _, check_double_task = _exercise()
    release = threading.Event()
    start = time.monotonic()
    result = check_double_task(lambda x: release.wait(30))
    release.set()
    assert time.monotonic() - start < 5
    assert result.outcome == "error" and "did not finish in 1 s" in result.message


def test_the_check_runs_with_the_callers_dspy_context() -> None:
    import dspy

    seen = {}

    @check("Demo · context", seconds=5)
    def check_context(_) -> str:
        seen["lm"] = dspy.settings.lm
        return "ok"

    marker = dspy.LM("openai/marker-model")
    with dspy.context(lm=marker):
        check_context(None)
    assert seen["lm"] is marker


def test_hints_are_revealed_one_level_at_a_time_and_stop_at_the_last() -> None:
    ex, _ = _exercise()
    first, second, third = ex.hint("double"), ex.hint("double"), ex.hint("double")
    assert (first.level, first.text) == (1, "Multiply.")
    assert (second.level, third.level) == (2, 2) and "last hint" in repr(third)
    assert ex.hint("double", level=1).text == "Multiply."
    assert "no hints" in ex.hint("halve").text
    # The task as the notebook names it: its key, "Task 1" in any case, its number, its title.
    for name in ("Task 1", "task 1", 1, "Task 1 · double"):
        assert ex.hint(name, level=1).text == "Multiply.", name
    # A key that names no task: one line listing the ones that do, never a traceback.
    for wrong in ("tripple", "Task 9", 9, None):
        answer = ex.hint(wrong)
        assert "\n" not in repr(answer), repr(answer)
        assert '"double" (Task 1)' in repr(answer) and '"halve"' in repr(answer), repr(answer)
    assert "1 to 2" in repr(ex.hint("double", level=5))


def test_a_crash_names_the_students_own_line() -> None:
    """💥 and call_student's message point at the line in the student's code that raised."""
    from dspy_workbook.checks import check
    from dspy_workbook.checks._core import call_student, expect_callable

    namespace: dict = {}
    source = "def broken(x):\n    y = x + 1\n    return y['key']\n"
    exec(compile(source, "<notebook cell 7>", "exec"), namespace)

    @check("Demo · crash")
    def check_broken(fn) -> str:
        fn(1)
        return "ok"

    result = check_broken(namespace["broken"])
    assert result.outcome == "error" and "your line 3" in result.message, result

    @check("Demo · call")
    def check_call(fn) -> str:
        call_student("`broken(1)`", fn, 1, hint="index a dict, not an int")
        return "ok"

    result = check_call(namespace["broken"])
    assert result.outcome == "incorrect", result
    assert "your line 3" in result.message and "index a dict" in result.message, result

    @check("Demo · not callable")
    def check_none(fn) -> str:
        expect_callable(fn, "broken")
        return "ok"

    assert check_none(None).outcome == "not attempted"


def test_check_all_reruns_every_check_on_the_current_names() -> None:
    ex, _ = _exercise()
    summary = ex.check_all({"double": lambda x: 2 * x})
    verdicts = {task.key: result.outcome for task, result in summary.rows}
    assert verdicts == {"double": "correct", "halve": "not attempted"}
    assert bool(summary)  # every core task is correct; optional ones do not count
    assert "core: 2/2" in repr(summary)
    assert "going further (optional): 0 of 1 self-checks pass" in repr(summary)
    assert not ex.check_all({"double": lambda x: x, "halve": lambda x: x / 2})
    assert "<table>" in summary._repr_html_()


def test_messages_render_backticks_as_code_in_html() -> None:
    html = check_double(lambda x: 0)._repr_html_()
    assert "<code>double(2)</code>" in html and "`" not in html
