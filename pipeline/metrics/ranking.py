"""Ranking quality on the NCF protocol, from an exported SavedModel's `predict` signature.

Protocol: for every eval user, the latest held-out movie rated >= 4 is ranked against the user's fixed sampled
unrated movies (99 by default) of the eval and ranking splits. HR@K: share of users whose movie lands in the top K;
NDCG@K: mean 1 / log2(rank + 2) over those hits. A most-popular baseline (train rating counts) is ranked
the same way. Tied scores count half a place, so a constant scorer is not rewarded.
"""
import dataclasses
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

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


def _records(split_dir: Path):
  """The GZIP TFRecords of one split directory, as a tf.data dataset of serialized examples."""
  import tensorflow as tf

  files = sorted(str(p) for p in Path(split_dir).glob("*.gz"))
  if not files:
    raise FileNotFoundError(f"no *.gz tf.Example files in {split_dir}")
  return tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65_536)


def read_split(split_dir: Path, names: Sequence[str]) -> Dict[str, np.ndarray]:
  """Reads the scalar features `names` of the GZIP tf.Examples in `split_dir` into numpy columns.

  Ids come back as bytes, counts and labels as int64, ratings as float32; one value per example.
  """
  import tensorflow as tf

  spec = {name: tf.io.FixedLenFeature([], tf.as_dtype(COLUMN_DTYPES[name])) for name in names}
  columns: Dict[str, List[np.ndarray]] = {name: [] for name in spec}
  for batch in _records(split_dir).map(lambda records: tf.io.parse_example(records, spec),
                                       num_parallel_calls=tf.data.AUTOTUNE):
    for name in spec:
      columns[name].append(batch[name].numpy())
  return {name: np.concatenate(values) if values else np.array([], object) for name, values in columns.items()}


def read_candidates(ranking_dir: Path) -> pd.DataFrame:
  """The ranking split (one example per user: `user_id`, and its candidate movies as the list `movie_id`) as
  one row per (user_id, movie_id), in the order written."""
  import tensorflow as tf

  spec = {features.USER_ID: tf.io.FixedLenFeature([], tf.string), features.MOVIE_ID: tf.io.VarLenFeature(tf.string)}
  users: List[np.ndarray] = []
  movies: List[np.ndarray] = []
  for batch in _records(ranking_dir).map(lambda records: tf.io.parse_example(records, spec)):
    candidates = batch[features.MOVIE_ID]
    users.append(batch[features.USER_ID].numpy()[candidates.indices[:, 0].numpy()])
    movies.append(candidates.values.numpy())
  return pd.DataFrame({features.USER_ID: np.concatenate(users) if users else np.array([], object),
                       features.MOVIE_ID: np.concatenate(movies) if movies else np.array([], object)})


def popularity_scores(train_dir: Path, movies: np.ndarray) -> np.ndarray:
  """Train rating count of each movie id in `movies` (bytes, any shape): the most-popular baseline's score."""
  known, counts = np.unique(read_split(train_dir, [features.MOVIE_ID])[features.MOVIE_ID], return_counts=True)
  flat = movies.reshape(-1)
  index = np.clip(np.searchsorted(known, flat), 0, len(known) - 1)
  found = known[index] == flat
  return np.where(found, counts[index], 0).astype(np.float64).reshape(movies.shape)


def ranking_cases(eval_dir: Path, ranking_dir: Optional[Path] = None) -> RankingCases:
  """Builds the protocol's cases from the eval split and, when given, the ranking split (together: all of each
  user's sampled unrated movies, the eval split's first); users without a held-out liked movie are left out."""
  rows = pd.DataFrame(read_split(eval_dir, [features.USER_ID, features.MOVIE_ID, features.RATING,
                                            features.TIMESTAMP, features.IS_SAMPLED]))
  sampled = rows.loc[rows[features.IS_SAMPLED] == 1, [features.USER_ID, features.MOVIE_ID]]
  if ranking_dir is not None:
    sampled = pd.concat([sampled, read_candidates(ranking_dir)], ignore_index=True)
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


def scorer(model_dir: Path) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
  """The SavedModel's `predict` signature, loaded once, as a function: raw id pairs (users, movies: bytes [n])
  -> `score` float32 [n], run PREDICT_BATCH pairs at a time."""
  import tensorflow as tf

  loaded = tf.saved_model.load(str(model_dir))  # once; the closure keeps it alive

  def scores(users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    predict = loaded.signatures["predict"]
    batches = [predict(user_id=tf.constant(list(users[start:start + PREDICT_BATCH])),
                       movie_id=tf.constant(list(movies[start:start + PREDICT_BATCH])))["score"].numpy()
               for start in range(0, len(users), PREDICT_BATCH)]
    return np.concatenate(batches)

  return scores


def model_scores(model_dir: Path, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
  """`score` of the SavedModel's `predict` signature for the raw id pairs (users, movies: bytes [n])."""
  return scorer(model_dir)(users, movies)


def evaluate(model_dir: Path, train_dir: Path, eval_dir: Path, ranking_dir: Optional[Path] = None,
             k: int = 10) -> Dict[str, object]:
  """HR@k / NDCG@k of the SavedModel and of the most-popular list on the same cases.

  The directories hold the GZIP tf.Examples of the train, eval and ranking splits (ExampleGen's Split-<name>,
  or the data layer's <name>/ folders).
  """
  cases = ranking_cases(eval_dir, ranking_dir)
  num_users, num_negatives = cases.negatives.shape
  candidates = np.concatenate([cases.positives[:, None], cases.negatives], axis=1)  # [U, 1 + N]
  scores = model_scores(model_dir, np.repeat(cases.users, 1 + num_negatives), candidates.reshape(-1))
  scores = scores.reshape(num_users, 1 + num_negatives)
  popular = popularity_scores(train_dir, candidates)
  model = rank_metrics(scores[:, 0], scores[:, 1:], k)
  baseline = rank_metrics(popular[:, 0], popular[:, 1:], k)
  return {"k": k, "users": int(num_users), "negatives_per_user": int(num_negatives),
          "model": dataclasses.asdict(model), "most_popular": dataclasses.asdict(baseline)}
