"""Ranking quality on the NCF protocol, from an exported SavedModel's `predict` signature.

Protocol: for every eval user, the latest held-out movie rated >= 4 is ranked against the user's fixed sampled
unrated movies (99 by default) of the eval and ranking splits. HR@K: share of users whose movie lands in the top K;
NDCG@K: mean 1 / log2(rank + 2) over those hits. A most-popular baseline (train rating counts) is ranked
the same way. Tied scores count half a place, so a constant scorer is not rewarded.
"""
import dataclasses
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

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


def read_split(split_dirs: Sequence[Path], names: Sequence[str]) -> Dict[str, np.ndarray]:
  """Reads the scalar features `names` of the GZIP tf.Examples in `split_dirs` into numpy columns.

  Ids come back as bytes, counts and labels as int64, ratings as float32; one value per example.
  """
  import tensorflow as tf

  files = sorted(str(p) for split_dir in split_dirs for p in Path(split_dir).glob("*.gz"))
  if not files:
    raise FileNotFoundError(f"no *.gz tf.Example files in {', '.join(map(str, split_dirs))}")
  spec = {name: tf.io.FixedLenFeature([], tf.as_dtype(COLUMN_DTYPES[name])) for name in names}
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65_536).map(
      lambda records: tf.io.parse_example(records, spec), num_parallel_calls=tf.data.AUTOTUNE)
  columns: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
  for batch in dataset:
    for name in spec:
      columns[name].append(batch[name].numpy())
  return {name: np.concatenate(values) if values else np.array([]) for name, values in columns.items()}


def popularity_scores(train_dir: Path, movies: np.ndarray) -> np.ndarray:
  """Train rating count of each movie id in `movies` (bytes, any shape): the most-popular baseline's score."""
  known, counts = np.unique(read_split([train_dir], [features.MOVIE_ID])[features.MOVIE_ID], return_counts=True)
  flat = movies.reshape(-1)
  index = np.clip(np.searchsorted(known, flat), 0, len(known) - 1)
  found = known[index] == flat
  return np.where(found, counts[index], 0).astype(np.float64).reshape(movies.shape)


def ranking_cases(eval_dirs: Sequence[Path]) -> RankingCases:
  """Builds the protocol's cases from the eval split and the ranking split (all of each user's sampled unrated
  movies); users without a held-out liked movie are left out."""
  rows = pd.DataFrame(read_split(eval_dirs, [features.USER_ID, features.MOVIE_ID, features.RATING,
                                             features.TIMESTAMP, features.IS_SAMPLED]))
  sampled = rows[rows[features.IS_SAMPLED] == 1]
  liked = rows[(rows[features.IS_SAMPLED] == 0) & (rows[features.RATING] >= features.LIKED_THRESHOLD)]
  # The latest liked movie per user; among equal timestamps the first one read, as a stable sort keeps it.
  latest = liked.sort_values(features.TIMESTAMP, kind="stable", ascending=False).drop_duplicates(features.USER_ID)
  latest = latest.set_index(features.USER_ID)[features.MOVIE_ID]
  per_user = sampled.groupby(features.USER_ID, sort=True)[features.MOVIE_ID]
  counts = per_user.size()
  users = np.array(sorted(set(latest.index) & set(counts.index)), dtype=object)
  width = int(counts.loc[users].min())
  position = per_user.cumcount()
  kept = sampled[(position < width).to_numpy() & sampled[features.USER_ID].isin(users).to_numpy()]
  negatives = kept.sort_values(features.USER_ID, kind="stable")[features.MOVIE_ID].to_numpy(dtype=object)
  return RankingCases(users=users, positives=latest.loc[users].to_numpy(dtype=object),
                      negatives=negatives.reshape(len(users), width))


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


def evaluate(model_dir: Path, train_dir: Path, eval_dirs: Sequence[Path], k: int = 10) -> Dict[str, object]:
  """HR@k / NDCG@k of the SavedModel and of the most-popular list on the same cases.

  `train_dir` holds the raw GZIP tf.Examples of the train split, `eval_dirs` those of the eval and ranking
  splits (ExampleGen's Split-<name>, or the data layer's <name>/ folders).
  """
  cases = ranking_cases(eval_dirs)
  num_users, num_negatives = cases.negatives.shape
  candidates = np.concatenate([cases.positives[:, None], cases.negatives], axis=1)  # [U, 1 + N]
  scores = model_scores(model_dir, np.repeat(cases.users, 1 + num_negatives), candidates.reshape(-1))
  scores = scores.reshape(num_users, 1 + num_negatives)
  popular = popularity_scores(train_dir, candidates)
  model = rank_metrics(scores[:, 0], scores[:, 1:], k)
  baseline = rank_metrics(popular[:, 0], popular[:, 1:], k)
  return {"k": k, "users": int(num_users), "negatives_per_user": int(num_negatives),
          "model": dataclasses.asdict(model), "most_popular": dataclasses.asdict(baseline)}
