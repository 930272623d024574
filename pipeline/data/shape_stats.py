"""Statistics that say whether a ratings table looks like MovieLens, and how much of its signal is personal.

`describe` gives the shape (rating histogram, concentration of ratings per user and per movie, genre shares,
time span, sessions); `protocol_hit_rates` gives HR@K of the most-popular list and of two cheap personal rankers,
item-kNN and EASE, under the report's protocol: temporal split, each user's latest held-out liked movie ranked
among sampled unrated movies. The synthetic generator is calibrated with both (bench/synthetic_stats.py).
"""
from typing import Dict

import numpy as np
import pandas as pd

from components import features
from pipeline.data import split

EASE_L2 = 300.0
EASE_MAX_MOVIES = 5_000  # a movies x movies inverse; ml-latest-small's 9,724 movies would take minutes


def gini(counts: np.ndarray) -> float:
  """Gini coefficient of non-negative counts: 0 when all are equal, towards 1 when one holds everything."""
  values = np.sort(np.asarray(counts, float))
  n = len(values)
  if n == 0 or values.sum() == 0:
    return 0.0
  return float((2 * np.arange(1, n + 1) - n - 1) @ values / (n * values.sum()))


def top_share(counts: np.ndarray, fraction: float = 0.01) -> float:
  """Share of the total held by the top `fraction` of entries (at least one)."""
  values = np.sort(np.asarray(counts, float))[::-1]
  return float(values[:max(1, int(round(fraction * len(values))))].sum() / values.sum())


def describe(ratings: pd.DataFrame, movies: pd.DataFrame) -> Dict[str, object]:
  """Shape statistics of a ratings table (user_id, movie_id, rating, timestamp) and its movies (genres)."""
  per_user = ratings.groupby("user_id").size().to_numpy()
  per_movie = ratings.groupby("movie_id").size().to_numpy()
  rated_genres = movies.set_index("movie_id").genres.reindex(ratings.movie_id.unique()).dropna()
  genre_counts = rated_genres.str.split("|").explode().value_counts()
  histogram = ratings.rating.round(1).value_counts(normalize=True).sort_index()
  return {
      "ratings": len(ratings), "users": len(per_user), "movies": len(per_movie),
      "rating_shares": {f"{value:g}": round(float(share), 3) for value, share in histogram.items()},
      "liked_share": round(float((ratings.rating >= features.LIKED_THRESHOLD).mean()), 3),
      "user_ratings_median": float(np.median(per_user)), "user_ratings_min": int(per_user.min()),
      "user_gini": round(gini(per_user), 3), "user_top1_share": round(top_share(per_user), 3),
      "movie_gini": round(gini(per_movie), 3), "movie_top1_share": round(top_share(per_movie), 3),
      "genre_shares": {g: round(float(c / len(rated_genres)), 3) for g, c in genre_counts.head(6).items()},
      "span_days": round(float(ratings.timestamp.max() - ratings.timestamp.min()) / 86_400, 1),
      # Ratings that share their second with another of the same user's (pages of a session): under the
      # protocol, ties in time are broken by movie id, so this decides which movie is "the latest".
      "same_second_share": round(float(ratings.duplicated(["user_id", "timestamp"], keep=False).mean()), 3),
  }


def _rank_hits(positive: np.ndarray, negatives: np.ndarray, k: int) -> float:
  """HR@k with ties counting half a place (pipeline.metrics.ranking.rank_metrics without TensorFlow)."""
  rank = (negatives > positive[:, None]).sum(axis=1) + 0.5 * (negatives == positive[:, None]).sum(axis=1)
  return float((rank < k).mean())


