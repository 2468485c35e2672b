"""The authors' and instructor's tools, importable as the package `tools` from the repository root.

Tests get the root from pytest's `pythonpath` (pyproject.toml), benchmarks from `PYTHONPATH=.`
(as `make bench` runs them): `from tools.answer_key import load_solutions`. The scripts among
them also run as `python tools/build.py`, `python tools/grade_class.py` from any folder.
"""
