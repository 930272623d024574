"""One model served by a model server in a subprocess, for infra validation and `recsys replay`.

The server is started through `recsys serve` (serving/launcher.py), so it is tensorflow_model_server when that
is on PATH and the project's embedded server otherwise, with TF Serving's flags: the model's base path, batching
with the shipped BatchingParameters, a free port. `served_model` stops the process however its block ends.
"""
import contextlib
import dataclasses
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from pipeline.config import ModelServerChoice
from serving import config_files
from serving import launcher

State = get_model_status_pb2.ModelVersionStatus.State
POLL_INTERVAL_S = 0.25
STOP_GRACE_S = 10.0  # SIGTERM first (both servers stop cleanly on it), SIGKILL after this long
LOG_TAIL_LINES = 20
# gRPC waits longer and longer (up to 2 minutes) before it reconnects to a port that refused it; the server binds
# its port only once it has loaded the model, so without a short backoff AVAILABLE would be seen late.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 500))
EMBEDDED = "embedded server"


class ModelNotAvailableError(RuntimeError):
  """The server did not make the model AVAILABLE: it exited, the version failed to load, or time ran out."""


def server_name(choice: ModelServerChoice) -> str:
  """What `recsys serve --server choice` runs here: tensorflow_model_server or the embedded server."""
  if choice == "embedded" or (choice == "auto" and shutil.which(launcher.TFS_BINARY) is None):
    return EMBEDDED
  return launcher.TFS_BINARY


def free_port() -> int:
  """A TCP port nothing listens on now (tensorflow_model_server needs a port number; it cannot pick one)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
    probe.bind(("localhost", 0))
    return probe.getsockname()[1]


@dataclasses.dataclass
class ServedModel:
  """A running server process and the gRPC stubs of the one model it serves."""
  process: subprocess.Popen
  model_name: str
  target: str
  server: str  # server_name()
  log_path: Path

  def __post_init__(self) -> None:
    self._channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
    self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
    self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

  def wait_until_available(self, timeout_s: float, version: Optional[int] = None) -> None:
    """Polls GetModelStatus until a version of the model (`version`, if given) is AVAILABLE.

    Raises:
      ModelNotAvailableError: the process exited, a version ended with a load error, or `timeout_s` passed;
        the message says which, with the server's error or the end of its log.
    """
    deadline = time.monotonic() + timeout_s
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=self.model_name))
    last_state = "no answer"
    while True:
      returncode = self.process.poll()
      if returncode is not None:
        raise ModelNotAvailableError(
            f"the {self.server} exited with status {returncode} before model {self.model_name!r} was AVAILABLE; "
            f"{self.log_tail()}")
      try:
        versions = self._models.GetModelStatus(request, timeout=POLL_INTERVAL_S * 4).model_version_status
      except grpc.RpcError as error:  # not listening yet, or the model not known yet
        last_state = f"{error.code().name}: {error.details()}"
        versions = []
      if any(v.state == State.AVAILABLE and version in (None, v.version) for v in versions):
        return
      for failed in versions:
        if failed.state == State.END and failed.status.error_code and version in (None, failed.version):
          raise ModelNotAvailableError(
              f"the {self.server} failed to load version {failed.version} of model {self.model_name!r}: "
              f"{failed.status.error_message}")
      if versions:
        last_state = ", ".join(f"version {v.version} {State.Name(v.state)}" for v in versions)
      if time.monotonic() > deadline:
        raise ModelNotAvailableError(
            f"model {self.model_name!r} was not AVAILABLE on the {self.server} after {timeout_s:g} s (last "
            f"status: {last_state}); raise InfraValidationConfig.load_timeout_s if loading is just slow; "
            f"{self.log_tail()}")
      time.sleep(POLL_INTERVAL_S)

  def predict(self, request: predict_pb2.PredictRequest, timeout_s: float) -> predict_pb2.PredictResponse:
    """Predict with `request` (its model_spec names this model). Raises grpc.RpcError when refused."""
    return self._predictions.Predict(request, timeout=timeout_s)

  def log_tail(self) -> str:
    """The last lines of the server's output, for error messages."""
    lines = self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return "its output ends:\n  " + "\n  ".join(lines) if lines else "it printed nothing"

  def close(self) -> None:
    self._channel.close()


def _stop(process: subprocess.Popen) -> None:
  if process.poll() is None:
    process.terminate()
    try:
      process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


@contextlib.contextmanager
def served_model(model_name: str, base_path: Path, choice: ModelServerChoice, log_path: Path,
                 poll_wait_s: int = 0) -> Iterator[ServedModel]:
  """Starts a server (`recsys serve --server choice`) for the numbered versions under `base_path`, with
  batching on (the shipped BatchingParameters) and its output in `log_path`; yields at once, while it loads.
  `poll_wait_s` > 0 makes it look for new versions that often (0: the versions there at its start only).
  The process is stopped when the block ends, also on an error or an interrupt."""
  port = free_port()
  command = [sys.executable, "-m", "pipeline.cli", "serve", f"--server={choice}", f"--port={port}",
             f"--model_name={model_name}", f"--model_base_path={base_path.resolve()}",
             "--enable_batching", f"--batching_parameters_file={config_files.BATCHING_PARAMETERS_FILE}",
             f"--file_system_poll_wait_seconds={poll_wait_s}"]
  with log_path.open("wb") as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
  try:
    served = ServedModel(process, model_name, f"localhost:{port}", server_name(choice), log_path)
    try:
      yield served
    finally:
      served.close()
  finally:
    _stop(process)
