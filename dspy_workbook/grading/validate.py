"""Validate a notebook the way autograde grades it: `python -m dspy_workbook.grading.validate NB`.

nbgrader's Validator, with `GradingExecute` and the grading limits instead of the plain Execute:
the grading model (simulated), cells up to the last graded one (going-further parts carry no
points and are not run), the cell and student time limits, the sandbox when bubblewrap is
installed. So Validate's verdict is the grader's, in seconds rather than minutes on the local
model. Prints one JSON object, nbgrader's Validate reply (`{"success": …, "value": …}`), which
the Validate button shows; `validate_extension` runs this in a subprocess for the button.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from pathlib import Path
from typing import Any

from nbgrader.nbgraderformat import SchemaTooNewError, SchemaTooOldError
from nbgrader.preprocessors import CheckCellMetadata, ClearOutput
from nbgrader.validator import Validator
from traitlets.config import Config

from .execute import GradingExecute
from .limits import CELL_SECONDS, STUDENT_SECONDS

__all__ = ["grading_validator", "validate", "validate_reply"]


def grading_validator() -> Validator:
    """nbgrader's Validator running notebooks as `nbgrader_config.py`'s autograde does."""
    config = Config()
    config.Execute.timeout = CELL_SECONDS
    config.Execute.interrupt_on_timeout = True
    config.Execute.execute_retries = 0
    config.GradingExecute.student_seconds = STUDENT_SECONDS
    validator = Validator(config=config)
    validator.preprocessors = [CheckCellMetadata, ClearOutput, GradingExecute]
    return validator


def validate(notebook: Path) -> dict[str, Any]:
    """nbgrader's Validate result for `notebook`: `{}` when every test passes, else `failed`,
    `changed` or `type_changed` entries (see nbgrader.validator)."""
    return grading_validator().validate(str(notebook))


def validate_reply(notebook: Path) -> dict[str, Any]:
    """What nbgrader's Validate handler answers: success and the result, or the error."""
    try:
        return {"success": True, "value": validate(notebook)}
    except SchemaTooOldError:
        message = (
            f"The notebook '{notebook}' uses an old version of the nbgrader metadata format. "
            f"Please **back up this notebook** and then update the metadata using:\n\n"
            f"nbgrader update {notebook}\n"
        )
    except SchemaTooNewError:
        message = (
            f"The notebook '{notebook}' uses a newer version of the nbgrader metadata format. "
            "Please update your version of nbgrader to validate this notebook."
        )
    except Exception:  # anything else: shown in the Validate dialog, as nbgrader does
        message = traceback.format_exc()
    return {"success": False, "value": message}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dspy_workbook.grading.validate NOTEBOOK.ipynb", file=sys.stderr)
        return 2
    notebook = Path(args[0]).resolve()
    if not notebook.is_file():
        print(f"error: no such notebook: {notebook}", file=sys.stderr)
        return 2
    # Only the reply goes to stdout; anything printed while validating goes to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        reply = validate_reply(notebook)
    print(json.dumps(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
