"""`wb.setup()` picks the backend from one setting and explains every mistake in one line."""

from __future__ import annotations

import dspy
import pytest

import dspy_workbook as wb
from dspy_workbook._friendly import _show
from dspy_workbook.lm import backend_name


def test_the_setting_chooses_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKBOOK_LM", raising=False)
    assert backend_name() == "local"
    monkeypatch.setenv("WORKBOOK_LM", "sim")
    assert backend_name() == "sim"
    assert backend_name("openai/gpt-4o-mini") == "openai/gpt-4o-mini"


def test_setup_configures_dspy_and_says_which_model(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORKBOOK_LM", "sim")
    lm = wb.setup(latency=0.0)
    assert dspy.settings.lm is lm and isinstance(dspy.settings.adapter, dspy.JSONAdapter)
    assert capsys.readouterr().out.startswith("Course LM: sim")


def test_sim_latency_can_be_set_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("WORKBOOK_SIM_LATENCY", "0.01")
    assert wb.course_lm("sim").engine.latency == 0.01


@pytest.mark.parametrize("name", ["gpt4", "lcoal", ""])
def test_an_unknown_backend_is_refused_with_the_choices(monkeypatch, name: str) -> None:
    monkeypatch.setenv("WORKBOOK_LM", " ")
    with pytest.raises(wb.BackendError, match="'local', 'sim'"):
        wb.course_lm(name or None)


def test_a_hosted_model_without_its_key_names_the_variable(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(wb.BackendError, match="OPENAI_API_KEY"):
        wb.course_lm("openai/gpt-4o-mini")


def test_a_hosted_model_with_its_key_is_a_plain_dspy_lm(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    lm = wb.course_lm("openai/gpt-4o-mini", temperature=0.0)
    assert isinstance(lm, dspy.LM) and lm.model == "openai/gpt-4o-mini"
    assert wb.describe(lm).name == "hosted"


def test_workbook_errors_show_as_one_line_in_a_notebook(capsys) -> None:
    shown = _show(None, wb.BackendError, wb.BackendError("no key"), None)
    assert shown == ["BackendError: no key"]
    assert "BackendError: no key" in capsys.readouterr().out
