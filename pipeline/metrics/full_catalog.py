"""Ranking quality over the full catalog, beside the sampled NCF protocol of ranking.py.

Sampled metrics (one held-out movie against 99 sampled ones) can order models differently from a full ranking
(Krichene & Rendle, KDD 2020). Here each judged eval user's candidates are every movie of the known catalog (the
movies of the train split) that the user did not rate in train, and the relevant ones are the user's held-out eval
movies rated >= features.LIKED_THRESHOLD that are in that catalog (a movie first rated after the split has no
train rating, so no model here could have learnt it; how many there were is reported). Users with no relevant
movie are not judged. For a user with R relevant movies and the top K of the ranking:

  Recall@K = (relevant movies in the top K) / min(K, R)   (so a perfect ranking scores 1 also when R > K)
  NDCG@K   = DCG@K / ideal DCG@K, binary gains: DCG@K = sum over the top K positions p = 0.. of rel_p / log2(p + 2),
             the ideal DCG puts min(K, R) relevant movies first

averaged over judged users. Equal scores are ordered by a seeded random order of the catalog, so a constant
scorer gets what a random one would, not what the catalog's order would give it. Scores come from the exported
SavedModel's `predict` signature (ranking.scorer), users x catalog in batches; on catalogs where every user would
cost too much, a seeded sample of `max_users` users is judged (the result says how many).
"""
import dataclasses
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pandas as pd

from components import features
from pipeline.metrics import ranking

DEFAULT_K = 20
DEFAULT_MAX_USERS = 1000  # ml-100k (943 users) and ml-latest-small (610) are judged whole
PAIRS_PER_BATCH = 400_000  # users x catalog scored and sorted at once: bounds memory
_NONE = np.zeros(0, np.int64)


@dataclasses.dataclass(frozen=True)
class FullCatalogCases:
  """The judged users, the catalog, and per user which catalog movies are excluded (rated in train) or relevant."""
  users: np.ndarray  # bytes [U]
  catalog: np.ndarray  # bytes [C], sorted
  train_counts: np.ndarray  # int64 [C]: train ratings of each catalog movie (the most-popular score)
  excluded: Dict[bytes, np.ndarray]  # user -> int64 catalog positions the user rated in train
  relevant: Dict[bytes, np.ndarray]  # user -> int64 catalog positions of the user's relevant eval movies
  eligible_users: int  # users with a relevant movie, before sampling
  relevant_outside_catalog: int  # liked eval ratings of movies without a train rating (not rankable)


@dataclasses.dataclass(frozen=True)
class FullCatalogMetrics:
  recall: float
  ndcg: float


def top_k_metrics(scores: np.ndarray, excluded: np.ndarray, relevant: np.ndarray, k: int,
                  tiebreak: np.ndarray) -> FullCatalogMetrics:
  """Mean Recall@k and NDCG@k (see the module docstring) of users [B] over a catalog [C].

  scores: float [B, C]; excluded, relevant: bool [B, C] (excluded movies are not ranked, relevant ones are the
  gains); tiebreak: [C] order among equal scores, lower first. Every user needs a relevant, non-excluded movie.
  """
  relevant = relevant & ~excluded
  num_relevant = relevant.sum(axis=1)
  if not num_relevant.all():
    raise ValueError(f"{int((num_relevant == 0).sum())} of {len(num_relevant)} users have no relevant movie to "
                     "rank; leave them out")
  ranked = np.where(excluded, -np.inf, scores.astype(np.float64))
  order = np.lexsort((np.broadcast_to(tiebreak, ranked.shape), -ranked), axis=-1)[:, :k]  # [B, k], best first
  gains = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
  discounts = 1.0 / np.log2(np.arange(gains.shape[1]) + 2.0)
  ideal = np.cumsum(discounts)[np.minimum(num_relevant, gains.shape[1]) - 1]
  return FullCatalogMetrics(recall=float((gains.sum(axis=1) / np.minimum(k, num_relevant)).mean()),
                            ndcg=float(((gains @ discounts) / ideal).mean()))


