"""A real browser for the tests: Debian's Chromium driven by Playwright, kept off the internet.

Playwright's own browser download is never used: the tests drive `/usr/bin/chromium` (Debian's
package; `make test` installs it with the other system tools). Every request that would leave
the machine is refused and recorded, so a page that needs a CDN fails here as it would offline.

`NotebookView` does what a student does in JupyterLab — menus, clicks, keys — and reads the page
back: cell prompts, outputs, widgets.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, Route, expect, sync_playwright

__all__ = ["CHROMIUM", "NotebookView", "Offline", "capture", "chromium", "require_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
STDERR = "application/vnd.jupyter.stderr"  # JupyterLab renders errors and stderr with this type


def require_chromium() -> Path:
    """Chromium's path; skip where it cannot be installed, fail where `make test` installs it."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = "Debian's chromium is not installed (apt-get install chromium)"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        pytest.fail(f"{message}; `make test` installs it (make system-deps)")
    pytest.skip(f"{message}; the browser test needs it and cannot install it without root")


@dataclass
class Offline:
    """Lets loopback, `file:`, `data:` and `blob:` requests through; refuses and records others."""

    blocked: list[str] = field(default_factory=list)

    def handle(self, route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("file", "data", "blob") or url.hostname in LOOPBACK:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[tuple[BrowserContext, Offline]]:
    """A fresh Chromium profile in `user_data_dir`, offline but for loopback; closed on exit."""
    offline = Offline()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(require_chromium()),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
            service_workers="block",  # a service worker's requests would bypass the route below
            timeout=60_000,
        )
        try:
            context.set_default_timeout(30_000)
            context.route("**/*", offline.handle)
            yield context, offline
        finally:
            context.close()


def dismiss_news_prompt(page: Page) -> None:
    """JupyterLab asks once whether to fetch Jupyter news; answer "No" whenever it gets in the way
    (Playwright runs this before an action if the prompt is showing)."""
    toast = page.locator(".Toastify__toast").filter(has_text="Jupyter news")
    page.add_locator_handler(
        toast, lambda: toast.get_by_role("button", name="No", exact=True).click()
    )


def _settled_box(locator: Locator) -> dict[str, float]:
    """The element's box once it stops moving: JupyterLab renders off-screen cells lazily, so
    cells above grow to their real height as the page scrolls (at most ~5 s of waiting)."""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    for _ in range(20):
        locator.page.wait_for_timeout(250)
        locator.scroll_into_view_if_needed()
        again = locator.bounding_box()
        if again == box:
            break
        box = again
    assert box is not None, f"{locator} is not on the page"
    return box


def capture(locator: Locator, path: Path) -> None:
    """Screenshot the whole element, growing the window for the shot if it is taller."""
    page = locator.page
    viewport = page.viewport_size
    assert viewport is not None
    box = _settled_box(locator)
    if box["height"] > viewport["height"] - 200:
        page.set_viewport_size(
            {"width": viewport["width"], "height": min(int(box["height"]) + 300, 8000)}
        )
        _settled_box(locator)
    try:
        locator.screenshot(path=path, animations="disabled")
    finally:
        page.set_viewport_size(viewport)


# A notebook is done running when no cell waits or runs ("[*]") and every code cell has a number,
# or an error was shown (Run All stops there and clears the waiting cells' stars).
_RUN_FINISHED = """([panelId, stderr]) => {
  const panel = document.getElementById(panelId);
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map((e) => e.textContent.trim());
  if (prompts.some((p) => p.includes('*'))) return false;
  if (panel.querySelector(`.jp-OutputArea-output[data-mime-type="${stderr}"]`)) return true;
  return prompts.length > 0 && prompts.every((p) => /^\\[\\d+\\]:$/.test(p));
}"""


@dataclass
class NotebookView:
    """One open notebook in JupyterLab's main area."""

    page: Page
    panel_id: str

    @property
    def panel(self) -> Locator:
        return self.page.locator(f"#{self.panel_id}")

    @classmethod
    def open_from_file_browser(cls, page: Page, name: str) -> NotebookView:
        """Double-click `name` in the file browser, as a student opens a notebook."""
        page.locator(".jp-DirListing-item").filter(
            has=page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$"))
        ).dblclick()
        return cls.current(page, name)

    @classmethod
    def current(cls, page: Page, name: str) -> NotebookView:
        """The notebook `name` once its tab is the current one and its kernel is idle."""
        tab = page.locator(".jp-mod-current.lm-TabBar-tab").filter(has_text=name)
        expect(tab).to_have_count(1, timeout=60_000)
        view = cls(page, tab.get_attribute("data-id") or "")
        expect(view.panel.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
        view.wait_idle(60)
        return view

    def wait_idle(self, seconds: float) -> None:
        indicator = self.panel.locator(".jp-Notebook-ExecutionIndicator")
        expect(indicator).to_have_attribute("data-status", "idle", timeout=seconds * 1000)

    def menu(self, menu: str, item: str) -> None:
        """Open the menu bar's `menu` and click its item labelled `item`."""
        self.page.locator(".lm-MenuBar-item").filter(
            has_text=re.compile(f"^{re.escape(menu)}$")
        ).click()
        self.page.locator(".lm-Menu .lm-Menu-item").filter(
            has=self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
        ).click()

    def run_all(self, seconds: float) -> None:
        """*Run → Run All Cells*, then wait (at most `seconds`) until it has finished."""
        self.panel.locator(".jp-Notebook").click(position={"x": 5, "y": 5})  # focus this notebook
        self.menu("Run", "Run All Cells")
        self.page.wait_for_function(
            _RUN_FINISHED, arg=[self.panel_id, STDERR], timeout=seconds * 1000, polling=500
        )
        self.wait_idle(seconds)

    def code_cell(self, containing: str) -> Locator:
        """The one code cell whose source contains `containing`."""
        cell = self.panel.locator(".jp-CodeCell").filter(
            has=self.page.locator(".jp-InputArea-editor", has_text=containing)
        )
        expect(cell).to_have_count(1)
        return cell

    def prompts(self) -> list[str]:
        return [
            text.strip()
            for text in self.panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_text_contents()
        ]

    def errors(self) -> list[str]:
        """The text of every error and stderr output on the page."""
        return self.panel.locator(
            f'.jp-OutputArea-output[data-mime-type="{STDERR}"]'
        ).all_text_contents()

    def output_text(self, cell: Locator) -> str:
        return "\n".join(cell.locator(".jp-OutputArea-output").all_text_contents())

    def rerun(self, cell: Locator, seconds: float) -> None:
        """Select `cell` and press Shift+Enter; wait until it has run again."""
        prompt = cell.locator(".jp-InputArea-prompt")
        before = prompt.text_content().strip()
        prompt.click()  # select the cell in command mode
        self.page.keyboard.press("Shift+Enter")
        expect(prompt).not_to_have_text(before, timeout=seconds * 1000)
        expect(prompt).to_have_text(re.compile(r"^\[\d+\]:$"), timeout=seconds * 1000)
