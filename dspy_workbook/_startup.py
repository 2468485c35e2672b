"""Import-time costs the workbook avoids: every notebook's first cell pays them, as does every
grading kernel (five per student).

`import dspy` imports jsonschema, whose format checkers import `rfc3987_syntax`, which compiles
~35 Earley parsers for IRI syntax at import: 1.7 s of CPU, half of `import dspy_workbook`
(measured with `python -X importtime`; python-jsonschema/jsonschema#1428). Only jsonschema's
"iri" format checks use it and nothing in the course does, so it is deferred to the first check.
Importing this module does it (`dspy_workbook/__init__.py` imports it before anything else).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

__all__ = ["defer_iri_grammar"]

_IRI = "rfc3987_syntax"


def _load_and_check(term: str, value: str) -> bool:
    """The real `rfc3987_syntax.is_valid_syntax`, imported on this first use."""
    sys.modules.pop(_IRI, None)
    real = importlib.import_module(_IRI)
    return real.is_valid_syntax(term, value)


def defer_iri_grammar() -> None:
    """Stand a small module in for `rfc3987_syntax` until an IRI is first checked (a no-op when
    it is not installed or already imported)."""
    if _IRI in sys.modules or importlib.util.find_spec(_IRI) is None:
        return
    stand_in = types.ModuleType(_IRI, "rfc3987_syntax, imported on first use (dspy_workbook)")
    stand_in.is_valid_syntax = _load_and_check  # type: ignore[attr-defined]
    sys.modules[_IRI] = stand_in


defer_iri_grammar()
