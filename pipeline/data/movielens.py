"""Readers for the MovieLens file formats, producing one canonical ratings table.

Formats, detected from the files in a directory:
  ml-100k    u.data (user TAB movie TAB rating TAB timestamp), u.item (pipe-separated, latin-1, 19 genre flags)
  ml-1m      ratings.dat and movies.dat ("::"-separated, latin-1)
  ml-latest  ratings.csv and movies.csv (ml-latest-small, ml-25m, ml-latest and the synthetic generator)
"""
import array
import csv
import dataclasses
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Tuple

import numpy as np
import pandas as pd

from components import features
from pipeline.data.bad_rows import BadRows

MIN_RATING = 0.5
MAX_RATING = 5.0

# u.genre's order; the 19 flags of u.item follow it.
ML_100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                  "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                  "Romance", "Sci-Fi", "Thriller", "War", "Western")


@dataclasses.dataclass(frozen=True)
class MovieLensFormat:
  """How one MovieLens release lays out its ratings and movies files."""
  name: str
  ratings_file: str
  movies_file: str
  ratings_delimiter: str
  movies_delimiter: str
  encoding: str
  has_header: bool


FORMATS = (
    MovieLensFormat("ml-100k", "u.data", "u.item", "\t", "|", "latin-1", False),
    MovieLensFormat("ml-1m", "ratings.dat", "movies.dat", "::", "::", "latin-1", False),
    MovieLensFormat("ml-latest", "ratings.csv", "movies.csv", ",", ",", "utf-8", True),
)


@dataclasses.dataclass(frozen=True)
class MovieLens:
  """A loaded release.

  Attributes:
    ratings: one row per rating; columns user_id (int64), movie_id (int64), rating (float32),
      timestamp (int64, seconds since epoch).
    movies: one row per movie; columns movie_id (int64), title (str), genres (str, '|'-joined;
      features.NO_GENRE when the movie has none).
    bad_rows: the rows skipped under the "skip" policy.
  """
  ratings: pd.DataFrame
  movies: pd.DataFrame
  bad_rows: BadRows


def detect_format(data_dir: Path) -> MovieLensFormat:
  """Returns the format whose ratings and movies files are both in `data_dir`."""
  data_dir = Path(data_dir)
  if not data_dir.is_dir():
    raise FileNotFoundError(f"MovieLens directory {data_dir} does not exist")
  for fmt in FORMATS:
    if (data_dir / fmt.ratings_file).is_file() and (data_dir / fmt.movies_file).is_file():
      return fmt
  expected = "; ".join(f"{f.ratings_file} + {f.movies_file} ({f.name})" for f in FORMATS)
  present = ", ".join(sorted(p.name for p in data_dir.iterdir())[:10]) or "nothing"
  raise FileNotFoundError(
      f"{data_dir} holds no MovieLens release: expected one of {expected}; found {present}")


