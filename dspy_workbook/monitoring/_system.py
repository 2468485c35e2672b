"""System health beside the predictions: CPU, memory, threads, open files (psutil), bounded.

A latency spike has two kinds of cause: the provider (nothing you can fix locally) or this
machine (CPU saturated, memory swapping, a thread or file-descriptor leak). Sampling the process
and the system alongside the predictions tells them apart.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import psutil

from ._observation import monotonic_index

__all__ = ["SystemSample", "SystemSampler", "sample_system"]


@dataclass(frozen=True)
class SystemSample:
    at: float  # wall clock
    cpu_percent: float  # this process, % of one core since the previous sample
    system_cpu_percent: float  # whole machine, % of all cores
    rss_mb: float  # this process's resident memory
    system_memory_percent: float  # machine memory in use
    threads: int  # this process's threads
    open_files: int  # this process's open files (plus sockets where the OS counts them)
    clock: float = field(default_factory=time.monotonic)  # for ordering: never steps back

    def as_dict(self) -> dict:
        return asdict(self)


_PROCESS = psutil.Process()


def _open_files(process: psutil.Process) -> int:
    try:
        return process.num_fds()  # POSIX: files, sockets and pipes — what leaks in practice
    except (AttributeError, psutil.Error):
        try:
            return len(process.open_files())
        except psutil.Error:
            return -1


def sample_system(process: psutil.Process | None = None) -> SystemSample:
    """One sample now (the CPU figures cover the time since the previous sample of that process)."""
    process = process or _PROCESS
    with process.oneshot():
        return SystemSample(
            at=time.time(),
            cpu_percent=process.cpu_percent(None),
            system_cpu_percent=psutil.cpu_percent(None),
            rss_mb=process.memory_info().rss / 2**20,
            system_memory_percent=psutil.virtual_memory().percent,
            threads=process.num_threads(),
            open_files=_open_files(process),
        )


class SystemSampler:
    """Samples every `interval` seconds in a daemon thread into a ring of `capacity` samples.

    Use it as a context manager around a workload; `samples` holds the most recent ones only, so
    a sampler left running for a week uses the same memory as one running for a minute.
    """

    def __init__(self, interval: float = 0.5, capacity: int = 2000) -> None:
        if interval <= 0 or capacity <= 0:
            raise ValueError(f"interval and capacity must be > 0, got {interval} and {capacity}")
        self.interval = interval
        self.samples: deque[SystemSample] = deque(maxlen=capacity)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> SystemSample:
        """Take one sample now and keep it."""
        snapshot = sample_system()
        self.samples.append(snapshot)
        return snapshot

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> SystemSampler:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            sample_system()  # primes psutil's CPU counters so the first real sample is meaningful
            self.sample()
            self._thread = threading.Thread(target=self._run, name="system-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval + 1)
            self._thread = None
        self.sample()  # the state at the end of the workload

    def __enter__(self) -> SystemSampler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def frame(self):
        """The samples as a pandas DataFrame in monotonic-clock order, indexed by time (the
        `at` column keeps the wall clock)."""
        import pandas as pd

        frame = pd.DataFrame([s.as_dict() for s in list(self.samples)])
        if not frame.empty:
            frame = frame.sort_values("clock", kind="stable").reset_index(drop=True)
            frame.index = monotonic_index(frame["at"], frame["clock"])
        return frame
