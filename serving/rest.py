"""TF Serving's REST API (row `instances` and columnar `inputs` formats) and the Prometheus metrics path.

POST /v1/models/NAME[/versions/N|/labels/L]:predict|:classify|:regress
GET  /v1/models/NAME[/versions/N|/labels/L]            model status
GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   signature defs
Errors answer {"error": message} with the HTTP status TF Serving maps the gRPC code to.
"""
import base64
import binascii
import http.server
import json
import logging
import re
import threading
from typing import Any, Dict

import grpc
import numpy as np
from google.protobuf import json_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import regression_pb2

from serving import errors
from serving import inference
from serving import metrics as metrics_lib
from serving import tensor_codec
from serving import tensors
from serving.servable import Servable
from serving.server_core import ServerCore

log = logging.getLogger(__name__)

ENTRYPOINT = "REST"  # the request_latency metric's entrypoint label
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>-?\d+)|/labels/(?P<label>[^/:]+))?"
                   r"(?::(?P<method>predict|classify|regress)|/(?P<metadata>metadata))?$")
_HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def start(core: ServerCore, port: int, timeout_s: float, max_body_bytes: int) -> http.server.ThreadingHTTPServer:
  """Serves the REST API of `core` on `port` in a background thread; `timeout_s` bounds each connection,
  `max_body_bytes` each request body (--max_request_bytes)."""

  class Handler(_Handler):
    server_core = core
    timeout = timeout_s
    max_body = max_body_bytes

  httpd = http.server.ThreadingHTTPServer(("", port), Handler)
  httpd.daemon_threads = True
  threading.Thread(target=httpd.serve_forever, name="rest-api", daemon=True).start()
  return httpd


class _Handler(http.server.BaseHTTPRequestHandler):
  server_core: ServerCore
  max_body: int
  protocol_version = "HTTP/1.1"

  def log_message(self, format, *args):  # noqa: A002  # http.server's signature
    log.debug("%s " + format, self.address_string(), *args)

  def do_GET(self):  # noqa: N802
    page = self.server_core.prometheus_page(self.path)
    if page is not None:
      self._send(200, page, metrics_lib.CONTENT_TYPE)
      return
    self._dispatch(None)

  def do_POST(self):  # noqa: N802
    length_header = self.headers.get("Content-Length") or "0"
    if not length_header.isdigit() or "Transfer-Encoding" in self.headers:
      self.close_connection = True  # the body's end is unknown: nothing more can be read on this connection
      self._send_error(errors.invalid_argument(
          f"the body needs a Content-Length (a number of bytes), got {length_header!r}"
          + (f" and Transfer-Encoding {self.headers['Transfer-Encoding']!r}" if "Transfer-Encoding" in self.headers
             else "")), 411)
      return
    if int(length_header) > self.max_body:
      self.close_connection = True  # the body is not read
      self._send_error(errors.ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                           f"request body of {length_header} bytes is larger than the server's "
                                           f"limit --max_request_bytes={self.max_body}"), 413)
      return
    body = self.rfile.read(int(length_header))
    if not body.strip():
      self._send_error(errors.invalid_argument("JSON Parse error: The document is empty"))
      return
    try:
      request = json.loads(body)
    except (ValueError, RecursionError) as e:  # RecursionError: nested deeper than Python's parser goes
      self._send_error(errors.invalid_argument(f"JSON Parse error: {type(e).__name__}: {str(e)[:200]}"))
      return
    if not isinstance(request, dict):
      self._send_error(errors.invalid_argument(f"JSON Value: {body[:80].decode(errors='replace')} Is not object"))
      return
    self._dispatch(request)

  def _method_not_allowed(self):
    self._send(405, json.dumps({"error": f"Malformed request: {self.command} {self.path}"}).encode(),
               "application/json")

  do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815

  def _dispatch(self, body):
    match = _PATH.match(self.path)
    if match is None or (body is None) != (match["method"] is None):
      self._send_error(errors.invalid_argument(f"Malformed request: {self.command} {self.path}"), 404)
      return
    spec = model_pb2.ModelSpec(name=match["name"])
    if match["version"] is not None:
      spec.version.value = int(match["version"])
    elif match["label"] is not None:
      spec.version_label = match["label"]
    try:
      if match["method"]:
        signature_name = body.get("signature_name", "")
        if not isinstance(signature_name, str):
          raise errors.invalid_argument(f"JSON Value: {json.dumps(signature_name)[:80]} not formatted correctly. "
                                        "'signature_name' key must be a string value.")
        spec.signature_name = signature_name
        result = self._infer(match["method"], spec, body)
      elif match["metadata"]:
        result = self._metadata(spec)
      else:
        statuses = self.server_core.status(spec)
        result = json_format.MessageToDict(
            get_model_status_pb2.GetModelStatusResponse(model_version_status=statuses),
            preserving_proto_field_name=True, including_default_value_fields=True)
    except errors.ServingError as e:
      self._send_error(e)
      return
    self._send(200, json.dumps(result).encode(), "application/json")

  def _infer(self, method: str, spec: model_pb2.ModelSpec, body: Dict[str, Any]) -> Dict[str, Any]:
    if method == "predict":
      return self.server_core.handle("predict", spec, ENTRYPOINT, lambda s: _predict(s, spec, body))
    if method == "classify":
      request = classification_pb2.ClassificationRequest(model_spec=spec, input=_examples(body))
      response = self.server_core.handle("classify", spec, ENTRYPOINT, lambda s: inference.classify(s, request))
      return {"results": [[[c.label, c.score] for c in row.classes]
                          for row in response.result.classifications]}
    request = regression_pb2.RegressionRequest(model_spec=spec, input=_examples(body))
    response = self.server_core.handle("regress", spec, ENTRYPOINT, lambda s: inference.regress(s, request))
    return {"results": [r.value for r in response.result.regressions]}

  def _metadata(self, spec: model_pb2.ModelSpec) -> Dict[str, Any]:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec,
                                                             metadata_field=[inference.SIGNATURE_DEF_FIELD])
    response = self.server_core.handle("get_model_metadata", spec, ENTRYPOINT,
                                       lambda s: inference.metadata(s, request))
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[inference.SIGNATURE_DEF_FIELD].Unpack(signature_defs)
    return {"model_spec": {"name": response.model_spec.name, "signature_name": "",
                           "version": str(response.model_spec.version.value)},
            "metadata": {"signature_def": json_format.MessageToDict(
                signature_defs, preserving_proto_field_name=True, including_default_value_fields=True)}}

  def _send_error(self, error: errors.ServingError, http_status: int = 0) -> None:
    self._send(http_status or _HTTP_STATUS.get(error.code, 500),
               json.dumps({"error": error.message}).encode(), "application/json")

  def _send(self, status: int, body: bytes, content_type: str) -> None:
    self.send_response(status)
    self.send_header("Content-Type", content_type)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)


