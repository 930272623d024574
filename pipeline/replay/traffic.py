"""The replay's live traffic: `recsys loadtest` in a subprocess for as long as the replay runs, and what its
per-request trace says about the version swaps.

The load generator runs in a process of its own, so the pipeline's Python in the replay's process does not delay
its requests; it writes one CSV row per request (serving/loadtest.py TRACE_COLUMNS) and its summary as JSON when
it is stopped with SIGTERM.
"""
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import pandas as pd

from pipeline.config import ReplayConfig

STOP_GRACE_S = 30.0


class TrafficError(RuntimeError):
  """The load generator exited on its own, or did not stop when asked."""


@dataclasses.dataclass(frozen=True)
class LatencyWindow:
  """Requests of a stretch of the trace: how many, how many failed, latency percentiles of the answered ones."""
  requests: int
  failed: int
  p50_ms: float
  p99_ms: float

  @classmethod
  def of(cls, trace: pd.DataFrame) -> "LatencyWindow":
    ok = trace[trace.code == "OK"].latency_ms.to_numpy()
    percentiles = np.percentile(ok, [50, 99]) if len(ok) else (float("nan"),) * 2
    return cls(int(len(trace)), int((trace.code != "OK").sum()), float(percentiles[0]), float(percentiles[1]))


@dataclasses.dataclass(frozen=True)
class Swap:
  """A version swap seen by the traffic: the first answer of `to_version` after answers of `from_version`."""
  from_version: int
  to_version: int
  at_unix_s: float
  around: LatencyWindow  # requests sent within ReplayConfig.swap_window_s of `at_unix_s`


@dataclasses.dataclass(frozen=True)
class TrafficReport:
  """The whole trace: totals, failures by status, steady-state latency (outside every swap window), the swaps,
  and a per-second series for the plot."""
  requests: int
  failed: int
  errors: Dict[str, int]
  start_unix_s: float
  duration_s: float
  steady: LatencyWindow
  swaps: List[Swap]
  per_second: Dict[str, List[float]]  # "t" (seconds since the first request), "p50_ms", "p99_ms", "version"


@contextlib.contextmanager
def traffic(target: str, model_name: str, ids_file: Path, trace_path: Path, result_path: Path,
            config: ReplayConfig) -> Iterator[subprocess.Popen]:
  """Runs `recsys loadtest` (closed loop, `config.callers` callers thinking `config.think_s` between requests,
  predict and recommend mixed) against `target`
  until the block ends, then stops it with SIGTERM; its JSON result is then in `result_path`.

  Raises:
    TrafficError: the load generator exited before the block ended, or did not stop within STOP_GRACE_S.
  """
  command = [sys.executable, "-m", "pipeline.cli", "loadtest", f"--target={target}", f"--model-name={model_name}",
             "--mode=mixed", f"--concurrency={config.callers}", f"--think={config.think_s}", "--duration=inf",
             f"--movies-per-request={config.movies_per_request}", f"--timeout={config.request_timeout_s}",
             f"--ids={ids_file}", f"--trace={trace_path}", "--json"]
  with result_path.open("wb") as out, result_path.with_suffix(".log").open("wb") as log:
    process = subprocess.Popen(command, stdout=out, stderr=log, stdin=subprocess.DEVNULL)
  try:
    yield process
    if process.poll() is not None:
      raise TrafficError(f"the load generator exited early with status {process.returncode}; see "
                         f"{result_path.with_suffix('.log')}")
  finally:
    if process.poll() is None:
      process.terminate()
      try:
        process.wait(timeout=STOP_GRACE_S)
      except subprocess.TimeoutExpired as error:
        process.kill()
        raise TrafficError(f"the load generator did not stop within {STOP_GRACE_S:g} s of SIGTERM") from error


def wait_for_version(process: subprocess.Popen, trace_path: Path, version: int, timeout_s: float) -> None:
  """Blocks until the load generator's trace holds an answer of `version` or a newer one, so a swap is seen by
  the traffic before the replay goes on (or ends).

  Raises:
    TrafficError: the load generator exited, or no such answer came within `timeout_s`.
  """
  deadline = time.monotonic() + timeout_s
  offset, newest = 0, None
  while True:
    rows = b""
    if trace_path.is_file():  # the load generator creates it once it has started
      with trace_path.open("rb") as trace:
        trace.seek(offset)
        rows = trace.read()
    complete = rows[:rows.rfind(b"\n") + 1]
    offset += len(complete)
    for row in complete.decode().splitlines():
      field = row.split(",")[3]
      if field.isdigit():
        newest = max(newest or 0, int(field))
    if newest is not None and newest >= version:
      return
    if process.poll() is not None:
      raise TrafficError(f"the load generator exited with status {process.returncode} before an answer of "
                         f"version {version}; see {trace_path}")
    if time.monotonic() > deadline:
      raise TrafficError(f"no answer of version {version} in the traffic within {timeout_s:g} s (newest: "
                         f"{newest}); see {trace_path}")
    time.sleep(0.1)


def read_trace(trace_path: Path) -> pd.DataFrame:
  """The trace as a table sorted by send time (version -1 where a request failed)."""
  trace = pd.read_csv(trace_path, dtype={"signature": str, "code": str})
  trace["version"] = trace.version.fillna(-1).astype(np.int64)
  return trace.sort_values("sent_unix_s", kind="stable").reset_index(drop=True)


def analyse(trace: pd.DataFrame, swap_window_s: float) -> TrafficReport:
  """Totals, swaps (the first answer of each new version) with the latency around them, steady state."""
  answered = trace[trace.code == "OK"]
  swaps: List[Swap] = []
  near_swap = np.zeros(len(trace), bool)
  versions = answered.version.to_numpy()
  for row in np.flatnonzero(versions[1:] != versions[:-1]) + 1:
    if versions[row] <= versions[:row].max():  # an older version answering again is not a swap
      continue
    at = float(answered.sent_unix_s.iloc[row])
    window = (trace.sent_unix_s - at).abs().to_numpy() <= swap_window_s
    near_swap |= window
    swaps.append(Swap(int(versions[row - 1]), int(versions[row]), at, LatencyWindow.of(trace[window])))
  errors = trace[trace.code != "OK"].code.value_counts()
  start = float(trace.sent_unix_s.iloc[0]) if len(trace) else 0.0
  seconds = np.floor(trace.sent_unix_s.to_numpy() - start).astype(np.int64)
  per_second = {"t": [], "p50_ms": [], "p99_ms": [], "version": []}
  for second, group in trace[trace.code == "OK"].groupby(seconds[trace.code.to_numpy() == "OK"]):
    per_second["t"].append(float(second))
    per_second["p50_ms"].append(float(np.percentile(group.latency_ms, 50)))
    per_second["p99_ms"].append(float(np.percentile(group.latency_ms, 99)))
    per_second["version"].append(float(group.version.max()))
  duration = float(trace.sent_unix_s.iloc[-1] - start) if len(trace) else 0.0
  return TrafficReport(int(len(trace)), int(errors.sum()), {str(k): int(v) for k, v in errors.items()}, start,
                       duration,
                       LatencyWindow.of(trace[~near_swap]), swaps, per_second)


def loadtest_result(result_path: Path) -> Optional[dict]:
  """The load generator's JSON result, or None when it wrote none."""
  text = result_path.read_text() if result_path.is_file() else ""
  return json.loads(text) if text.strip() else None
