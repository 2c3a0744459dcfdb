"""A one-line progress bar on a terminal: cells done / total, rate and ETA; and notes
between its updates (a seed rule's rounds).

The bar is silent when the stream is not a terminal (CI logs, pipes) or when asked to be
quiet; a note is one line, printed unless asked to be quiet (a CI log shows each round).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self, total: int, label: str, *, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.notes = enabled
        self.enabled = enabled and total > 0 and self.stream.isatty()
        self.total, self.label, self.done = total, label, 0
        self.start = time.perf_counter()
        self._last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self.stream.write("\r" + self.line(now - self.start))
            self.stream.flush()

    def grow(self, n: int) -> None:
        """``n`` more cells to do than the total said (a seed rule's next round)."""
        self.total += n
        self.enabled = self.notes and self.total > 0 and self.stream.isatty()

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
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta_text = f"{int(eta // 60)}:{int(eta % 60):02d}" if eta == eta else "-:--"
        return (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} cells  {rate:.1f} cells/s  ETA {eta_text} "
        )

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
