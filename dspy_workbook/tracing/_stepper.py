"""Step through a trace with ipywidgets: previous/next buttons and a slider over the spans."""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence

import ipywidgets as widgets

from ._span import Span, depth_of, to_jsonable

__all__ = ["EMPTY_MESSAGE", "TraceStepper"]

EMPTY_MESSAGE = "No spans recorded yet — run a call with your tracer active, then build the stepper again."
_PREVIEW_CHARS = 1500  # long prompts are cut so the view stays readable


def _pretty(value: object, redact: Callable[[str], str]) -> str:
    text = json.dumps(to_jsonable(value), indent=2, ensure_ascii=False)
    if len(text) > _PREVIEW_CHARS:
        text = text[:_PREVIEW_CHARS] + f"\n… ({len(text) - _PREVIEW_CHARS} more characters)"
    return html.escape(redact(text))


class TraceStepper(widgets.VBox):
    """A widget showing one span at a time; its state (`index`, `view.value`, `.disabled`) is testable."""

    def __init__(self, spans: Sequence[Span], redact: Callable[[str], str] = lambda text: text) -> None:
        self.spans = sorted(spans, key=lambda s: s.start)
        self.redact = redact
        self._depths = depth_of(self.spans)
        self._origin = self.spans[0].start if self.spans else 0.0
        self.prev_button = widgets.Button(description="◀ previous", layout=widgets.Layout(width="110px"))
        self.next_button = widgets.Button(description="next ▶", layout=widgets.Layout(width="110px"))
        self.slider = widgets.IntSlider(value=0, min=0, max=max(len(self.spans) - 1, 0),
                                        description="span", continuous_update=False)
        self.header = widgets.HTML()
        self.view = widgets.HTML()
        self.prev_button.on_click(lambda _: self.go(self.index - 1))
        self.next_button.on_click(lambda _: self.go(self.index + 1))
        self.slider.observe(lambda change: self._render(), names="value")
        controls = widgets.HBox([self.prev_button, self.slider, self.next_button])
        super().__init__([controls, self.header, self.view])
        self._render()

    @property
    def index(self) -> int:
        """Position of the span on show (0-based)."""
        return self.slider.value

    @property
    def current(self) -> Span | None:
        """The span on show, or None for an empty trace."""
        return self.spans[self.index] if self.spans else None

    def go(self, index: int) -> None:
        """Show span `index` (clamped to the trace)."""
        if self.spans:
            self.slider.value = min(max(index, 0), len(self.spans) - 1)  # the observer re-renders

    def _render(self) -> None:
        if not self.spans:
            self.prev_button.disabled = self.next_button.disabled = self.slider.disabled = True
            self.header.value = ""
            self.view.value = f"<i>{html.escape(EMPTY_MESSAGE)}</i>"
            return
        span, n = self.spans[self.index], len(self.spans)
        self.prev_button.disabled = self.index == 0
        self.next_button.disabled = self.index == n - 1
        failures = sum(not s.ok for s in self.spans)
        self.header.value = (f"<b>span {self.index + 1} of {n}</b>"
                             + (f" · <span style='color:#b71c1c'>{failures} failed</span>" if failures else ""))
        self.view.value = self._span_html(span)

    def _span_html(self, span: Span) -> str:
        status = ("<span style='color:#1b5e20'>✓ ok</span>" if span.ok
                  else "<span style='color:#b71c1c;font-weight:bold'>✗ FAILED</span>")
        took = "still running" if span.duration is None else f"{span.duration * 1000:.2f} ms"
        facts = [f"<b>{html.escape(span.kind)}</b> {html.escape(self.redact(span.name))} — {status}",
                 f"depth {self._depths[span.id]} · started at "
                 f"+{(span.start - self._origin) * 1000:.2f} ms · took {took}"]
        if span.tokens is not None or span.cache_hit is not None:
            facts.append(f"tokens: {span.tokens} · cache hit: {span.cache_hit}")
        parts = ["<br>".join(facts)]
        if not span.ok:
            parts.append("<div style='color:#b71c1c'><b>error:</b> "
                         + html.escape(self.redact(f"{type(span.error).__name__}: {span.error}")) + "</div>")
        parts.append(f"<b>inputs</b><pre>{_pretty(span.inputs, self.redact)}</pre>")
        parts.append(f"<b>outputs</b><pre>{_pretty(span.outputs, self.redact)}</pre>")
        border = "#b71c1c" if not span.ok else "#90a4ae"
        return f"<div style='border-left:4px solid {border};padding:4px 8px'>{''.join(parts)}</div>"
