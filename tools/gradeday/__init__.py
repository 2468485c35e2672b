"""The instructor's grading day: collect submissions, autograde them in parallel, report, export.

`tools/grade_class.py` is the command line; these modules are its parts (and the tests' and the
benchmark's): `collect` (LMS zip or a folder), `autograde` (one nbgrader process per student),
`report` (one line per student from the gradebook), `probe` (a tiny course for tests and benches).
"""
