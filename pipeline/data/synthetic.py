"""A seeded generator of MovieLens-shaped data (ml-latest CSV layout) with signal a model can learn.

Structure, calibrated against ml-100k by default or ml-latest-small (pipeline/data/synthetic_calibration.py;
bench/synthetic_stats.py prints real and synthetic side by side):
  - movie popularity is Zipf-like and low movie ids are mostly the popular movies (ids in order of addition to
    the catalog, as in MovieLens); user activity is log-normal above a floor (every user rates at least
    `min(20, ratings // users)` movies, as in MovieLens);
  - movies have one or more genres with the release's shares (ml-100k: Drama 43 %, Comedy 30 %, ...), and taste vectors
    a fifth of which comes from their genres (GENRE_TASTE); users have taste vectors and a choosiness: how much
    taste rather than popularity decides which movies they rate (so "rated vs not rated" is learnable beyond
    popularity);
  - the rating is taste plus user and movie biases (popular movies are rated higher), cut into ml-100k's
    star shares (so "liked" is learnable);
  - timestamps are sessions inside the release's period (ml-100k: 215 days, most users rate everything in one
    sitting, a page of about two movies per second stamp, a few come back for months); within a user, popular movies come first
    and the long tail later, so a user's latest ratings are not simply the most popular movies.
Generation runs in blocks of users, writing each block as it is made, so memory stays bounded by the
block size and the per-user/per-movie arrays, not by the number of ratings.
"""
import dataclasses
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np
import pandas as pd

from pipeline.data import movielens
from pipeline.data.progress import Progress
from pipeline.data.synthetic_calibration import CALIBRATIONS, DAY_SECONDS, GENRES, Calibration

# Part of the cache directory's name (pipeline/data/prepare.py): raise it whenever the same shape and seed give
# other data, so a cached set of an older generator is not reused.
GENERATOR_VERSION = 3

FACTORS = 16
MIN_USER_RATINGS = 20
# Movies' rating biases: their own spread, and how much higher popular movies are rated (ml-100k: mean rating
# 2.6 in the least rated quarter of movies, 3.6 in the most rated).
MOVIE_BIAS_SPREAD = 0.5
POPULAR_BIAS = 0.3
USER_BIAS_SPREAD = 0.2
BLOCK_RATINGS = 200_000  # times CANDIDATES_PER_RATING candidate pairs in memory at once
# How personal the choice of movies is, calibrated against ml-100k (BENCHMARKS.md, "Synthetic vs. real"): each
# rating is the best match (the user's choosiness times taste, plus POPULARITY_PULL times log popularity, plus
# Gumbel noise) among CANDIDATES_PER_RATING movies drawn by popularity (Zipf, the calibration's exponent). With fewer
# FACTORS the NCF learns the taste too well (8 factors: HR@10 0.77, real ml-100k 0.66).
# (The popularity itself is the calibration's: a fixed offset of 30 in 80 movies would leave popularity almost
# flat, movie Gini 0.15 instead of 0.44, and users who follow popularity would rate at random.)
CANDIDATES_PER_RATING = 30
POPULARITY_PULL = 0.7  # popular movies are also picked more often among the candidates: the head of ml-100k
TASTE_WEIGHT = 30.0
CHOOSINESS_SKEW = 1.2  # users' taste weights are TASTE_WEIGHT * U(0, 1) ** CHOOSINESS_SKEW
GENRE_TASTE = 0.2  # share of a movie's taste vector that comes from its genres
DISCOVERY_DRIFT = 0.6  # how strongly popular movies are rated before the long tail (0: in random order)
ID_POPULARITY_NOISE = 0.5  # movie ids follow popularity up to this much log-rank noise (ml-100k: Spearman -0.8)


