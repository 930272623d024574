"""The embedded server against TF Serving's own test models: answers, metadata, versions, reloads, errors."""
import json
import re
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.support.serving import HALF_PLUS_THREE
from tests.support.serving import HALF_PLUS_TWO
from tests.support.serving import TWO_VERSIONS
from tests.support.serving import model_entry
from tests.support.serving import predict_request
from tests.support.serving import running_server
from tests.support.serving import tf_serving_testdata
from tests.support.serving import wait_until
from tests.support.serving import write_model_config
from tests.support.serving import x_input

MAX_BATCH_SIZE = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  """half_plus_two and half_plus_three from TF Serving's good_model_config.txt, with batching and REST."""
  testdata = tf_serving_testdata()
  work = tmp_path_factory.mktemp("grpc")
  config = (testdata / "good_model_config.txt").read_text()
  config = config.replace("${TEST_HALF_PLUS_TWO_DIR}", str(testdata / HALF_PLUS_TWO))
  config = config.replace("${TEST_HALF_PLUS_THREE_DIR}", str(testdata / HALF_PLUS_THREE))
  (work / "models.config").write_text(config)
  # 20 ms lets concurrent callers meet in one batch even on a loaded 2-core machine.
  (work / "batching.txt").write_text(f"max_batch_size {{ value: {MAX_BATCH_SIZE} }}\n"
                                     "batch_timeout_micros { value: 20000 }\n"
                                     "max_enqueued_batches { value: 100 }\nnum_batch_threads { value: 2 }\n")
  with running_server(model_config_file=str(work / "models.config"), enable_batching=True,
                      batching_parameters_file=str(work / "batching.txt"), rest_api_port=-1,
                      monitoring_config_file=str(testdata / "monitoring_config.txt")) as running:
    yield running


@pytest.fixture(scope="module")
def stubs(server):
  channel = grpc.insecure_channel(f"localhost:{server.grpc_port}")
  yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
         model_service_pb2_grpc.ModelServiceStub(channel))
  channel.close()


def y_of(response) -> np.ndarray:
  return tf.make_ndarray(response.outputs["y"])


def example_input(x: float) -> input_pb2.Input:
  request_input = input_pb2.Input()
  request_input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
  return request_input


def test_predict_half_plus_two_gives_3_for_2(stubs):
  response = stubs[0].Predict(predict_request("half_plus_two", x_input(2.0)))
  np.testing.assert_array_equal(y_of(response), [[3.0]])
  assert (response.model_spec.name, response.model_spec.version.value,
          response.model_spec.signature_name) == ("half_plus_two", 123, "serving_default")


def test_predict_with_output_filter(stubs):
  response = stubs[0].Predict(predict_request("half_plus_two", x_input(2.0, 4.0), output_filter=["y"]))
  assert set(response.outputs) == {"y"}
  np.testing.assert_array_equal(y_of(response), [[3.0], [4.0]])


def test_second_model_of_the_config_gives_4_for_2(stubs):
  np.testing.assert_array_equal(y_of(stubs[0].Predict(predict_request("half_plus_three", x_input(2.0)))), [[4.0]])


def test_regress_and_classify(stubs):
  spec = model_pb2.ModelSpec(name="half_plus_two", signature_name="regress_x_to_y")
  regression = stubs[0].Regress(regression_pb2.RegressionRequest(model_spec=spec, input=example_input(2.0)))
  assert [r.value for r in regression.result.regressions] == [3.0]
  spec = model_pb2.ModelSpec(name="half_plus_two", signature_name="classify_x_to_y")
  classification = stubs[0].Classify(
      classification_pb2.ClassificationRequest(model_spec=spec, input=example_input(2.0)))
  assert [[c.score for c in row.classes] for row in classification.result.classifications] == [[3.0]]


def test_multi_inference_runs_each_task(stubs):
  request = inference_pb2.MultiInferenceRequest(input=example_input(2.0))
  for signature, method in (("regress_x_to_y", "tensorflow/serving/regress"),
                            ("classify_x_to_y", "tensorflow/serving/classify")):
    request.tasks.add(model_spec=model_pb2.ModelSpec(name="half_plus_two", signature_name=signature),
                      method_name=method)
  results = stubs[0].MultiInference(request).results
  assert results[0].regression_result.regressions[0].value == 3.0
  assert results[1].classification_result.classifications[0].classes[0].score == 3.0


def test_model_status(stubs):
  response = stubs[1].GetModelStatus(
      get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="half_plus_two")))
  assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
      (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]