def _predict(servable: Servable, spec: model_pb2.ModelSpec, body: Dict[str, Any]) -> Dict[str, Any]:
  """Row or columnar JSON -> PredictRequest (typed by the signature) -> JSON in the same format."""
  if "instances" in body and "inputs" in body:
    raise errors.invalid_argument("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to "
                                  "exist")
  if "instances" not in body and "inputs" not in body:
    raise errors.invalid_argument("Missing 'inputs' or 'instances' key")
  signature = servable.signature(spec.signature_name)
  row_format = "instances" in body
  columns = _rows_to_columns(body["instances"], signature.input_specs) if row_format else body["inputs"]
  if not isinstance(columns, dict) or not set(columns) <= set(signature.input_specs):
    if len(signature.input_specs) != 1:
      raise errors.invalid_argument(
          f"signature {signature.name} has inputs {sorted(signature.input_specs)}; name each input")
    columns = {next(iter(signature.input_specs)): columns}
  request = predict_pb2.PredictRequest(model_spec=spec)
  for key, value in columns.items():
    array = _json_to_array(key, value, signature.input_specs[key].dtype)
    try:
      tensor_codec.from_ndarray(array, request.inputs[key])
    except tensor_codec.TensorCodecError as e:
      raise errors.invalid_argument(f"input {key!r}: {e}") from e
  outputs = {key: tensors.to_ndarray(key, proto)
             for key, proto in inference.predict(servable, request).outputs.items()}
  if not row_format:
    values = {key: _array_to_json(value) for key, value in outputs.items()}
    return {"outputs": next(iter(values.values())) if len(values) == 1 else values}
  sizes = {value.shape[0] if value.ndim else None for value in outputs.values()}
  if len(sizes) != 1 or None in sizes:
    raise errors.invalid_argument("row format needs every output to have the same dimension 0; use 'inputs'")
  rows = range(sizes.pop())
  if len(outputs) == 1:
    value = next(iter(outputs.values()))
    return {"predictions": [_array_to_json(value[i]) for i in rows]}
  return {"predictions": [{key: _array_to_json(value[i]) for key, value in outputs.items()} for i in rows]}


