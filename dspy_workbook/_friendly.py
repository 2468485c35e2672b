"""Show the workbook's own errors in a notebook as one clear message, not a stack trace."""

from __future__ import annotations

from ._errors import WorkbookError

__all__ = ["install_friendly_errors"]


def _show(shell, etype, value, tb, tb_offset=None):  # IPython's custom-exception signature
    message = f"{etype.__name__}: {value}"
    print(f"⚠️  {message}")
    return [message]  # what IPython records as the traceback (and nbgrader/nbval see as the error)


def install_friendly_errors() -> bool:
    """In IPython, render `WorkbookError`s as a one-line message; elsewhere do nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((WorkbookError,), _show)
    return True