def test_metadata_matches_tf_serving(stubs, server):
  """GetModelMetadata over gRPC, and over REST byte-for-byte the JSON TF Serving answers for this model."""
  response = stubs[0].GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
      model_spec=model_pb2.ModelSpec(name="half_plus_two"), metadata_field=["signature_def"]))
  signature_defs = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(signature_defs)
  expected = json.loads((tf_serving_testdata() / "half_plus_two_model_metadata.json").read_text())
  assert set(signature_defs.signature_def) == set(expected["metadata"]["signature_def"]["signature_def"])
  assert signature_defs.signature_def["serving_default"].inputs["x"].dtype == tf.float32.as_datatype_enum
  answer = json.loads(rest(server, "GET", "/v1/models/half_plus_two/metadata"))
  expected["model_spec"]["name"] = "half_plus_two"  # TF Serving's file was recorded for a model named "default"
  assert answer == expected


@pytest.mark.parametrize("request_args, code, names", [
    (("nope", x_input(2.0)), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    (("half_plus_two", x_input(2.0), "", 999), grpc.StatusCode.NOT_FOUND, "Specific(half_plus_two, 999)"),
    (("half_plus_two", x_input(2.0), "", None, "nolabel"), grpc.StatusCode.INVALID_ARGUMENT, "nolabel"),
    (("half_plus_two", x_input(2.0), "nosig"), grpc.StatusCode.FAILED_PRECONDITION, '"nosig"'),
    (("half_plus_two", {"z": np.array([[2.0]], np.float32)}), grpc.StatusCode.INVALID_ARGUMENT,
     "Sent extra: {z}. Missing but required: {x}"),
    (("half_plus_two", {**x_input(2.0), "z": np.array([[2.0]], np.float32)}), grpc.StatusCode.INVALID_ARGUMENT,
     "Sent extra: {z}"),
    (("half_plus_two", {}), grpc.StatusCode.INVALID_ARGUMENT, "Missing but required: {x}"),
    (("half_plus_two", {"x": np.array([["2"]])}), grpc.StatusCode.INVALID_ARGUMENT,
     "input 'x' expects DT_FLOAT but DT_STRING"),
    (("half_plus_two", {"x": np.array([1.0, 2.0], np.float32)}), grpc.StatusCode.INVALID_ARGUMENT,
     "input 'x' has shape [2]"),
    (("half_plus_two", x_input(*range(MAX_BATCH_SIZE + 1))), grpc.StatusCode.INVALID_ARGUMENT,
     f"larger than maximum input batch size {MAX_BATCH_SIZE}"),
    (("half_plus_two", x_input(2.0), "", None, "", ["nothere"]), grpc.StatusCode.INVALID_ARGUMENT,
     "output tensor alias not found in signature: nothere"),
])
def test_bad_requests_get_tf_serving_status_codes(stubs, request_args, code, names):
  with pytest.raises(grpc.RpcError) as failed:
    stubs[0].Predict(predict_request(*request_args))
  assert failed.value.code() == code
  assert names in failed.value.details()
  np.testing.assert_array_equal(y_of(stubs[0].Predict(predict_request("half_plus_two", x_input(2.0)))), [[3.0]])


def x_tensor(dims, **values) -> predict_pb2.PredictRequest:
  """A half_plus_two request whose tensor `x` declares `dims` and carries `values` (TensorProto fields)."""
  request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="half_plus_two"))
  request.inputs["x"].CopyFrom(tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, **values))
  request.inputs["x"].tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims)
  return request


@pytest.mark.parametrize("request_, names", [
    # A few bytes that declare 4 * 10^12 floats: refused before any allocation.
    (x_tensor([2_000_000, 2_000_000], float_val=[1.0]), "input 'x' has shape [2000000, 2000000]"),
    (x_tensor([4_000_000_000_000, 1], float_val=[1.0]), "--max_request_elements=10000000"),
    (x_tensor([MAX_BATCH_SIZE + 1, 1], float_val=[1.0]), "Task size 9 is larger than maximum input batch size 8"),
    (x_tensor([2, 1], tensor_content=b"\0" * 12), "tensor parsing error: x"),
    (x_tensor([3, 1], float_val=[1.0, 2.0]), "tensor parsing error: x"),
    (x_tensor([-1, 1], float_val=[1.0]), "tensor parsing error: x"),
    (predict_pb2.PredictRequest(), "Missing ModelSpec"),
])
def test_requests_are_checked_before_tensors_are_built(stubs, request_, names):
  with pytest.raises(grpc.RpcError) as failed:
    stubs[0].Predict(request_)
  assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert names in failed.value.details()
  # TF Serving's single-value form: one value fills the declared shape.
  np.testing.assert_array_equal(y_of(stubs[0].Predict(x_tensor([3, 1], float_val=[2.0]))), [[3.0]] * 3)


