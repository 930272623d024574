"""Helpers for the serving tests: TF Serving's test assets, an in-process server, request builders."""
import contextlib
import errno
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import portpicker
import pytest
import tensorflow as tf
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2

from serving.flags import ServerOptions
from serving.server import ModelServer
from tests.conftest import shared_dir

REPO = Path(__file__).resolve().parents[2]
HALF_PLUS_TWO = "saved_model_half_plus_two_cpu"
HALF_PLUS_THREE = "saved_model_half_plus_three"
TWO_VERSIONS = "saved_model_half_plus_two_2_versions"


def tf_serving_testdata() -> Path:
  """shared/testdata/tf_serving (TF Serving's own test models and configs), or skips the test."""
  path = shared_dir() / "testdata" / "tf_serving"
  if not path.is_dir():
    pytest.skip(f"{path} not present")
  return path


@contextlib.contextmanager
def running_server(**options) -> Iterator[ModelServer]:
  """An embedded server on free ports (gRPC always, REST when rest_api_port=-1 is asked: picks a free one, and
  another if a concurrent process took it between the pick and the bind)."""
  pick_rest_port = options.get("rest_api_port") == -1
  for attempt in range(3):
    if pick_rest_port:
      options["rest_api_port"] = portpicker.pick_unused_port()
    server = ModelServer(ServerOptions(port=0, **options))
    try:
      server.start()
      break
    except OSError as error:
      if not pick_rest_port or error.errno != errno.EADDRINUSE or attempt == 2:
        raise
  try:
    yield server
  finally:
    server.stop()


def write_model_config(path: Path, models: Sequence[str]) -> Path:
  """Writes a ModelServerConfig text proto from `model { ... }` bodies (one string per model)."""
  body = "\n".join(f"  config {{\n{model}\n  }}" for model in models)
  path.write_text(f"model_config_list {{\n{body}\n}}\n")
  return path


def model_entry(name: str, base_path: Path, extra: str = "") -> str:
  return f'    name: "{name}"\n    base_path: "{base_path}"\n    model_platform: "tensorflow"\n    {extra}'


def predict_request(model: str, inputs: dict, signature: str = "", version: Optional[int] = None,
                    label: str = "", output_filter: Sequence[str] = ()) -> predict_pb2.PredictRequest:
  spec = model_pb2.ModelSpec(name=model, signature_name=signature, version_label=label)
  if version is not None:
    spec.version.value = version
  request = predict_pb2.PredictRequest(model_spec=spec, output_filter=list(output_filter))
  for key, value in inputs.items():
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
  return request


def x_input(*values: float) -> dict:
  """half_plus_two's input: x float [N, 1]."""
  return {"x": np.array(values, np.float32).reshape(-1, 1)}


def publish_version(export_dir: Path, base_path: Path, version: int) -> Path:
  """Copies a SavedModel into base_path/version the way a pusher should: complete first, then renamed."""
  staging = base_path / f".staging-{version}"
  shutil.copytree(export_dir, staging)
  target = base_path / str(version)
  staging.rename(target)
  return target


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> None:
  """Polls `condition` (a server reacting to a file change) until true; fails naming `what` after timeout_s."""
  deadline = time.monotonic() + timeout_s
  while not condition():
    if time.monotonic() > deadline:
      pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
    time.sleep(0.1)
