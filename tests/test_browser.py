"""The student, in a real browser: `make lab`, then JupyterLab driven through Chromium.

The lab runs from a student's checkout in a temporary folder: the repository's Makefile,
`student.mk`, student settings and virtualenv (linked, so `make lab` is the real command) and its
notebooks (copied) — with Exercises 3, 4 and 5 replaced by their solved masters, outputs cleared,
as a student who finished them has them, and the released Exercise 5 beside them as an unfinished
one. The repository's own `notebooks/` is never written.
`make lab` runs with the set-up stamp taken as up to date (`--old-file`): an install from the
temporary folder would point the shared virtualenv at it.

The browser opens the page `make lab` opens, clicks through the menus, and reads the page back.
Requests to anything but loopback are refused and recorded: the workbook must work offline.
Notebooks run on the local model, as a student's do (no `WORKBOOK_LM` in the lab's
environment). Screenshots of what the student sees go to `artifacts/screenshots/`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _browser import (
    NotebookView,
    Offline,
    capture,
    chromium,
    dismiss_news_prompt,
    require_chromium,
)
from _lab_server import Lab, polling_status, running_lab, student_checkout
from playwright.sync_api import BrowserContext, Page, expect

from dspy_workbook.grading.validate_extension import VALIDATE_SECONDS

pytestmark = pytest.mark.slow

SOLVED = ("03_debugging.ipynb", "04_optimization.ipynb", "05_deployment.ipynb")  # the masters
UNFINISHED_5 = "05_deployment-unfinished.ipynb"  # the release of Exercise 5, as handed out
RUN_SECONDS = 300  # Run All on one notebook; the slowest takes ~30 s on 2 busy cores
INSTRUCTOR_COMMANDS = ("Formgrader", "Assignment List", "Course List", "Create assignment")


@pytest.fixture(scope="module")
def shots(root: Path) -> Path:
    folder = root / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def student_folder(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    notebooks = {name: root / "source" / "ch07" / name for name in SOLVED}
    notebooks[UNFINISHED_5] = root / "notebooks" / "05_deployment.ipynb"
    return student_checkout(root, tmp_path_factory.mktemp("student"), notebooks)


@pytest.fixture(scope="module")
def lab(student_folder: Path, venv_env: dict[str, str], chromium_binary: str) -> Iterator[Lab]:
    require_chromium()  # before starting a server the test could not use
    with running_lab(
        student_folder,
        venv_env,
        make_flags=("--old-file=.venv/.installed-stamp",),
        log=student_folder / "lab.log",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BrowserContext, Offline]]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as opened:
        yield opened


@pytest.fixture(scope="module")
def page(browser: tuple[BrowserContext, Offline], lab: Lab) -> Page:
    """The page `make lab` opens (the redirect to the start notebook), loaded."""
    context, _ = browser
    page = context.pages[0] if context.pages else context.new_page()
    dismiss_news_prompt(page)
    page.goto(lab.browser_open_page().as_uri())
    page.wait_for_url(re.compile(r"/lab/tree/00_start_here\.ipynb"), timeout=60_000)
    return page


@pytest.fixture(autouse=True)
def stays_offline(browser: tuple[BrowserContext, Offline]) -> Iterator[None]:
    """No test may need the internet: the browser refuses it, and the test says what it tried."""
    _, offline = browser
    offline.blocked.clear()
    yield
    assert not offline.blocked, f"the page requested addresses off this machine: {offline.blocked}"


def test_make_lab_opens_the_start_notebook_in_a_lab_rooted_at_the_notebooks(
    page: Page, student_folder: Path, shots: Path
) -> None:
    start = NotebookView.current(page, "00_start_here.ipynb")
    expect(start.panel.locator(".jp-MarkdownCell h1").first).to_contain_text("start here")
    # Opened and its kernel idle, but not edited: the tab must not show it as modified.
    tab = page.locator(f'.lm-TabBar-tab[data-id="{start.panel_id}"]')
    expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))
    listed = page.locator(".jp-FileBrowser .jp-DirListing-itemText")
    expect(listed.first).to_be_visible()
    notebooks = sorted(p.name for p in (student_folder / "notebooks").glob("*.ipynb"))
    assert sorted(listed.all_text_contents()) == notebooks  # no source/, solutions/, Makefile
    page.screenshot(path=shots / "lab-start.png")


def test_students_get_validate_but_not_the_instructor_tools(page: Page, shots: Path) -> None:
    start = NotebookView.current(page, "00_start_here.ipynb")
    # Validate runs the notebook's visible tests through nbgrader's server extension.
    start.panel.get_by_role("button", name="Validate").click()
    verdict = page.locator(".jp-Dialog")
    expect(verdict).to_contain_text("Success! Your notebook passes all the tests.", timeout=120_000)
    capture(verdict.locator(".jp-Dialog-content"), shots / "validate.png")
    verdict.get_by_role("button", name="Ok").click()
    expect(verdict).to_have_count(0)

    menus = page.locator(".lm-MenuBar-itemLabel").all_text_contents()
    assert "Kernel" in menus and "Nbgrader" not in menus, menus
    sidebar = page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab")
    titles = [tab.get_attribute("title") or "" for tab in sidebar.all()]
    assert titles and not [t for t in titles if "nbgrader" in t.lower()], titles
    # The command palette lists every command an extension registered.
    page.keyboard.press("Control+Shift+C")
    search = page.locator(".lm-CommandPalette-input")
    expect(search).to_be_visible()
    search.fill("nbgrader")
    offered = page.locator(".lm-CommandPalette-item:visible").all_text_contents()
    page.keyboard.press("Escape")
    assert not [c for c in INSTRUCTOR_COMMANDS if any(c in item for item in offered)], offered


def test_the_start_notebook_runs_clean_on_the_local_model(page: Page, shots: Path) -> None:
    start = NotebookView.current(page, "00_start_here.ipynb")
    start.run_all(RUN_SECONDS)
    assert not start.errors(), start.errors()
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in start.prompts()), start.prompts()
    setup = start.output_text(start.code_cell("lm = wb.setup()"))
    assert "Course LM: local" in setup, setup
    environment = start.code_cell("environment_table()")
    table = start.output_text(environment)
    assert "dspy" in table and "✅" in table and "❌" not in table, table
    capture(environment.locator(".jp-OutputArea"), shots / "00_start_here-environment.png")
    first_call = start.output_text(start.code_cell("dspy.Predict"))
    assert re.search(r"answer: '.+'", first_call) and "latency:" in first_call, first_call
    history = start.output_text(start.code_cell("last = lm.history[-1]"))
    assert "tokens were counted: True" in history, history
    assert "the answer is a non-empty string: True" in history, history
    checks = start.code_cell("display(check_count_vowels(candidate))")
    verdicts = checks.locator(".jp-OutputArea-output").all_text_contents()
    assert [v.strip()[:1] for v in verdicts] == ["💡", "❌", "💥", "✅"], verdicts
    capture(checks.locator(".jp-OutputArea"), shots / "00_start_here-self-checks.png")


def test_the_solved_debugging_notebook_steps_through_a_trace(page: Page, shots: Path) -> None:
    notebook = NotebookView.open_from_file_browser(page, "03_debugging.ipynb")
    notebook.run_all(RUN_SECONDS)
    assert not notebook.errors(), notebook.errors()
    timeline = notebook.code_cell("plot_timeline(tracer.spans")
    chart = timeline.locator(".jp-OutputArea-output img")
    expect(chart).to_be_visible()
    assert chart.evaluate("img => img.naturalWidth > 0"), "the timeline chart did not render"
    capture(timeline.locator(".jp-OutputArea"), shots / "03_debugging-timeline.png")

    stepper = (
        notebook.code_cell("display(stepper)")
        .locator(".widget-vbox")
        .filter(has=page.get_by_role("button", name="next ▶"))
    )
    expect(stepper).to_have_count(1)
    header, view = stepper.locator(".widget-html").nth(0), stepper.locator(".widget-html").nth(1)
    expect(header).to_contain_text(re.compile(r"span \d+ of \d+"))
    shown, total = map(int, re.search(r"span (\d+) of (\d+)", header.text_content()).groups())
    assert shown < total, f"the stepper opened on the last span ({shown} of {total})"
    expect(view).to_contain_text("FAILED")  # the cell jumped to the first failure
    before = view.text_content()
    capture(stepper, shots / "03_debugging-stepper-before.png")

    stepper.get_by_role("button", name="next ▶").click()
    expect(header).to_contain_text(f"span {shown + 1} of {total}")
    assert view.text_content() != before, "the span on show did not change"
    expect(stepper.locator(".widget-slider .widget-readout")).to_have_text(str(shown + 1))
    capture(stepper, shots / "03_debugging-stepper-after.png")


def test_the_solved_deployment_notebook_serves_its_docs_offline(
    page: Page, browser: tuple[BrowserContext, Offline], shots: Path
) -> None:
    notebook = NotebookView.open_from_file_browser(page, "05_deployment.ipynb")
    notebook.run_all(RUN_SECONDS)
    assert not notebook.errors(), notebook.errors()
    latency = notebook.code_cell('ax.set_title("/predict over HTTP')
    expect(latency.locator(".jp-OutputArea-output img")).to_be_visible()
    capture(latency.locator(".jp-OutputArea"), shots / "05_deployment-latency.png")
    stopped = notebook.output_text(notebook.code_cell("server.stop()"))
    assert "server running: False" in stopped, stopped

    # Section 6's cell again: the embedded server, started in the kernel's background.
    serve = notebook.code_cell("serving.start_background(served")
    notebook.rerun(serve, RUN_SECONDS)
    assert not notebook.errors(), notebook.errors()
    started = re.search(
        r"Running API server accessible at (http://127\.0\.0\.1:\d+)", notebook.output_text(serve)
    )
    assert started, notebook.output_text(serve)

    context, _ = browser
    docs = context.new_page()
    try:
        docs.goto(f"{started.group(1)}/docs")
        swagger = docs.locator(".swagger-ui")
        expect(swagger.locator(".info .title")).to_contain_text("DSPy question answering")
        expect(swagger.locator('.opblock-summary-path[data-path="/predict"]')).to_be_visible()
        expect(swagger.get_by_role("button", name=re.compile("Authorize"))).to_be_visible()
        docs.screenshot(path=shots / "05_deployment-docs.png", full_page=True)
    finally:
        docs.close()


@pytest.mark.parametrize(
    ("notebook", "kind"), [("04_optimization.ipynb", "solved"), (UNFINISHED_5, "unfinished")]
)
def test_validate_gives_the_graders_verdict_while_the_lab_keeps_answering(
    page: Page, lab: Lab, student_folder: Path, root: Path, shots: Path, notebook: str, kind: str
) -> None:
    """Validate runs off the server's event loop, as the grader runs (the grading model, graded
    cells only): the server answers throughout, and the dialog brings the grader's verdict. Was:
    the solved Exercise 4 took 5 min 38 s on the local model, the server silent all along."""
    view = NotebookView.open_from_file_browser(page, notebook)
    dialog = page.locator(".jp-Dialog")
    with polling_status(lab.url("/api/status")) as polls:
        start = time.monotonic()
        view.panel.get_by_role("button", name="Validate").click()
        message = dialog.locator("#validation-message")
        expect(message).to_be_visible(timeout=VALIDATE_SECONDS * 1000)
        seconds = time.monotonic() - start
    capture(dialog.locator(".jp-Dialog-content"), shots / f"validate-{kind}.png")
    figures = root / "artifacts" / "validate-timings.json"
    measured = json.loads(figures.read_text()) if figures.exists() else {}
    measured[notebook] = {"seconds": round(seconds, 1), "polls": polls.summary()}
    figures.write_text(json.dumps(measured, indent=1))
    print(f"Validate of {notebook}: {seconds:.1f} s; {polls.summary()}")

    assert len(polls.latencies) >= 2 and polls.unanswered == 0, (
        f"the server stopped answering while Validate ran: {polls.summary()}"
    )
    text = message.inner_text()
    if kind == "solved":
        assert "Success! Your notebook passes all the tests." in text, text
    else:
        released = json.loads((student_folder / "notebooks" / notebook).read_text())
        graded = sum(1 for c in released["cells"] if c["metadata"].get("nbgrader", {}).get("grade"))
        failed = message.locator("p", has_text="The following cell failed:")
        assert failed.count() == graded, f"{failed.count()} failed cells of {graded}: {text[:500]}"
        assert "NotImplementedError" in text, text[:500]
    dialog.get_by_role("button", name="Ok").click()
    expect(dialog).to_have_count(0)