def test_missing_model_spec_is_invalid_for_status_and_metadata(stubs):
  for call, request in ((stubs[1].GetModelStatus, get_model_status_pb2.GetModelStatusRequest()),
                        (stubs[0].GetModelMetadata, get_model_metadata_pb2.GetModelMetadataRequest(
                            metadata_field=["signature_def"]))):
    with pytest.raises(grpc.RpcError) as failed:
      call(request)
    assert (failed.value.code(), failed.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def test_classify_on_a_predict_signature_is_invalid(stubs):
  spec = model_pb2.ModelSpec(name="half_plus_two", signature_name="serving_default")
  with pytest.raises(grpc.RpcError) as failed:
    stubs[0].Classify(classification_pb2.ClassificationRequest(model_spec=spec, input=example_input(2.0)))
  assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "tensorflow/serving/classify" in failed.value.details()


def test_concurrent_callers_get_their_own_rows_and_batches_form(stubs, server):
  """16 callers x 10 requests of 1-3 distinct rows each: every answer is 0.5 * x + 2 of its own x."""
  import concurrent.futures  # pylint: disable=import-outside-toplevel

  def caller(i):
    for j in range(10):
      xs = [1000.0 * i + 10 * j + k for k in range(1 + (i + j) % 3)]
      y = y_of(stubs[0].Predict(predict_request("half_plus_two", x_input(*xs))))
      np.testing.assert_array_equal(y, 0.5 * np.array(xs, np.float32).reshape(-1, 1) + 2)

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    list(pool.map(caller, range(16)))
  sizes = batch_size_counts(server.metrics.exposition().decode(), "half_plus_two")
  assert sizes["le=1"] < sizes["count"], "no batch held more than one row"


def batch_size_counts(exposition: str, model: str) -> dict:
  counts = {}
  for line in exposition.splitlines():
    if (line.startswith(":tensorflow:serving:batching_session:processed_batch_size") and f'"{model}"' in line
        and 'signature_name="serving_default"' in line):
      if '_bucket{' in line and 'le="1.0"' in line:
        counts["le=1"] = float(line.split()[-1])
      elif "_count{" in line:
        counts["count"] = float(line.split()[-1])
  return counts


def test_full_batching_queue_is_unavailable(tmp_path):
  """One queued batch allowed and a 5 s timeout: a 1-row request waits in the only batch, so a 4-row request
  (which cannot join it) needs a second batch and is refused."""
  import concurrent.futures  # pylint: disable=import-outside-toplevel
  testdata = tf_serving_testdata()
  (tmp_path / "batching.txt").write_text("max_batch_size { value: 4 }\nbatch_timeout_micros { value: 5000000 }\n"
                                         "max_enqueued_batches { value: 1 }\nnum_batch_threads { value: 1 }\n")
  with running_server(model_name="half_plus_two", model_base_path=str(testdata / HALF_PLUS_TWO),
                      enable_batching=True, batching_parameters_file=str(tmp_path / "batching.txt")) as server:
    with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(stub.Predict, predict_request("half_plus_two", x_input(2.0)))
        codes = []
        while not waiting.done() and grpc.StatusCode.UNAVAILABLE not in codes:
          try:
            stub.Predict(predict_request("half_plus_two", x_input(1.0, 2.0, 3.0, 4.0)))
            codes.append(grpc.StatusCode.OK)
          except grpc.RpcError as e:
            codes.append(e.code())
            assert "queue" in e.details() and "full" in e.details()
        try:  # the 1-row request either waited its 5 s and ran, or was itself refused if it came second
          np.testing.assert_array_equal(y_of(waiting.result()), [[3.0]])
        except grpc.RpcError as e:
          codes.append(e.code())
      np.testing.assert_array_equal(y_of(stub.Predict(predict_request("half_plus_two", x_input(1.0, 2.0, 3.0, 4.0)))),
                                    [[2.5], [3.0], [3.5], [4.0]])
  assert grpc.StatusCode.UNAVAILABLE in codes


def test_a_taken_rest_port_fails_start_and_stops_what_had_started():
  import errno  # pylint: disable=import-outside-toplevel
  import socket  # pylint: disable=import-outside-toplevel
  from serving.flags import ServerOptions  # pylint: disable=import-outside-toplevel
  from serving.server import ModelServer  # pylint: disable=import-outside-toplevel
  testdata = tf_serving_testdata()
  with socket.socket() as taken:
    taken.bind(("", 0))
    taken.listen()
    server = ModelServer(ServerOptions(port=0, rest_api_port=taken.getsockname()[1], model_name="half_plus_two",
                                       model_base_path=str(testdata / HALF_PLUS_TWO)))
    with pytest.raises(OSError) as raised:
      server.start()
  assert raised.value.errno == errno.EADDRINUSE
  with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:  # the gRPC port was let go
    with pytest.raises(grpc.RpcError) as refused:
      prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
          predict_request("half_plus_two", x_input(2.0)), timeout=5)
  assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_version_policy_labels_and_specific_versions(tmp_path):
  testdata = tf_serving_testdata()
  config = write_model_config(tmp_path / "models.config", [model_entry(
      "two", testdata / TWO_VERSIONS, "model_version_policy { all {} }\n"
      '    version_labels { key: "stable" value: 123 }\n    version_labels { key: "canary" value: 124 }')])
  with running_server(model_config_file=str(config), file_system_poll_wait_seconds=0) as server:
    with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      answered = {
          "latest": stub.Predict(predict_request("two", x_input(2.0))).model_spec.version.value,
          "123": stub.Predict(predict_request("two", x_input(2.0), version=123)).model_spec.version.value,
          "stable": stub.Predict(predict_request("two", x_input(2.0), label="stable")).model_spec.version.value,
          "canary": stub.Predict(predict_request("two", x_input(2.0), label="canary")).model_spec.version.value,
      }
      assert answered == {"latest": 124, "123": 123, "stable": 123, "canary": 124}
      status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
          get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="two")))
      assert [s.version for s in status.model_version_status] == [124, 123]
      with pytest.raises(grpc.RpcError):
        stub.Predict(predict_request("two", {"x": np.zeros([1, 2], np.float32)}, label="canary"))
    # Per version and label, so that canary and stable can be compared (TF Serving counts per model only).
    metrics = server.metrics.exposition().decode()
    for labels in ('status="OK",version="124",version_label="canary"',
                   'status="INVALID_ARGUMENT",version="124",version_label="canary"',
                   'status="OK",version="123",version_label="stable"', 'status="OK",version="124",version_label=""'):
      assert f':recsys:serving:version_request_count_total{{model_name="two",{labels}}} 1.0' in metrics
    assert ':recsys:serving:version_request_latency_count{model_name="two",version="123",version_label="stable"}' \
        in metrics
    summary = server.metrics.version_summary()
    assert [line.split(", latency")[0] for line in summary] == [
        "model two version 123: 1 requests, 0 errors", "model two version 123 (label stable): 1 requests, 0 errors",
        "model two version 124: 1 requests, 0 errors", "model two version 124 (label canary): 2 requests, 1 errors"]
    assert all(re.search(r"latency p50 \d+\.\d\d ms p99 \d+\.\d\d ms$", line) for line in summary)
    assert server.metrics.version_summary() == []  # each summary covers the requests since the previous one


