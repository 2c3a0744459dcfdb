"""Progress: a one-line bar on a terminal, log lines elsewhere; and notes between its
updates (a seed rule's rounds).

On a terminal the bar redraws itself: done / total, rate and ETA. When the stream is not a
terminal (CI logs, SLURM, nohup, pipes) the same figures are printed as whole lines, one
every ``LOG_SECONDS`` or every tenth of the total, whichever comes first, each with the
failures so far, so a log shows a run is alive without a line per cell. Asked to be quiet,
nothing is printed; a note is one line, printed unless asked to be quiet.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

LOG_SECONDS = 5.0  # at most this long between two log lines while work finishes


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or bare stream is not a terminal
        return False


class Progress:
    def __init__(
        self,
        total: int,
        label: str,
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        unit: str = "cells",
    ) -> None:
        self.stream = stream or sys.stderr
        self.notes = enabled
        self.tty = _isatty(self.stream)
        self.enabled = enabled and total > 0 and self.tty
        self.log = enabled and not self.tty  # whole lines, for logs
        self.total, self.label, self.done, self.unit = total, label, 0, unit
        self.failed = 0
        self.start = time.perf_counter()
        self._last = 0.0
        self._logged = (self.start, 0)  # when the last log line was printed, at what count

    def advance(self, n: int, failed: int = 0) -> None:
        """``n`` more done, ``failed`` of them failed."""
        self.done += n
        self.failed += failed
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self.stream.write("\r" + self.line(now - self.start))
            self.stream.flush()
        elif self.log and n and self._due(now):
            self._logged = (now, self.done)
            self.stream.write(self.log_line(now - self.start) + "\n")
            self.stream.flush()

    def _due(self, now: float) -> bool:
        """A log line is due: the work is done, a tenth of it more is, or time passed."""
        when, count = self._logged
        step = max(1, self.total // 10)
        return self.done >= self.total or self.done - count >= step or now - when >= LOG_SECONDS

    def log_line(self, elapsed: float) -> str:
        """'seed: 36/120 cells (30%), 9.1 cells/s, ETA 0:09, 2 failed so far'."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        tail = f", {self.failed} failed so far" if self.failed else ""
        return (
            f"{self.label}: {self.done}/{self.total} {self.unit}{share}, "
            f"{rate:.1f} {self.unit}/s, ETA {_eta(self.total - self.done, rate)}{tail}"
        )

    def grow(self, n: int) -> None:
        """``n`` more cells to do than the total said (a seed rule's next round)."""
        self.total += n
        self.enabled = self.notes and self.total > 0 and self.tty

    def note(self, text: str) -> None:
        """One line of its own; on a terminal the bar carries on below it."""
        if not self.notes:
            return
        if self.enabled:  # end the bar's line; the next advance draws it again
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def line(self, elapsed: float) -> str:
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        rate = self.done / elapsed if elapsed > 0 else 0.0
        failed = f"  {self.failed} failed" if self.failed else ""
        return (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} {self.unit}  {rate:.1f} {self.unit}/s  "
            f"ETA {_eta(self.total - self.done, rate)}{failed} "
        )

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _eta(left: int, rate: float) -> str:
    """'1:05' for the time ``left`` items take at ``rate``; '-:--' before any rate."""
    if rate <= 0:
        return "-:--"
    eta = left / rate
    return f"{int(eta // 60)}:{int(eta % 60):02d}"
