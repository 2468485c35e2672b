"""One line per student: the score from the gradebook and what went wrong, from the notebooks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

__all__ = ["StudentReport", "student_report"]


@dataclass
class StudentReport:
    student: str
    score: float
    max_score: float
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None  # how long grading took, when known

    def line(self) -> str:
        notes = "; ".join(self.notes) or "ok"
        took = "" if self.seconds is None else f"  ({self.seconds:.0f} s)"
        return f"{self.student:<16} {self.score:5.1f} / {self.max_score:.1f}{took}  {notes}"


# What a cell stopped at its time limit shows: the interrupt, or nbgrader's timeout error.
_TIMED_OUT = {"KeyboardInterrupt", "CellTimeoutError"}


def _cell_errors(notebook: Path) -> list[str]:
    """`grade_id Ename: message` for each cell of an autograded notebook that ended in an error."""
    errors = []
    for index, cell in enumerate(json.loads(notebook.read_text()).get("cells", [])):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                name = cell["metadata"].get("nbgrader", {}).get("grade_id") or f"cell {index}"
                ename = output.get("ename", "Error")
                if ename in _TIMED_OUT:
                    errors.append(f"{name} timed out (stopped at the cell time limit)")
                    break
                if ename == "GradingTimeUsedUp":
                    errors.append(f"{name} not run: the student's grading time ran out")
                    break
                message = str(output.get("evalue", "")).strip().splitlines()
                detail = f": {message[0][:70]}" if message else ""
                errors.append(f"{name} {ename}{detail}")
                break
    return errors


def student_report(course: Path, assignment: str, student: str, notes: list[str]) -> StudentReport:
    """The gradebook's score for `student` with `notes` and each notebook's cell errors."""
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        max_score = gradebook.find_assignment(assignment).max_score
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return StudentReport(student, 0.0, max_score, [*notes, "nothing graded: scores 0"])
        score = submission.score
    report = StudentReport(student, score, max_score, list(notes))
    for notebook in sorted((course / "autograded" / student / assignment).glob("*.ipynb")):
        errors = _cell_errors(notebook)
        if errors:
            report.notes.append(f"{notebook.name}: " + ", ".join(errors))
    return report
