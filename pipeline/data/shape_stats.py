"""Statistics that say whether a ratings table looks like MovieLens, and how much of its signal is personal.

`describe` gives the shape (rating histogram, concentration of ratings per user and per movie, genre shares,
time span); `protocol_hit_rates` gives HR@K of the most-popular list and of item-kNN (a cheap personal
ranker) under the report's protocol: temporal split, each user's latest held-out liked movie ranked among
sampled unrated movies. The synthetic generator is calibrated with both (bench/synthetic_stats.py).
"""
from typing import Dict

import numpy as np
import pandas as pd

from components import features
from pipeline.data import split


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
  }


def _rank_hits(positive: np.ndarray, negatives: np.ndarray, k: int) -> float:
  """HR@k with ties counting half a place (pipeline.metrics.ranking.rank_metrics without TensorFlow)."""
  rank = (negatives > positive[:, None]).sum(axis=1) + 0.5 * (negatives == positive[:, None]).sum(axis=1)
  return float((rank < k).mean())


def protocol_hit_rates(ratings: pd.DataFrame, k: int = 10, negatives: int = 99, eval_fraction: float = 0.1,
                       seed: int = 0) -> Dict[str, float]:
  """HR@k of the most-popular list and of item-kNN (cosine over the train user-movie matrix) on the same cases.

  Item-kNN scores a movie by the summed similarity to the user's train movies: personal signal that a
  most-popular list cannot have. Real ml-100k: popularity about 0.46-0.50, the trained NCF about 0.65.
  """
  train, held_out = split.temporal_split(ratings, eval_fraction)
  liked = held_out[held_out.rating >= features.LIKED_THRESHOLD]
  latest = liked.sort_values("timestamp", kind="stable").drop_duplicates("user_id", keep="last")
  catalog = np.sort(train.movie_id.unique())
  latest = latest[latest.movie_id.isin(catalog)]
  sampled = split.sample_unrated(ratings, latest.user_id.to_numpy(), catalog, negatives, seed)
  users = np.sort(latest.user_id.to_numpy())
  width = int(sampled.groupby("user_id").size().min())
  sampled = sampled[sampled.groupby("user_id").cumcount() < width]
  negative_movies = sampled.sort_values("user_id", kind="stable").movie_id.to_numpy().reshape(len(users), width)
  positive_movies = latest.set_index("user_id").movie_id.loc[users].to_numpy()

  movie_index = {movie: i for i, movie in enumerate(catalog)}
  user_index = {user: i for i, user in enumerate(np.sort(train.user_id.unique()))}
  matrix = np.zeros((len(user_index), len(catalog)), np.float32)
  matrix[train.user_id.map(user_index).to_numpy(), train.movie_id.map(movie_index).to_numpy()] = 1.0
  counts = matrix.sum(axis=0)
  norms = np.sqrt(np.maximum(counts, 1.0))
  to_index = np.vectorize(movie_index.get)
  positive_index, negative_index = to_index(positive_movies), to_index(negative_movies)
  rows = matrix[[user_index[u] for u in users]]
  # similarity of every catalog movie to the user's movies: (R_u . R) / (|i| |j|), one user block at a time
  knn_positive = np.empty(len(users))
  knn_negative = np.empty(negative_index.shape)
  for start in range(0, len(users), 256):
    block = rows[start:start + 256]
    # sum over the user's movies i of co-occurrence(i, j) / (|i| |j|), for every movie j: [b, movies]
    scores = (((block / norms) @ matrix.T) @ matrix) / norms
    take = np.arange(len(block))
    knn_positive[start:start + 256] = scores[take, positive_index[start:start + 256]]
    knn_negative[start:start + 256] = scores[take[:, None], negative_index[start:start + 256]]
  return {"ranked_users": len(users),
          "most_popular_hr": round(_rank_hits(counts[positive_index], counts[negative_index], k), 3),
          "item_knn_hr": round(_rank_hits(knn_positive, knn_negative, k), 3)}
