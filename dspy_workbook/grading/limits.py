"""The time limits grading runs under, in one place: autograde (`nbgrader_config.py`,
`tools/grade_class.py`) and Validate (`validate.py`) use these, so both give the same verdicts.

On the grading model (simulated, 0.01 s a call) the slowest cell of a solved exercise takes 2.5 s
on two cores at load 3.5, 7 s at load 16 (`bench/bench_grading.py`): a cell still running after
`CELL_SECONDS` is stopped and scores zero. `STUDENT_SECONDS` bounds one student's notebooks
together: code that hangs in every task is stopped after that much execution, its remaining cells
scored zero, so one student never holds up a class. A hanging task costs at most two cell limits
(its self-check and its graded cell), so a student with one or two hanging tasks still gets every
other task graded (a solved student uses ~30 s).
"""

from __future__ import annotations

__all__ = ["CELL_SECONDS", "STUDENT_SECONDS"]

CELL_SECONDS = 30
STUDENT_SECONDS = 240
