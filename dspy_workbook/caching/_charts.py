"""Charts for a query stream: latency per call (hits vs misses) and cumulative hit rate."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._timing import CallRecord, hit_rate_curve

__all__ = ["show_figure", "stream_figure"]

HIT, MISS = "#2e7d32", "#c62828"


def _latency(ax: Axes, records: Sequence[CallRecord]) -> None:
    xs = range(1, len(records) + 1)
    ms = [r.seconds * 1000 for r in records]
    ax.bar(xs, ms, color=[HIT if r.hit else MISS for r in records])
    ax.set_yscale("log")  # hits are orders of magnitude faster than misses
    ax.set(xlabel="call #", ylabel="latency (ms, log scale)", title="Latency per call")
    swatches = [plt.Rectangle((0, 0), 1, 1, color=colour) for colour in (HIT, MISS)]
    ax.legend(handles=swatches, labels=["hit", "miss"], loc="upper right")


def _hit_rate(ax: Axes, records: Sequence[CallRecord]) -> None:
    curve = hit_rate_curve(records)
    ax.plot(range(1, len(curve) + 1), [100 * v for v in curve], marker=".", color="#1565c0")
    ax.set(
        xlabel="call #", ylabel="hit rate so far (%)", title="Cumulative hit rate", ylim=(0, 100)
    )
    ax.grid(alpha=0.3)


def stream_figure(records: Sequence[CallRecord]) -> Figure:
    """Latency per call (hits green, misses red) and the cumulative hit rate, side by side."""
    if not records:
        raise ValueError("no calls to plot: run the stream first")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.6))
    _latency(left, records)
    _hit_rate(right, records)
    fig.tight_layout()
    return fig


def show_figure(fig: Figure) -> None:
    """Display `fig` once and release it (so it is not shown again at the end of the cell)."""
    from IPython.display import display

    display(fig)
    plt.close(fig)
