"""What the synthetic generator imitates of one MovieLens release: its ratings, genres, activity and time.

Each `Calibration` holds the measured shares of a real release and the generator's levers fitted to its shape
statistics (bench/synthetic_stats.py prints real and synthetic side by side; BENCHMARKS.md, "Synthetic vs. real").
How personal the choice of movies is (taste vs. popularity) is shared by all and lives in synthetic.py: it was
calibrated against ml-100k's baselines and holds on ml-latest-small's (the same benchmark).
"""
import dataclasses
from typing import Dict, Tuple

GENRES = ("Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western")
DAY_SECONDS = 86_400.0


@dataclasses.dataclass(frozen=True)
class Calibration:
  """One release's measured shares and the generator's levers fitted to it.

  Attributes:
    name: the release it imitates.
    rating_values / rating_shares: the stars and the share of ratings with each (measured).
    genre_shares: share of movies with each of GENRES (measured on rated movies).
    genres_per_movie_shares: share of movies with 1, 2, ... genres (measured).
    first_timestamp / last_timestamp: the release's period (measured).
    popularity_exponent / popularity_offset: movie popularity falls as (rank + offset) ** -exponent, the offset
      relative to `popularity_offset_movies` movies (shrunk for smaller catalogs, so the head is as steep
      relative to the catalog); fitted to the movie Gini and top-1 % share.
    user_activity_sigma / user_activity_cap: ratings above the 20-rating floor go to users by log-normal weights
      cut at e ** cap times a typical user's; fitted to the user Gini and top-1 % share.
    session_rate_mu / session_rate_sigma: extra sessions per user are Poisson with a log-normal rate.
    session_gap_days: mean time between a user's sessions.
    page_break: chance that a rating starts a new page (a new second stamp) within a session.
    page_seconds: mean time between pages; with page_break fitted to the share of ratings that share a second.
  """
  name: str
  rating_values: Tuple[float, ...]
  rating_shares: Tuple[float, ...]
  genre_shares: Tuple[float, ...]
  genres_per_movie_shares: Tuple[float, ...]
  first_timestamp: int
  last_timestamp: int
  popularity_exponent: float
  popularity_offset: float
  popularity_offset_movies: int
  user_activity_sigma: float
  user_activity_cap: float
  session_rate_mu: float
  session_rate_sigma: float
  session_gap_days: float
  page_break: float
  page_seconds: float

  def __post_init__(self):
    if len(self.rating_values) != len(self.rating_shares) or len(self.genre_shares) != len(GENRES):
      raise ValueError(f"calibration {self.name}: {len(self.rating_values)} rating values for "
                       f"{len(self.rating_shares)} shares, {len(self.genre_shares)} genre shares for "
                       f"{len(GENRES)} genres")


# ml-100k: whole stars, 1997-09-20 to 1998-04-22 (215 days); most users rate everything in one sitting, a page
# of about two movies per second stamp (76 % of its ratings share their second with another of the user's).
# Its "Children's" is "Children"; it has no IMAX.
ML_100K = Calibration(
    name="ml-100k",
    rating_values=(1.0, 2.0, 3.0, 4.0, 5.0),
    rating_shares=(0.061, 0.114, 0.271, 0.342, 0.212),
    genre_shares=(0.149, 0.080, 0.025, 0.073, 0.300, 0.065, 0.030, 0.431, 0.013, 0.014, 0.055, 0.0, 0.033, 0.036,
                  0.147, 0.060, 0.149, 0.042, 0.016),
    genres_per_movie_shares=(0.495, 0.338, 0.128, 0.039),
    first_timestamp=874_724_710,
    last_timestamp=893_286_638,
    popularity_exponent=2.0,
    popularity_offset=30.0,
    popularity_offset_movies=1682,
    user_activity_sigma=1.3,
    user_activity_cap=2.4,
    session_rate_mu=-1.0,
    session_rate_sigma=1.8,
    session_gap_days=25.0,
    page_break=0.5,
    page_seconds=80.0,
)

# ml-latest-small: half stars, 1996-03-29 to 2018-09-24 (22 years); a long tail of movies (35 % rated once),
# heavier users (the top 1 % give 12 % of the ratings), and pages of one movie every ~10-30 s (16 % of gaps
# between a user's ratings are 0 s, ml-100k 51 %); a quarter of the users come back for months or years.
ML_LATEST_SMALL = Calibration(
    name="ml-latest-small",
    rating_values=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0),
    rating_shares=(0.014, 0.028, 0.018, 0.075, 0.055, 0.199, 0.130, 0.266, 0.085, 0.130),
    genre_shares=(0.188, 0.130, 0.063, 0.068, 0.386, 0.123, 0.045, 0.447, 0.080, 0.009, 0.100, 0.016, 0.034, 0.059,
                  0.164, 0.101, 0.194, 0.039, 0.017),
    genres_per_movie_shares=(0.293, 0.331, 0.240, 0.101, 0.028, 0.007),
    first_timestamp=828_124_615,
    last_timestamp=1_537_799_250,
    popularity_exponent=1.4,
    popularity_offset=8.0,
    popularity_offset_movies=9724,
    user_activity_sigma=1.6,
    user_activity_cap=3.8,
    session_rate_mu=-0.5,
    session_rate_sigma=2.5,
    session_gap_days=40.0,
    page_break=0.88,
    page_seconds=20.0,
)

CALIBRATIONS: Dict[str, Calibration] = {c.name: c for c in (ML_100K, ML_LATEST_SMALL)}
