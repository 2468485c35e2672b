"""Progress bars for long loops: visible in JupyterLab or a terminal, silent in CI and grading.

A loop of dozens of LM calls looks frozen without one. But a bar in a log (CI, nbgrader, nbval) is
noise, and a widget saved into a notebook's outputs shows as a broken widget later. So a bar is
shown only where someone is watching: a kernel started by a Jupyter server (it sets
`JPY_SESSION_NAME`) or a script whose stderr is a terminal. `WORKBOOK_PROGRESS=1`/`0` forces it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from . import env

__all__ = ["progress", "progress_enabled", "track"]

T = TypeVar("T")
_QUIET_ENV = ("CI", "NBGRADER_EXECUTION")  # set by CI services and by nbgrader's autograde/validate


def progress_enabled() -> bool:
    """Whether a progress bar would be seen by a person right now."""
    forced = (env.read(env.PROGRESS) or "").lower()
    if forced in {"0", "false", "no", "off"}:
        return False
    if forced in {"1", "true", "yes", "on"}:
        return True
    if any(os.environ.get(name) for name in _QUIET_ENV):
        return False
    return bool(os.environ.get("JPY_SESSION_NAME")) or sys.stderr.isatty()


def progress(total: int, desc: str, *, show: bool = True, **options: Any) -> Any:
    """A `tqdm.auto` bar for `total` steps (a widget in JupyterLab), disabled where nobody watches.

    Use it as a context manager and call `.update()` once per finished step; `show=False` turns
    it off for this loop whatever the environment.
    """
    from tqdm.auto import tqdm  # imported here: only loops that report progress need it

    options.setdefault("leave", False)  # the result table that follows is what should stay
    return tqdm(total=total, desc=desc, disable=not (show and progress_enabled()), **options)


def track(items: Iterable[T], desc: str, *, total: int | None = None) -> Iterator[T]:
    """`items`, one step of a `progress` bar each (for a plain `for` loop)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(total or 0, desc) as bar:
        for item in items:
            yield item
            bar.update()
