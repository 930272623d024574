"""Load tester for TF Serving's Predict over gRPC: closed loop (C callers back to back) or open loop (fixed rate).

Reports p50/p90/p99/p99.9 latency, QPS, errors by status code and which model versions answered.
Open-loop latency is measured from each request's scheduled send time, so a stalled server is not hidden
(no coordinated omission). With a trace file every request is also written as one CSV row (TRACE_COLUMNS), and
SIGTERM or SIGINT ends the run early with its result, so a load generator can run in the background for as long
as something else takes and be stopped. The callers are coroutines on one grpc.aio channel: a load generator that costs
less per request than the server it measures (on 2 cores, a thread per caller cost about twice as much CPU).
"""
import asyncio
import dataclasses
import random
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, TextIO

import grpc
import numpy as np
from serving import client as client_lib
from serving.client_protos.tensorflow_serving.apis import predict_pb2
from serving.client_protos.tensorflow_serving.apis import prediction_service_pb2_grpc

DROPPED = "DROPPED_IN_FLIGHT_LIMIT"  # open loop: a send was due while `concurrency` requests were in flight
DISTINCT_REQUESTS = 1000  # built up front and sent in turn, so that building them is not latency
RequestFactory = Callable[[random.Random], predict_pb2.PredictRequest]  # one random request per call
# One row per request: when it was sent (seconds since the epoch), its signature, the status code name (OK or the
# gRPC error), the model version that answered (empty on an error) and the latency in milliseconds.
TRACE_COLUMNS = ("sent_unix_s", "signature", "code", "version", "latency_ms")


@dataclasses.dataclass
class LoadTestResult:
  target: str
  mode: str
  loop: str  # "closed" or "open"
  concurrency: int
  rate: Optional[float]
  duration_s: float
  requests: int
  ok: int
  errors: Dict[str, int]
  qps: float  # successful responses per second
  latency_ms: Dict[str, float]  # p50, p90, p99, p99.9, mean, max over successful requests
  versions: Dict[str, int]  # model version -> successful responses it served
  client_cpu_ms_per_request: float  # this process's CPU time (all threads) during the run, per request sent

  def table(self) -> str:
    lines = [
        f"target {self.target}  mode {self.mode}  {self.loop} loop  concurrency {self.concurrency}"
        + (f"  rate {self.rate:g}/s" if self.rate else "") + f"  duration {self.duration_s:.1f}s",
        f"{'requests':>10} {'ok':>10} {'QPS':>10} " + " ".join(f"{k:>8}" for k in self.latency_ms) + "  (ms)",
        f"{self.requests:>10} {self.ok:>10} {self.qps:>10.1f} "
        + " ".join(f"{v:>8.2f}" for v in self.latency_ms.values()),
        "errors: " + (", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"),
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items())),
        f"client CPU per request: {self.client_cpu_ms_per_request:.3f} ms",
    ]
    return "\n".join(lines)


class _Recorder:
  """Latencies, errors and versions of the answers (callers share one event loop, so no lock)."""

  def __init__(self, trace: Optional[TextIO] = None):
    self.latencies: List[float] = []
    self.errors: Dict[str, int] = {}
    self.versions: Dict[str, int] = {}
    self.requests = 0
    self._trace = trace
    # perf_counter -> wall clock, for the trace's send times
    self._epoch_offset = time.time() - time.perf_counter()

  async def call(self, stub, request: predict_pb2.PredictRequest, timeout_s: float, sent: float) -> None:
    """Sends `request` and records the answer; latency counts from `sent`."""
    self.requests += 1
    try:
      response = await stub.Predict(request, timeout=timeout_s)
    except grpc.RpcError as e:
      self.errors[e.code().name] = self.errors.get(e.code().name, 0) + 1
      self._write(sent, request, e.code().name, "", time.perf_counter() - sent)
      return
    latency = time.perf_counter() - sent
    self.latencies.append(latency)
    version = str(response.model_spec.version.value)
    self.versions[version] = self.versions.get(version, 0) + 1
    self._write(sent, request, "OK", version, latency)

  def dropped(self, request: predict_pb2.PredictRequest, due: float) -> None:
    self.requests += 1
    self.errors[DROPPED] = self.errors.get(DROPPED, 0) + 1
    self._write(due, request, DROPPED, "", 0.0)

  def _write(self, sent: float, request: predict_pb2.PredictRequest, code: str, version: str,
             latency_s: float) -> None:
    if self._trace is not None:
      self._trace.write(f"{sent + self._epoch_offset:.4f},{request.model_spec.signature_name},{code},{version},"
                        f"{latency_s * 1e3:.3f}\n")


class _Deadline:
  """When the callers stop: the end of the run, or now once SIGTERM or SIGINT arrived."""

  def __init__(self, at: float):
    self.at = at

  def stop(self) -> None:
    self.at = time.perf_counter()


