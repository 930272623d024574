"""The recommender's gRPC client: `predict` and `recommend` on the NCF export's signatures, plus titles.

Signatures (the export contract, components/signatures.py): `predict` (user_id [N], movie_id [N] -> score,
interaction, liked [N]) and `recommend` (user_id [N] -> movie_ids [N, K], scores [N, K]).
"""
import csv
import dataclasses
from typing import Dict, List, Optional, Sequence

from components import signatures
from pipeline.config import PipelineConfig
from serving.client import ServingClient
from serving.flags import DEFAULT_TARGET

DEFAULT_MODEL = PipelineConfig.model_name  # the name the pipeline pushes the model under
# An id no vocabulary holds: every out-of-vocabulary id gets the same embedding, so a user whose answers equal
# this probe's was not in the training data.
OOV_PROBE_ID = "\x00recsys-oov-probe"


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One row of `predict`: the movie, the blended score and the two heads' probabilities."""
  movie_id: str
  score: float
  interaction: float
  liked: float


@dataclasses.dataclass(frozen=True)
class Recommendation:
  """One of `recommend`'s top movies and its score."""
  movie_id: str
  score: float


class RecommenderClient(ServingClient):
  """A ServingClient for the NCF model; the arguments are ServingClient's, with the project's defaults."""

  def __init__(self, target: str = DEFAULT_TARGET, model_name: str = DEFAULT_MODEL, timeout_s: float = 10.0,
               version: Optional[int] = None, version_label: str = ""):
    super().__init__(target, model_name, timeout_s, version, version_label)

  def predict(self, user_id: str, movie_ids: Sequence[str]) -> List[Prediction]:
    """Scores `user_id` against each movie: one row per movie, in the given order."""
    import numpy as np  # pylint: disable=import-outside-toplevel  (not needed by status and metadata)

    out = self.predict_arrays(signatures.PREDICT, {
        signatures.USER_ID_INPUT: np.array([user_id.encode()] * len(movie_ids), dtype=object),
        signatures.MOVIE_ID_INPUT: np.array([m.encode() for m in movie_ids], dtype=object)})
    return [Prediction(movie, float(out[signatures.SCORE_OUTPUT][i]), float(out[signatures.INTERACTION_OUTPUT][i]),
                       float(out[signatures.LIKED_OUTPUT][i]))
            for i, movie in enumerate(movie_ids)]

  def recommend(self, user_id: str, k: Optional[int] = None) -> List[Recommendation]:
    """The model's top movies for `user_id` (K fixed at export), best first; `k` keeps the first k.

    Raises:
      ValueError: `k` is larger than the K the model was exported with.
    """
    import numpy as np  # pylint: disable=import-outside-toplevel

    out = self.predict_arrays(signatures.RECOMMEND,
                               {signatures.USER_ID_INPUT: np.array([user_id.encode()], dtype=object)})
    movie_ids = out[signatures.RECOMMENDED_MOVIE_IDS][0]
    scores = out[signatures.RECOMMENDED_SCORES][0]
    if k is not None and k > len(movie_ids):
      raise ValueError(f"the model {self.model_name} returns at most {len(movie_ids)} movies; asked for {k}")
    return [Recommendation(m.decode(), float(s)) for m, s in zip(movie_ids[:k], scores[:k])]

  def is_out_of_vocabulary(self, user_id: str) -> bool:
    """True when the model scores `user_id` exactly like an id it never saw (it was not in training)."""
    return self.recommend(user_id) == self.recommend(OOV_PROBE_ID)


def read_titles(movies_csv: str) -> Dict[str, str]:
  """movies.csv (movieId,title,genres) -> {movie id: title}."""
  with open(movies_csv, newline="", encoding="utf-8") as f:
    return {row["movieId"]: row["title"] for row in csv.DictReader(f)}
