"""The embedded model server: TF Serving's PredictionService and ModelService over gRPC, plus REST and metrics.

`ModelServer(options).start()` reads the same config files as tensorflow_model_server, loads the models, and
serves until `stop()`. Every request failure becomes a gRPC status; a bad request never stops the server.
"""
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable, Iterator, Optional, Tuple

import grpc
import tensorflow as tf
from google.protobuf import message as proto_message
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from serving import batcher
from serving import config_files
from serving import errors
from serving import inference
from serving import metrics as metrics_lib
from serving.flags import ServerOptions
from serving.model_manager import ModelManager
from serving.protos import batching_parameters_pb2
from serving.servable import Servable

log = logging.getLogger(__name__)

# gRPC runs on one asyncio event loop (grpc.aio): a batched Predict waits on its batch as a future, without a
# thread per call, so concurrent calls reach the batch queue quickly. Calls that run without the batcher
# (unbatched signatures, --enable_batching off, the other RPCs) run on this pool so that they run in parallel.
WORKER_THREADS = 64


class ModelServer:
  """Owns the model manager, the gRPC and REST servers, the metrics and the config-file poller."""

  def __init__(self, options: ServerOptions):
    self.options = options
    self.metrics = metrics_lib.Metrics()
    self.batching: Optional[batcher.BatchingOptions] = None
    self.monitoring_path: Optional[str] = None
    self.manager = ModelManager(self._load, options.allow_version_labels_for_unavailable_models)
    self._grpc_server: Optional[grpc.aio.Server] = None
    self._loop: Optional[asyncio.AbstractEventLoop] = None
    self._loop_thread: Optional[threading.Thread] = None
    self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="rpc")
    self._rest_server = None
    self.grpc_port = 0
    self.rest_port = 0
    self._stopped = threading.Event()
    self._config_thread: Optional[threading.Thread] = None
    self._config_text = ""

  # Startup and shutdown.

  def start(self) -> None:
    """Reads the config files, loads the models, and starts serving.

    Raises:
      config_files.ConfigFileError / batcher.BatchingConfigError: a config file is invalid.
      ServingError: the model config assigns a label to a version that is not available.
    """
    _set_tf_threads(self.options)
    if self.options.enable_batching:
      params = (config_files.read_batching_parameters(Path(self.options.batching_parameters_file))
                if self.options.batching_parameters_file else None)
      self.batching = batcher.BatchingOptions.from_proto(
          params or batching_parameters_pb2.BatchingParameters(), os.cpu_count() or 1)
    if self.options.monitoring_config_file:
      monitoring = config_files.read_monitoring_config(Path(self.options.monitoring_config_file))
      if monitoring.prometheus_config.enable:
        self.monitoring_path = monitoring.prometheus_config.path or metrics_lib.DEFAULT_PATH
    self.manager.apply_config(self._initial_model_config())
    self._start_grpc()
    if self.options.rest_api_port:
      from serving import rest  # pylint: disable=import-outside-toplevel  # only when REST is on
      self._rest_server = rest.start(self, self.options.rest_api_port)
      self.rest_port = self._rest_server.server_address[1]
    self.manager.start_polling(self.options.file_system_poll_wait_seconds)
    if self.options.model_config_file and self.options.model_config_file_poll_wait_seconds > 0:
      self._config_thread = threading.Thread(target=self._poll_config_file, name="model-config-poll",
                                             daemon=True)
      self._config_thread.start()
    log.info("Running gRPC ModelServer at 0.0.0.0:%d%s", self.grpc_port,
             f", REST API at localhost:{self.rest_port}" if self.rest_port else "")

  def _initial_model_config(self) -> model_server_config_pb2.ModelServerConfig:
    if self.options.model_config_file:
      path = Path(self.options.model_config_file)
      self._config_text = path.read_text()
      return config_files.read_model_server_config(path)
    if not self.options.model_base_path:
      raise config_files.ConfigFileError("either --model_config_file or --model_base_path must be given")
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = (
        self.options.model_name, self.options.model_base_path, "tensorflow")
    config_files.validate_model_server_config(config, source="--model_base_path")
    return config

  def _start_grpc(self) -> None:
    self._loop = asyncio.new_event_loop()
    self._loop_thread = threading.Thread(target=self._loop.run_forever, name="grpc-event-loop", daemon=True)
    self._loop_thread.start()
    self.grpc_port = asyncio.run_coroutine_threadsafe(self._serve_grpc(), self._loop).result()

  async def _serve_grpc(self) -> int:
    server = grpc.aio.server(options=parse_channel_arguments(self.options.grpc_channel_arguments))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self), server)
    port = server.add_insecure_port(f"[::]:{self.options.port}")
    if not port:
      raise OSError(f"cannot bind the gRPC port {self.options.port}")
    await server.start()
    self._grpc_server = server
    return port

  def wait(self) -> None:
    """Blocks until stop() is called."""
    self._stopped.wait()

  def stop(self, grace_s: float = 5.0) -> None:
    """Stops taking requests, lets in-flight ones finish (up to `grace_s`), and unloads every model."""
    if self._stopped.is_set():
      return
    self._stopped.set()
    if self._rest_server is not None:
      self._rest_server.shutdown()
      self._rest_server.server_close()
    if self._grpc_server is not None:
      asyncio.run_coroutine_threadsafe(self._grpc_server.stop(grace_s), self._loop).result()
      # Dropping the last reference lets grpc.aio stop its poller thread now rather than at interpreter exit.
      self._grpc_server = None
    if self._loop is not None:
      self._loop.call_soon_threadsafe(self._loop.stop)
      self._loop_thread.join()
    if self._config_thread is not None:
      self._config_thread.join()
    self.manager.stop()
    self.executor.shutdown()

  # Models.

  def _load(self, name: str, version: int, path: Path) -> Servable:
    """Loads a version and replays its warmup requests before it is marked AVAILABLE."""
    servable = Servable(name, version, path, self.batching, self.metrics.record_batch)
    try:
      if self.options.enable_model_warmup:
        count = inference.replay_warmup(servable)
        if count:
          log.info("Finished reading %d warmup records for {name: %s version: %d}", count, name, version)
    except BaseException:
      servable.close()
      raise
    return servable

  def reload_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
    """HandleReloadConfigRequest: validates and applies a new ModelServerConfig (blocks until loaded)."""
    try:
      config_files.validate_model_server_config(config, source="ReloadConfigRequest")
    except config_files.ConfigFileError as e:
      raise errors.invalid_argument(str(e)) from e
    self.manager.apply_config(config)

  def _poll_config_file(self) -> None:
    path = Path(self.options.model_config_file)
    while not self._stopped.wait(self.options.model_config_file_poll_wait_seconds):
      try:
        text = path.read_text()
        if text == self._config_text:
          continue
        config = config_files.read_model_server_config(path)
        self._config_text = text
        log.info("Model config file %s changed; applying it", path)
        self.manager.apply_config(config)
      except (OSError, config_files.ConfigFileError, errors.ServingError) as e:
        log.error("Keeping the current models: %s", e)

  # Requests.

  @contextlib.contextmanager
  def _track(self, api: str, model_name: str, entrypoint: str) -> Iterator[None]:
    """Records the request's metrics; an unexpected exception becomes INTERNAL instead of reaching gRPC."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
      yield
    except errors.ServingError as e:
      code = e.code
      raise
    except Exception as e:  # pylint: disable=broad-except  # a bug must fail the request, not the server
      log.exception("%s on model %s failed", api, model_name)
      code = grpc.StatusCode.INTERNAL
      raise errors.ServingError(code, f"{type(e).__name__}: {e}") from e
    finally:
      self.metrics.record_request(model_name, api, entrypoint, code.name, time.perf_counter() - started)

  def handle(self, api: str, spec: model_pb2.ModelSpec, entrypoint: str,
             fn: Callable[[Servable], proto_message.Message]) -> proto_message.Message:
    """Runs `fn` on the servable `spec` names, recording metrics; raises ServingError on failure."""
    with self._track(api, spec.name, entrypoint), self.manager.servable(spec) as servable:
      return fn(servable)

  async def predict_async(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    """Predict on the event loop: checks on the loop, then awaits the batch (or the worker pool)."""
    with self._track("predict", request.model_spec.name, "GRPC"), \
        self.manager.servable(request.model_spec) as servable:
      pending = inference.begin_predict(servable, request)
      outputs = await servable.run_async(pending.signature, pending.inputs, self.executor)
      return inference.finish_predict(servable, pending, outputs)

  async def handle_async(self, api: str, spec: model_pb2.ModelSpec,
                         fn: Callable[[Servable], proto_message.Message]) -> proto_message.Message:
    """handle() on the worker pool, awaited from the event loop."""
    return await asyncio.get_running_loop().run_in_executor(self.executor, self.handle, api, spec, "GRPC", fn)


async def _grpc_call(context: grpc.aio.ServicerContext, call: Awaitable[proto_message.Message]
                     ) -> proto_message.Message:
  try:
    return await call
  except errors.ServingError as e:
    await context.abort(e.code, e.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """tensorflow.serving.PredictionService."""

  def __init__(self, server: ModelServer):
    self._server = server

  async def Predict(self, request, context):  # noqa: N802 (gRPC method names)
    return await _grpc_call(context, self._server.predict_async(request))

  async def Classify(self, request, context):  # noqa: N802
    return await _grpc_call(context, self._server.handle_async(
        "classify", request.model_spec, lambda servable: inference.classify(servable, request)))

  async def Regress(self, request, context):  # noqa: N802
    return await _grpc_call(context, self._server.handle_async(
        "regress", request.model_spec, lambda servable: inference.regress(servable, request)))

  async def MultiInference(self, request, context):  # noqa: N802
    spec = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
    return await _grpc_call(context, self._server.handle_async(
        "multi_inference", spec, lambda servable: inference.multi_inference(servable, request)))

  async def GetModelMetadata(self, request, context):  # noqa: N802
    return await _grpc_call(context, self._server.handle_async(
        "get_model_metadata", request.model_spec, lambda servable: inference.metadata(servable, request)))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """tensorflow.serving.ModelService."""

  def __init__(self, server: ModelServer):
    self._server = server

  async def GetModelStatus(self, request, context):  # noqa: N802
    try:
      statuses = self._server.manager.status(request.model_spec)
    except errors.ServingError as e:
      await context.abort(e.code, e.message)
    return get_model_status_pb2.GetModelStatusResponse(model_version_status=statuses)

  async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
    loop = asyncio.get_running_loop()
    try:  # loading takes seconds: off the event loop
      await loop.run_in_executor(self._server.executor, self._server.reload_config, request.config)
    except errors.ServingError as e:
      await context.abort(e.code, e.message)
    return model_management_pb2.ReloadConfigResponse()  # status OK


def parse_channel_arguments(text: str) -> Tuple[Tuple[str, object], ...]:
  """'grpc.max_receive_message_length=1000,grpc.x=y' -> gRPC options (integers where they parse)."""
  options = []
  for item in filter(None, (part.strip() for part in text.split(","))):
    key, sep, value = item.partition("=")
    if not sep:
      raise config_files.ConfigFileError(f"--grpc_channel_arguments: expected key=value, got {item!r}")
    options.append((key.strip(), int(value) if value.strip().lstrip("-").isdigit() else value.strip()))
  return tuple(options)


def _set_tf_threads(options: ServerOptions) -> None:
  """Applies the TensorFlow thread flags; they only take effect before TensorFlow has run anything."""
  try:
    if options.tensorflow_intra_op_parallelism:
      tf.config.threading.set_intra_op_parallelism_threads(options.tensorflow_intra_op_parallelism)
    if options.tensorflow_inter_op_parallelism:
      tf.config.threading.set_inter_op_parallelism_threads(options.tensorflow_inter_op_parallelism)
  except RuntimeError as e:  # TensorFlow already initialized in this process (tests, the demo)
    log.warning("TensorFlow thread flags not applied: %s", e)