def run_loadtest(target: str, make_request: RequestFactory, mode: str, concurrency: int = 8,
                 duration_s: float = 10.0, rate: Optional[float] = None, timeout_s: float = 5.0,
                 seed: int = 0, trace_path: Optional[Path] = None, think_s: float = 0.0) -> LoadTestResult:
  """Sends requests from `make_request` (called DISTINCT_REQUESTS times with one Random seeded by `seed`) for
  `duration_s` (may be math.inf), or until SIGTERM or SIGINT; `mode` names them in the result.

  Closed loop when `rate` is None (`concurrency` callers, each sends `think_s` after its previous answer
  arrived); open loop otherwise (`rate` requests per second, at most `concurrency` in flight). With `trace_path`,
  one CSV row per request (TRACE_COLUMNS, with a header) is written there.

  Raises:
    client.ServerUnreachableError: no server is reachable at `target` within `timeout_s`.
  """
  rng = random.Random(seed)
  requests = [make_request(rng) for _ in range(DISTINCT_REQUESTS)]
  trace = None
  if trace_path is not None:
    # Line-buffered: a reader (the replay) sees each request's row as soon as its answer arrives.
    trace = Path(trace_path).open("w", encoding="utf-8", buffering=1)
    trace.write(",".join(TRACE_COLUMNS) + "\n")
  recorder = _Recorder(trace)
  cpu_started = time.process_time()
  try:
    elapsed = asyncio.run(_run(target, requests, recorder, concurrency, rate, duration_s, timeout_s, think_s))
  finally:
    if trace is not None:
      trace.close()
  cpu_ms_per_request = (time.process_time() - cpu_started) * 1e3 / max(recorder.requests, 1)
  latencies_ms = np.array(recorder.latencies) * 1e3
  percentiles = {"p50": 50, "p90": 90, "p99": 99, "p99.9": 99.9}
  latency = {name: float(np.percentile(latencies_ms, q)) if len(latencies_ms) else float("nan")
             for name, q in percentiles.items()}
  latency["mean"] = float(latencies_ms.mean()) if len(latencies_ms) else float("nan")
  latency["max"] = float(latencies_ms.max()) if len(latencies_ms) else float("nan")
  return LoadTestResult(target, mode, "closed" if rate is None else "open", concurrency, rate, elapsed,
                        recorder.requests, len(recorder.latencies), recorder.errors,
                        len(recorder.latencies) / elapsed, latency, recorder.versions, cpu_ms_per_request)


async def _run(target: str, requests: List[predict_pb2.PredictRequest], recorder: _Recorder, concurrency: int,
               rate: Optional[float], duration_s: float, timeout_s: float, think_s: float) -> float:
  """Connects, runs the closed or open loop for `duration_s`; returns the elapsed seconds."""
  async with grpc.aio.insecure_channel(target) as channel:
    try:
      await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except asyncio.TimeoutError as e:
      raise client_lib.ServerUnreachableError(
          f"no model server at {target} (not reachable in {timeout_s}s)") from e
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    started = time.perf_counter()
    deadline = _Deadline(started + duration_s)
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
      loop = asyncio.get_running_loop()
      for stop_signal in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(stop_signal, deadline.stop)
    if rate is None:
      await _closed_loop(stub, requests, recorder, concurrency, deadline, timeout_s, think_s)
    else:
      await _open_loop(stub, requests, recorder, concurrency, rate, started, deadline, timeout_s)
    return time.perf_counter() - started


async def _closed_loop(stub, requests, recorder: _Recorder, concurrency: int, deadline: _Deadline,
                       timeout_s: float, think_s: float) -> None:
  async def caller(index: int) -> None:
    i = index
    while time.perf_counter() < deadline.at:
      await recorder.call(stub, requests[i % len(requests)], timeout_s, time.perf_counter())
      i += concurrency
      if think_s > 0:
        await asyncio.sleep(think_s)

  await asyncio.gather(*(caller(i) for i in range(concurrency)))


async def _open_loop(stub, requests, recorder: _Recorder, concurrency: int, rate: float, start: float,
                     deadline: _Deadline, timeout_s: float) -> None:
  in_flight = set()
  i = 0
  while True:
    due = start + i / rate
    if due >= deadline.at:
      break
    delay = due - time.perf_counter()
    if delay > 0:
      await asyncio.sleep(delay)
    if len(in_flight) >= concurrency:
      recorder.dropped(requests[i % len(requests)], due)
    else:
      task = asyncio.ensure_future(recorder.call(stub, requests[i % len(requests)], timeout_s, due))
      in_flight.add(task)
      task.add_done_callback(in_flight.discard)
    i += 1
  if in_flight:
    await asyncio.wait(in_flight)
