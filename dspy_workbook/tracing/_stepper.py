"""Step through a trace with ipywidgets: previous/next buttons, a slider, and jumps to a filter.

The spans are shown in start order (the order things happened). Its state — `index`,
`header.value`, `view.value`, each button's `.disabled` — is plain Python, so tests click the
buttons in code and read it back. Saved in a notebook without a live kernel, the widget shows a
one-line text summary instead of its constructor's repr.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets

from ._logs import redact_all
from ._span import Span, depth_of, to_jsonable

__all__ = ["EMPTY_MESSAGE", "FILTERS", "TraceStepper"]

EMPTY_MESSAGE = (
    "No spans recorded yet — run a call with your tracer active, then build the stepper again."
)
_PREVIEW_CHARS = 1500  # long prompts are cut so the view stays readable (after redaction)

# Filters the "jump" buttons offer: label -> condition on a span.
FILTERS: dict[str, Callable[[Span], bool]] = {
    "failed": lambda s: not s.ok,
    "lm": lambda s: s.kind == "lm",
    "module": lambda s: s.kind == "module",
    "format": lambda s: s.kind == "format",
    "parse": lambda s: s.kind == "parse",
}

FindNext = Callable[[Sequence[Span], int, int, Callable[[Span], bool]], "int | None"]


def _pretty(value: object, redact: Callable[[str], str]) -> str:
    """`value` as indented JSON for the view: redacted first, then cut (never half a secret)."""
    text = json.dumps(redact_all(to_jsonable(value), redact), indent=2, ensure_ascii=False)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + f"\n… ({len(text) - _PREVIEW_CHARS} more characters)"
    return html.escape(text)


class TraceStepper(widgets.VBox):
    """A widget showing one span at a time.

    `find_next(spans, index, step, where)` (Task 6), when given, powers the ◀◀/▶▶ buttons that
    jump to the previous/next span matching the chosen filter.
    """

    def __init__(
        self,
        spans: Sequence[Span],
        redact: Callable[[str], str] = lambda text: text,
        find_next: FindNext | None = None,
    ) -> None:
        self.spans = sorted(spans, key=lambda s: s.start)
        self.redact, self.find_next = redact, find_next
        self._depths = depth_of(self.spans)
        self._origin = self.spans[0].start if self.spans else 0.0
        button = widgets.Layout(width="110px")
        self.prev_button = widgets.Button(description="◀ previous", layout=button)
        self.next_button = widgets.Button(description="next ▶", layout=button)
        # The slider counts from 1, as the header does ("span 3 of 22" is the slider at 3).
        self.slider = widgets.IntSlider(
            value=1, min=1, max=max(len(self.spans), 1), description="span", continuous_update=False
        )
        self.filter = widgets.Dropdown(
            options=list(FILTERS),
            value="failed",
            description="jump to",
            layout=widgets.Layout(width="170px"),
        )
        self.back_button = widgets.Button(
            description="◀◀", tooltip="previous match", layout=widgets.Layout(width="50px")
        )
        self.forward_button = widgets.Button(
            description="▶▶", tooltip="next match", layout=widgets.Layout(width="50px")
        )
        self.header = widgets.HTML()
        self.view = widgets.HTML()
        self.prev_button.on_click(lambda _: self.go(self.index - 1))
        self.next_button.on_click(lambda _: self.go(self.index + 1))
        self.back_button.on_click(lambda _: self.jump(-1))
        self.forward_button.on_click(lambda _: self.jump(+1))
        self.slider.observe(lambda change: self._render(), names="value")
        self.filter.observe(lambda change: self._render(), names="value")
        rows = [widgets.HBox([self.prev_button, self.slider, self.next_button])]
        if find_next is not None:
            rows.append(widgets.HBox([self.filter, self.back_button, self.forward_button]))
        self._note = ""
        super().__init__([*rows, self.header, self.view])
        self._render()

    @property
    def index(self) -> int:
        """Position of the span on show (0-based; the slider shows it 1-based)."""
        return self.slider.value - 1

    @property
    def current(self) -> Span | None:
        """The span on show, or None for an empty trace."""
        return self.spans[self.index] if self.spans else None

    def go(self, index: int) -> None:
        """Show span `index` (0-based, clamped to the trace)."""
        if self.spans:
            self._note = ""
            self.slider.value = (
                min(max(index, 0), len(self.spans) - 1) + 1
            )  # the observer re-renders

    def jump(self, step: int) -> int | None:
        """Move to the nearest span matching the filter in direction `step`; its index, or None."""
        if self.find_next is None or not self.spans:
            return None
        try:
            found = self.find_next(self.spans, self.index, step, FILTERS[self.filter.value])
        except (
            Exception
        ) as exc:  # the student's function: say what went wrong, keep the widget usable
            self._note = f"find_next raised {type(exc).__name__}: {exc}"
            self._render()
            return None
        if found is None:
            self._note = (
                f"no {'later' if step > 0 else 'earlier'} span matches “{self.filter.value}”"
            )
            self._render()
            return None
        if not (isinstance(found, int) and 0 <= found < len(self.spans)):
            self._note = f"find_next returned {found!r}, not a position in the trace"
            self._render()
            return None
        self.go(found)
        return found

    def _render(self) -> None:
        if not self.spans:
            for control in (
                self.prev_button,
                self.next_button,
                self.slider,
                self.back_button,
                self.forward_button,
                self.filter,
            ):
                control.disabled = True
            self.header.value = ""
            self.view.value = f"<i>{html.escape(EMPTY_MESSAGE)}</i>"
            return
        span, n = self.spans[self.index], len(self.spans)
        self.prev_button.disabled = self.index == 0
        self.next_button.disabled = self.index == n - 1
        failures = sum(not s.ok for s in self.spans)
        self.header.value = (
            f"<b>span {self.index + 1} of {n}</b>"
            + (f" · <span style='color:#b71c1c'>{failures} failed</span>" if failures else "")
            + (f" · <i>{html.escape(self._note)}</i>" if self._note else "")
        )
        self.view.value = self._span_html(span)

    def _span_html(self, span: Span) -> str:
        status = (
            "<span style='color:#1b5e20'>✓ ok</span>"
            if span.ok
            else "<span style='color:#b71c1c;font-weight:bold'>✗ FAILED</span>"
        )
        took = "still running" if span.duration is None else f"{span.duration * 1000:.2f} ms"
        facts = [
            f"<b>{html.escape(span.kind)}</b> {html.escape(self.redact(span.name))} — {status}",
            f"depth {self._depths[span.id]} · started at "
            f"+{(span.start - self._origin) * 1000:.2f} ms · took {took}",
        ]
        if span.tokens is not None or span.cache_hit is not None:
            facts.append(f"tokens: {span.tokens} · cache hit: {span.cache_hit}")
        parts = ["".join(f"<div>{fact}</div>" for fact in facts)]
        if not span.ok:
            parts.append(
                "<div style='color:#b71c1c'><b>error:</b> "
                + html.escape(self.redact(f"{type(span.error).__name__}: {span.error}"))
                + "</div>"
            )
        parts.append(f"<div><b>inputs</b></div><pre>{_pretty(span.inputs, self.redact)}</pre>")
        parts.append(f"<div><b>outputs</b></div><pre>{_pretty(span.outputs, self.redact)}</pre>")
        border = "#b71c1c" if not span.ok else "#90a4ae"
        return f"<div style='border-left:4px solid {border};padding:4px 8px'>{''.join(parts)}</div>"

    def summary(self) -> str:
        """One line about the trace and the span on show (the text a saved notebook shows)."""
        if not self.spans:
            return f"TraceStepper: {EMPTY_MESSAGE}"
        span = self.spans[self.index]
        failures = sum(not s.ok for s in self.spans)
        return (
            f"TraceStepper: {len(self.spans)} spans ({failures} failed), "
            f"showing span {self.index + 1}: "
            f"{span.kind} {self.redact(span.name)} — {'ok' if span.ok else 'FAILED'}. "
            "Run the cell in a live kernel to step through it."
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The widget for a live frontend, and a readable summary instead of the widget's repr."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle = {**bundle, "text/plain": self.summary()}
        return bundle

    def __repr__(self) -> str:
        return self.summary()