@dataclasses.dataclass(frozen=True)
class SyntheticShape:
  """How big the generated set is and which release it imitates (a name in CALIBRATIONS); `seed` makes it
  reproducible byte for byte."""
  users: int
  movies: int
  ratings: int
  seed: int = 42
  like: str = "ml-100k"

  def __post_init__(self):
    if self.like not in CALIBRATIONS:
      raise ValueError(f"like={self.like!r}: the generator imitates one of {', '.join(CALIBRATIONS)}")
    if self.users < 1 or self.movies < 2:
      raise ValueError(f"need at least 1 user and 2 movies, got users={self.users} movies={self.movies}")
    if not self.users <= self.ratings <= self.users * (self.movies // 2):
      raise ValueError(f"ratings={self.ratings} must be between users={self.users} and "
                       f"users * movies / 2 = {self.users * (self.movies // 2)}")


def generate(shape: SyntheticShape, out_dir: Path, progress: Optional[Progress] = None) -> Path:
  """Writes ratings.csv and movies.csv for `shape` into `out_dir` and returns `out_dir`."""
  rng = np.random.default_rng(shape.seed)
  world = _World.create(shape, CALIBRATIONS[shape.like], rng)
  progress = progress or Progress("synth", shape.ratings, "ratings")
  movielens.write_latest_csv(_rating_blocks(world, rng, progress), world.movies_table(), out_dir)
  progress.close()
  return Path(out_dir)


@dataclasses.dataclass
class _World:
  """Latent users and movies the ratings are drawn from, and the release they imitate."""
  calibration: Calibration
  user_factors: np.ndarray     # [users, FACTORS]
  user_bias: np.ndarray        # [users]
  user_choosiness: np.ndarray  # [users] how much taste, rather than popularity, decides what the user rates
  user_counts: np.ndarray      # [users] ratings each user gives
  movie_factors: np.ndarray    # [movies, FACTORS]
  movie_bias: np.ndarray       # [movies]
  popularity_cdf: np.ndarray   # [movies] cumulative sampling probability
  appeal: np.ndarray           # [movies] added to the taste match of a drawn candidate
  genres: list                 # [movies] '|'-joined genre names
  thresholds: Optional[np.ndarray] = None  # [4] score cut points between stars, set by the first block

  @classmethod
  def create(cls, shape: SyntheticShape, calibration: Calibration, rng: np.random.Generator) -> "_World":
    scale = 1.0 / np.sqrt(FACTORS)
    genre_flags = _genre_flags(shape.movies, calibration, rng)
    # A movie's taste vector mixes its genres' directions with its own, so taste is partly genre taste.
    genre_directions = rng.normal(0.0, 1.0, (len(GENRES), FACTORS))
    genre_part = (genre_flags @ genre_directions) / np.sqrt(genre_flags.sum(axis=1, keepdims=True))
    own_part = rng.normal(0.0, 1.0, (shape.movies, FACTORS))
    movie_factors = (scale * (np.sqrt(GENRE_TASTE) * genre_part + np.sqrt(1.0 - GENRE_TASTE) * own_part)
                     ).astype(np.float32)
    user_factors = rng.normal(0.0, scale, (shape.users, FACTORS)).astype(np.float32)
    # Movie i (id i + 1) has popularity rank rank[i]; low ids are mostly the popular movies, as in MovieLens
    # (ids in order of addition to the catalog).
    noisy_rank = np.log1p(np.arange(shape.movies)) + rng.normal(0.0, ID_POPULARITY_NOISE, shape.movies)
    rank = np.empty(shape.movies, np.int64)
    rank[np.argsort(noisy_rank, kind="stable")] = np.arange(shape.movies)
    offset = calibration.popularity_offset * min(1.0, shape.movies / calibration.popularity_offset_movies)
    popularity = (rank + offset) ** -calibration.popularity_exponent
    popularity_cdf = np.cumsum(popularity / popularity.sum())
    # Popular movies are rated higher, as in MovieLens.
    movie_bias = (rng.normal(0.0, MOVIE_BIAS_SPREAD, shape.movies)
                  + POPULAR_BIAS * (np.log(popularity) - np.log(popularity).mean())).astype(np.float32)
    user_bias = rng.normal(0.0, USER_BIAS_SPREAD, shape.users).astype(np.float32)
    # Some users watch what everyone watches, others follow their taste.
    user_choosiness = (TASTE_WEIGHT * rng.random(shape.users) ** CHOOSINESS_SKEW).astype(np.float32)
    return cls(calibration=calibration, user_factors=user_factors, user_bias=user_bias, user_choosiness=user_choosiness,
               user_counts=_user_counts(shape, calibration, rng), movie_factors=movie_factors,
               movie_bias=movie_bias, popularity_cdf=popularity_cdf,
               appeal=(POPULARITY_PULL * np.log(popularity / popularity.max())).astype(np.float32),
               genres=["|".join(GENRES[g] for g in np.flatnonzero(flags)) for flags in genre_flags])

  def movies_table(self) -> pd.DataFrame:
    ids = np.arange(1, len(self.genres) + 1)
    titles = [f"Synthetic Movie {i} ({1950 + i % 69})" for i in ids]
    return pd.DataFrame({"movie_id": ids, "title": titles, "genres": self.genres})

  def latent_score(self, users: np.ndarray, movies: np.ndarray) -> np.ndarray:
    """Taste match plus biases; the thresholds turn it into ratings."""
    taste = np.einsum("ij,ij->i", self.user_factors[users], self.movie_factors[movies])
    return 4.0 * taste + self.user_bias[users] + self.movie_bias[movies]


def _user_counts(shape: SyntheticShape, calibration: Calibration, rng: np.random.Generator) -> np.ndarray:
  """Ratings per user: a floor plus a (cut) log-normal share of the rest, capped at half the catalog."""
  floor = min(MIN_USER_RATINGS, shape.ratings // shape.users)
  cap = shape.movies // 2
  counts = np.full(shape.users, floor, dtype=np.int64)
  weights = np.exp(np.minimum(rng.normal(0.0, calibration.user_activity_sigma, shape.users),
                              calibration.user_activity_cap))
  remaining = shape.ratings - counts.sum()
  while remaining > 0:
    open_users = counts < cap
    share = np.where(open_users, weights, 0.0)
    counts += rng.multinomial(remaining, share / share.sum())
    overflow = np.maximum(counts - cap, 0)
    counts -= overflow
    remaining = int(overflow.sum())
  return counts


def _genre_flags(movies: int, calibration: Calibration, rng: np.random.Generator) -> np.ndarray:
  """[movies, genres] 0/1: each movie's number of genres drawn from the calibration's genres_per_movie_shares,
  then that many distinct genres, drawn without replacement by weights that give each genre its share."""
  per_movie_shares = np.asarray(calibration.genres_per_movie_shares) / np.sum(calibration.genres_per_movie_shares)
  per_movie = rng.choice(len(per_movie_shares), size=movies, p=per_movie_shares) + 1
  log_weights = _genre_log_weights(calibration.genre_shares, per_movie_shares)
  # The first per_movie[i] genres in a Gumbel-top-k order are a draw without replacement by weight.
  order = np.argsort(-(log_weights + rng.gumbel(0.0, 1.0, (movies, len(GENRES)))), axis=1)
  flags = np.zeros((movies, len(GENRES)))
  np.put_along_axis(flags, order, (np.arange(len(GENRES)) < per_movie[:, None]).astype(float), axis=1)
  return flags


def _genre_log_weights(genre_shares: Tuple[float, ...], per_movie_shares: np.ndarray, sample: int = 20_000,
                       rounds: int = 8) -> np.ndarray:
  """Log weights for _genre_flags' draw such that each genre's share of movies is `genre_shares` (drawing without
  replacement fills the common genres up, so weights in proportion to the shares under-give them): fixed-point
  rounds on a fixed sample, independent of the data's seed."""
  rng = np.random.default_rng(0)
  target = np.asarray(genre_shares) / np.sum(genre_shares) * np.dot(
      np.arange(1, len(per_movie_shares) + 1), per_movie_shares)
  per_movie = rng.choice(len(per_movie_shares), size=sample, p=per_movie_shares) + 1
  noise = rng.gumbel(0.0, 1.0, (sample, len(GENRES)))
  log_weights = np.log(np.maximum(target, 1e-12))
  for _ in range(rounds):
    order_rank = np.argsort(np.argsort(-(log_weights + noise), axis=1), axis=1)
    achieved = (order_rank < per_movie[:, None]).mean(axis=0)
    log_weights += np.log(np.maximum(target, 1e-12) / np.maximum(achieved, 1e-12))
  return log_weights


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
    taste = world.user_choosiness[draw_user] * np.einsum("ij,ij->i", world.user_factors[draw_user],
                                                         world.movie_factors[draw_movie])
    order = np.lexsort((-(taste + world.appeal[draw_movie] + rng.gumbel(0.0, 1.0, len(taste))), draw_user))
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
    # first block's scores so the ratings follow the calibration's shares, and stay fixed after that.
    world.thresholds = np.quantile(score, np.cumsum(world.calibration.rating_shares)[:-1])
  stars = np.asarray(world.calibration.rating_values, np.float32)[np.searchsorted(world.thresholds, score)]
  return pd.DataFrame({
      "user_id": pairs_user + 1,
      "movie_id": pairs_movie + 1,
      "rating": stars,
      "timestamp": _timestamps(pairs_user, _discovery_order(world, pairs_movie, rng), world.calibration, rng),
  })


def _discovery_order(world: _World, movies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """A key per rating: users find popular movies first and the long tail later (as in MovieLens, where a
  user's latest ratings are less popular than their first ones); lower keys are rated earlier."""
  probability = np.diff(np.concatenate([[0.0], world.popularity_cdf]))[movies]
  return -DISCOVERY_DRIFT * np.log(probability) + rng.gumbel(0.0, 1.0, len(movies))


def _timestamps(users: np.ndarray, order_key: np.ndarray, calibration: Calibration,
                rng: np.random.Generator) -> np.ndarray:
  """Each user rates in sessions (one for most, months of them for a few), a page of movies per second stamp;
  their ratings take these times in `order_key` order. `users` is sorted."""
  unique, first = np.unique(users, return_index=True)
  sizes = np.diff(np.append(first, len(users)))
  index = np.repeat(np.arange(len(unique)), sizes)
  position = np.arange(len(users)) - first[index]
  # Extra sessions per user, log-normal rate: ml-100k has a median of 1 session, 6 at the 90th percentile.
  extra_sessions = np.minimum(rng.poisson(rng.lognormal(calibration.session_rate_mu, calibration.session_rate_sigma,
                                                        len(unique))), sizes - 1)
  starts_session = rng.random(len(users)) < (extra_sessions / np.maximum(sizes - 1, 1))[index]
  starts_page = rng.random(len(users)) < calibration.page_break
  step = np.where(starts_session, rng.exponential(calibration.session_gap_days * DAY_SECONDS, len(users)),
                  np.where(starts_page, rng.exponential(calibration.page_seconds, len(users)), 0.0))
  step[position == 0] = 0.0
  offset = np.cumsum(step)
  offset -= offset[first][index]
  window = float(calibration.last_timestamp - calibration.first_timestamp)
  length = offset[first + sizes - 1]
  squeeze = np.minimum(1.0, window / np.maximum(length, 1.0))  # a user whose sessions overrun the period
  start = calibration.first_timestamp + rng.random(len(unique)) * (window - length * squeeze)
  times = np.floor(start[index] + offset * squeeze[index])
  by_key = np.lexsort((order_key, users))
  ordered = np.empty_like(times)
  ordered[by_key] = times  # times are sorted per user: the k-th smallest key gets the k-th time
  return ordered.astype(np.int64)