def _rows_to_columns(instances: Any, input_specs: Dict[str, Any]) -> Any:
  """[{'a': x0, 'b': y0}, ...] -> {'a': [x0, ...], 'b': [y0, ...]}; a list of bare values stays as it is."""
  if not isinstance(instances, list):
    raise errors.invalid_argument("Expecting 'instances' to be an list/array")
  if not instances:
    raise errors.invalid_argument("No values in 'instances' array")
  named = all(isinstance(row, dict) and "b64" not in row for row in instances)
  if not named:
    return instances
  keys = set(instances[0])
  if any(set(row) != keys for row in instances):
    raise errors.invalid_argument("every instance must name the same inputs")
  return {key: [row[key] for row in instances] for key in keys}


def _json_to_array(name: str, value: Any, dtype_number: int) -> np.ndarray:
  """A JSON value (nested lists) -> the array of the signature's dtype; anything else is INVALID_ARGUMENT."""
  dtype = tensor_codec.BY_NUMBER.get(dtype_number)
  if dtype is None:
    raise errors.invalid_argument(f"input {name!r}: {tensor_codec.dtype_name(dtype_number)} is not supported in JSON")
  try:
    if dtype.number == tensor_codec.STRING:
      return np.array(_decode_strings(value), dtype=object)
    if isinstance(value, (str, dict)) or _holds(value, (str, dict, type(None))):
      raise TypeError("strings, objects and nulls are not numbers")
    return np.array(value, dtype=dtype.numpy)
  except (TypeError, ValueError, OverflowError) as e:
    raise errors.invalid_argument(
        f"JSON Value: {json.dumps(value)[:80]} is not of expected type: {dtype.name} (input {name!r}: {e})") from e


def _holds(value: Any, kinds: tuple) -> bool:
  """True when a nested list holds a value of one of `kinds`."""
  if isinstance(value, list):
    return any(_holds(v, kinds) for v in value)
  return isinstance(value, kinds)


def _decode_strings(value: Any) -> Any:
  if isinstance(value, list):
    return [_decode_strings(v) for v in value]
  if isinstance(value, dict) and set(value) == {"b64"}:
    return _b64decode(value["b64"])
  if isinstance(value, str):
    return value.encode()
  raise errors.invalid_argument(f"expected a string or {{'b64': ...}}, got {str(value)[:80]}")


def _b64decode(text: Any) -> bytes:
  if not isinstance(text, str):
    raise errors.invalid_argument(f"JSON Value: {json.dumps(text)[:80]} not formatted correctly for base64 data")
  try:
    return base64.b64decode(text, validate=True)
  except (binascii.Error, ValueError) as e:
    raise errors.invalid_argument("Unable to base64 decode") from e


def _array_to_json(value: np.ndarray) -> Any:
  if value.dtype == object:
    return _encode_strings(value.tolist())
  return value.tolist()


def _encode_strings(value: Any) -> Any:
  if isinstance(value, list):
    return [_encode_strings(v) for v in value]
  try:
    return value.decode()
  except UnicodeDecodeError:
    return {"b64": base64.b64encode(value).decode()}


def _examples(body: Dict[str, Any]) -> input_pb2.Input:
  """{'examples': [{feature: value}], 'context': {...}} -> Input proto of tf.Examples."""
  if not isinstance(body.get("examples"), list):
    raise errors.invalid_argument("'examples' must be a list of {feature: value} objects")
  if "context" in body and not isinstance(body["context"], dict):
    raise errors.invalid_argument("'context' must be a {feature: value} object")
  request_input = input_pb2.Input()
  if "context" in body:
    target = request_input.example_list_with_context
    target.context.CopyFrom(_example(body["context"]))
  else:
    target = request_input.example_list
  for features in body["examples"]:
    target.examples.add().CopyFrom(_example(features))
  return request_input


def _example(features: Dict[str, Any]) -> example_pb2.Example:
  if not isinstance(features, dict):
    raise errors.invalid_argument(f"an example must be a JSON object, got {features!r}")
  example = example_pb2.Example()
  for key, value in features.items():
    values = value if isinstance(value, list) else [value]
    feature = example.features.feature[key]
    try:
      if all(isinstance(v, int) for v in values):  # bool is an int
        feature.int64_list.value.extend(int(v) for v in values)
      elif all(isinstance(v, (int, float)) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
      else:
        feature.bytes_list.value.extend(_feature_bytes(key, v) for v in values)
    except (ValueError, OverflowError) as e:  # an integer beyond int64, a number beyond float
      raise errors.invalid_argument(f"feature {key!r}: {str(values)[:80]} does not fit its type: {e}") from e
  return example


def _feature_bytes(key: str, value: Any) -> bytes:
  if isinstance(value, dict) and set(value) == {"b64"}:
    return _b64decode(value["b64"])
  if isinstance(value, str):
    return value.encode()
  raise errors.invalid_argument(f"Unexpected element type in feature: {key} ({str(value)[:80]})")
