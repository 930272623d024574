"""A gRPC client for one model behind TF Serving: Predict on any signature, GetModelStatus and GetModelMetadata,
with the version pinned by number or label.

It needs only grpcio, protobuf and numpy: the TF Serving protos come from `serving.client_protos` (generated at
build time by serving/generate_client_protos.py) and tensors are converted by `serving.tensor_codec`, so
importing it does not import TensorFlow. NumPy and the codec are imported by the calls that convert tensors, so
`status` and `metadata` need neither (`recsys status` starts in about half a second).
"""
from typing import TYPE_CHECKING, Dict, Optional

import grpc

from serving.client_protos.tensorflow_serving.apis import get_model_metadata_pb2
from serving.client_protos.tensorflow_serving.apis import get_model_status_pb2
from serving.client_protos.tensorflow_serving.apis import model_pb2
from serving.client_protos.tensorflow_serving.apis import model_service_pb2_grpc
from serving.client_protos.tensorflow_serving.apis import predict_pb2
from serving.client_protos.tensorflow_serving.apis import prediction_service_pb2_grpc

if TYPE_CHECKING:
  import numpy as np

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class ServerUnreachableError(ConnectionError):
  """No model server answered at the target within the deadline."""


def model_spec(model_name: str, signature_name: str = "", version: Optional[int] = None,
               version_label: str = "") -> model_pb2.ModelSpec:
  """The ModelSpec of `model_name` pinned to `version`, else to `version_label`, else to the latest version."""
  spec = model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
  if version is not None:
    spec.version.value = version
  elif version_label:
    spec.version_label = version_label
  return spec


def predict_request(spec: model_pb2.ModelSpec, inputs: Dict[str, "np.ndarray"]) -> predict_pb2.PredictRequest:
  """A PredictRequest for `spec` with `inputs` {input name: array} (strings: object arrays of bytes or str)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from serving import tensor_codec  # pylint: disable=import-outside-toplevel

  request = predict_pb2.PredictRequest(model_spec=spec)
  for key, value in inputs.items():
    tensor_codec.from_ndarray(np.asarray(value), request.inputs[key])
  return request


class ServingClient:
  """Calls one model on a TF Serving (or embedded) server.

  Args:
    target: host:port of the gRPC API.
    model_name: the served model name.
    timeout_s: deadline of every call.
    version / version_label: pin a version (default: the latest available).
  """

  def __init__(self, target: str, model_name: str, timeout_s: float = 10.0, version: Optional[int] = None,
               version_label: str = ""):
    self.target = target
    self.model_name = model_name
    self.timeout_s = timeout_s
    self._version = version
    self._version_label = version_label
    self._channel = grpc.insecure_channel(target)
    self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
    self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

  def close(self) -> None:
    self._channel.close()

  def __enter__(self) -> "ServingClient":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def model_spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
    return model_spec(self.model_name, signature_name, self._version, self._version_label)

  def _call(self, method, request):
    try:
      return method(request, timeout=self.timeout_s)
    except grpc.RpcError as e:
      if e.code() in _UNREACHABLE:
        raise ServerUnreachableError(
            f"no model server at {self.target} ({e.code().name}: {e.details()}); start one with "
            "`make serve` or `recsys serve`, or pass --target HOST:PORT") from e
      raise

  def predict_raw(self, signature_name: str, inputs: Dict[str, "np.ndarray"]) -> predict_pb2.PredictResponse:
    """Predict on `signature_name` with `inputs` {input name: array}; returns the response as it came.

    Raises:
      ServerUnreachableError: no server answered; grpc.RpcError: the server refused the request.
    """
    return self._call(self._predictions.Predict, predict_request(self.model_spec(signature_name), inputs))

  def predict_arrays(self, signature_name: str, inputs: Dict[str, "np.ndarray"]) -> Dict[str, "np.ndarray"]:
    """predict_raw() with the outputs decoded: {output name: array}."""
    response = self.predict_raw(signature_name, inputs)
    from serving import tensor_codec  # pylint: disable=import-outside-toplevel

    return {key: tensor_codec.to_ndarray(value) for key, value in response.outputs.items()}

  def status(self) -> get_model_status_pb2.GetModelStatusResponse:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=self.model_spec())
    return self._call(self._models.GetModelStatus, request)

  def metadata(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=self.model_spec(),
                                                             metadata_field=["signature_def"])
    return self._call(self._predictions.GetModelMetadata, request)