def full_catalog_cases(train_dir: Path, eval_dir: Path, max_users: Optional[int] = DEFAULT_MAX_USERS,
                       seed: int = 0) -> FullCatalogCases:
  """Reads the train split (catalog, exclusions, popularity) and the eval split's rated examples (relevant
  movies; the sampled unrated ones play no part); judges at most `max_users` users, a seeded sample of them."""
  train = pd.DataFrame(ranking.read_split(train_dir, [features.USER_ID, features.MOVIE_ID]))
  rows = pd.DataFrame(ranking.read_split(eval_dir, [features.USER_ID, features.MOVIE_ID, features.RATING,
                                                    features.IS_SAMPLED]))
  catalog, counts = np.unique(train[features.MOVIE_ID].to_numpy(), return_counts=True)
  liked = rows[(rows[features.IS_SAMPLED] == 0) & (rows[features.RATING] >= features.LIKED_THRESHOLD)]
  position = np.searchsorted(catalog, liked[features.MOVIE_ID].to_numpy())
  in_catalog = catalog[np.minimum(position, len(catalog) - 1)] == liked[features.MOVIE_ID].to_numpy()
  relevant = _by_user(liked[features.USER_ID].to_numpy()[in_catalog], position[in_catalog])
  users = np.array(sorted(relevant), dtype=object)
  eligible = len(users)
  if max_users is not None and eligible > max_users:
    users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
  train = train[train[features.USER_ID].isin(users)]
  excluded = _by_user(train[features.USER_ID].to_numpy(), np.searchsorted(catalog, train[features.MOVIE_ID].to_numpy()))
  return FullCatalogCases(users=users, catalog=catalog, train_counts=counts.astype(np.int64), excluded=excluded,
                          relevant={user: relevant[user] for user in users}, eligible_users=eligible,
                          relevant_outside_catalog=int((~in_catalog).sum()))


def evaluate(model_dir: Path, train_dir: Path, eval_dir: Path, k: int = DEFAULT_K,
             max_users: Optional[int] = DEFAULT_MAX_USERS, seed: int = 0) -> Dict[str, object]:
  """Recall@k / NDCG@k over the full catalog of the SavedModel at `model_dir` and of the most-popular list.

  The directories hold the GZIP tf.Examples of the train and eval splits (ExampleGen's Split-<name>, or the data
  layer's <name>/ folders). Returns k, the users judged and eligible, the catalog size, the relevant eval ratings
  outside the catalog, and {"recall", "ndcg"} for "model" and "most_popular".
  """
  cases = full_catalog_cases(train_dir, eval_dir, max_users, seed)
  score = ranking.scorer(model_dir)
  catalog_size = len(cases.catalog)
  tiebreak = np.random.default_rng(seed).permutation(catalog_size)
  batch_users = max(1, PAIRS_PER_BATCH // catalog_size)
  sums = {"model": np.zeros(2), "most_popular": np.zeros(2)}
  for start in range(0, len(cases.users), batch_users):
    users = cases.users[start:start + batch_users]
    excluded = _mask(cases.excluded, users, catalog_size)
    relevant = _mask(cases.relevant, users, catalog_size)
    model = score(np.repeat(users, catalog_size), np.tile(cases.catalog, len(users))).reshape(len(users), -1)
    popular = np.broadcast_to(cases.train_counts, (len(users), catalog_size))
    for name, scores in (("model", model), ("most_popular", popular)):
      metrics = top_k_metrics(scores, excluded, relevant, k, tiebreak)
      sums[name] += len(users) * np.array([metrics.recall, metrics.ndcg])
  means = {name: total / len(cases.users) if len(cases.users) else np.full(2, np.nan) for name, total in sums.items()}
  return {"k": k, "users": int(len(cases.users)), "eligible_users": cases.eligible_users,
          "catalog_movies": int(catalog_size), "relevant_outside_catalog": cases.relevant_outside_catalog,
          **{name: dataclasses.asdict(FullCatalogMetrics(*mean)) for name, mean in means.items()}}


def _by_user(users: np.ndarray, positions: np.ndarray) -> Dict[bytes, np.ndarray]:
  """user -> the catalog positions paired with it in (users, positions) [n]."""
  order = np.argsort(users, kind="stable")
  keys, starts = np.unique(users[order], return_index=True)
  return dict(zip(keys.tolist(), np.split(positions[order].astype(np.int64), starts[1:])))


def _mask(positions: Dict[bytes, np.ndarray], users: np.ndarray, catalog_size: int) -> np.ndarray:
  """bool [len(users), catalog_size]: True at each user's catalog positions in `positions` (none if absent)."""
  mask = np.zeros((len(users), catalog_size), bool)
  for row, user in enumerate(users):
    mask[row, positions.get(user, _NONE)] = True
  return mask
