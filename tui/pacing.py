"""Redraw pacing for streaming screens: redrawing takes at most a set share of the machine's CPU.

While two models decode on the CPU, every millisecond the UI spends drawing comes out of decoding:
a frame of the A/B screen cost 8-24 ms of CPU at 160x48, so on 2 cores a steady 12 frames a second
took 10-20% of the decode speed (bench/ab.py). The pacer stretches the wait between frames until
this process uses no more than its share; on a GPU or a many-core machine it stays at the fastest.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable


class Pacer:
    def __init__(
        self,
        fastest: float = 1 / 12,
        slowest: float = 1.0,
        share: float = 0.025,
        cores: int | None = None,
        clocks: tuple[Callable[[], float], Callable[[], float]] = (time.monotonic, time.process_time),
    ) -> None:
        self.fastest, self.slowest, self.share = fastest, slowest, share
        self.cores = cores or os.cpu_count() or 1
        self._wall, self._cpu = clocks
        self.interval = fastest
        self._mark: tuple[float, float] | None = None

    def start(self) -> float:
        self.interval, self._mark = self.fastest, (self._wall(), self._cpu())
        return self.interval

    def next(self) -> float:
        """Seconds to wait before the next frame, from the CPU this process used since the last call."""
        now, cpu = self._wall(), self._cpu()
        if self._mark is not None and now > self._mark[0]:
            used = (cpu - self._mark[1]) / ((now - self._mark[0]) * self.cores)
            # Damped (square root), so one slow frame does not swing the rate from end to end.
            scaled = self.interval * math.sqrt(max(used, 1e-6) / self.share)
            self.interval = min(self.slowest, max(self.fastest, scaled))
        self._mark = (now, cpu)
        return self.interval
