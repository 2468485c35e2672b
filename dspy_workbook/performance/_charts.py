"""Charts for Exercise 4: where one call's time goes, and how the quantized models compare."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

__all__ = ["quantization_figure", "split_figure"]

_COLOURS = ("#c62828", "#1565c0", "#6a1b9a", "#9e9e9e")


def split_figure(
    split: Mapping[str, float], *, title: str = "Where one call's time goes"
) -> Figure:
    """One horizontal stacked bar (ms per call) of `time_split`'s parts."""
    if not split:
        raise ValueError("nothing to plot: pass the result of `time_split`")
    fig, ax = plt.subplots(figsize=(10, 2.8))
    left = 0.0
    for (name, seconds), colour in zip(split.items(), _COLOURS * 2, strict=False):
        ms = seconds * 1000
        ax.barh([0], [ms], left=left, color=colour, label=f"{name}: {ms:.1f} ms")
        left += ms
    ax.set(yticks=[], xlabel="ms per call", title=title)
    # The legend gets a band of its own under the axes (the x label included), never the bar.
    fig.subplots_adjust(left=0.03, right=0.97, top=0.82, bottom=0.5)
    fig.legend(loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    return fig


def quantization_figure(table) -> Figure:
    """Size, speed and agreement per model type (a DataFrame indexed by type, see the notebook)."""
    columns = [
        ("size MiB", "file size (MiB)"),
        ("tokens/s", "answer tokens per second"),
        ("agreement %", "answers equal to Q4_1 (%)"),
    ]
    missing = [c for c, _ in columns if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    names = [str(i) for i in table.index]
    for ax, (column, title) in zip(axes, columns, strict=True):
        ax.bar(names, table[column], color="#1565c0")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
