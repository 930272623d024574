"""TF Serving's ServerCore: owns the loader, the manager and the polls of the source and the model config file;
runs every request on the servable it names, with metrics. The gRPC and REST front ends talk only to it."""
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import grpc
from google.protobuf import message as proto_message
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import batcher
from serving import config_files
from serving import errors
from serving import inference
from serving import metrics as metrics_lib
from serving import tensors
from serving.flags import ServerOptions
from serving.loader import Loader
from serving.manager import Manager
from serving.protos import batching_parameters_pb2
from serving.servable import Servable
from serving.servable import session_config_from

log = logging.getLogger(__name__)

# Requests that run without the batcher (unbatched signatures, --enable_batching off, the other RPCs) and config
# reloads run on this pool, so that they run in parallel and off the gRPC event loop.
WORKER_THREADS = 64


class ServerCore:
  """The served models and what serves them, configured by `options` (tensorflow_model_server's flags)."""

  def __init__(self, options: ServerOptions):
    self._options = options
    self.metrics = metrics_lib.Metrics()
    self._monitoring_path: Optional[str] = None
    self._manager: Optional[Manager] = None
    self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="rpc")
    self._stopped = threading.Event()
    self._poll_threads: List[threading.Thread] = []
    self._config_text = ""

  # Lifecycle.

  def start(self) -> None:
    """Reads the config files and loads the models (returns once the initial versions are AVAILABLE).

    Raises:
      config_files.ConfigFileError / batcher.BatchingConfigError: a config file is invalid.
      ServingError: the model config assigns a label to a version that is not available.
    """
    batching = None
    if self._options.enable_batching:
      params = (config_files.read_batching_parameters(Path(self._options.batching_parameters_file))
                if self._options.batching_parameters_file else None)
      batching = batcher.BatchingOptions.from_proto(
          params or batching_parameters_pb2.BatchingParameters(), os.cpu_count() or 1)
    if self._options.monitoring_config_file:
      monitoring = config_files.read_monitoring_config(Path(self._options.monitoring_config_file))
      if monitoring.prometheus_config.enable:
        self._monitoring_path = monitoring.prometheus_config.path or metrics_lib.DEFAULT_PATH
    limits = tensors.RequestLimits(self._options.max_request_elements, self._options.max_request_bytes)
    loader = Loader(batching, self.metrics.record_batch, self._options.enable_model_warmup, limits,
                    session_config_from(self._options))
    self._manager = Manager(loader.load, self._options.allow_version_labels_for_unavailable_models)
    self._manager.apply_config(self._initial_model_config())

  def start_polling(self) -> None:
    """Polls the base paths every --file_system_poll_wait_seconds and re-reads --model_config_file every
    --model_config_file_poll_wait_seconds, in threads until stop(); 0 turns a poll off (as in TF Serving)."""
    self._every(self._options.file_system_poll_wait_seconds, self._manager.poll, "file-system-poll")
    self._every(self._options.request_log_interval_seconds, self._log_requests, "request-log")
    if self._options.model_config_file:
      self._every(self._options.model_config_file_poll_wait_seconds, self._reread_config_file,
                  "model-config-poll")

  def stop(self) -> None:
    """Stops the polls and unloads every model (waiting for in-flight requests)."""
    self._stopped.set()
    for thread in self._poll_threads:
      thread.join()
    if self._manager is not None:
      self._manager.stop()
    self._executor.shutdown()

  def _every(self, interval_s: float, action: Callable[[], None], name: str) -> None:
    if interval_s <= 0:
      return

    def loop():
      while not self._stopped.wait(interval_s):
        action()

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    self._poll_threads.append(thread)

  def _log_requests(self) -> None:
    for line in self.metrics.version_summary():
      log.info("Requests in the last %ds: %s", self._options.request_log_interval_seconds, line)

  # Model config.

  def _initial_model_config(self) -> model_server_config_pb2.ModelServerConfig:
    if self._options.model_config_file:
      path = Path(self._options.model_config_file)
      self._config_text = path.read_text()
      return config_files.read_model_server_config(path)
    if not self._options.model_base_path:
      raise config_files.ConfigFileError("either --model_config_file or --model_base_path must be given")
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = (
        self._options.model_name, self._options.model_base_path, "tensorflow")
    config_files.validate_model_server_config(config, source="--model_base_path")
    return config

  def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
    """HandleReloadConfigRequest: validates and applies a new ModelServerConfig (blocks until loaded).

    Raises:
      ServingError: INVALID_ARGUMENT for an invalid config, FAILED_PRECONDITION for a label on a version that
        is not available.
    """
    try:
      config_files.validate_model_server_config(config, source="ReloadConfigRequest")
    except config_files.ConfigFileError as e:
      raise errors.invalid_argument(str(e)) from e
    self._manager.apply_config(config)

  async def reload_config_async(self, config: model_server_config_pb2.ModelServerConfig) -> None:
    """reload_config() on the worker pool (loading takes seconds), awaited from an event loop."""
    await asyncio.get_running_loop().run_in_executor(self._executor, self.reload_config, config)

  def _reread_config_file(self) -> None:
    path = Path(self._options.model_config_file)
    try:
      text = path.read_text()
      if text == self._config_text:
        return
      config = config_files.read_model_server_config(path)
      self._config_text = text
      log.info("Model config file %s changed; applying it", path)
      self._manager.apply_config(config)
    except (OSError, config_files.ConfigFileError, errors.ServingError) as e:
      log.error("Keeping the current models: %s", e)

  # Requests.

  @contextlib.contextmanager
  def _servable(self, api: str, spec: model_pb2.ModelSpec, entrypoint: str) -> Iterator[Servable]:
    """Yields the servable `spec` names and records the request's metrics (per version once one was found);
    an unexpected exception becomes INTERNAL instead of reaching gRPC."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    version = 0
    try:
      with self._manager.servable(spec) as servable:
        version = servable.version
        yield servable
    except errors.ServingError as e:
      code = e.code
      raise
    except Exception as e:  # pylint: disable=broad-except  # a bug must fail the request, not the server
      log.exception("%s on model %s failed", api, spec.name)
      code = grpc.StatusCode.INTERNAL
      raise errors.ServingError(code, f"{type(e).__name__}: {e}") from e
    finally:
      self.metrics.record_request(spec.name, api, entrypoint, code.name, time.perf_counter() - started, version,
                                  spec.version_label)

  def handle(self, api: str, spec: model_pb2.ModelSpec, entrypoint: str,
             fn: Callable[[Servable], proto_message.Message]) -> proto_message.Message:
    """Runs `fn` on the servable `spec` names, recording metrics under `api` and `entrypoint` (GRPC, REST).

    Raises:
      ServingError: the model, version or request is invalid, or running it failed.
    """
    with self._servable(api, spec, entrypoint) as servable:
      return fn(servable)

  async def handle_async(self, api: str, spec: model_pb2.ModelSpec, entrypoint: str,
                         fn: Callable[[Servable], proto_message.Message]) -> proto_message.Message:
    """handle() on the worker pool, awaited from an event loop."""
    return await asyncio.get_running_loop().run_in_executor(self._executor, self.handle, api, spec, entrypoint, fn)

  async def predict_async(self, request: predict_pb2.PredictRequest, entrypoint: str) -> predict_pb2.PredictResponse:
    """Predict for a caller on an event loop: checks on the loop, then awaits the batch (or the worker pool),
    without a thread per call, so concurrent calls reach the batch queue quickly."""
    with self._servable("predict", request.model_spec, entrypoint) as servable:
      pending = inference.begin_predict(servable, request)
      outputs = await servable.run_async(pending.signature, pending.inputs, self._executor)
      return inference.finish_predict(servable, pending, outputs)

  def status(self, spec: model_pb2.ModelSpec) -> List[get_model_status_pb2.ModelVersionStatus]:
    """GetModelStatus: the versions of the model `spec` names (or the one it asks for), newest first.

    Raises:
      ServingError: NOT_FOUND for an unknown model or version.
    """
    return self._manager.status(spec)

  def prometheus_page(self, path: str) -> Optional[bytes]:
    """The Prometheus exposition when `path` is the monitoring config's path, else None."""
    return self.metrics.exposition() if self._monitoring_path and path == self._monitoring_path else None
