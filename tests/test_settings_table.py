"""Every `WORKBOOK_*` variable is named once (`dspy_workbook/env.py`) and listed once (the README).

A setting that the code reads but the README does not list is one nobody can find; a row for a
variable nothing reads any more misleads. Both directions are checked, over the code that ships
or runs (the package, tools, benchmarks, the hub, the masters, the Makefiles and the Dockerfile).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dspy_workbook import env
from dspy_workbook._errors import BackendError

NAME = re.compile(r"\bWORKBOOK_[A-Z0-9]+(?:_[A-Z0-9]+)*\b")
CODE = ("dspy_workbook", "tools", "bench", "hub", "source/ch07", "etc")
FILES = ("Makefile", "student.mk", "Dockerfile", "nbgrader_config.py", ".ci/run")
SUFFIXES = {".py", ".md", ".mk", ".sh", ".yml", ".yaml", ".json", ".toml", ".cfg"}


def _code_files(root: Path) -> list[Path]:
    found = [root / name for name in FILES if (root / name).is_file()]
    for folder in CODE:
        found += [
            p
            for p in (root / folder).rglob("*")
            if p.suffix in SUFFIXES and p.is_file() and "node_modules" not in p.parts
        ]
    return found


def test_every_variable_in_the_code_is_named_in_env_py(root: Path) -> None:
    known = {v.name for v in env.VARIABLES}
    unknown = {}
    for path in _code_files(root):
        for name in set(NAME.findall(path.read_text(errors="replace"))) - known:
            unknown.setdefault(name, str(path.relative_to(root)))
    assert not unknown, f"add these to dspy_workbook/env.py and the README's table: {unknown}"


def test_the_readme_table_lists_exactly_the_variables_of_env_py(root: Path) -> None:
    readme = (root / "README.md").read_text()
    section = readme.split("## Settings: every `WORKBOOK_*` variable", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(WORKBOOK_[A-Z0-9_]+)` \|", section, re.M)
    assert sorted(rows) == sorted(v.name for v in env.VARIABLES), "README and env.py differ"
    assert len(rows) == len(set(rows)), "a variable has two rows"


def test_each_variable_names_the_file_that_reads_it(root: Path) -> None:
    missing = [v.name for v in env.VARIABLES if not (root / v.read_by).is_file()]
    assert not missing, f"read_by names no file for {missing}"


def test_a_sim_latency_is_a_number_of_seconds_or_one_clear_line() -> None:
    assert env.sim_latency(0.2, {}) == 0.2
    assert env.sim_latency(0.2, {"WORKBOOK_SIM_LATENCY": " 0.01 "}) == 0.01
    for bad in ("fast", "-1", "nan", "inf"):
        with pytest.raises(BackendError, match=r"WORKBOOK_SIM_LATENCY=.*number of seconds"):
            env.sim_latency(0.2, {"WORKBOOK_SIM_LATENCY": bad})
    assert env.sim_latency(0.5, {"WORKBOOK_SIM_LATENCY": ""}) == 0.5  # blank: unset


def test_reading_a_name_that_is_not_a_setting_is_refused() -> None:
    assert env.read("WORKBOOK_LM", {"WORKBOOK_LM": "  sim "}) == "sim"
    assert env.read("WORKBOOK_LM", {"WORKBOOK_LM": "   "}) is None
    with pytest.raises(KeyError, match="not a workbook setting"):
        env.read("WORKBOOK_LMM", {})