def protocol_hit_rates(ratings: pd.DataFrame, k: int = 10, negatives: int = 99, eval_fraction: float = 0.1,
                       seed: int = 42) -> Dict[str, float]:
  """HR@k of the most-popular list, item-kNN (cosine over the train user-movie matrix) and EASE (a linear
  item-item model; None above EASE_MAX_MOVIES movies) on the same cases.

  Item-kNN and EASE score a movie by its similarity to the user's train movies: personal signal that a
  most-popular list cannot have. The cases are the pipeline's (pipeline.data.prepare's negatives, the ranking
  split's positives), so the most-popular HR@k equals the run summary's: real ml-100k 0.495, item-kNN 0.579,
  EASE 0.704, the trained NCF 0.656.
  """
  train, held_out = split.temporal_split(ratings, eval_fraction)
  liked = held_out[held_out.rating >= features.LIKED_THRESHOLD]
  # As pipeline.metrics.ranking.ranking_cases: the latest liked movie, among equal timestamps the first in the
  # held-out order (by movie id). MovieLens has many equal timestamps, so this choice moves HR@10 by ~0.09.
  latest = liked.sort_values("timestamp", kind="stable", ascending=False).drop_duplicates("user_id")
  catalog = np.sort(train.movie_id.unique())
  # The same draw as pipeline.data.prepare: negatives for every held-out user, from the train movies.
  sampled = split.sample_unrated(ratings, held_out.user_id.unique(), catalog, negatives, seed)
  sampled = sampled[sampled.user_id.isin(latest.user_id)]
  users = np.sort(latest.user_id.to_numpy())
  width = int(sampled.groupby("user_id").size().min())
  sampled = sampled[sampled.groupby("user_id").cumcount() < width]
  negative_movies = sampled.sort_values("user_id", kind="stable").movie_id.to_numpy().reshape(len(users), width)
  positive_movies = latest.set_index("user_id").movie_id.loc[users].to_numpy()

  # A held-out movie never rated in train maps to an extra all-zero column: count 0, no similarity.
  movie_index = {movie: i for i, movie in enumerate(catalog)}
  user_index = {user: i for i, user in enumerate(np.sort(train.user_id.unique()))}
  matrix = np.zeros((len(user_index), len(catalog) + 1), np.float32)
  matrix[train.user_id.map(user_index).to_numpy(), train.movie_id.map(movie_index).to_numpy()] = 1.0
  counts = matrix.sum(axis=0)
  norms = np.sqrt(np.maximum(counts, 1.0))
  to_index = np.vectorize(lambda movie: movie_index.get(movie, len(catalog)))
  positive_index, negative_index = to_index(positive_movies), to_index(negative_movies)
  rows = matrix[[user_index[u] for u in users]]
  hit_rates = {"ranked_users": len(users),
               "most_popular_hr": round(_rank_hits(counts[positive_index], counts[negative_index], k), 3)}
  # Item-kNN: the summed cosine similarity of a movie to the user's movies, (R_u . R) / (|i| |j|).
  knn = _scores(rows, lambda block: (((block / norms) @ matrix.T) @ matrix) / norms, positive_index, negative_index)
  hit_rates["item_knn_hr"] = round(_rank_hits(*knn, k), 3)
  if len(catalog) <= EASE_MAX_MOVIES:
    # EASE (Steck 2019): item-item weights B = I - P / diag(P), P = (R'R + lambda I)^-1, zero diagonal.
    inverse = np.linalg.inv(matrix.T.astype(np.float64) @ matrix + EASE_L2 * np.eye(matrix.shape[1]))
    weights = (-inverse / np.diag(inverse)).astype(np.float32)
    np.fill_diagonal(weights, 0.0)
    ease = _scores(rows, lambda block: block @ weights, positive_index, negative_index)
    hit_rates["ease_hr"] = round(_rank_hits(*ease, k), 3)
  else:
    hit_rates["ease_hr"] = None
  return hit_rates


def _scores(rows: np.ndarray, score_block, positive_index: np.ndarray, negative_index: np.ndarray, block: int = 256):
  """Scores of each user's positive [U] and negatives [U, N] from `score_block` ([b, movies] rows -> [b, movies]
  scores), a block of users at a time."""
  positive = np.empty(len(rows))
  negative = np.empty(negative_index.shape)
  for start in range(0, len(rows), block):
    scores = score_block(rows[start:start + block])
    take = np.arange(len(scores))
    positive[start:start + block] = scores[take, positive_index[start:start + block]]
    negative[start:start + block] = scores[take[:, None], negative_index[start:start + block]]
  return positive, negative
