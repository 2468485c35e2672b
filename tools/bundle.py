"""Build the student bundle: what a student receives, and nothing an instructor keeps.

`make bundle` writes `dist/dspy-ch07-workbook.tar.gz`: the student notebooks (the nbgrader release:
solutions replaced by stubs, hidden tests removed), the support package, the pinned requirements,
the student's JupyterLab settings, `student.mk` as its Makefile and a short README. No masters,
answer keys, hidden tests, instructor tools or tests. The archive is reproducible (sorted entries,
fixed times and owners), so two builds of the same commit are byte-identical.
"""

from __future__ import annotations

import gzip
import io
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = "dspy-ch07-workbook"
DEFAULT_OUT = ROOT / "dist" / f"{TOP}.tar.gz"

# bundle path -> repository path
FILES = {
    "README.md": "docs/student-README.md",
    "Makefile": "student.mk",
    "requirements.txt": "requirements.txt",
    "requirements-model.txt": "requirements-model.txt",
    "constraints.txt": "constraints.txt",
    "pyproject.toml": "pyproject.toml",
}
FOLDERS = ["notebooks", "dspy_workbook", "etc/jupyter-student", "monitoring"]
SKIP_PARTS = {"__pycache__", ".workbook_cache", ".ipynb_checkpoints"}
# Feedback pages are the instructor's; the rest of `grading/` is Validate (grading model, limits,
# sandbox), which the student's JupyterLab runs.
SKIP_FILES = {"dspy_workbook/grading/feedback.py"}
SKIP_SUFFIXES = {".pyc"}


def bundle_members() -> dict[str, Path]:
    """Bundle path -> file on disk, sorted."""
    members = {name: ROOT / source for name, source in FILES.items()}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*")):
            relative = path.relative_to(ROOT)
            if relative.as_posix() in SKIP_FILES:
                continue
            if (
                path.is_file()
                and not SKIP_PARTS & set(relative.parts)
                and path.suffix not in SKIP_SUFFIXES
            ):
                members[relative.as_posix()] = path
    return dict(sorted(members.items()))


def build(out: Path = DEFAULT_OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in bundle_members().items():
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{TOP}/{name}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    with out.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
        zipped.write(buffer.getvalue())
    return out


if __name__ == "__main__":
    written = build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT).resolve()
    print(f"wrote {written.relative_to(ROOT) if written.is_relative_to(ROOT) else written}")
