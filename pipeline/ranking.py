"""Ranking quality on the NCF protocol, from an exported SavedModel's `predict` signature.

Protocol: for every eval user, the latest held-out movie rated >= 4 is ranked against the user's fixed sampled
unrated movies (99 by default) of the eval split. HR@K: share of users whose movie lands in the top K;
NDCG@K: mean 1 / log2(rank + 2) over those hits. A most-popular baseline (train rating counts) is ranked
the same way. Tied scores count half a place, so a constant scorer is not rewarded.
"""
import dataclasses
from pathlib import Path
from typing import Dict, List

import numpy as np

from components import features

PREDICT_BATCH = 20_000


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


def _read_split(examples_dir: Path, split: str) -> Dict[str, np.ndarray]:
  """Reads the raw GZIP tf.Examples of `split` into numpy columns (ids as bytes)."""
  import tensorflow as tf

  files = sorted(str(p) for p in (Path(examples_dir) / split).glob("*.gz"))
  if not files:
    raise FileNotFoundError(f"no *.gz tf.Example files under {Path(examples_dir) / split}")
  spec = {features.USER_ID: tf.io.FixedLenFeature([], tf.string),
          features.MOVIE_ID: tf.io.FixedLenFeature([], tf.string),
          features.RATING: tf.io.FixedLenFeature([], tf.float32),
          features.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
          features.IS_SAMPLED: tf.io.FixedLenFeature([], tf.int64)}
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65_536).map(
      lambda records: tf.io.parse_example(records, spec))
  columns: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
  for batch in dataset:
    for name in spec:
      columns[name].append(batch[name].numpy())
  return {name: np.concatenate(values) for name, values in columns.items()}


def ranking_cases(examples_dir: Path) -> RankingCases:
  """Builds the protocol's cases from the eval split; users without a held-out liked movie are left out."""
  rows = _read_split(examples_dir, features.EVAL_SPLIT)
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


def evaluate(model_dir: Path, examples_dir: Path, k: int = 10) -> Dict[str, object]:
  """HR@k / NDCG@k of the SavedModel and of the most-popular list on the same cases."""
  cases = ranking_cases(examples_dir)
  num_users, num_negatives = cases.negatives.shape
  candidates = np.concatenate([cases.positives[:, None], cases.negatives], axis=1)  # [U, 1 + N]
  scores = model_scores(model_dir, np.repeat(cases.users, 1 + num_negatives), candidates.reshape(-1))
  scores = scores.reshape(num_users, 1 + num_negatives)
  train = _read_split(examples_dir, features.TRAIN_SPLIT)
  movies, counts = np.unique(train[features.MOVIE_ID], return_counts=True)
  popularity = dict(zip(movies, counts))
  popular = np.vectorize(lambda movie: popularity.get(movie, 0), otypes=[np.float64])(candidates)
  model = rank_metrics(scores[:, 0], scores[:, 1:], k)
  baseline = rank_metrics(popular[:, 0], popular[:, 1:], k)
  return {"k": k, "users": int(num_users), "negatives_per_user": int(num_negatives),
          "model": dataclasses.asdict(model), "most_popular": dataclasses.asdict(baseline)}
