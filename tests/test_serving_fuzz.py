"""Seeded fuzzing of the embedded server: thousands of malformed gRPC requests and REST bodies.

Every answer must be a proper status (gRPC: OK or one of ALLOWED_CODES; REST: 200 or 4xx with {"error": ...}),
none may drop the connection or hang (every call has a deadline), and afterwards the server must still answer a
good request correctly, with its memory (the RSS of this process: the server runs in process, so the test's own
small allocations count too) grown by less than 50 MB although many requests declare gigabytes of tensors.
"""
import http.client
import json
import math
import random
import socket
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from tests.support.serving import HALF_PLUS_TWO
from tests.support.serving import model_entry
from tests.support.serving import predict_request
from tests.support.serving import publish_version
from tests.support.serving import running_server
from tests.support.serving import tf_serving_testdata
from tests.support.serving import write_model_config
from tests.support.serving import x_input

pytestmark = pytest.mark.slow

SEED = 20261201
GRPC_REQUESTS = 2400
REST_REQUESTS = 900
MAX_RSS_GROWTH_MB = 50
TIMEOUT_S = 10.0
ALLOWED_CODES = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.RESOURCE_EXHAUSTED}
MODELS = ("half_plus_two", "half_plus_two", "ncf", "ncf", "", "nope")
SIGNATURES = ("", "", "serving_default", "classify_x_to_y", "regress_x_to_y", "predict", "recommend", "missing")
INPUT_NAMES = ("x", "user_id", "movie_id", "y", "")
DTYPES = (1, 2, 3, 7, 9, 10, 0, 19, 99)  # float, double, int32, string, int64, bool, invalid, half, unknown
DIMS = (0, 1, 2, 3, 7, 1 << 20, 10 ** 9, 1 << 40, -1)
MAX_BATCH_SIZE = 8
GOOD_SIGNATURES = (("half_plus_two", "", ("x",), 1), ("ncf", "predict", ("user_id", "movie_id"), 7),
                   ("ncf", "recommend", ("user_id",), 7))  # (model, signature, its inputs, their dtype)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_ncf_export):
  testdata = tf_serving_testdata()
  models = tmp_path_factory.mktemp("fuzz-models")
  publish_version(tiny_ncf_export, models / "ncf", 1)
  config = write_model_config(models / "models.config", [
      model_entry("half_plus_two", testdata / HALF_PLUS_TWO), model_entry("ncf", models / "ncf")])
  batching = models / "batching.txt"
  batching.write_text(f"max_batch_size {{ value: {MAX_BATCH_SIZE} }}\nbatch_timeout_micros {{ value: 1000 }}\n")
  monitoring = models / "monitoring.txt"
  monitoring.write_text("prometheus_config { enable: true }\n")
  with running_server(model_config_file=str(config), enable_batching=True, batching_parameters_file=str(batching),
                      rest_api_port=-1, file_system_poll_wait_seconds=0, max_request_elements=1_000_000,
                      max_request_bytes=1 << 20) as running:
    yield running


def rss_mb() -> float:
  for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmRSS:"):
      return int(line.split()[1]) / 1024
  raise AssertionError("no VmRSS in /proc/self/status")


def random_spec(rng: random.Random, spec: model_pb2.ModelSpec) -> None:
  spec.name = rng.choice(MODELS)
  spec.signature_name = rng.choice(SIGNATURES)
  kind = rng.random()
  if kind < 0.1:
    spec.version.value = rng.choice((1, 123, -1, 0))
  elif kind < 0.15:
    spec.version_label = rng.choice(("stable", "canary", ""))


def random_tensor(rng: random.Random, proto: tensor_pb2.TensorProto, dtype: int) -> None:
  """A `dtype` tensor whose declared shape and values agree only by chance."""
  proto.dtype = dtype
  if rng.random() < 0.05:
    proto.tensor_shape.unknown_rank = True
  rank = rng.choice((0, 1, 1, 2, 2, 3, 4))
  dims = [rng.choice(DIMS) for _ in range(rank)]
  for size in dims:
    proto.tensor_shape.dim.add().size = size
  elements = math.prod(max(d, 0) for d in dims)
  count = rng.choice((0, 1, elements, elements + 1, max(elements - 1, 0), 3)) if elements < 64 else rng.choice(
      (0, 1, 3, 64))
  form = rng.random()
  if form < 0.3:
    proto.tensor_content = rng.randbytes(rng.choice((count * 4, count * 8, count, 3, 0)))
  elif proto.dtype == 7 or form < 0.45:
    proto.string_val.extend(rng.choice((b"1", b"2", b"", rng.randbytes(5))) for _ in range(count))
  elif proto.dtype in (1, 19):
    proto.float_val.extend(rng.random() for _ in range(count))
  elif proto.dtype == 2:
    proto.double_val.extend(rng.random() for _ in range(count))
  elif proto.dtype == 9:
    proto.int64_val.extend(rng.randrange(-9, 9) for _ in range(count))
  elif proto.dtype == 10:
    proto.bool_val.extend(rng.random() < 0.5 for _ in range(count))
  else:
    proto.int_val.extend(rng.randrange(-9, 9) for _ in range(count))


