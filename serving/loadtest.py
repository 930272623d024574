"""Load tester for TF Serving's Predict over gRPC: closed loop (C callers back to back) or open loop (fixed rate).

Reports p50/p90/p99/p99.9 latency, QPS, errors by status code and which model versions answered.
Open-loop latency is measured from each request's scheduled send time, so a stalled server is not hidden
(no coordinated omission). The callers are coroutines on one grpc.aio channel: a load generator that costs
less per request than the server it measures (on 2 cores, a thread per caller cost about twice as much CPU).
"""
import asyncio
import dataclasses
import random
import time
from typing import Callable, Dict, List, Optional

import grpc
import numpy as np
from serving import client as client_lib
from serving.client_protos.tensorflow_serving.apis import predict_pb2
from serving.client_protos.tensorflow_serving.apis import prediction_service_pb2_grpc

DROPPED = "DROPPED_IN_FLIGHT_LIMIT"  # open loop: a send was due while `concurrency` requests were in flight
DISTINCT_REQUESTS = 1000  # built up front and sent in turn, so that building them is not latency
RequestFactory = Callable[[random.Random], predict_pb2.PredictRequest]  # one random request per call


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

  def __init__(self):
    self.latencies: List[float] = []
    self.errors: Dict[str, int] = {}
    self.versions: Dict[str, int] = {}
    self.requests = 0

  async def call(self, stub, request: predict_pb2.PredictRequest, timeout_s: float, sent: float) -> None:
    """Sends `request` and records the answer; latency counts from `sent`."""
    self.requests += 1
    try:
      response = await stub.Predict(request, timeout=timeout_s)
    except grpc.RpcError as e:
      self.errors[e.code().name] = self.errors.get(e.code().name, 0) + 1
      return
    self.latencies.append(time.perf_counter() - sent)
    version = str(response.model_spec.version.value)
    self.versions[version] = self.versions.get(version, 0) + 1

  def dropped(self) -> None:
    self.requests += 1
    self.errors[DROPPED] = self.errors.get(DROPPED, 0) + 1


def run_loadtest(target: str, make_request: RequestFactory, mode: str, concurrency: int = 8,
                 duration_s: float = 10.0, rate: Optional[float] = None, timeout_s: float = 5.0,
                 seed: int = 0) -> LoadTestResult:
  """Sends requests from `make_request` (called DISTINCT_REQUESTS times with one Random seeded by `seed`) for
  `duration_s`; `mode` names them in the result.

  Closed loop when `rate` is None (`concurrency` callers, each sends when its previous answer arrived); open
  loop otherwise (`rate` requests per second, at most `concurrency` in flight).

  Raises:
    client.ServerUnreachableError: no server is reachable at `target` within `timeout_s`.
  """
  rng = random.Random(seed)
  requests = [make_request(rng) for _ in range(DISTINCT_REQUESTS)]
  recorder = _Recorder()
  cpu_started = time.process_time()
  elapsed = asyncio.run(_run(target, requests, recorder, concurrency, rate, duration_s, timeout_s))
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
               rate: Optional[float], duration_s: float, timeout_s: float) -> float:
  """Connects, runs the closed or open loop for `duration_s`; returns the elapsed seconds."""
  async with grpc.aio.insecure_channel(target) as channel:
    try:
      await asyncio.wait_for(channel.channel_ready(), timeout_s)
    except asyncio.TimeoutError as e:
      raise client_lib.ServerUnreachableError(
          f"no model server at {target} (not reachable in {timeout_s}s)") from e
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    started = time.perf_counter()
    if rate is None:
      await _closed_loop(stub, requests, recorder, concurrency, started + duration_s, timeout_s)
    else:
      await _open_loop(stub, requests, recorder, concurrency, rate, started, started + duration_s, timeout_s)
    return time.perf_counter() - started


async def _closed_loop(stub, requests, recorder: _Recorder, concurrency: int, deadline: float,
                       timeout_s: float) -> None:
  async def caller(index: int) -> None:
    i = index
    while time.perf_counter() < deadline:
      await recorder.call(stub, requests[i % len(requests)], timeout_s, time.perf_counter())
      i += concurrency

  await asyncio.gather(*(caller(i) for i in range(concurrency)))


async def _open_loop(stub, requests, recorder: _Recorder, concurrency: int, rate: float, start: float,
                     deadline: float, timeout_s: float) -> None:
  in_flight = set()
  i = 0
  while True:
    due = start + i / rate
    if due >= deadline:
      break
    delay = due - time.perf_counter()
    if delay > 0:
      await asyncio.sleep(delay)
    if len(in_flight) >= concurrency:
      recorder.dropped()
    else:
      task = asyncio.ensure_future(recorder.call(stub, requests[i % len(requests)], timeout_s, due))
      in_flight.add(task)
      task.add_done_callback(in_flight.discard)
    i += 1
  if in_flight:
    await asyncio.wait(in_flight)
