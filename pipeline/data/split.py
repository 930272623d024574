"""Train/eval splits of a ratings table and the eval split's fixed sampled unrated movies."""
from typing import Tuple

import numpy as np
import pandas as pd

from components import features


def temporal_split(ratings: pd.DataFrame, eval_fraction: float) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """Holds out each user's most recent ratings.

  A user with n >= 2 ratings gives round(eval_fraction * n) of them, at least 1 and at most n - 1,
  to eval; a user with a single rating stays in train. Ties in time are broken by movie id, so every
  eval rating of a user is at least as recent as all of that user's train ratings.
  """
  _check_fraction(eval_fraction)
  order = ratings.sort_values(["user_id", "timestamp", "movie_id"], kind="mergesort")
  counts = order.groupby("user_id", sort=False)["movie_id"].transform("size").to_numpy()
  position = order.groupby("user_id", sort=False).cumcount().to_numpy()
  held_out = np.where(counts >= 2, np.clip(np.round(eval_fraction * counts), 1, counts - 1), 0)
  is_eval = position >= counts - held_out
  return order[~is_eval].reset_index(drop=True), order[is_eval].reset_index(drop=True)


def random_split(ratings: pd.DataFrame, eval_fraction: float,
                 seed: int) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """Sends a seeded random `eval_fraction` of all ratings to eval."""
  _check_fraction(eval_fraction)
  is_eval = np.random.default_rng(seed).random(len(ratings)) < eval_fraction
  return ratings[~is_eval].reset_index(drop=True), ratings[is_eval].reset_index(drop=True)


def sample_unrated(ratings: pd.DataFrame, users: np.ndarray, catalog: np.ndarray, per_user: int,
                   seed: int) -> pd.DataFrame:
  """Draws `per_user` distinct movies from `catalog` that each of `users` never rated.

  Returns a table with columns user_id and movie_id, `per_user` rows per user (fewer only when the
  user rated almost all of the catalog).
  """
  rng = np.random.default_rng(seed)
  rated = ratings.groupby("user_id")["movie_id"].agg(lambda m: set(m.to_numpy().tolist()))
  catalog = np.sort(np.asarray(catalog))
  catalog_set = set(catalog.tolist())
  user_ids, movie_ids = [], []
  for user in np.sort(users):
    seen = rated.get(user, set())
    wanted = min(per_user, len(catalog) - len(seen & catalog_set))
    chosen: list = []
    taken = set(seen)
    while len(chosen) < wanted:
      for movie in rng.choice(catalog, size=2 * (wanted - len(chosen)) + 4).tolist():
        if movie not in taken and len(chosen) < wanted:
          taken.add(movie)
          chosen.append(movie)
    user_ids += [user] * len(chosen)
    movie_ids += chosen
  return pd.DataFrame({"user_id": np.asarray(user_ids, np.int64), "movie_id": np.asarray(movie_ids, np.int64)})


def user_activity(train: pd.DataFrame) -> pd.Series:
  """Maps user_id to the label of its train rating count's bucket (features.USER_ACTIVITY_BUCKETS)."""
  counts = train.groupby("user_id").size()
  bounds = [lower for lower, _ in features.USER_ACTIVITY_BUCKETS]
  labels = np.asarray([label for _, label in features.USER_ACTIVITY_BUCKETS])
  return pd.Series(labels[np.searchsorted(bounds, counts.to_numpy(), side="right") - 1], index=counts.index)


def _check_fraction(eval_fraction: float) -> None:
  if not 0.0 < eval_fraction < 1.0:
    raise ValueError(f"eval_fraction must be between 0 and 1 (exclusive), got {eval_fraction}")
