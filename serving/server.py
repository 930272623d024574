"""The embedded model server: the server core behind TF Serving's gRPC API and, when asked, its REST API.

`ModelServer(options).start()` reads the same config files as tensorflow_model_server, loads the models, and
serves until `stop()`. Every request failure becomes a gRPC status; a bad request never stops the server.
"""
import logging
import threading
from typing import Optional

from serving import metrics as metrics_lib
from serving.flags import ServerOptions
from serving.grpc_service import GrpcServer
from serving.server_core import ServerCore

log = logging.getLogger(__name__)


class ModelServer:
  """Wires the server core to its front ends: gRPC always, REST when --rest_api_port is set."""

  def __init__(self, options: ServerOptions):
    self.options = options
    self._core = ServerCore(options)
    self._grpc: Optional[GrpcServer] = None
    self._rest_server = None
    self.grpc_port = 0
    self.rest_port = 0
    self._stopped = threading.Event()

  @property
  def metrics(self) -> metrics_lib.Metrics:
    """The server's Prometheus metrics (TF Serving's names)."""
    return self._core.metrics

  def start(self) -> None:
    """Reads the config files, loads the models, and starts serving.

    Raises:
      config_files.ConfigFileError / batcher.BatchingConfigError: a config file is invalid.
      ServingError: the model config assigns a label to a version that is not available.
      OSError: the gRPC or REST port cannot be bound (what had started is stopped again).
    """
    self._core.start()
    try:
      self._grpc = GrpcServer(self._core, self.options.port, self.options.grpc_channel_arguments,
                              self.options.max_request_bytes)
      self.grpc_port = self._grpc.start()
      if self.options.rest_api_port:
        from serving import rest  # pylint: disable=import-outside-toplevel  # only when REST is on
        self._rest_server = rest.start(self._core, self.options.rest_api_port,
                                       self.options.rest_api_timeout_in_ms / 1000, self.options.max_request_bytes)
        self.rest_port = self._rest_server.server_address[1]
    except OSError:
      self.stop(grace_s=0)
      raise
    self._core.start_polling()
    log.info("Running gRPC ModelServer at 0.0.0.0:%d%s", self.grpc_port,
             f", REST API at localhost:{self.rest_port}" if self.rest_port else "")

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
    if self._grpc is not None:
      self._grpc.stop(grace_s)
    self._core.stop()
