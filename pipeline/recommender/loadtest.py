"""Load test of the recommender: random `predict` (one user x N movies) or `recommend` requests, or a mix of
both, through the generic serving.loadtest."""
import json
import random
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from components import signatures
from pipeline.recommender.client import DEFAULT_MODEL
from serving import client as client_lib
from serving import loadtest
from serving.client_protos.tensorflow_serving.apis import model_pb2
from serving.client_protos.tensorflow_serving.apis import predict_pb2

MIXED = "mixed"  # each request calls `predict` or `recommend`, half and half
MODES = (signatures.PREDICT, signatures.RECOMMEND, MIXED)  # a mode is the signature it calls, or MIXED
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
    signature = rng.choice((signatures.PREDICT, signatures.RECOMMEND)) if mode == MIXED else mode
    mode_spec.signature_name = signature
    if signature == signatures.PREDICT:
      inputs = {signatures.USER_ID_INPUT: np.array([user] * movies_per_request, dtype=object),
                signatures.MOVIE_ID_INPUT: np.array([rng.choice(movies).encode() for _ in range(movies_per_request)],
                                                    dtype=object)}
    else:
      inputs = {signatures.USER_ID_INPUT: np.array([user], dtype=object)}
    return client_lib.predict_request(mode_spec, inputs)

  return make_request


def read_ids(path: Path) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
  """(users, movies) from a JSON file {"users": [...], "movies": [...]} of id strings (what `recsys replay`
  writes for its traffic).

  Raises:
    ValueError: naming the file, when a list is missing, empty or holds anything but strings.
  """
  data = json.loads(Path(path).read_text())
  ids = []
  for key in ("users", "movies"):
    values = data.get(key) if isinstance(data, dict) else None
    if not values or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
      raise ValueError(f"{path}: expected a non-empty list of id strings under {key!r}")
    ids.append(tuple(values))
  return ids[0], ids[1]


def run_loadtest(target: str, mode: str = signatures.PREDICT, concurrency: int = 8, duration_s: float = 10.0,
                 rate: Optional[float] = None, model_name: str = DEFAULT_MODEL,
                 users: Sequence[str] = ML100K_USERS, movies: Sequence[str] = ML100K_MOVIES,
                 movies_per_request: int = 1, timeout_s: float = 5.0, seed: int = 0,
                 model_version: Optional[int] = None, version_label: str = "",
                 trace_path: Optional[Path] = None, think_s: float = 0.0) -> loadtest.LoadTestResult:
  """Sends `mode` requests ('predict' 1 user x movies_per_request movies, 'recommend', or 'mixed': either,
  half and half) for `duration_s` or until SIGTERM/SIGINT; `trace_path`: one CSV row per request; `think_s`:
  what each closed-loop caller waits between an answer and its next request.

  Closed loop when `rate` is None, open loop otherwise (see serving.loadtest.run_loadtest). `model_version`
  or `version_label` pin a version (default: the latest).

  Raises:
    ValueError: `mode` is not one of MODES.
    serving.client.ServerUnreachableError: no server is reachable at `target` within `timeout_s`.
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
  spec = client_lib.model_spec(model_name, version=model_version, version_label=version_label)
  make_request = request_factory(spec, mode, users, movies, movies_per_request)
  return loadtest.run_loadtest(target, make_request, mode, concurrency, duration_s, rate, timeout_s, seed,
                               trace_path, think_s)
