"""Ranking quality on the NCF protocol, from an exported SavedModel's `predict` signature.

Protocol: for every eval user, the latest held-out movie rated >= 4 is ranked against the user's fixed sampled
unrated movies (99 by default) of the eval split. HR@K: share of users whose movie lands in the top K;
NDCG@K: mean 1 / log2(rank + 2) over those hits. A most-popular baseline (train rating counts) is ranked
the same way. Tied scores count half a place, so a constant scorer is not rewarded.
"""
import dataclasses
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

from components import features

PREDICT_BATCH = 20_000
# Scalar features read_split can read, with their tf.Example dtypes.
COLUMN_DTYPES = {features.USER_ID: "string", features.MOVIE_ID: "string", features.RATING: "float32",
                 features.TIMESTAMP: "int64", features.IS_SAMPLED: "int64", features.INTERACTION: "int64",
                 features.LIKED: "int64"}


@dataclasses.dataclass(frozen=True)
class RankingCases:
  """One row per eval user: the held-out liked movie and the user's sampled unrated movies."""
  users: np.ndarray      # bytes [U]
  positives: np.ndarray  # bytes [U]
  negatives: np.ndarray  # bytes [U, N]


@dataclasses.dataclass(frozen=True)
class RankingMetrics:
  hit_rate: float
  ndcg: float


def read_split(split_dir: Path, names: Sequence[str]) -> Dict[str, np.ndarray]:
  """Reads the scalar features `names` of the GZIP tf.Examples in `split_dir` into numpy columns.

  Ids come back as bytes, counts and labels as int64, ratings as float32; one value per example.
  """
  import tensorflow as tf

  files = sorted(str(p) for p in Path(split_dir).glob("*.gz"))
  if not files:
    raise FileNotFoundError(f"no *.gz tf.Example files in {split_dir}")
  spec = {name: tf.io.FixedLenFeature([], tf.as_dtype(COLUMN_DTYPES[name])) for name in names}
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65_536).map(
      lambda records: tf.io.parse_example(records, spec))
  columns: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
  for batch in dataset:
    for name in spec:
      columns[name].append(batch[name].numpy())
  return {name: np.concatenate(values) for name, values in columns.items()}


def movie_popularity(train_dir: Path) -> Dict[bytes, int]:
  """Train rating count per movie id: the most-popular baseline's score."""
  movies, counts = np.unique(read_split(train_dir, [features.MOVIE_ID])[features.MOVIE_ID], return_counts=True)
  return dict(zip(movies, counts.tolist()))


def ranking_cases(eval_dir: Path) -> RankingCases:
  """Builds the protocol's cases from the eval split; users without a held-out liked movie are left out."""
  rows = read_split(eval_dir, [features.USER_ID, features.MOVIE_ID, features.RATING, features.TIMESTAMP,
                               features.IS_SAMPLED])
  sampled = rows[features.IS_SAMPLED] == 1
  liked = ~sampled & (rows[features.RATING] >= features.LIKED_THRESHOLD)
  latest: Dict[bytes, tuple] = {}
  for user, movie, stamp in zip(rows[features.USER_ID][liked], rows[features.MOVIE_ID][liked],
                                rows[features.TIMESTAMP][liked]):
    if user not in latest or stamp > latest[user][0]:
      latest[user] = (stamp, movie)
  negatives: Dict[bytes, List[bytes]] = {}
  for user, movie in zip(rows[features.USER_ID][sampled], rows[features.MOVIE_ID][sampled]):
    negatives.setdefault(user, []).append(movie)
  users = sorted(u for u in latest if u in negatives)
  width = min(len(negatives[u]) for u in users)
  return RankingCases(users=np.array(users, dtype=object),
                      positives=np.array([latest[u][1] for u in users], dtype=object),
                      negatives=np.array([negatives[u][:width] for u in users], dtype=object))


def rank_metrics(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int) -> RankingMetrics:
  """HR@k and NDCG@k from scores of the positives [U] and the negatives [U, N]; ties count half a place."""
  above = (negative_scores > positive_scores[:, None]).sum(axis=1)
  tied = (negative_scores == positive_scores[:, None]).sum(axis=1)
  rank = above + 0.5 * tied
  hits = rank < k
  return RankingMetrics(hit_rate=float(hits.mean()),
                        ndcg=float(np.where(hits, 1.0 / np.log2(rank + 2.0), 0.0).mean()))


def model_scores(model_dir: Path, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
  """`score` of the SavedModel's `predict` signature for the raw id pairs (users, movies: bytes [n])."""
  import tensorflow as tf

  predict = tf.saved_model.load(str(model_dir)).signatures["predict"]
  scores = []
  for start in range(0, len(users), PREDICT_BATCH):
    batch = slice(start, start + PREDICT_BATCH)
    scores.append(predict(user_id=tf.constant(list(users[batch])),
                          movie_id=tf.constant(list(movies[batch])))["score"].numpy())
  return np.concatenate(scores)


def evaluate(model_dir: Path, train_dir: Path, eval_dir: Path, k: int = 10) -> Dict[str, object]:
  """HR@k / NDCG@k of the SavedModel and of the most-popular list on the same cases.

  `train_dir` and `eval_dir` hold the raw GZIP tf.Examples of the two splits (ExampleGen's Split-train and
  Split-eval, or the data layer's train/ and eval/).
  """
  cases = ranking_cases(eval_dir)
  num_users, num_negatives = cases.negatives.shape
  candidates = np.concatenate([cases.positives[:, None], cases.negatives], axis=1)  # [U, 1 + N]
  scores = model_scores(model_dir, np.repeat(cases.users, 1 + num_negatives), candidates.reshape(-1))
  scores = scores.reshape(num_users, 1 + num_negatives)
  popularity = movie_popularity(train_dir)
  popular = np.vectorize(lambda movie: popularity.get(movie, 0), otypes=[np.float64])(candidates)
  model = rank_metrics(scores[:, 0], scores[:, 1:], k)
  baseline = rank_metrics(popular[:, 0], popular[:, 1:], k)
  return {"k": k, "users": int(num_users), "negatives_per_user": int(num_negatives),
          "model": dataclasses.asdict(model), "most_popular": dataclasses.asdict(baseline)}