def test_latest_policy_serves_only_the_newest(tmp_path):
  testdata = tf_serving_testdata()
  with running_server(model_name="two", model_base_path=str(testdata / TWO_VERSIONS),
                      file_system_poll_wait_seconds=0) as server:
    with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      assert stub.Predict(predict_request("two", x_input(2.0))).model_spec.version.value == 124
      with pytest.raises(grpc.RpcError) as failed:
        stub.Predict(predict_request("two", x_input(2.0), version=123))
      assert failed.value.code() == grpc.StatusCode.NOT_FOUND


def test_config_reload_switches_to_half_plus_three(tmp_path):
  """HandleReloadConfigRequest swaps the model set; then editing the polled config file swaps it back."""
  testdata = tf_serving_testdata()
  config_file = write_model_config(tmp_path / "models.config",
                                   [model_entry("half_plus_two", testdata / HALF_PLUS_TWO)])
  with running_server(model_config_file=str(config_file), model_config_file_poll_wait_seconds=1,
                      file_system_poll_wait_seconds=0) as server:
    with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      models = model_service_pb2_grpc.ModelServiceStub(channel)
      new_config = model_server_config_pb2.ModelServerConfig()
      text_format.Parse(f"model_config_list {{ config {{ {model_entry('half_plus_three', testdata / HALF_PLUS_THREE)}"
                        " } }", new_config)
      response = models.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=new_config))
      assert response.status.error_code == 0
      np.testing.assert_array_equal(y_of(stub.Predict(predict_request("half_plus_three", x_input(2.0)))), [[4.0]])
      with pytest.raises(grpc.RpcError) as failed:
        stub.Predict(predict_request("half_plus_two", x_input(2.0)))
      assert failed.value.code() == grpc.StatusCode.NOT_FOUND

      config_file.write_text(config_file.read_text().replace('"half_plus_two"', '"renamed_two"'))

      def renamed_two_answers():
        try:
          return y_of(stub.Predict(predict_request("renamed_two", x_input(2.0)))).tolist() == [[3.0]]
        except grpc.RpcError:
          return False

      wait_until(renamed_two_answers, "the polled config file to add renamed_two")