def random_examples(rng: random.Random, request) -> None:
  target = (request.input.example_list_with_context if rng.random() < 0.3 else request.input.example_list)
  if rng.random() < 0.3 and target is request.input.example_list_with_context:
    target.context.features.feature["x"].float_list.value.append(rng.random())
  for _ in range(rng.choice((0, 1, 2, MAX_BATCH_SIZE + 1, 40))):
    example = target.examples.add()
    for _ in range(rng.choice((0, 1, 2))):
      feature = example.features.feature[rng.choice(("x", "x2", "y", "z"))]
      kind = rng.random()
      if kind < 0.4:
        feature.float_list.value.extend(rng.random() for _ in range(rng.choice((0, 1, 2))))
      elif kind < 0.7:
        feature.int64_list.value.append(rng.randrange(-5, 5))
      else:
        feature.bytes_list.value.append(rng.randbytes(rng.choice((0, 3))))


def random_grpc_call(rng: random.Random, predictions, models):
  """(stub method, request) of a random malformed (or, by chance, valid) call."""
  kind = rng.random()
  if kind < 0.55:
    request = predict_pb2.PredictRequest()
    if rng.random() < 0.95:
      random_spec(rng, request.model_spec)
    if rng.random() < 0.7:  # a real signature's input names, so that the tensors themselves get checked
      request.model_spec.name, request.model_spec.signature_name, names, dtype = rng.choice(GOOD_SIGNATURES)
      for name in names:
        random_tensor(rng, request.inputs[name], dtype if rng.random() < 0.7 else rng.choice(DTYPES))
    else:
      for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
        random_tensor(rng, request.inputs[rng.choice(INPUT_NAMES)], rng.choice(DTYPES))
    if rng.random() < 0.1:
      request.output_filter.extend(rng.choice((["y"], ["y", "y"], ["nope"], ["score"])))
    return predictions.Predict, request
  if kind < 0.65:
    request = classification_pb2.ClassificationRequest()
    random_spec(rng, request.model_spec)
    random_examples(rng, request)
    return predictions.Classify, request
  if kind < 0.75:
    request = regression_pb2.RegressionRequest()
    random_spec(rng, request.model_spec)
    random_examples(rng, request)
    return predictions.Regress, request
  if kind < 0.8:
    request = inference_pb2.MultiInferenceRequest()
    for _ in range(rng.choice((0, 1, 2))):
      task = request.tasks.add()
      random_spec(rng, task.model_spec)
      task.method_name = rng.choice(("tensorflow/serving/classify", "tensorflow/serving/regress", "nope"))
    random_examples(rng, request)
    return predictions.MultiInference, request
  if kind < 0.9:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    if rng.random() < 0.9:
      random_spec(rng, request.model_spec)
    request.metadata_field.extend(rng.choice(([], ["signature_def"], ["signature_def", "nope"], ["nope"])))
    return predictions.GetModelMetadata, request
  request = get_model_status_pb2.GetModelStatusRequest()
  if rng.random() < 0.9:
    random_spec(rng, request.model_spec)
  return models.GetModelStatus, request


def random_json(rng: random.Random, depth: int = 0):
  kind = rng.random()
  if depth > 3 or kind < 0.3:
    return rng.choice((1, -1, 2 ** 70, 1.5, 1e308 * 10, True, None, "a", "", {"b64": "!!"}, {"b64": "YQ=="},
                       {"b64": 5}))
  if kind < 0.7:
    return [random_json(rng, depth + 1) for _ in range(rng.choice((0, 1, 2, 3)))]
  return {rng.choice(("x", "y", "b64", "user_id", "movie_id")): random_json(rng, depth + 1)
          for _ in range(rng.choice((0, 1, 2)))}


def random_rest_request(rng: random.Random):
  """(method, path, body bytes) of a random malformed (or, by chance, valid) REST request."""
  model = rng.choice(("half_plus_two", "ncf", "nope"))
  version = rng.choice(("", "", "/versions/1", "/versions/99", "/labels/canary", "/versions/x"))
  kind = rng.random()
  if kind < 0.15:
    return "GET", f"/v1/models/{model}{version}" + rng.choice(("", "/metadata", ":predict", "/junk")), b""
  path = f"/v1/models/{model}{version}:" + rng.choice(("predict", "predict", "classify", "regress", "nope"))
  if kind < 0.3:
    return "POST", path, rng.choice((rng.randbytes(rng.randrange(0, 40)), b"{", b"[]", b"null", b"\"x\"", b"",
                                     b"[" * 100_000 + b"]" * 100_000, b"{\"instances\": [1, 2" ))
  body = {}
  for key in rng.sample(("instances", "inputs", "signature_name", "examples", "context"), rng.choice((0, 1, 2, 3))):
    body[key] = random_json(rng)
  if rng.random() < 0.3:
    body["instances"] = rng.choice(([[1.0], [2.0]], [1.0, 2.0], [{"x": [1.0]}], [[1.0], [2.0, 3.0]],
                                    [{"user_id": "1", "movie_id": "2"}], [[[1.0]] * 3] * 3, [[1.0]] * 9))
  if rng.random() < 0.2:
    body["signature_name"] = rng.choice((5, None, [], "predict", "recommend", "serving_default", "nope"))
  return "POST", path, json.dumps(body).encode()


