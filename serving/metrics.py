"""Prometheus metrics with TF Serving's names (`/tensorflow/serving/...` written with ':' as TF's exporter does).

Latencies are in microseconds like TF Serving's. Exposed by the REST server at the monitoring config's path.
TF Serving counts requests per model only; the `:recsys:serving:version_*` series (not TF Serving's) count them
per model version and the version label the request named, so that a canary can be compared with stable.
"""
import dataclasses
import threading
from typing import Dict, List, Tuple

import numpy as np
import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest

from serving.batcher import BatchStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_PATH = "/monitoring/prometheus/metrics"  # TF Serving's PrometheusExporter::kPrometheusPath
_LATENCY_BUCKETS_US = (50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                       1_000_000, 2_500_000, float("inf"))
_WINDOW_SAMPLES = 100_000  # latencies kept per version between two summaries (the count is exact)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, float("inf"))
# TF Serving exports no *_created series; without this every counter and histogram would gain one.
prometheus_client.disable_created_metrics()


@dataclasses.dataclass
class _VersionWindow:
  """One model version's requests since the last summary."""
  requests: int = 0
  errors: int = 0
  latencies_s: List[float] = dataclasses.field(default_factory=list)


class Metrics:
  """One registry per server so that several servers in one process (tests, demo) do not mix counts."""

  def __init__(self):
    self.registry = CollectorRegistry()
    self._windows: Dict[Tuple[str, int, str], _VersionWindow] = {}
    self._windows_lock = threading.Lock()
    self._children: Dict[tuple, tuple] = {}  # a record_* call's labels -> the labeled series it updates
    self.version_request_count = Counter(
        ":recsys:serving:version_request_count",
        "Requests by model, version, the version label the request named ('' for none) and status code.",
        ["model_name", "version", "version_label", "status"], registry=self.registry)
    self.version_request_latency = Histogram(
        ":recsys:serving:version_request_latency",
        "Request latency in microseconds by model, version and the version label the request named.",
        ["model_name", "version", "version_label"], buckets=_LATENCY_BUCKETS_US, registry=self.registry)
    self.request_count = Counter(
        ":tensorflow:serving:request_count", "Requests by model and final status code.",
        ["model_name", "status"], registry=self.registry)
    self.request_latency = Histogram(
        ":tensorflow:serving:request_latency", "End-to-end request latency in microseconds.",
        ["model_name", "API", "entrypoint"], buckets=_LATENCY_BUCKETS_US, registry=self.registry)
    self.batch_size = Histogram(
        ":tensorflow:serving:batching_session:processed_batch_size",
        "Rows per executed batch before padding.", ["model_name", "signature_name"], buckets=_BATCH_BUCKETS,
        registry=self.registry)
    self.padding_size = Histogram(
        ":tensorflow:serving:batching_session:padding_size", "Padding rows added to each executed batch.",
        ["model_name", "signature_name"], buckets=_BATCH_BUCKETS, registry=self.registry)
    self.queuing_latency = Histogram(
        ":tensorflow:serving:batching_session:queuing_latency",
        "Microseconds a request waited in the batching queue.", ["model_name", "signature_name"],
        buckets=_LATENCY_BUCKETS_US, registry=self.registry)

  def record_request(self, model_name: str, api: str, entrypoint: str, status: str, latency_s: float,
                     version: int = 0, version_label: str = "") -> None:
    """Counts one request (status: a grpc.StatusCode name such as 'OK') and observes its latency; with the
    `version` that served it (0: none was found) also per version and `version_label`."""
    key = (model_name, api, entrypoint, status, version, version_label)
    children = self._children.get(key)
    if children is None:  # labels() costs tens of microseconds per call: look each series up once
      children = (self.request_count.labels(model_name, status),
                  self.request_latency.labels(model_name, api, entrypoint),
                  version and self.version_request_count.labels(model_name, str(version), version_label, status),
                  version and self.version_request_latency.labels(model_name, str(version), version_label))
      self._children[key] = children
    count, latency, version_count, version_latency = children
    count.inc()
    latency.observe(latency_s * 1e6)
    if not version:
      return
    version_count.inc()
    version_latency.observe(latency_s * 1e6)
    with self._windows_lock:
      window = self._windows.get((model_name, version, version_label))
      if window is None:
        window = self._windows[(model_name, version, version_label)] = _VersionWindow()
      window.requests += 1
      window.errors += status != "OK"
      if len(window.latencies_s) < _WINDOW_SAMPLES:
        window.latencies_s.append(latency_s)

  def version_summary(self) -> List[str]:
    """One line per (model, version, label) that had requests since the previous call: count, errors and
    latency p50/p99; resets the window."""
    with self._windows_lock:
      windows, self._windows = self._windows, {}
    lines = []
    for (model_name, version, label), window in sorted(windows.items()):
      p50, p99 = np.percentile(np.array(window.latencies_s) * 1e3, [50, 99])
      lines.append(f"model {model_name} version {version}" + (f" (label {label})" if label else "")
                   + f": {window.requests} requests, {window.errors} errors, latency p50 {p50:.2f} ms "
                   f"p99 {p99:.2f} ms")
    return lines

  def record_batch(self, model_name: str, signature_name: str, stats: BatchStats) -> None:
    key = ("batch", model_name, signature_name)
    children = self._children.get(key)
    if children is None:
      children = self._children[key] = (self.batch_size.labels(model_name, signature_name),
                                        self.padding_size.labels(model_name, signature_name),
                                        self.queuing_latency.labels(model_name, signature_name))
    size, padding, queuing = children
    size.observe(stats.size)
    padding.observe(stats.padded_size - stats.size)
    for latency in stats.queue_latencies_s:
      queuing.observe(latency * 1e6)

  def exposition(self) -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(self.registry)
