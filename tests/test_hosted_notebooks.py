"""The start notebook and the core path of every solved master, run on a hosted model.

Each notebook runs in a fresh kernel (nbclient) whose environment points the workbook at
llama-cpp-python's OpenAI-compatible server on loopback (`tests/_class_server.py`), exactly as a
student with a provider sets it: ``WORKBOOK_LM=openai/course-model``, ``OPENAI_API_BASE``,
``OPENAI_API_KEY``. The cells are executed, not compared with nbval's stored outputs. A master's
core path is every cell before its first "Going further"/"optional" heading, found the way
`tools/course_length.py` finds it; the start notebook runs whole; the two masters with parts
only the embedded model has (`LOCAL_ONLY`: thread settings, llama.cpp's prompt cache,
quantization) run what decides to skip them, and must say they do. Every cell must run without
an error; then, per notebook: the kernel's `course_lm()` is a `HostedLM` (not the embedded
model), the server answered the kernel's requests (each kernel talks to it through its own
recording proxy, `tests/_hosted.py`), and every self-check that ran shows ✅.

Tier: ``slow``. The notebooks run two kernels at a time against one server (one thread, requests
queued; three at a time was slower: the server keeps one prompt's state, which interleaved
kernels keep evicting). Measured on the shared 2-core machine, load average 2–3: 183–207 s for
all seven when the whole of 04 ran (140–152 s, 68 requests); its core path and deciding cell alone
take about 45 s, and all seven core paths alone 103 s. Each notebook's time and request count are
printed at the end of the run (``-s``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from dspy_workbook.lm.class_server import ClassServer
from tests._class_server import class_server, kernel_env
from tests._hosted import Proxy
from tools.build import master_notebooks
from tools.course_length import core_end

__all__ = ["class_server"]  # the fixture, imported for pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "notebooks" / "00_start_here.ipynb"  # what a student opens first
NOTEBOOKS = [START, *(m for m in master_notebooks() if not m.stem.startswith("00_"))]
PARALLEL = 2  # kernels at once: 3 is slower (the server holds one prompt in its cache)
CELL_TIMEOUT = 300
SELF_CHECK = re.compile(r"\bex\d\.check_\w+\(")
VERDICTS = ("✅", "❌", "💡", "💥")
PROBE = "HOSTED-PROBE "
# Masters with parts only the embedded model has: the line each prints where it skips them, and
# which of their Going-further cells run here (None: all). 02 runs whole; of 04 only the cell
# that decides (`on_local_model`): its llama.cpp experiments then loop over nothing, and its
# other Going-further experiments (68 model calls, ~100 s here) run on a non-local model in
# tests/test_notebooks_rerun.py, which takes the same branch on the simulated provider.
LOCAL_ONLY: dict[str, tuple[str, str | None]] = {
    "02_async": ("not the local model: skipped", None),  # B: concurrency on the in-process model
    "04_optimization": ("skipped (they need the local model)", "on_local_model = "),
}
# Run after the notebook's own cells, in its kernel: which LM the workbook builds there.
PROBE_CELL = f"""\
import json as _json, dspy as _dspy, dspy_workbook as _wb
_built = _wb.course_lm()
print({PROBE!r} + _json.dumps({{
    "course_lm": type(_built).__name__,
    "is_local": _wb.is_local(_built),
    "model": _built.model,
    "configured": type(_dspy.settings.lm).__name__,
}}))
"""


@dataclass
class Run:
    """One notebook's core path, executed in its own kernel behind its own proxy."""

    path: Path
    proxy: Proxy
    notebook: nbformat.NotebookNode | None = None
    error: str | None = None
    seconds: float = 0.0
    probe: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem

    def code_cells(self) -> list[nbformat.NotebookNode]:
        return [c for c in self.notebook.cells if c.cell_type == "code"] if self.notebook else []


def _text(outputs: list) -> str:
    parts = []
    for out in outputs:
        parts.append(out.get("text", ""))
        data = out.get("data", {})
        parts.append(str(data.get("text/plain", "")))
        parts.append(str(data.get("text/html", "")))
        if out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}")
    return "\n".join(parts)


