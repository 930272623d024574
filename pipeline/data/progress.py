"""A progress line on stderr for long work (downloads, generation): done/total, rate and elapsed time."""
import sys
import time
from typing import Optional, TextIO


class Progress:
  """Reports `done` of `total` units at most once per `interval` seconds, and once at the end."""

  def __init__(self, label: str, total: int, unit: str = "", interval: float = 1.0,
               stream: Optional[TextIO] = None):
    self.label = label
    self.total = total
    self.unit = unit
    self.interval = interval
    self.stream = stream or sys.stderr
    self.done = 0
    self._start = time.monotonic()
    self._last = 0.0
    self._printed = -1

  def update(self, increment: int) -> None:
    """Adds `increment` units and prints a line when `interval` has passed since the last one."""
    self.done += increment
    now = time.monotonic()
    if now - self._last >= self.interval:
      self._last = now
      self._print(now)

  def close(self) -> None:
    """Prints the final line, unless the last line printed already showed the final count."""
    if self._printed != self.done:
      self._print(time.monotonic())

  def _print(self, now: float) -> None:
    self._printed = self.done
    elapsed = now - self._start
    share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
    rate = f", {self.done / elapsed:,.0f} {self.unit}/s" if elapsed > 0 and self.unit else ""
    print(f"{self.label}: {self.done:,}/{self.total:,} {self.unit}{share}{rate}, {elapsed:.1f}s",
          file=self.stream, flush=True)
