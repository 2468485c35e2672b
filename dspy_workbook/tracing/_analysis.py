"""Where the time went: the bottleneck record and the timeline chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ._span import Span, depth_of

__all__ = ["Bottleneck", "plot_timeline"]

_COLOURS = {
    "module": "#90caf9",
    "lm": "#ffcc80",
    "format": "#a5d6a7",
    "parse": "#ce93d8",
    "tool": "#b0bec5",
}


@dataclass(frozen=True)
class Bottleneck:
    """The slowest span and its share (0–1) of the trace's total time."""

    span: Span
    share: float

    def __str__(self) -> str:
        return (
            f"bottleneck: {self.span.kind} {self.span.name} — "
            f"{(self.span.duration or 0) * 1000:.1f} ms, {self.share:.0%} of the total"
        )


def plot_timeline(
    spans: Sequence[Span], highlight: str | None = None, title: str = "Trace timeline"
):
    """A Gantt-style Figure: a bar per span, indented by depth; `highlight` (a span id) in red."""
    import matplotlib.pyplot as plt

    spans = sorted(spans, key=lambda s: s.start)
    fig, ax = plt.subplots(figsize=(9, max(2.0, 0.32 * len(spans) + 1)))
    if not spans:
        ax.text(0.5, 0.5, "no spans recorded", ha="center", va="center")
        ax.set_axis_off()
        return fig
    origin = spans[0].start
    depths = depth_of(spans)
    for row, span in enumerate(spans):
        left = (span.start - origin) * 1000
        width = max((span.duration or 0) * 1000, 0.05)  # keep sub-millisecond spans visible
        hot = span.id == highlight
        ax.barh(
            row,
            width,
            left=left,
            height=0.7,
            color="#e53935" if hot else _COLOURS.get(span.kind, "#b0bec5"),
            edgecolor="#b71c1c" if not span.ok or hot else "#455a64",
            hatch="//" if not span.ok else None,
            linewidth=1.5 if hot else 0.6,
        )
        if hot:
            ax.annotate(
                "bottleneck",
                (left + width, row),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                color="#b71c1c",
                fontweight="bold",
            )
    # Room on the right for the "bottleneck" label, so it is never cut at the plot's edge.
    end = max((s.start - origin + (s.duration or 0)) * 1000 for s in spans)
    ax.set_xlim(0, max(end, 0.05) * (1.25 if highlight is not None else 1.03))
    labels = [
        ("  " * depths[s.id]) + ("✗ " if not s.ok else "") + s.kind + " " + s.name[:40]
        for s in spans
    ]
    ax.set_yticks(range(len(spans)))
    ax.set_yticklabels(labels, fontsize=8, family="monospace")
    # Left-aligned labels keep the indentation visible (right-aligned ones all end at the axis);
    # the pad is the widest label in points (a monospace character is ~0.6 em wide).
    ax.tick_params(axis="y", pad=max(len(label) for label in labels) * 8 * 0.6 + 6)
    for label in ax.get_yticklabels():
        label.set_horizontalalignment("left")
    from matplotlib.patches import Patch

    kinds = sorted({s.kind for s in spans}, key=list(_COLOURS).index)
    ax.legend(
        handles=[Patch(color=_COLOURS[k], label=k) for k in kinds],
        fontsize=7,
        ncol=len(kinds),
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        frameon=False,
    )  # above the plot, not over bars
    ax.invert_yaxis()  # first span on top, like a call tree
    ax.set_xlabel("time since the first span (ms)")
    ax.set_title(title, loc="left")
    fig.tight_layout()
    return fig
