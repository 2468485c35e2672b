"""An option for `nbgrader generate_feedback`: leave the hidden tests out of the feedback pages.

nbgrader's feedback HTML shows every test cell as it was graded, hidden tests included (by design,
jupyter/nbgrader#917): a student who reads their feedback learns the hidden tests, and with them
next year's. With `--HideHiddenTests.enabled=True` (or `tools/grade_class.py feedback
--hide-hidden-tests`) each hidden block is replaced by one comment line, and a failing test cell's
traceback (which quotes the failing line) is cut to the error's name and message.
"""

from __future__ import annotations

import re
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Unicode

__all__ = ["HideHiddenTests"]


class HideHiddenTests(NbGraderPreprocessor):
    """Replace `### BEGIN HIDDEN TESTS … ### END HIDDEN TESTS` blocks in feedback (when enabled)."""

    enabled = Bool(False, help="leave hidden tests out of the feedback").tag(config=True)
    begin = Unicode("BEGIN HIDDEN TESTS").tag(config=True)
    end = Unicode("END HIDDEN TESTS").tag(config=True)
    placeholder = Unicode("# (hidden tests: not shown in feedback)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: Any) -> tuple[NotebookNode, Any]:
        if not self.enabled:
            return nb, resources
        block = re.compile(
            rf"^[ \t]*#+\s*{re.escape(self.begin)}.*?"
            rf"^[ \t]*#+\s*{re.escape(self.end)}[^\n]*$",
            re.MULTILINE | re.DOTALL,
        )
        for cell in nb.cells:
            if cell.cell_type != "code" or not block.search(cell.source):
                continue
            cell.source = block.sub(self.placeholder, cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [
                        f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                    ]
        return nb, resources
