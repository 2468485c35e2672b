"""The installed versions of the workbook's packages next to the versions it pins."""

from __future__ import annotations

import platform
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["REQUIREMENTS", "SUPPORTED_PYTHONS", "environment_table", "pinned_versions"]

REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)")
# The Pythons the workbook supports (`student.mk`'s SUPPORTED_PYTHONS says the same).
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
# What reinstalls the pins: `make setup` alone does nothing while its stamp is newer than the
# requirements, so it is forced (-B); the kernel must restart to load the reinstalled packages.
REPAIR = "❌ run `make -B setup`, then restart the kernel"


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
                "ok": "✅" if installed == pinned else REPAIR,
            }
        )
    running = ".".join(platform.python_version_tuple()[:2])
    rows.append(
        {
            "package": "python",
            "pinned": f"{SUPPORTED_PYTHONS[0]}–{SUPPORTED_PYTHONS[-1]}",
            "installed": platform.python_version(),
            "ok": "✅"
            if running in SUPPORTED_PYTHONS
            else f"❌ unsupported: use Python {', '.join(SUPPORTED_PYTHONS)} (README)",
        }
    )
    return pd.DataFrame(rows).set_index("package")
