"""Prometheus metrics with TF Serving's names (`/tensorflow/serving/...` written with ':' as TF's exporter does).

Latencies are in microseconds like TF Serving's. Exposed by the REST server at the monitoring config's path.
"""
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
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, float("inf"))
# TF Serving exports no *_created series; without this every counter and histogram would gain one.
prometheus_client.disable_created_metrics()


class Metrics:
  """One registry per server so that several servers in one process (tests, demo) do not mix counts."""

  def __init__(self):
    self.registry = CollectorRegistry()
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

  def record_request(self, model_name: str, api: str, entrypoint: str, status: str, latency_s: float) -> None:
    """Counts one request (status: a grpc.StatusCode name such as 'OK') and observes its latency."""
    self.request_count.labels(model_name, status).inc()
    self.request_latency.labels(model_name, api, entrypoint).observe(latency_s * 1e6)

  def record_batch(self, model_name: str, signature_name: str, stats: BatchStats) -> None:
    self.batch_size.labels(model_name, signature_name).observe(stats.size)
    self.padding_size.labels(model_name, signature_name).observe(stats.padded_size - stats.size)
    for latency in stats.queue_latencies_s:
      self.queuing_latency.labels(model_name, signature_name).observe(latency * 1e6)

  def exposition(self) -> bytes:
    """The Prometheus text exposition of every metric."""
    return generate_latest(self.registry)