def test_malformed_requests_get_proper_statuses_and_cost_no_memory(server):
  rng = random.Random(SEED)
  channel = grpc.insecure_channel(f"localhost:{server.grpc_port}")
  predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
  models = model_service_pb2_grpc.ModelServiceStub(channel)
  seen = {}

  def grpc_round(count: int) -> None:
    for i in range(count):
      method, request = random_grpc_call(rng, predictions, models)
      try:
        method(request, timeout=TIMEOUT_S)
        code = grpc.StatusCode.OK
      except grpc.RpcError as e:
        code = e.code()
        assert code in ALLOWED_CODES, f"gRPC request {i} ({type(request).__name__}) got {code}: {e.details()}"
        if "--max_request_elements" in e.details():
          seen["over the element cap"] = seen.get("over the element cap", 0) + 1
      seen[code.name] = seen.get(code.name, 0) + 1

  def rest_round(count: int) -> None:
    for i in range(count):
      method, path, body = random_rest_request(rng)
      connection = http.client.HTTPConnection("localhost", server.rest_port, timeout=TIMEOUT_S)
      try:
        connection.request(method, path, body=body if method == "POST" else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
      finally:
        connection.close()
      assert response.status == 200 or 400 <= response.status < 500, (
          f"REST request {i} {method} {path} {body[:200]!r} got {response.status}: {answer[:300]!r}")
      if response.status != 200:
        assert "error" in json.loads(answer), answer[:300]
      seen[f"HTTP {response.status}"] = seen.get(f"HTTP {response.status}", 0) + 1

  grpc_round(200)  # warm up: first calls of each signature, batch queues, gRPC's buffers
  rest_round(100)
  before = rss_mb()
  grpc_round(GRPC_REQUESTS)
  rest_round(REST_REQUESTS)
  grown = rss_mb() - before
  assert grown < MAX_RSS_GROWTH_MB, f"RSS grew {grown:.0f} MB over the fuzzing ({seen})"
  # The fuzzing reached the checks it is about (not only unknown models): shapes, the element cap, JSON.
  assert seen.get("INVALID_ARGUMENT", 0) > GRPC_REQUESTS / 5 and seen.get("over the element cap", 0) > 20, seen
  assert seen.get("HTTP 400", 0) > REST_REQUESTS / 4 and seen.get("OK", 0) and seen.get("HTTP 200", 0), seen

  response = predictions.Predict(predict_request("half_plus_two", x_input(1.0, 2.0)), timeout=TIMEOUT_S)
  np.testing.assert_allclose(np.frombuffer(response.outputs["y"].tensor_content, np.float32), [2.5, 3.0])
  ncf = predictions.Predict(predict_request("ncf", {"user_id": np.array([b"1"], dtype=object)}, "recommend"),
                            timeout=TIMEOUT_S)
  assert ncf.outputs["movie_ids"].tensor_shape.dim[0].size == 1
  channel.close()


def test_rest_framing_errors_get_an_answer(server):
  """Headers a client cannot get right by JSON alone: a Content-Length that is not a number, a chunked body (no
  length), a length beyond the body limit, and an HTTP method the API does not have."""
  def exchange(raw: bytes) -> bytes:
    with socket.create_connection(("localhost", server.rest_port), timeout=TIMEOUT_S) as sock:
      sock.sendall(raw)
      chunks = []
      while True:
        chunk = sock.recv(65536)
        if not chunk:
          return b"".join(chunks)
        chunks.append(chunk)

  def status(raw: bytes) -> int:
    return int(exchange(raw).split(b" ", 2)[1])

  path = b"/v1/models/half_plus_two:predict"
  assert status(b"POST " + path + b" HTTP/1.1\r\nContent-Length: x\r\n\r\n") == 411
  assert status(b"POST " + path + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n") == 411
  too_big = exchange(b"POST " + path + b" HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n{")
  assert int(too_big.split(b" ", 2)[1]) == 413 and b"--max_request_bytes" in too_big
  assert status(b"DELETE " + path + b" HTTP/1.1\r\nConnection: close\r\n\r\n") == 405
