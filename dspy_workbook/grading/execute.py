"""nbgrader's Execute preprocessor, with the grading backend set and the kernel sandboxed.

`nbgrader_config.py` is also loaded by the nbgrader server extension when a student's JupyterLab
starts. Setting `WORKBOOK_LM=sim` in `os.environ` there would leak into every kernel the student
opens (they would get the simulated model instead of the local one). Instead, only kernels started
by `nbgrader autograde` (and by Validate, `validate.py`) get `grading.GRADING_ENV`, through this
preprocessor.

The same preprocessor runs each grading kernel inside `sandbox.Sandbox` (bubblewrap) when it is
available (`$WORKBOOK_SANDBOX`, see `dspy_workbook.grading.sandbox`), and grades a submission
whose kernel dies (it killed itself, or ran out of memory) instead of abandoning it: every cell
after the death gets an error output, so its tests score zero rather than nothing being recorded.

It runs only what can change a score: cells up to the notebook's last graded cell. Going-further
parts, `check_all()` and a notebook without graded cells (the start notebook) carry no points, so
they are not run (about half of a blank submission's grading time, plus ~30 s for the start
notebook, on two busy cores: bench/bench_grading.py). And it bounds one
student's notebooks together (`student_seconds`, see `limits.py`): once a student's code has used
that much execution, their remaining cells are not run and score zero.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from time import monotonic
from typing import Any, ClassVar
from weakref import WeakKeyDictionary

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.converters import BaseConverter
from nbgrader.preprocessors import Execute
from nbgrader.utils import is_grade
from traitlets import Enum, Float, Integer, List, Unicode

from ..env import SANDBOX
from .env import grading_env
from .limits import STUDENT_SECONDS
from .sandbox import (
    INSTALL_HINT,
    Sandbox,
    SandboxUnavailable,
    bwrap_path,
    bwrap_problem,
    sandbox_mode,
)

__all__ = ["GradingExecute", "SandboxedKernelManager", "last_graded_cell"]

# Why a missing sandbox is an error, not a warning: it was asked for.
_SANDBOX_ON = f"the grading sandbox is on ({SANDBOX}=1 or GradingExecute.sandbox='on')"


class _Process:
    """The grading run of preprocessors no nbgrader converter started (weak-referenceable)."""


_THIS_PROCESS = _Process()


def last_graded_cell(nb: NotebookNode) -> int:
    """The index of the notebook's last graded cell, or -1 when it has none."""
    return max((i for i, cell in enumerate(nb.cells) if is_grade(cell)), default=-1)


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel runs inside `sandbox`, reached over unix sockets."""

    sandbox: Sandbox | None = None
    _rundir: str | None = None

    async def _async_pre_start_kernel(self, **kw: Any) -> tuple[list[str], dict[str, Any]]:
        assert self.sandbox is not None, "set .sandbox before starting the kernel"
        # The kernel has its own (empty) network: it listens on unix sockets in a folder that is
        # bind-mounted into the sandbox. A short path: a unix socket path has at most 107 bytes.
        self._rundir = tempfile.mkdtemp(prefix="wbk-")
        self.transport = "ipc"
        self.ip = os.path.join(self._rundir, "k")
        self.connection_file = os.path.join(self._rundir, "kernel.json")
        writable = Path(kw.get("cwd") or os.getcwd()).resolve()
        kw["env"] = Sandbox.environment(kw.get("env") or os.environ)
        cmd, kw = await super()._async_pre_start_kernel(**kw)
        return self.sandbox.command(cmd, writable=writable, rundir=Path(self._rundir)), kw

    async def _async_interrupt_kernel(self) -> None:
        # SIGINT to the kernel's process group would also stop bwrap, and the kernel with it: ask
        # the kernel itself (ipykernel's `interrupt_request` raises KeyboardInterrupt in the cell).
        self._connect_control_socket()
        self.session.send(self._control_socket, self.session.msg("interrupt_request", content={}))

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if self._rundir and not restart:
            shutil.rmtree(self._rundir, ignore_errors=True)
            self._rundir = None

    # AsyncKernelManager binds its public coroutines to the base class's functions.
    interrupt_kernel = _async_interrupt_kernel
    cleanup_resources = _async_cleanup_resources


class GradingExecute(Execute):
    """Execute, starting each kernel with `grading_env()`, sandboxed when bubblewrap allows."""

    sandbox = Unicode(
        "",
        help="'on', 'off' or 'auto' (bubblewrap when installed); empty: $WORKBOOK_SANDBOX",
    ).tag(config=True)
    sandbox_memory_mb = Integer(4096, help="address-space bound of a sandboxed kernel").tag(
        config=True
    )
    sandbox_cpu_seconds = Integer(900, help="CPU-time bound of a sandboxed kernel").tag(config=True)
    sandbox_hide = List(Unicode(), help="more folders the sandboxed kernel must not see").tag(
        config=True
    )
    student_seconds = Float(
        STUDENT_SECONDS,
        help="execution time one student's notebooks of an assignment may use in all; the cells "
        "left when it runs out are not run and score zero (0: no bound)",
    ).tag(config=True)
    timings_file = Unicode(
        "",
        help="append each notebook's kernel start and cell times to this file, one JSON object "
        "a notebook (bench/bench_grading.py reads them)",
    ).tag(config=True)
    # Nothing in a grading kernel needs a graceful exit (each notebook gets a fresh one); waiting
    # for it cost up to ~2 s per notebook when the student's code left threads running.
    shutdown_kernel = Enum(["graceful", "immediate"], default_value="immediate").tag(config=True)

    # Seconds of execution used so far per (student, assignment), per grading run: one nbgrader
    # converter (one `nbgrader autograde`, or one Formgrader click inside the instructor's
    # server), which grades one notebook after another; `_THIS_PROCESS` when there is none.
    _spent: ClassVar[WeakKeyDictionary[object, dict[tuple[str, str], float]]] = WeakKeyDictionary()
    _last_graded = -1
    _deadline: float | None = None
    _kernel_died: str | None = None
    _timing: dict[str, Any] | None = None

    def _make_sandbox(self) -> Sandbox | None:
        mode = self.sandbox or sandbox_mode()
        if mode == "off":
            return None
        bwrap = bwrap_path()
        if bwrap is None:
            if mode == "on":
                raise SandboxUnavailable(f"{_SANDBOX_ON} but bwrap is missing: {INSTALL_HINT}")
            self.log.warning(
                "NOT SANDBOXED: bwrap was not found, so student code runs with your "
                "rights (it can read the masters and the gradebook); %s",
                INSTALL_HINT,
            )
            return None
        problem = bwrap_problem(bwrap)
        if problem is not None:
            if mode == "on":
                raise SandboxUnavailable(
                    f"{_SANDBOX_ON} but bubblewrap cannot make a sandbox here: {problem}"
                )
            self.log.warning(
                "NOT SANDBOXED: bubblewrap is installed but cannot make a sandbox here (%s; "
                "are unprivileged user namespaces turned off?): student code runs with your rights",
                problem,
            )
            return None
        return Sandbox(
            bwrap,
            hide=self._hidden_folders(),
            memory_mb=self.sandbox_memory_mb,
            cpu_seconds=self.sandbox_cpu_seconds,
        )

    def _hidden_folders(self) -> list[Path]:
        """The course, the repository with the masters, home and the shared temporary folders."""
        course = self.config.get("CourseDirectory", {}).get("root") or os.getcwd()
        repository = Path(__file__).resolve().parents[2]
        home = Path.home()
        return [
            Path(p)
            for p in (
                course,
                repository,
                home,
                "/root",
                "/home",
                "/tmp",
                "/var/tmp",
                "/run",
                *self.sandbox_hide,
            )
        ]

    def preprocess(self, nb: NotebookNode, resources: Any = None, km: Any = None) -> Any:
        self._timing = {"kernel": 0.0, "cells": {}}
        start = monotonic()
        try:
            return self._run(nb, resources, km)
        finally:
            self._timing["total"] = monotonic() - start
            if self._timing["cells"]:
                self.log.info(
                    "Ran %d cells in %.1f s (kernel start %.1f s); cells after the last graded "
                    "one are not run (no points)",
                    len(self._timing["cells"]),
                    self._timing["total"],
                    self._timing["kernel"],
                )
            if self.timings_file:
                about = (resources or {}).get("nbgrader") or {}
                name = about.get("notebook") or (resources or {}).get("unique_key") or ""
                with open(self.timings_file, "a") as out:
                    out.write(json.dumps({"notebook": name, **self._timing}) + "\n")

    def _run(self, nb: NotebookNode, resources: Any, km: Any) -> Any:
        self._kernel_died = None
        self._last_graded = last_graded_cell(nb)
        if self._last_graded < 0:
            self.log.info("No graded cell in this notebook: not run (nothing in it scores)")
            return nb, resources
        student = _student(resources)
        self._deadline = None
        if self.student_seconds > 0:
            spent = self._spent.setdefault(self._grading_run(), {})
            left = self.student_seconds - (spent.get(student, 0.0) if student else 0.0)
            self._deadline = monotonic() + left
            if left <= 0:
                self.log.error(
                    "%s's notebooks used up their grading time (%g s): this one is not run "
                    "and scores zero",
                    student[0] if student else "This student",
                    self.student_seconds,
                )
                for index, cell in enumerate(nb.cells):
                    if cell.cell_type == "code" and index <= self._last_graded:
                        cell.outputs = [self._not_run_error()]
                return nb, resources
        box = self._make_sandbox()
        if box is not None:
            self.kernel_manager_class = type(
                "BoundSandboxedKernelManager", (SandboxedKernelManager,), {"sandbox": box}
            )
            self.log.info(
                "Sandboxed grading kernel (bubblewrap: no network, only %s writable)",
                (resources or {}).get("metadata", {}).get("path", "the submission"),
            )
        start = monotonic()
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if student:
                spent = self._spent.setdefault(self._grading_run(), {})
                spent[student] = spent.get(student, 0.0) + monotonic() - start

    def _grading_run(self) -> object:
        """The nbgrader converter this preprocessor runs under (the grading run), or
        `_THIS_PROCESS` (Validate: one notebook per process)."""
        node = self.parent
        while node is not None:
            if isinstance(node, BaseConverter):
                return node
            node = getattr(node, "parent", None)
        return _THIS_PROCESS

    def _not_run_error(self) -> NotebookNode:
        return _error(
            "GradingTimeUsedUp",
            f"not run: this student's notebooks used up their grading time "
            f"({self.student_seconds:g} s in all) in cells that did not finish",
        )

    def _get_timeout(self, cell: NotebookNode | None) -> int | None:
        """The cell time limit, or less when the student's grading time runs out first."""
        timeout = super()._get_timeout(cell)
        if self._deadline is None:
            return timeout
        left = max(1, math.ceil(self._deadline - monotonic()))
        return left if timeout is None else min(timeout, left)

    async def _async_handle_timeout(
        self, timeout: int, cell: NotebookNode | None = None
    ) -> None | dict[str, Any]:
        """Interrupt the cell; its error says which limit stopped it: the cell's own, or the
        student's grading time."""
        budget_ran_out = (
            self._deadline is not None
            and monotonic() >= self._deadline - 1
            and (not self.timeout or timeout < self.timeout)
        )
        if budget_ran_out:
            ename = "GradingTimeUsedUp"
            evalue = (
                f"stopped after {timeout} s: this student's notebooks used up their grading "
                f"time ({self.student_seconds:g} s in all) in cells that did not finish"
            )
        else:
            ename = "CellTimeoutError"
            evalue = (
                f"this cell ran for more than {timeout} s and was stopped: check for an "
                "infinite loop or a call that never returns"
            )
        saved = self.error_on_timeout
        self.error_on_timeout = {
            "ename": ename,
            "evalue": evalue,
            "traceback": [f"{ename}: {evalue}"],
        }
        try:
            return await super()._async_handle_timeout(timeout, cell)
        finally:
            self.error_on_timeout = saved

    # nbclient binds the sync `start_new_kernel` to the base class's coroutine, so both entry
    # points are overridden.
    def start_new_kernel(self, **kwargs: Any) -> None:
        kwargs.setdefault("env", grading_env())
        start = monotonic()
        super().start_new_kernel(**kwargs)
        self._time("kernel", monotonic() - start)

    def start_new_kernel_client(self) -> Any:
        start = monotonic()
        client = super().start_new_kernel_client()  # returns once the kernel answers
        self._time("kernel", monotonic() - start)
        return client

    def _time(self, what: str, seconds: float) -> None:
        if self._timing is not None:
            self._timing[what] = self._timing.get(what, 0.0) + seconds

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        kwargs.setdefault("env", grading_env())
        await super().async_start_new_kernel(**kwargs)

    async def async_execute_cell(
        self,
        cell: NotebookNode,
        cell_index: int,
        execution_count: int | None = None,
        store_history: bool = True,
    ) -> NotebookNode:
        """Run a cell up to the last graded one; once the kernel has died or the student's grading
        time has run out, every later code cell up to there gets an error output."""
        if cell_index > self._last_graded:
            return cell  # no points from here on: not run
        if cell.cell_type != "code" or not cell.source.strip():
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        if self._deadline is not None and monotonic() >= self._deadline:
            cell.outputs = [self._not_run_error()]
            return cell
        if self._kernel_died is not None:
            cell.outputs = [
                _error("KernelDied", f"not run: the kernel stopped in cell {self._kernel_died}")
            ]
            return cell
        start = monotonic()
        try:
            return await super().async_execute_cell(
                cell, cell_index, execution_count, store_history
            )
        except DeadKernelError:
            self._kernel_died = str(cell_index)
            self.log.error(
                "The kernel died while running cell %s (it exited, was killed or ran "
                "out of memory): that cell and every later one score zero",
                cell_index,
            )
            cell.outputs.append(_error("KernelDied", "the kernel died while running this cell"))
            return cell
        except CellTimeoutError:
            # The cell ignored the interrupt after its timeout: the kernel is stuck, so it is
            # stopped and the rest of the notebook is scored as not run.
            self._kernel_died = str(cell_index)
            self.log.error(
                "Cell %s did not stop when interrupted after the timeout: the kernel "
                "was stopped; that cell and every later one score zero",
                cell_index,
            )
            await ensure_async(self.km.shutdown_kernel(now=True))
            cell.outputs.append(
                _error(
                    "CellTimeoutError",
                    "this cell ran past the time limit and ignored the interrupt",
                )
            )
            return cell
        finally:
            if self._timing is not None:
                self._timing["cells"][str(cell_index)] = monotonic() - start

    # nbconvert's ExecutePreprocessor calls the sync `execute_cell`, bound to the base coroutine.
    execute_cell = run_sync(async_execute_cell)


def _student(resources: Any) -> tuple[str, str] | None:
    """(student, assignment) when nbgrader grades a submission; None for a lone notebook."""
    about = (resources or {}).get("nbgrader") or {}
    if "student" not in about:
        return None
    return str(about.get("student") or ""), str(about.get("assignment") or "")


def _error(ename: str, evalue: str) -> NotebookNode:
    return NotebookNode(
        output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]
    )
