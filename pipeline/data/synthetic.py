"""A seeded generator of MovieLens-shaped data (ml-latest CSV layout) with signal a model can learn.

Structure, chosen to look like MovieLens:
  - movie popularity is Zipf-like and user activity heavy-tailed (every user rates at least
    `min(20, ratings // users)` movies, as in MovieLens);
  - users and movies have latent taste vectors; which movies a user rates depends on popularity and
    on taste (so "rated vs not rated" is learnable beyond popularity), and the rating on taste plus
    user and movie biases (so "liked" is learnable);
  - genres follow the movies' taste vectors; timestamps are spread over each user's active period, popular
    movies first and the long tail later, so a user's latest ratings are not simply the most popular movies.
Generation runs in blocks of users, writing each block as it is made, so memory stays bounded by the
block size and the per-user/per-movie arrays, not by the number of ratings.
"""
import dataclasses
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pandas as pd

from pipeline.data import movielens
from pipeline.data.progress import Progress

# Part of the cache directory's name (pipeline/data/prepare.py): raise it whenever the same shape and seed give
# other data, so a cached set of an older generator is not reused.
GENERATOR_VERSION = 2

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")
# Share of each half-star rating 0.5..5.0 in ml-latest-small; the generator matches it.
RATING_SHARES = (0.014, 0.028, 0.018, 0.075, 0.055, 0.199, 0.130, 0.266, 0.085, 0.130)
FACTORS = 16
MIN_USER_RATINGS = 20
FIRST_TIMESTAMP = 946_684_800   # 2000-01-01
LAST_TIMESTAMP = 1_537_747_200  # 2018-09-24, the end of ml-latest-small
BLOCK_RATINGS = 200_000  # times CANDIDATES_PER_RATING candidate pairs in memory at once
# How personal the choice of movies is, calibrated against ml-100k (bench/synthetic_stats.py): each rating is
# the best taste match among CANDIDATES_PER_RATING movies drawn by popularity (Zipf, POPULARITY_EXPONENT).
POPULARITY_EXPONENT = 2.0
CANDIDATES_PER_RATING = 30
TASTE_WEIGHT = 20.0
DISCOVERY_DRIFT = 0.4  # how strongly popular movies are rated before the long tail (0: in random order)


