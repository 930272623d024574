"""TF Serving's gRPC front end: PredictionService and ModelService on one grpc.aio event loop, over the core.

A batched Predict waits on its batch as a future on the loop, without a thread per call; every other call runs
on the core's worker pool. A ServingError becomes the call's gRPC status.
"""
import asyncio
import threading
from typing import Awaitable, Callable, Optional, Tuple, TypeVar

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import prediction_service_pb2_grpc

from serving import config_files
from serving import errors
from serving import inference
from serving.server_core import ServerCore

ENTRYPOINT = "GRPC"  # the request_latency metric's entrypoint label
T = TypeVar("T")


MAX_RECEIVE_MESSAGE_LENGTH = "grpc.max_receive_message_length"


class GrpcServer:
  """The gRPC server of `core` on `port` (0: a free one), with --grpc_channel_arguments applied; messages larger
  than `max_message_bytes` (--max_request_bytes, unless the channel arguments set
  grpc.max_receive_message_length) are refused by gRPC with RESOURCE_EXHAUSTED."""

  def __init__(self, core: ServerCore, port: int, channel_arguments: str, max_message_bytes: int):
    self._core = core
    self._port = port
    self._options = parse_channel_arguments(channel_arguments)
    if MAX_RECEIVE_MESSAGE_LENGTH not in dict(self._options):
      self._options += ((MAX_RECEIVE_MESSAGE_LENGTH, max_message_bytes),)
    self._server: Optional[grpc.aio.Server] = None
    self._loop: Optional[asyncio.AbstractEventLoop] = None
    self._loop_thread: Optional[threading.Thread] = None

  def start(self) -> int:
    """Starts the event loop thread and the server; returns the bound port.

    Raises:
      OSError: the port cannot be bound.
    """
    self._loop = asyncio.new_event_loop()
    self._loop_thread = threading.Thread(target=self._loop.run_forever, name="grpc-event-loop", daemon=True)
    self._loop_thread.start()
    return asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result()

  async def _serve(self) -> int:
    server = grpc.aio.server(options=self._options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self._core), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(self._core), server)
    port = server.add_insecure_port(f"[::]:{self._port}")
    if not port:
      raise OSError(f"cannot bind the gRPC port {self._port}")
    await server.start()
    self._server = server
    return port

  def stop(self, grace_s: float) -> None:
    """Stops taking calls, lets in-flight ones finish (up to `grace_s`), and stops the event loop."""
    if self._server is not None:
      asyncio.run_coroutine_threadsafe(self._server.stop(grace_s), self._loop).result()
      # Dropping the last reference lets grpc.aio stop its poller thread now rather than at interpreter exit.
      self._server = None
    if self._loop is not None:
      self._loop.call_soon_threadsafe(self._loop.stop)
      self._loop_thread.join()


async def _grpc_call(context: grpc.aio.ServicerContext, request, call: Callable[[], Awaitable[T]]) -> T:
  """Awaits `call()` once `request` is known to have a model_spec (TF Serving: INVALID_ARGUMENT "Missing
  ModelSpec"); a ServingError aborts the call with its status code and message."""
  try:
    if not request.HasField("model_spec"):
      raise errors.invalid_argument("Missing ModelSpec")
    return await call()
  except errors.ServingError as e:
    await context.abort(e.code, e.message)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """tensorflow.serving.PredictionService."""

  def __init__(self, core: ServerCore):
    self._core = core

  async def Predict(self, request, context):  # noqa: N802 (gRPC method names)
    return await _grpc_call(context, request, lambda: self._core.predict_async(request, ENTRYPOINT))

  async def Classify(self, request, context):  # noqa: N802
    return await _grpc_call(context, request, lambda: self._core.handle_async(
        "classify", request.model_spec, ENTRYPOINT, lambda servable: inference.classify(servable, request)))

  async def Regress(self, request, context):  # noqa: N802
    return await _grpc_call(context, request, lambda: self._core.handle_async(
        "regress", request.model_spec, ENTRYPOINT, lambda servable: inference.regress(servable, request)))

  async def MultiInference(self, request, context):  # noqa: N802
    if not request.tasks:
      await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "MultiInferenceRequest has no tasks")
    task = request.tasks[0]
    return await _grpc_call(context, task, lambda: self._core.handle_async(
        "multi_inference", task.model_spec, ENTRYPOINT,
        lambda servable: inference.multi_inference(servable, request)))

  async def GetModelMetadata(self, request, context):  # noqa: N802
    return await _grpc_call(context, request, lambda: self._core.handle_async(
        "get_model_metadata", request.model_spec, ENTRYPOINT,
        lambda servable: inference.metadata(servable, request)))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """tensorflow.serving.ModelService."""

  def __init__(self, core: ServerCore):
    self._core = core

  async def GetModelStatus(self, request, context):  # noqa: N802
    async def status():
      return get_model_status_pb2.GetModelStatusResponse(model_version_status=self._core.status(request.model_spec))
    return await _grpc_call(context, request, status)

  async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
    try:
      await self._core.reload_config_async(request.config)
    except errors.ServingError as e:
      await context.abort(e.code, e.message)
    return model_management_pb2.ReloadConfigResponse()  # status OK


def parse_channel_arguments(text: str) -> Tuple[Tuple[str, object], ...]:
  """'grpc.max_receive_message_length=1000,grpc.x=y' -> gRPC options (integers where they parse).

  Raises:
    config_files.ConfigFileError: an item is not key=value.
  """
  options = []
  for item in filter(None, (part.strip() for part in text.split(","))):
    key, sep, value = item.partition("=")
    if not sep:
      raise config_files.ConfigFileError(f"--grpc_channel_arguments: expected key=value, got {item!r}")
    options.append((key.strip(), int(value) if value.strip().lstrip("-").isdigit() else value.strip()))
  return tuple(options)
