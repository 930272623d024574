"""Load test of the recommender: random `predict` (one user x N movies) or `recommend` requests through the
generic serving.loadtest."""
import random
from typing import Optional, Sequence

import numpy as np

from components import signatures
from pipeline.recommender.client import DEFAULT_MODEL
from serving import client as client_lib
from serving import loadtest
from serving.client_protos.tensorflow_serving.apis import model_pb2
from serving.client_protos.tensorflow_serving.apis import predict_pb2

MODES = (signatures.PREDICT, signatures.RECOMMEND)  # a mode is the signature it calls
ML100K_USERS = tuple(str(i) for i in range(1, 944))  # MovieLens 100K's ids, as the data spells them
ML100K_MOVIES = tuple(str(i) for i in range(1, 1683))


def request_factory(spec: model_pb2.ModelSpec, mode: str, users: Sequence[str], movies: Sequence[str],
                    movies_per_request: int) -> loadtest.RequestFactory:
  """Builds random `mode` requests for the model `spec` names: a random user, and for `predict`
  `movies_per_request` random movies."""

  def make_request(rng: random.Random) -> predict_pb2.PredictRequest:
    user = rng.choice(users).encode()
    mode_spec = model_pb2.ModelSpec()
    mode_spec.CopyFrom(spec)
    mode_spec.signature_name = mode
    if mode == signatures.PREDICT:
      inputs = {signatures.USER_ID_INPUT: np.array([user] * movies_per_request, dtype=object),
                signatures.MOVIE_ID_INPUT: np.array([rng.choice(movies).encode() for _ in range(movies_per_request)],
                                                    dtype=object)}
    else:
      inputs = {signatures.USER_ID_INPUT: np.array([user], dtype=object)}
    return client_lib.predict_request(mode_spec, inputs)

  return make_request


def run_loadtest(target: str, mode: str = signatures.PREDICT, concurrency: int = 8, duration_s: float = 10.0,
                 rate: Optional[float] = None, model_name: str = DEFAULT_MODEL,
                 users: Sequence[str] = ML100K_USERS, movies: Sequence[str] = ML100K_MOVIES,
                 movies_per_request: int = 1, timeout_s: float = 5.0, seed: int = 0,
                 model_version: Optional[int] = None, version_label: str = "") -> loadtest.LoadTestResult:
  """Sends `mode` requests ('predict' 1 user x movies_per_request movies, or 'recommend') for `duration_s`.

  Closed loop when `rate` is None, open loop otherwise (see serving.loadtest.run_loadtest). `model_version`
  or `version_label` pin a version (default: the latest).

  Raises:
    ValueError: `mode` is not one of MODES.
    serving.client.ServerUnreachableError: no server is reachable at `target` within `timeout_s`.
  """
  if mode not in MODES:
    raise ValueError(f"mode must be 'predict' or 'recommend', got {mode!r}")
  spec = client_lib.model_spec(model_name, version=model_version, version_label=version_label)
  make_request = request_factory(spec, mode, users, movies, movies_per_request)
  return loadtest.run_loadtest(target, make_request, mode, concurrency, duration_s, rate, timeout_s, seed)
