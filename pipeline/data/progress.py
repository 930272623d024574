"""Progress lines for long work (downloads, generation, writing examples): done/total, rate and elapsed time.

Lines are INFO records of this module's logger; pipeline/console.py decides where they are shown.
"""
import logging
import time

_LOG = logging.getLogger(__name__)


class Progress:
  """Reports `done` of `total` units at most once per `interval` seconds, and once at the end."""

  def __init__(self, label: str, total: int, unit: str = "", interval: float = 1.0):
    self.label = label
    self.total = total
    self.unit = unit
    self.interval = interval
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
    _LOG.info("%s: %s/%s %s%s%s, %.1fs", self.label, f"{self.done:,}", f"{self.total:,}", self.unit, share, rate,
              elapsed)
