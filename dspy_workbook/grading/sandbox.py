"""The grading sandbox: the bubblewrap command a grading kernel runs inside.

Autograding runs every student's code with the grader's rights. Inside the sandbox the kernel sees
a read-only system; the course folder, the repository, home and /tmp are replaced by empty
folders, so the masters (hidden tests, solutions), `gradebook.db` and the other students' work are
not there to read; only the student's own folder and the kernel's socket folder are writable; it
has no network (its own empty network namespace), its own process namespace (nothing outside to
kill), no capabilities, and an address-space and CPU-time bound. The grader (nbgrader, with the
gradebook) stays outside and talks to the kernel over unix sockets in a bind-mounted folder, since
TCP loopback is not shared with an unshared network.

`WORKBOOK_SANDBOX`: `1` requires the sandbox (an error when `bwrap` is missing or cannot make a
sandbox here), `0` turns it off, unset (`auto`) uses it when `bwrap` works and says clearly when it
does not. Installed is not always enough: where unprivileged user namespaces are turned off (as
Ubuntu 24.04's AppArmor does by default) `bwrap` fails, so it is tried once first (`bwrap_problem`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..env import CACHE_DIR, PREFIX, SANDBOX

__all__ = [
    "Sandbox",
    "SandboxUnavailable",
    "bwrap_path",
    "bwrap_problem",
    "sandbox_mode",
]

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap)"

# Inside the sandbox: a private /tmp (tmpfs) holds home and the workbook's caches.
SANDBOX_HOME = "/tmp/home"
SANDBOX_CACHE = "/tmp/workbook_cache"


# The grader's environment variables a sandboxed kernel gets; everything else stays outside.
_PASSED = {"PATH", "LANG", "LANGUAGE", "TZ", "TERM", "VIRTUAL_ENV", "CONDA_PREFIX", "MPLBACKEND"}
_PASSED_PREFIXES = ("LC_", PREFIX, "JPY_", "PYTHON", "COVERAGE_", "OMP_", "NBGRADER_")
# Readable by root only, but the grader may be root: each is replaced by an empty file.
_SECRET_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers")


class SandboxUnavailable(RuntimeError):
    """The sandbox was required (`WORKBOOK_SANDBOX=1`) but cannot be used here."""


def sandbox_mode(env: Mapping[str, str] | None = None) -> str:
    """`on`, `off` or `auto`, from `$WORKBOOK_SANDBOX` (unset or empty: `auto`)."""
    value = (os.environ if env is None else env).get(SANDBOX, "").strip().lower()
    if value in ("", "auto"):
        return "auto"
    if value in ("1", "on", "yes", "true"):
        return "on"
    if value in ("0", "off", "no", "false"):
        return "off"
    raise ValueError(f"{SANDBOX}={value!r}: use 1 (required), 0 (off) or auto")


def bwrap_path() -> str | None:
    """The `bwrap` executable, or None when bubblewrap is not installed."""
    return shutil.which("bwrap")


@functools.cache
def bwrap_problem(bwrap: str) -> str | None:
    """Why `bwrap` cannot make a sandbox on this machine (one line), or None when it can."""
    probe = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-all"]
    try:
        run = subprocess.run(
            [*probe, "--die-with-parent", "--", "true"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} did not run: {exc}"
    if run.returncode == 0:
        return None
    said = run.stderr.strip().splitlines()
    return said[-1] if said else f"{bwrap} exited with status {run.returncode}"


def _python_paths() -> set[Path]:
    """Folders the kernel's interpreter and packages live in (read-only inside the sandbox)."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent}
    paths.update(Path(p) for p in sys.path if p and Path(p).is_absolute() and Path(p).is_dir())
    # An editable install of the support package maps it to a folder outside site-packages.
    import dspy_workbook

    paths.add(Path(dspy_workbook.__file__).resolve().parent)
    return paths


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass
class Sandbox:
    """How to wrap one kernel command; `hide` folders vanish, `keep` ones come back read-only."""

    bwrap: str
    hide: Sequence[Path]
    keep: Iterable[Path] = field(default_factory=_python_paths)
    memory_mb: int = 4096
    cpu_seconds: int = 900
    file_mb: int = 512
    tmp_mb: int = 256

    def command(self, argv: Sequence[str], *, writable: Path, rundir: Path) -> list[str]:
        """`argv` run by bwrap, with `writable` (the submission) and `rundir` (sockets) writable."""
        hide = sorted({Path(p).resolve() for p in self.hide if Path(p).exists()})
        # A kept folder that contains a hidden one would show it again: only keep what lies
        # strictly inside a hidden folder (the venv inside the repository) or outside all of them.
        keep = sorted(
            {k.resolve() for k in self.keep if k.exists()}
            - {k.resolve() for k in self.keep if any(_inside(h, k.resolve()) for h in hide)}
        )
        args = [self.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        for folder in hide:
            # /tmp stays writable scratch (home, caches): bounded, as it is held in memory.
            size = ["--size", str(self.tmp_mb * 1024 * 1024)] if folder == Path("/tmp") else []
            args += [*size, "--tmpfs", str(folder)]
        for folder in keep:
            nested = any(_inside(folder, k) and folder != k for k in keep)
            if any(_inside(folder, h) for h in hide) and not nested:
                args += ["--ro-bind", str(folder), str(folder)]
        args += ["--bind", str(writable), str(writable), "--bind", str(rundir), str(rundir)]
        args += ["--dir", SANDBOX_HOME, "--dir", SANDBOX_CACHE]
        for secret in _SECRET_FILES:
            if Path(secret).exists():
                args += ["--ro-bind", "/dev/null", secret]
        # The empty folders that hide things are read-only too (only the private /tmp is scratch).
        for folder in hide:
            if folder != Path("/tmp"):
                args += ["--remount-ro", str(folder)]
        # The kernel's parent inside is bwrap's reaper, pid 1; ipykernel would take that for "my
        # parent died" and exit, unless told its parent *is* pid 1 (it then skips the poller). The
        # kernel is tied to the grader by --die-with-parent instead.
        args += [
            "--setenv",
            "JPY_PARENT_PID",
            "1",
            "--unshare-all",
            "--cap-drop",
            "ALL",
            "--die-with-parent",
            "--chdir",
            str(writable),
        ]
        limits = [
            "prlimit",
            f"--as={self.memory_mb * 1024 * 1024}",
            f"--cpu={self.cpu_seconds}",
            f"--fsize={self.file_mb * 1024 * 1024}",
            "--core=0",
            "--",
        ]
        return [*args, "--", *limits, *argv]

    @staticmethod
    def environment(env: Mapping[str, str]) -> dict[str, str]:
        """The kernel's environment inside: only what a kernel needs (no API keys or tokens of the
        grader's: a student's code could print them into the feedback), home and caches on the
        sandbox's private /tmp."""
        inner = {k: v for k, v in env.items() if k in _PASSED or k.startswith(_PASSED_PREFIXES)}
        inner.update(
            {
                "HOME": SANDBOX_HOME,
                CACHE_DIR: SANDBOX_CACHE,
                "TMPDIR": "/tmp",
                "IPYTHONDIR": f"{SANDBOX_HOME}/.ipython",
                "MPLCONFIGDIR": f"{SANDBOX_HOME}/.matplotlib",
            }
        )
        return inner