def count_ratings(data_dir: Path) -> int:
  """The number of rating lines in the release at `data_dir` (newlines counted in 1 MiB blocks, no parsing)."""
  fmt = detect_format(data_dir)
  lines = 0
  with open(Path(data_dir) / fmt.ratings_file, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      lines += block.count(b"\n")
  return lines - int(fmt.has_header)


def load(data_dir: Path, bad_rows: BadRows) -> MovieLens:
  """Reads the release in `data_dir`, validating every row under `bad_rows`' policy."""
  fmt = detect_format(data_dir)
  movies = _read_movies(Path(data_dir) / fmt.movies_file, fmt, bad_rows)
  ratings = _read_ratings(Path(data_dir) / fmt.ratings_file, fmt, set(movies.movie_id), bad_rows)
  return MovieLens(ratings=ratings, movies=movies, bad_rows=bad_rows)


def ratings_table(movielens: MovieLens) -> pd.DataFrame:
  """The canonical table: user_id, movie_id, rating, timestamp, genres, title; one row per rating."""
  return movielens.ratings.merge(movielens.movies, on="movie_id", how="left", validate="many_to_one")


def _lines(path: Path, fmt: MovieLensFormat) -> Iterator[Tuple[int, str]]:
  """Yields (1-based line number, line without its end) for the non-blank data lines of `path`."""
  with open(path, encoding=fmt.encoding, newline="") as f:
    for number, line in enumerate(f, start=1):
      if number == 1 and fmt.has_header:
        continue
      line = line.rstrip("\r\n")
      if line.strip():
        yield number, line


def _movie_fields(path: Path, fmt: MovieLensFormat) -> Iterator[Tuple[int, List[str]]]:
  """Yields (line number, fields) of a movies file; CSV goes through the csv module for quoted titles."""
  if fmt.movies_delimiter != ",":
    for number, line in _lines(path, fmt):
      yield number, line.split(fmt.movies_delimiter)
    return
  with open(path, encoding=fmt.encoding, newline="") as f:
    reader = csv.reader(f)
    for row in reader:
      if reader.line_num == 1 and fmt.has_header:
        continue
      if row and any(field.strip() for field in row):
        yield reader.line_num, row


def _delimiter_name(delimiter: str) -> str:
  return "TAB" if delimiter == "\t" else repr(delimiter)


def _read_ratings(path: Path, fmt: MovieLensFormat, movie_ids: set,
                  bad_rows: BadRows) -> pd.DataFrame:
  """Parses a ratings file into typed columns; rejects malformed rows and unknown movie ids."""
  users, movies, stamps, lines = (array.array("q") for _ in range(4))
  ratings = array.array("f")
  delimiter = _delimiter_name(fmt.ratings_delimiter)
  for number, line in _lines(path, fmt):
    fields = line.split(fmt.ratings_delimiter)
    if len(fields) != 4:
      bad_rows.reject(path, number, f"expected 4 fields (user, movie, rating, timestamp) separated by "
                      f"{delimiter}, found {len(fields)}: {line[:80]!r}")
      continue
    user, movie, rating, stamp = (field.strip() for field in fields)
    problem = (_id_problem("user id", user) or _id_problem("movie id", movie)
               or _rating_problem(rating) or _timestamp_problem(stamp))
    if not problem and int(movie) not in movie_ids:
      problem = f"movie id {movie} is not in {fmt.movies_file}"
    if problem:
      bad_rows.reject(path, number, problem)
      continue
    users.append(int(user))
    movies.append(int(movie))
    ratings.append(float(rating))
    stamps.append(int(stamp))
    lines.append(number)
  table = pd.DataFrame({
      "user_id": np.frombuffer(users, dtype=np.int64),
      "movie_id": np.frombuffer(movies, dtype=np.int64),
      "rating": np.frombuffer(ratings, dtype=np.float32),
      "timestamp": np.frombuffer(stamps, dtype=np.int64),
  })
  line_numbers = np.frombuffer(lines, dtype=np.int64)
  duplicated = table.duplicated(["user_id", "movie_id"], keep="first").to_numpy()
  if duplicated.any():
    first = table.drop_duplicates(["user_id", "movie_id"]).set_index(["user_id", "movie_id"])
    first_line = pd.Series(line_numbers[~duplicated], index=first.index)
    for row in np.flatnonzero(duplicated):
      user, movie = int(table.user_id.iat[row]), int(table.movie_id.iat[row])
      bad_rows.reject(path, int(line_numbers[row]), f"user {user} rated movie {movie} again "
                      f"(first at line {first_line.loc[(user, movie)]})")
    table = table[~duplicated].reset_index(drop=True)
  if table.empty:
    raise ValueError(f"{path}: no valid ratings")
  return table


def _read_movies(path: Path, fmt: MovieLensFormat, bad_rows: BadRows) -> pd.DataFrame:
  """Parses a movies file into movie_id, title and '|'-joined genres."""
  ids: List[int] = []
  titles: List[str] = []
  genres: List[str] = []
  seen: Dict[int, int] = {}
  expected = 24 if fmt.name == "ml-100k" else 3
  for number, fields in _movie_fields(path, fmt):
    if len(fields) != expected:
      bad_rows.reject(path, number, f"expected {expected} fields separated by "
                      f"{_delimiter_name(fmt.movies_delimiter)}, "
                      f"found {len(fields)}")
      continue
    movie = fields[0].strip()
    problem = _id_problem("movie id", movie)
    if not problem and int(movie) in seen:
      problem = f"movie id {movie} listed again (first at line {seen[int(movie)]})"
    if fmt.name == "ml-100k" and not problem:
      flags = fields[5:]
      if any(flag not in ("0", "1") for flag in flags):
        problem = f"genre flags must be 0 or 1, found {'|'.join(flags)!r}"
      movie_genres = [g for g, flag in zip(ML_100K_GENRES, flags) if flag == "1"]
    elif not problem:
      movie_genres = [g for g in fields[2].split("|") if g and g != features.NO_GENRE]
    if problem:
      bad_rows.reject(path, number, problem)
      continue
    seen[int(movie)] = number
    ids.append(int(movie))
    titles.append(fields[1].strip())
    genres.append("|".join(movie_genres) or features.NO_GENRE)
  if not ids:
    raise ValueError(f"{path}: no valid movies")
  return pd.DataFrame({"movie_id": np.asarray(ids, dtype=np.int64), "title": titles, "genres": genres})


def _id_problem(name: str, value: str) -> str:
  if not value.isdigit():
    return f"{name} {value!r} is not a non-negative integer"
  return ""


def _rating_problem(value: str) -> str:
  try:
    rating = float(value)
  except ValueError:
    return f"rating {value!r} is not a number"
  if not MIN_RATING <= rating <= MAX_RATING:
    return f"rating {value} is outside {MIN_RATING}..{MAX_RATING}"
  return ""


def _timestamp_problem(value: str) -> str:
  if not value.isdigit():
    return f"timestamp {value!r} is not an integer number of seconds since 1970"
  return ""


def write_latest_csv(ratings: Iterable[pd.DataFrame], movies: pd.DataFrame, out_dir: Path) -> None:
  """Writes ratings chunks and movies as ml-latest CSV files (ratings.csv, movies.csv) in `out_dir`."""
  out_dir = Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  movies.rename(columns={"movie_id": "movieId"})[["movieId", "title", "genres"]].to_csv(
      out_dir / "movies.csv", index=False)
  with open(out_dir / "ratings.csv", "w", newline="") as f:
    f.write("userId,movieId,rating,timestamp\n")
    for chunk in ratings:
      chunk[["user_id", "movie_id", "rating", "timestamp"]].to_csv(
          f, header=False, index=False, float_format="%.1f")
