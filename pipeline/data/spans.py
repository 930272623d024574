"""Cuts ratings by timestamp into numbered periods, the spans of ExampleGen's span layout.

`--span-by` names the period: `week` (ISO weeks, Monday 00:00 UTC), `month` and `year` (calendar, UTC), or
`N-days` (N-day periods from 00:00 UTC of the day of the earliest rating). Periods without ratings are skipped;
the others are numbered 1, 2, ... in time order, so span numbers have no gaps and the rolling window of the last N
spans always holds N periods of data. A period is half open: [start, end).
"""
import dataclasses
import re
from typing import List, Tuple

import numpy as np
import pandas as pd

# ImportExampleGen's span pattern: `{SPAN}` matches the digits of a span folder (tfx/components/example_gen/utils.py).
SPAN_FOLDER_PATTERN = "span-{SPAN}"
SPAN_FOLDER_REGEX = re.compile(r"span-(\d+)")
DAY_SECONDS = 86_400
_CALENDAR = {"week": "W-SUN", "month": "M", "year": "Y"}  # pandas period frequencies (W-SUN: weeks end on Sunday)
_DAYS = re.compile(r"([1-9][0-9]*)-days?")


class SpanError(ValueError):
  """`--span-by` is malformed, or the ratings do not make the spans it asks for."""


@dataclasses.dataclass(frozen=True)
class SpanPeriod:
  """The length of one span: a calendar unit (week, month, year) or a number of days."""
  unit: str  # "week", "month", "year" or "days"
  days: int = 0  # the N of N-days


@dataclasses.dataclass(frozen=True)
class Period:
  """One span's period, [start, end) in seconds since the epoch (UTC)."""
  start: int
  end: int

  def label(self) -> str:
    """`YYYY-MM-DD..YYYY-MM-DD` (end exclusive)."""
    return f"{_date(self.start)}..{_date(self.end)}"


def parse_span_by(text: str) -> SpanPeriod:
  """`week`, `month`, `year` or `N-days` (N >= 1) as a SpanPeriod; raises SpanError naming what is expected."""
  if text in _CALENDAR:
    return SpanPeriod(text)
  days = _DAYS.fullmatch(text)
  if days is None:
    raise SpanError(f"--span-by {text!r}: expected week, month, year or N-days such as 10-days")
  return SpanPeriod("days", int(days.group(1)))


def assign_spans(timestamps: np.ndarray, period: SpanPeriod) -> Tuple[np.ndarray, List[Period]]:
  """Numbers the non-empty periods of `timestamps` (seconds, UTC) 1, 2, ... in time order.

  Returns (span number of each timestamp, the periods of spans 1..P in order).
  """
  timestamps = np.asarray(timestamps, np.int64)
  if len(timestamps) == 0:
    raise SpanError("no ratings to cut into spans")
  if period.unit == "days":
    length = period.days * DAY_SECONDS
    origin = timestamps.min() // DAY_SECONDS * DAY_SECONDS
    starts, index = np.unique(origin + (timestamps - origin) // length * length, return_inverse=True)
    ends = starts + length
  else:
    frequency = _CALENDAR[period.unit]
    starts, index = np.unique(_seconds(_periods(timestamps, frequency).start_time), return_inverse=True)
    ends = _seconds((_periods(starts, frequency) + 1).start_time)
  return index.astype(np.int64) + 1, [Period(int(s), int(e)) for s, e in zip(starts, ends)]


def _periods(timestamps: np.ndarray, frequency: str) -> pd.PeriodIndex:
  return pd.PeriodIndex(pd.to_datetime(timestamps, unit="s"), freq=frequency)


def _seconds(times: pd.DatetimeIndex) -> np.ndarray:
  return times.asi8 // 1_000_000_000


def _date(seconds: int) -> str:
  return pd.Timestamp(seconds, unit="s").strftime("%Y-%m-%d")

