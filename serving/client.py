"""gRPC client for the NCF model behind TF Serving (official tensorflow_serving.apis stubs), used by the CLI.

Signatures (the export contract): `predict` (user_id [N], movie_id [N] -> score, interaction, liked [N]) and
`recommend` (user_id [N] -> movie_ids [N, K], scores [N, K]).
"""
import csv
import dataclasses
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

DEFAULT_TARGET = "localhost:8500"
DEFAULT_MODEL = "ncf"
PREDICT_SIGNATURE = "predict"
RECOMMEND_SIGNATURE = "recommend"
# An id no vocabulary holds: every out-of-vocabulary id gets the same embedding, so a user whose answers equal
# this probe's was not in the training data.
OOV_PROBE_ID = "\x00recsys-oov-probe"
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class ServerUnreachableError(ConnectionError):
  """No model server answered at the target within the deadline."""


@dataclasses.dataclass(frozen=True)
class Prediction:
  movie_id: str
  score: float
  interaction: float
  liked: float


@dataclasses.dataclass(frozen=True)
class Recommendation:
  movie_id: str
  score: float


class ServingClient:
  """Calls one model on a TF Serving (or embedded) server.

  Args:
    target: host:port of the gRPC API.
    model_name: the served model name.
    timeout_s: deadline of every call.
    version / version_label: pin a version (default: the latest available).
  """

  def __init__(self, target: str = DEFAULT_TARGET, model_name: str = DEFAULT_MODEL, timeout_s: float = 10.0,
               version: Optional[int] = None, version_label: str = ""):
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
    spec = model_pb2.ModelSpec(name=self.model_name, signature_name=signature_name)
    if self._version is not None:
      spec.version.value = self._version
    elif self._version_label:
      spec.version_label = self._version_label
    return spec

  def _call(self, method, request):
    try:
      return method(request, timeout=self.timeout_s)
    except grpc.RpcError as e:
      if e.code() in _UNREACHABLE:
        raise ServerUnreachableError(
            f"no model server at {self.target} ({e.code().name}: {e.details()}); start one with "
            "`make serve` or `recsys serve`, or pass --target HOST:PORT") from e
      raise

  def predict_raw(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> predict_pb2.PredictResponse:
    request = predict_pb2.PredictRequest(model_spec=self.model_spec(signature_name))
    for key, value in inputs.items():
      request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return self._call(self._predictions.Predict, request)

  def predict(self, user_id: str, movie_ids: Sequence[str]) -> List[Prediction]:
    """Scores `user_id` against each movie: one row per movie, in the given order."""
    response = self.predict_raw(PREDICT_SIGNATURE, {
        "user_id": np.array([user_id.encode()] * len(movie_ids), dtype=object),
        "movie_id": np.array([m.encode() for m in movie_ids], dtype=object)})
    out = {key: tf.make_ndarray(value) for key, value in response.outputs.items()}
    return [Prediction(movie, float(out["score"][i]), float(out["interaction"][i]), float(out["liked"][i]))
            for i, movie in enumerate(movie_ids)]

  def recommend(self, user_id: str, k: Optional[int] = None) -> List[Recommendation]:
    """The model's top movies for `user_id` (K fixed at export), best first; `k` keeps the first k.

    Raises:
      ValueError: `k` is larger than the K the model was exported with.
    """
    response = self.predict_raw(RECOMMEND_SIGNATURE, {"user_id": np.array([user_id.encode()], dtype=object)})
    movie_ids = tf.make_ndarray(response.outputs["movie_ids"])[0]
    scores = tf.make_ndarray(response.outputs["scores"])[0]
    if k is not None and k > len(movie_ids):
      raise ValueError(f"the model {self.model_name} returns at most {len(movie_ids)} movies; asked for {k}")
    return [Recommendation(m.decode(), float(s)) for m, s in zip(movie_ids[:k], scores[:k])]

  def is_out_of_vocabulary(self, user_id: str) -> bool:
    """True when the model scores `user_id` exactly like an id it never saw (it was not in training)."""
    return self.recommend(user_id) == self.recommend(OOV_PROBE_ID)

  def status(self) -> get_model_status_pb2.GetModelStatusResponse:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=self.model_spec())
    return self._call(self._models.GetModelStatus, request)

  def metadata(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
    request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=self.model_spec(),
                                                             metadata_field=["signature_def"])
    return self._call(self._predictions.GetModelMetadata, request)


def read_titles(movies_csv: str) -> Dict[str, str]:
  """movies.csv (movieId,title,genres) -> {movie id: title}."""
  with open(movies_csv, newline="", encoding="utf-8") as f:
    return {row["movieId"]: row["title"] for row in csv.DictReader(f)}
