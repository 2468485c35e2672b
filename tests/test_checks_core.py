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
    assert check_double(lambda x: None).message == "`double` returned None — did you forget `return`?"
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
