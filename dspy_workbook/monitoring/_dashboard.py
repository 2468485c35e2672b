"""Dashboards: a matplotlib figure of a run, and a live ipywidgets view while a workload runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ._observation import Observation, observations_frame

__all__ = ["LiveView", "dashboard_figure"]


def _rolling(frame: pd.DataFrame, column: str, window: int) -> pd.Series:
    return frame[column].astype(float).rolling(window, min_periods=1).mean()


def _legend(ax, extra=None) -> None:
    """The panel's legend to the right of its plot, where it covers no data."""
    handles, labels = ax.get_legend_handles_labels()
    if extra is not None:
        more_handles, more_labels = extra.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.07, 1.0), fontsize=8)


def dashboard_figure(
    observations: Sequence[Observation],
    system: pd.DataFrame | None = None,
    *,
    window: int = 10,
    marks: Sequence[tuple[int, str]] = (),
) -> Figure:
    """Latency with a rolling p95 band, error and hit rate, quality, and CPU/memory.

    `window` is the rolling window in requests; `marks` are (request number, label) pairs drawn as
    vertical lines (e.g. where a fault was injected).
    """
    if not observations:
        raise ValueError("no observations to plot: run a workload with the collector first")
    frame = observations_frame(observations).reset_index(drop=True)
    x = np.arange(1, len(frame) + 1)
    panels = 4 if system is not None and not system.empty else 3
    fig, axes = plt.subplots(panels, 1, figsize=(12, 2.4 * panels), sharex=False)
    ms = frame["latency"] * 1000
    ax = axes[0]
    ax.plot(x, ms, ".", color="#90a4ae", label="latency per request")
    ax.plot(
        x,
        ms.rolling(window, min_periods=1).median(),
        color="#1565c0",
        label=f"rolling median ({window})",
    )
    p95 = ms.rolling(window, min_periods=1).quantile(0.95)
    ax.fill_between(
        x,
        ms.rolling(window, min_periods=1).quantile(0.05),
        p95,
        color="#1565c0",
        alpha=0.15,
        label="rolling p5–p95 band",
    )
    ax.set(ylabel="ms", title="Latency")
    _legend(ax)
    ax = axes[1]
    ax.plot(
        x,
        100 * _rolling(frame.assign(err=frame["error"].notna()), "err", window),
        color="#c62828",
        label="error rate",
    )
    ax.plot(x, 100 * _rolling(frame, "cache_hit", window), color="#2e7d32", label="cache hit rate")
    ax.set(ylabel="% (rolling)", ylim=(-5, 105), title="Errors and cache hits")
    _legend(ax)
    ax = axes[2]
    quality = frame["quality"].astype(float)
    ax.plot(x, quality, ".", color="#bdbdbd", label="quality per labelled answer")
    ax.plot(x, quality.rolling(window, min_periods=1).mean(), color="#6a1b9a", label="rolling mean")
    ax.set(ylabel="0..1", ylim=(-0.05, 1.05), title="Answer quality", xlabel="request #")
    _legend(ax)
    for panel in axes[:3]:
        for at, label in marks:
            panel.axvline(at, color="#ef6c00", linestyle="--", linewidth=1)
            panel.annotate(
                label,
                (at, 1),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                color="#ef6c00",
                va="top",
                ha="left",
            )
        panel.grid(alpha=0.3)
    if panels == 4:
        ax = axes[3]
        clock = system["clock"] if "clock" in system else system["at"]
        seconds = (clock - clock.iloc[0]).to_numpy()
        ax.plot(seconds, system["system_cpu_percent"], color="#ef6c00", label="machine CPU %")
        ax.plot(seconds, system["cpu_percent"], color="#8d6e63", label="this process CPU %")
        twin = ax.twinx()
        twin.plot(seconds, system["rss_mb"], color="#00838f", label="process memory (MB)")
        twin.set_ylabel("MB")
        ax.set(xlabel="seconds since start", ylabel="%", title="System health")
        _legend(ax, extra=twin)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    # Closed for pyplot (it can still be displayed and saved): Jupyter's inline backend would
    # otherwise draw every open figure again at the end of the cell, under `display(fig)`.
    plt.close(fig)
    return fig


class LiveView:
    """A small ipywidgets panel that refreshes from a collector while a workload runs.

    Call `update(observation)` (it is a collector listener); it redraws at most every
    `every` observations so that drawing never dominates the work being watched.
    """

    def __init__(self, every: int = 5, window: int = 20) -> None:
        import ipywidgets as widgets

        self.every, self.window = every, window
        self.seen: list[Observation] = []
        self.count = 0  # predictions seen in total (`seen` keeps only the recent ones)
        self.label = widgets.HTML("<i>waiting for predictions…</i>")
        self.plot = widgets.Output()
        self.widget = widgets.VBox([self.label, self.plot])

    def update(self, observation: Observation) -> None:
        self.seen.append(observation)
        self.count += 1
        del self.seen[: -self.window * 10]  # bounded like everything else
        if self.count % self.every == 0:
            self.refresh()

    def refresh(self) -> None:
        from IPython.display import clear_output, display

        recent = self.seen[-self.window :]
        if not recent:
            return
        ms = [o.latency * 1000 for o in recent]
        errors = sum(o.error is not None for o in recent)
        labelled = [o.quality for o in recent if o.quality is not None]
        quality = f"{np.mean(labelled):.2f}" if labelled else "–"
        self.label.value = (
            f"<b>{self.count}</b> predictions · last {len(recent)}: "
            f"median <b>{np.median(ms):.0f} ms</b>, p95 <b>{np.percentile(ms, 95):.0f} ms</b>, "
            f"errors <b>{errors}</b>, quality <b>{quality}</b>"
        )
        with self.plot:
            clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(8, 2.2))
            ax.plot(range(self.count - len(recent) + 1, self.count + 1), ms, marker=".")
            ax.set(xlabel="request #", ylabel="ms", title="latency (live)")
            display(fig)
            plt.close(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