async def _execute(run: Run, env: dict[str, str], workdir: Path, gate: asyncio.Semaphore) -> None:
    notebook = nbformat.read(run.path, as_version=4)
    _, going_further = LOCAL_ONLY.get(run.name, ("", ""))
    if going_further is not None:
        end = core_end(notebook.cells)
        chosen = [c for c in notebook.cells[end:] if going_further and going_further in c.source]
        notebook.cells = notebook.cells[:end] + chosen
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE_CELL))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**env, "WORKBOOK_CACHE_DIR": str(workdir / "cache")}  # no two kernels share one
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    async with gate:
        start = time.monotonic()
        try:
            await client.async_execute(env=env)
        except CellExecutionError as error:
            run.error = str(error)[-3000:]
        except Exception as error:  # noqa: BLE001 — a timeout or a dead kernel: reported below
            run.error = f"{type(error).__name__}: {error}"[-3000:]
        run.seconds = time.monotonic() - start
    run.notebook = notebook
    probe = _text(notebook.cells[-1].get("outputs", []))
    for line in probe.splitlines():
        if line.startswith(PROBE):
            run.probe = json.loads(line.removeprefix(PROBE))


@pytest.fixture(scope="module")
def runs(
    class_server: ClassServer, venv_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Run]]:
    """Every notebook's core path, run at once (`PARALLEL` kernels at a time)."""
    folder = tmp_path_factory.mktemp("hosted-notebooks")
    runs = {p.stem: Run(p, Proxy(class_server.base_url).start()) for p in NOTEBOOKS}

    async def all_of_them() -> None:
        gate = asyncio.Semaphore(PARALLEL)
        await asyncio.gather(
            *(
                _execute(
                    run,
                    kernel_env(venv_env, run.proxy.base_url, class_server.api_key),
                    folder / name,
                    gate,
                )
                for name, run in sorted(runs.items(), key=lambda item: item[0] not in LOCAL_ONLY)
            )  # the whole notebooks first: the longest runs start while the short ones queue
        )

    start = time.monotonic()
    try:
        asyncio.run(all_of_them())
        total = time.monotonic() - start
        print(f"\nhosted notebooks: {total:.0f} s in all, {PARALLEL} kernels at a time")
        for run in runs.values():
            status = "error" if run.error else "ok"
            calls = len(run.proxy.requests)
            print(f"  {run.name:<18} {run.seconds:6.1f} s  {calls:4} requests  {status}")
        yield runs
    finally:
        for run in runs.values():
            run.proxy.stop()


@pytest.mark.parametrize("name", [p.stem for p in NOTEBOOKS])
def test_core_path_runs_on_a_hosted_model(runs: dict[str, Run], name: str) -> None:
    run = runs[name]
    assert run.error is None, f"{name} stopped on the hosted model:\n{run.error}"
    # The workbook built the hosted LM in that kernel, never the embedded model.
    assert run.probe.get("course_lm") == "HostedLM", run.probe
    assert run.probe.get("is_local") is False, run.probe
    # ... and its calls reached the server, which answered them.
    answered = run.proxy.statuses.count(200)
    assert answered > 0, f"{name}: no request reached the server ({run.proxy.statuses})"
    if name in LOCAL_ONLY:
        printed = "\n".join(_text(c.get("outputs", [])) for c in run.code_cells())
        skips = LOCAL_ONLY[name][0]
        assert skips in printed, f"{name} did not say it skips its local-only parts"
    if name.startswith("00_"):
        return  # the start notebook shows every verdict on purpose (its toy task)
    checks = [c for c in run.code_cells() if SELF_CHECK.search(c.source)]
    assert checks, f"{name}: no self-check on the core path"
    for cell in checks:
        shown = _text(cell.get("outputs", []))
        wrong = [v for v in VERDICTS[1:] if v in shown]
        assert "✅" in shown and not wrong, (
            f"{name}: the self-check `{cell.source.strip()[:60]}` showed "
            f"{wrong or 'no verdict'} on the hosted model:\n{shown[:600]}"
        )
