"""The installed versions of the workbook's packages next to the versions it pins."""

from __future__ import annotations

import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["REQUIREMENTS", "environment_table", "pinned_versions"]

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)")


def pinned_versions(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """`{package: pinned version}` from the workbook's `requirements.txt` (empty if not found)."""
    if not requirements.is_file():
        return {}
    pins = {}
    for line in requirements.read_text().splitlines():
        match = _PIN.match(line.split("#", 1)[0].strip())
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def environment_table(requirements: Path = REQUIREMENTS):
    """A pandas DataFrame: package, pinned, installed, ok — plus the Python version."""
    import pandas as pd

    rows = []
    for package, pinned in pinned_versions(requirements).items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "missing"
        rows.append(
            {
                "package": package,
                "pinned": pinned,
                "installed": installed,
                "ok": "✅" if installed == pinned else "❌ run `make lab` again",
            }
        )
    rows.append(
        {
            "package": "python",
            "pinned": "3.11",
            "installed": platform.python_version(),
            "ok": "✅" if platform.python_version().startswith("3.11") else "❌",
        }
    )
    return pd.DataFrame(rows).set_index("package")
