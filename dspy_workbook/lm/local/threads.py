"""How many threads llama.cpp gets: measured from what the *other* processes use, call by call.

Why it matters (measured on a 2-core machine, 24-token generations, 1 and 2 threads alternating,
bucketed by the CPU the other processes used meanwhile):

=====================  ==========  ===========
others use (cores)     1 thread    2 threads
=====================  ==========  ===========
< 0.1                  12.3 ms/tok  8.9 ms/tok
0.25 - 0.5             12.8         10.9
0.5 - 0.75             12.7         25.4
1.0 - 1.5              17.8         140
=====================  ==========  ===========

llama.cpp's threads meet at a barrier at every layer, so one descheduled thread stalls the others:
two threads win ~25% on free cores and lose 2-10x as soon as another process wants a core. The old
rule (2 threads only if ``cores - loadavg >= 2``) could never pick 2 on a 2-core machine: the
1-minute load average counts the kernel's own work and lags a minute behind.

The rule here: *others* = CPU time the whole system used minus what this process used, over the
last window (``psutil.cpu_times()``, i.e. /proc/stat on Linux; ``time.process_time()`` for this
process, so our own llama.cpp threads never count as competition). Free cores = cores - others.
Two threads need two free cores: switch up when free >= 1.75 (others < 0.25 on 2 cores), and
down when free < 1.6 (others > 0.4), the gap keeping it from flapping. `Runtime` asks before every
generation and again every `interval` seconds during one, so a busy spell costs a token or two, not
a whole answer — and an idle spell is used as soon as it starts.

More than two threads: `max_threads` (default 2) caps the choice. Only 2-core machines were
measured; on 4-16 cores more threads may help prompt evaluation, but that is unmeasured, so the
default stays at 2 — pass ``n_threads=N`` to fix a count, or ``max_threads`` here to try.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass

__all__ = ["DEFAULT_MAX_THREADS", "ThreadGovernor", "auto_threads"]

DEFAULT_MAX_THREADS = 2
UP_MARGIN = 0.25  # go up to n threads when free cores >= n - UP_MARGIN
STAY_MARGIN = 0.4  # keep n threads while free cores >= n - STAY_MARGIN
MIN_WINDOW = 0.05  # seconds: shorter windows are too coarse (the kernel counts in 10 ms ticks)
INTERVAL = 0.1  # seconds between checks during a generation


@dataclass(frozen=True)
class CpuSample:
    """System-wide busy CPU-seconds, this process's CPU-seconds, and the wall clock."""

    busy: float
    own: float
    wall: float


def cpu_sample() -> CpuSample | None:
    """A sample now, or None where the system CPU times cannot be read."""
    try:
        import psutil

        times = psutil.cpu_times()
    except Exception:  # no psutil, or a platform it cannot read
        return None
    idle = sum(getattr(times, name, 0.0) for name in ("idle", "iowait"))
    # Guest time is already counted in user and nice time on Linux: not twice.
    guest = sum(getattr(times, name, 0.0) for name in ("guest", "guest_nice"))
    busy = sum(times) - idle - guest
    return CpuSample(busy=busy, own=time.process_time(), wall=time.monotonic())


def _choice(free: float, current: int, max_threads: int) -> int:
    """Threads for `free` cores: the most that fit, with a margin that depends on the direction."""
    up = math.floor(free + UP_MARGIN)
    stay = math.floor(free + STAY_MARGIN)
    wanted = up if up > current else min(current, stay)
    return max(1, min(max_threads, wanted))


class ThreadGovernor:
    """Chooses a thread count from the CPU other processes used since the last look."""

    def __init__(
        self,
        *,
        max_threads: int = DEFAULT_MAX_THREADS,
        cores: int | None = None,
        interval: float = INTERVAL,
    ) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.max_threads = max(1, min(max_threads, self.cores))
        self.interval = interval
        self.current = 1  # until a measurement says otherwise
        self.others = math.nan  # cores the other processes used in the last window
        self.tokens: Counter[int] = Counter()  # tokens generated at each thread count
        self._last = cpu_sample()
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether a check is worth it now (at most one per `interval`)."""
        last = self._last
        return last is None or time.monotonic() - last.wall >= self.interval

    def choose(self) -> int:
        """The thread count for now; the window since the last look must be `MIN_WINDOW` long,
        else the last choice stands."""
        with self._lock:
            now = cpu_sample()
            if now is None:
                self.current = self._fallback()
                return self.current
            if self._last is None or now.wall < self._last.wall:  # no baseline yet: this is it
                self._last = now
                return self.current
            window = now.wall - self._last.wall
            if window < MIN_WINDOW:
                return self.current
            used = (now.busy - self._last.busy) - (now.own - self._last.own)
            self.others = max(0.0, used / window)
            self._last = now
            self.current = _choice(self.cores - self.others, self.current, self.max_threads)
            return self.current

    def _fallback(self) -> int:
        """Without CPU times: the load average, less the threads this process runs itself."""
        try:
            load = os.getloadavg()[0]
        except (OSError, AttributeError):  # Windows without psutil: play safe
            return 1
        self.others = max(0.0, load - self.current)
        return _choice(self.cores - self.others, self.current, self.max_threads)


def auto_threads(seconds: float = 0.1, *, max_threads: int = DEFAULT_MAX_THREADS) -> int:
    """Threads llama.cpp should use now: looks at the other processes' CPU use for `seconds`."""
    governor = ThreadGovernor(max_threads=max_threads)
    time.sleep(max(seconds, MIN_WINDOW))
    return governor.choose()