def test_reload_with_a_label_on_a_missing_version_fails_and_keeps_serving(stubs, server):
  testdata = tf_serving_testdata()
  bad = model_server_config_pb2.ModelServerConfig()
  text_format.Parse(f"model_config_list {{ config {{ {model_entry('half_plus_two', testdata / HALF_PLUS_TWO)} "
                    'version_labels { key: "stable" value: 7 } } }', bad)
  bad.model_config_list.config.add().CopyFrom(model_server_config_pb2.ModelConfig(
      name="half_plus_three", base_path=str(testdata / HALF_PLUS_THREE), model_platform="tensorflow"))
  with pytest.raises(grpc.RpcError) as failed:
    stubs[1].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=bad))
  assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
  assert "version 7 of model half_plus_two" in failed.value.details()
  np.testing.assert_array_equal(y_of(stubs[0].Predict(predict_request("half_plus_two", x_input(2.0)))), [[3.0]])


def rest(server, method: str, path: str, body=None):
  request = urllib.request.Request(f"http://localhost:{server.rest_port}{path}", method=method,
                                   data=None if body is None else json.dumps(body).encode())
  with urllib.request.urlopen(request, timeout=30) as response:
    return response.read().decode()


def test_rest_row_and_columnar_predict(server):
  assert json.loads(rest(server, "POST", "/v1/models/half_plus_two:predict",
                         {"instances": [[2.0], [4.0]]})) == {"predictions": [[3.0], [4.0]]}
  assert json.loads(rest(server, "POST", "/v1/models/half_plus_two/versions/123:predict",
                         {"inputs": {"x": [[2.0]]}})) == {"outputs": [[3.0]]}
  assert json.loads(rest(server, "POST", "/v1/models/half_plus_three:predict",
                         {"signature_name": "serving_default", "instances": [{"x": [2.0]}]})) == {
                             "predictions": [[4.0]]}


def test_rest_regress_classify_status_and_metrics(server):
  body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
  assert json.loads(rest(server, "POST", "/v1/models/half_plus_two:regress", body)) == {"results": [3.0]}
  body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
  assert json.loads(rest(server, "POST", "/v1/models/half_plus_two:classify", body)) == {"results": [[["", 3.0]]]}
  assert json.loads(rest(server, "GET", "/v1/models/half_plus_two")) == {"model_version_status": [
      {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
  metrics = rest(server, "GET", "/monitoring/prometheus/metrics")
  assert ':tensorflow:serving:request_count_total{model_name="half_plus_two",status="OK"}' in metrics
  assert ':tensorflow:serving:request_latency_bucket{API="predict",entrypoint="REST"' in metrics


@pytest.mark.parametrize("path, body, status, names", [
    ("/v1/models/nope:predict", {"instances": [[2.0]]}, 404, "Servable not found for request: Latest(nope)"),
    ("/v1/models/half_plus_two:predict", {"instances": [["a"]]}, 400, "input 'x'"),
    ("/v1/models/half_plus_two:predict", {"signature_name": "nosig", "instances": [[2.0]]}, 400, "nosig"),
    ("/v1/models/half_plus_two:predict", {}, 400, "'instances'"),
])
def test_rest_errors_are_json(server, path, body, status, names):
  with pytest.raises(urllib.error.HTTPError) as failed:
    rest(server, "POST", path, body)
  assert failed.value.code == status
  assert names in json.loads(failed.value.read())["error"]
