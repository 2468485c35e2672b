"""`python -m nbgrader`, ~1 s of CPU sooner: `python -m dspy_workbook.grading.nbgrader_main`.

nbgrader imports jsonschema at start, which compiles IRI parsers it never uses (see
`dspy_workbook/_startup.py`); the workbook's `nbgrader_config.py` imports `dspy_workbook` anyway,
so importing it first costs nothing and defers those parsers. The instructor's tools run nbgrader
this way (`tools/gradeday/nbgrader_cli.py`): once per student graded.
"""

# isort: off
import dspy_workbook  # noqa: F401 (first: defers the parsers before nbgrader imports jsonschema)
from nbgrader.apps.nbgraderapp import main

# isort: on

if __name__ == "__main__":
    main()
