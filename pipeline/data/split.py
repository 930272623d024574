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


def global_cut_time(timestamps: np.ndarray, eval_fraction: float) -> int:
  """The one cut time of the global temporal split: the timestamp t such that the share of `timestamps` later
  than t is closest to `eval_fraction`, among the times that leave some ratings on each side."""
  _check_fraction(eval_fraction)
  times, counts = np.unique(np.asarray(timestamps), return_counts=True)
  if len(times) < 2:
    raise ValueError(f"a global temporal split needs ratings at two different times at least, got {len(times)} "
                     "distinct timestamp(s)")
  later_share = 1.0 - np.cumsum(counts)[:-1] / counts.sum()  # share later than times[i], for all but the last
  return int(times[np.argmin(np.abs(later_share - eval_fraction))])


def global_temporal_split(ratings: pd.DataFrame, eval_fraction: float) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """Holds out every rating later than one cut time for everyone (global_cut_time), so no train rating is later
  than any eval rating. Ratings at the cut time stay in train; the eval share is `eval_fraction` up to the ratings
  that share one timestamp.

  Unlike the per-user split, an eval user may have no train ratings (a user who arrived after the cut: a cold
  user, whose id is out of vocabulary for the model), and a user with ratings on both sides may hold out any
  number of them. The eval negatives are drawn as for every split (sample_unrated): from the train catalog, among
  the movies the user never rated, before or after the cut.
  """
  order = ratings.sort_values(["user_id", "timestamp", "movie_id"], kind="mergesort")
  is_eval = order.timestamp.to_numpy() > global_cut_time(order.timestamp.to_numpy(), eval_fraction)
  return order[~is_eval].reset_index(drop=True), order[is_eval].reset_index(drop=True)


def random_split(ratings: pd.DataFrame, eval_fraction: float,
                 seed: int) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """Sends a seeded random `eval_fraction` of all ratings to eval."""
  _check_fraction(eval_fraction)
  is_eval = np.random.default_rng(seed).random(len(ratings)) < eval_fraction
  return ratings[~is_eval].reset_index(drop=True), ratings[is_eval].reset_index(drop=True)


def split_ratings(ratings: pd.DataFrame, mode: str, eval_fraction: float,
                  seed: int) -> Tuple[pd.DataFrame, pd.DataFrame]:
  """(train, eval) of `ratings` by DataConfig.split `mode`: "temporal", "global_temporal" or "random"."""
  if mode == "temporal":
    return temporal_split(ratings, eval_fraction)
  if mode == "global_temporal":
    return global_temporal_split(ratings, eval_fraction)
  if mode == "random":
    return random_split(ratings, eval_fraction, seed)
  raise ValueError(f"split must be one of temporal, global_temporal, random; got {mode!r}")


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
