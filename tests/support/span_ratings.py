"""Made-up weekly ratings in the ml-latest CSV layout, for the span tests: a few weeks of the same users."""
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from tests.support.testdata import GENRE_NAMES

WEEK_SECONDS = 7 * 86_400
FIRST_MONDAY = 1_704_067_200  # 2024-01-01 00:00 UTC, a Monday


@dataclasses.dataclass(frozen=True)
class WeeklyRatings:
  """Shape of the set: `users` rate `per_week` movies each week (those who join late start later)."""
  users: int = 60
  movies: int = 40
  weeks: int = 4
  per_week: int = 5
  late_users: int = 6  # the last `late_users` users rate only in the final week: cold users of its eval
  seed: int = 0


def movie_genres(movie: int) -> str:
  """Two genres per movie, as testdata's examples have them (1-based movie ids)."""
  m = movie - 1
  return "|".join(sorted({GENRE_NAMES[(m * 7 + 3) % len(GENRE_NAMES)], GENRE_NAMES[m % len(GENRE_NAMES)]}))


def ratings(shape: WeeklyRatings = WeeklyRatings()) -> pd.DataFrame:
  """user_id, movie_id, rating, timestamp: distinct movies per user, Zipf popularity, favourite genres liked."""
  rng = np.random.default_rng(shape.seed)
  movies = np.arange(1, shape.movies + 1)
  genres = [movie_genres(m) for m in movies]
  popularity = 1.0 / movies ** 0.7
  rows = []
  for user in range(1, shape.users + 1):
    favourite = GENRE_NAMES[user % len(GENRE_NAMES)]
    first_week = shape.weeks if user > shape.users - shape.late_users else 1
    rated: set = set()
    for week in range(first_week, shape.weeks + 1):
      allowed = np.array([m not in rated for m in movies])
      weights = popularity * allowed * np.array([3.0 if favourite in g else 1.0 for g in genres])
      chosen = rng.choice(movies, size=shape.per_week, replace=False, p=weights / weights.sum())
      for movie in chosen:
        rated.add(int(movie))
        liked = favourite in genres[movie - 1]
        rating = float(rng.choice([4.0, 5.0]) if liked else rng.choice([1.0, 2.0, 3.0]))
        timestamp = FIRST_MONDAY + (week - 1) * WEEK_SECONDS + int(rng.integers(0, WEEK_SECONDS))
        rows.append((user, int(movie), rating, timestamp))
  return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


def write(shape: WeeklyRatings, out_dir: Path) -> pd.DataFrame:
  """Writes out_dir/ratings.csv and movies.csv (ml-latest layout); returns the ratings."""
  table = ratings(shape)
  out_dir.mkdir(parents=True, exist_ok=True)
  table.rename(columns={"user_id": "userId", "movie_id": "movieId"}).to_csv(out_dir / "ratings.csv", index=False)
  pd.DataFrame({"movieId": np.arange(1, shape.movies + 1),
                "title": [f"Movie {m}" for m in range(1, shape.movies + 1)],
                "genres": [movie_genres(m) for m in range(1, shape.movies + 1)]}).to_csv(out_dir / "movies.csv",
                                                                                          index=False)
  return table