@dataclasses.dataclass(frozen=True)
class SyntheticShape:
  """How big the generated set is; `seed` makes it reproducible byte for byte."""
  users: int
  movies: int
  ratings: int
  seed: int = 42

  def __post_init__(self):
    if self.users < 1 or self.movies < 2:
      raise ValueError(f"need at least 1 user and 2 movies, got users={self.users} movies={self.movies}")
    if not self.users <= self.ratings <= self.users * (self.movies // 2):
      raise ValueError(f"ratings={self.ratings} must be between users={self.users} and "
                       f"users * movies / 2 = {self.users * (self.movies // 2)}")


def generate(shape: SyntheticShape, out_dir: Path, progress: Optional[Progress] = None) -> Path:
  """Writes ratings.csv and movies.csv for `shape` into `out_dir` and returns `out_dir`."""
  rng = np.random.default_rng(shape.seed)
  world = _World.create(shape, rng)
  progress = progress or Progress("synth", shape.ratings, "ratings")
  movielens.write_latest_csv(_rating_blocks(world, rng, progress), world.movies_table(), out_dir)
  progress.close()
  return Path(out_dir)


@dataclasses.dataclass
class _World:
  """Latent users and movies the ratings are drawn from."""
  user_factors: np.ndarray     # [users, FACTORS]
  user_bias: np.ndarray        # [users]
  user_counts: np.ndarray      # [users] ratings each user gives
  movie_factors: np.ndarray    # [movies, FACTORS]
  movie_bias: np.ndarray       # [movies]
  popularity_cdf: np.ndarray   # [movies] cumulative sampling probability
  genres: list                 # [movies] '|'-joined genre names
  thresholds: Optional[np.ndarray] = None  # [9] score cut points between half-stars, set by the first block

  @classmethod
  def create(cls, shape: SyntheticShape, rng: np.random.Generator) -> "_World":
    scale = 1.0 / np.sqrt(FACTORS)
    movie_factors = rng.normal(0.0, scale, (shape.movies, FACTORS)).astype(np.float32)
    user_factors = rng.normal(0.0, scale, (shape.users, FACTORS)).astype(np.float32)
    rank = rng.permutation(shape.movies)
    popularity = (rank + 10.0) ** -POPULARITY_EXPONENT
    popularity_cdf = np.cumsum(popularity / popularity.sum())
    # Popular movies are rated a little higher, as in MovieLens.
    movie_bias = (rng.normal(0.0, 0.35, shape.movies) + 0.15 * (np.log(popularity) - np.log(popularity).mean())
                  ).astype(np.float32)
    user_bias = rng.normal(0.0, 0.3, shape.users).astype(np.float32)
    return cls(user_factors=user_factors, user_bias=user_bias,
               user_counts=_user_counts(shape, rng), movie_factors=movie_factors,
               movie_bias=movie_bias, popularity_cdf=popularity_cdf,
               genres=_genres(movie_factors, rng))

  def movies_table(self) -> pd.DataFrame:
    ids = np.arange(1, len(self.genres) + 1)
    titles = [f"Synthetic Movie {i} ({1950 + i % 69})" for i in ids]
    return pd.DataFrame({"movie_id": ids, "title": titles, "genres": self.genres})

  def latent_score(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Taste match plus biases; the thresholds turn it into ratings."""
    taste = np.einsum("ij,ij->i", self.user_factors[users], self.movie_factors[movies])
    return 4.0 * taste + self.user_bias[users] + self.movie_bias[movies]


def _user_counts(shape: SyntheticShape, rng: np.random.Generator) -> np.ndarray:
  """Ratings per user: a floor plus a heavy-tailed share of the rest, capped at half the catalog."""
  floor = min(MIN_USER_RATINGS, shape.ratings // shape.users)
  cap = shape.movies // 2
  counts = np.full(shape.users, floor, dtype=np.int64)
  weights = rng.pareto(1.2, shape.users) + 0.05
  remaining = shape.ratings - counts.sum()
  while remaining > 0:
    open_users = counts < cap
    share = np.where(open_users, weights, 0.0)
    counts += rng.multinomial(remaining, share / share.sum())
    overflow = np.maximum(counts - cap, 0)
    counts -= overflow
    remaining = int(overflow.sum())
  return counts


def _genres(movie_factors: np.ndarray, rng: np.random.Generator) -> list:
  """One to three genres per movie, the ones whose random direction best matches its taste vector."""
  directions = rng.normal(0.0, 1.0, (len(GENRES), movie_factors.shape[1]))
  match = movie_factors @ directions.T + rng.gumbel(0.0, 0.15, (len(movie_factors), len(GENRES)))
  order = np.argsort(-match, axis=1)[:, :3]
  extra = rng.random((len(movie_factors), 2)) < (0.45, 0.2)
  result = []
  for best, (second, third) in zip(order, extra):
    chosen = [best[0]] + ([best[1]] if second else []) + ([best[2]] if second and third else [])
    result.append("|".join(GENRES[g] for g in sorted(chosen)))
  return result


def _rating_blocks(world: _World, rng: np.random.Generator,
                   progress: Progress) -> Iterator[pd.DataFrame]:
  """Yields the ratings of consecutive blocks of users, about BLOCK_RATINGS each."""
  bounds = np.searchsorted(np.cumsum(world.user_counts), np.arange(
      BLOCK_RATINGS, world.user_counts.sum(), BLOCK_RATINGS))
  for users in np.split(np.arange(len(world.user_counts)), np.unique(bounds + 1)):
    if len(users):
      block = _block(world, users, rng)
      progress.update(len(block))
      yield block


def _block(world: _World, users: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
  """Ratings of `users`: each picks its count of distinct movies by popularity and taste."""
  counts = world.user_counts[users]
  pairs_user = np.empty(0, np.int64)
  pairs_movie = np.empty(0, np.int64)
  missing = counts.copy()
  while missing.sum():
    # Draw candidates by popularity, keep the best-matching new ones for each user.
    draw_user = np.repeat(users, CANDIDATES_PER_RATING * missing + 5)
    draw_movie = np.searchsorted(world.popularity_cdf, rng.random(len(draw_user)), side="right")
    draw_movie = np.minimum(draw_movie, len(world.popularity_cdf) - 1)
    keys = np.concatenate([pairs_user * len(world.genres) + pairs_movie,
                           draw_user * len(world.genres) + draw_movie])
    is_first = np.zeros(len(keys), bool)
    is_first[np.unique(keys, return_index=True)[1]] = True
    fresh = is_first[len(pairs_user):]
    draw_user, draw_movie = draw_user[fresh], draw_movie[fresh]
    taste = TASTE_WEIGHT * np.einsum("ij,ij->i", world.user_factors[draw_user], world.movie_factors[draw_movie])
    order = np.lexsort((-(taste + rng.gumbel(0.0, 1.0, len(taste))), draw_user))
    draw_user, draw_movie = draw_user[order], draw_movie[order]
    starts = np.searchsorted(draw_user, users)
    rank = np.arange(len(draw_user)) - np.repeat(starts, np.diff(np.append(starts, len(draw_user))))
    keep = rank < missing[np.searchsorted(users, draw_user)]
    pairs_user = np.concatenate([pairs_user, draw_user[keep]])
    pairs_movie = np.concatenate([pairs_movie, draw_movie[keep]])
    missing = counts - np.bincount(np.searchsorted(users, pairs_user), minlength=len(users))
  order = np.lexsort((pairs_movie, pairs_user))
  pairs_user, pairs_movie = pairs_user[order], pairs_movie[order]
  score = world.latent_score(pairs_user, pairs_movie) + rng.normal(0.0, 0.5, len(pairs_user))
  if world.thresholds is None:
    # Users pick movies they like, so scores of rated pairs lean high; cut points come from the
    # first block's scores so the ratings follow RATING_SHARES, and stay fixed after that.
    world.thresholds = np.quantile(score, np.cumsum(RATING_SHARES)[:-1])
  stars = (np.searchsorted(world.thresholds, score) + 1) * 0.5
  return pd.DataFrame({
      "user_id": pairs_user + 1,
      "movie_id": pairs_movie + 1,
      "rating": stars.astype(np.float32),
      "timestamp": _timestamps(pairs_user, _discovery_order(world, pairs_movie, rng), rng),
  })


def _discovery_order(world: _World, movies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A key per rating: users find popular movies first and the long tail later (as in MovieLens, where a
  user's latest ratings are less popular than their first ones); lower keys are rated earlier."""
  probability = np.diff(np.concatenate([[0.0], world.popularity_cdf]))[movies]
  return -DISCOVERY_DRIFT * np.log(probability) + rng.gumbel(0.0, 1.0, len(movies))


def _timestamps(users: np.ndarray, order_key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Each user is active over a period of days to years; their ratings fall inside it, in `order_key` order.
  `users` is sorted."""
  unique, first = np.unique(users, return_index=True)
  day = 86_400
  span = np.minimum(rng.exponential(200.0, len(unique)) * day + day, LAST_TIMESTAMP - FIRST_TIMESTAMP)
  start = FIRST_TIMESTAMP + rng.random(len(unique)) * (LAST_TIMESTAMP - FIRST_TIMESTAMP - span)
  index = np.repeat(np.arange(len(unique)), np.diff(np.append(first, len(users))))
  times = start[index] + rng.random(len(users)) * span[index]
  by_time, by_key = np.lexsort((times, users)), np.lexsort((order_key, users))
  ordered = np.empty_like(times)
  ordered[by_key] = times[by_time]  # the k-th smallest key of a user gets that user's k-th earliest time
  return ordered.astype(np.int64)
