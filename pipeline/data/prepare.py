"""Turns a MovieLens release (or the synthetic set) into the train/eval tf.Examples ExampleGen imports.

Output layout (read by ImportExampleGen as the named splits `train` and `eval`):
  out_dir/train/ratings.tfrecord.gz   rated pairs of the train split
  out_dir/eval/ratings.tfrecord.gz    held-out rated pairs + fixed sampled unrated pairs per eval user
  out_dir/movies.csv                  movieId,title,genres of every movie (for titles in clients)
  out_dir/prepared.json               what was written, and the inputs it was written from
A second call with the same inputs returns the existing output untouched, so the pipeline's cache
(which fingerprints the example files) sees the same data.
"""
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Dict

import numpy as np
import pandas as pd
import tensorflow as tf

from components import features
from pipeline.data import fetch
from pipeline.data import movielens
from pipeline.data import split
from pipeline.data import synthetic
from pipeline.data.bad_rows import BadRows
from pipeline.config import DataConfig
from pipeline.data.progress import Progress

MANIFEST = "prepared.json"


@dataclasses.dataclass(frozen=True)
class PreparedData:
  """Where the examples are and how many rows, users and movies they hold."""
  examples_dir: Path
  movies_csv: Path
  rows: Dict[str, int]
  users: int
  movies: int
  skipped_rows: int = 0
  skipped_summary: str = ""


def source_dir(data: DataConfig) -> Path:
  """The directory of raw MovieLens-format files for `data`: given, generated, or downloaded."""
  if data.dataset == "synthetic" and data.data_dir is None:
    shape = synthetic.SyntheticShape(data.synthetic_users, data.synthetic_movies,
                                     data.synthetic_ratings, data.seed)
    target = Path(data.cache_dir) / f"synthetic-{shape.users}u-{shape.movies}m-{shape.ratings}r-s{shape.seed}"
    if not (target / "ratings.csv").is_file():
      synthetic.generate(shape, target.with_name(target.name + ".tmp"))
      target.with_name(target.name + ".tmp").rename(target)
    return target
  return fetch.fetch(data.dataset, data.cache_dir, data.data_dir)


def prepare_examples(data: DataConfig, out_dir: Path) -> PreparedData:
  """Loads, splits and writes `data` as tf.Examples under `out_dir` (see the module docstring)."""
  source = source_dir(data)
  out_dir = Path(out_dir)
  fingerprint = _fingerprint(data, source)
  manifest = out_dir / MANIFEST
  if manifest.is_file():
    saved = json.loads(manifest.read_text())
    if saved["fingerprint"] == fingerprint:
      return _from_manifest(out_dir, saved)

  bad_rows = BadRows(data.on_bad_rows)
  loaded = movielens.load(source, bad_rows)
  table = movielens.ratings_table(loaded)
  if data.split == "temporal":
    train, held_out = split.temporal_split(table, data.eval_fraction)
  else:
    train, held_out = split.random_split(table, data.eval_fraction, data.seed)
  catalog = np.unique(train.movie_id.to_numpy())
  sampled = split.sample_unrated(table, held_out.user_id.unique(), catalog, data.eval_negatives, data.seed)
  sampled = sampled.merge(loaded.movies, on="movie_id", how="left")
  activity = split.user_activity(train)

  for name in (features.TRAIN_SPLIT, features.EVAL_SPLIT):
    (out_dir / name).mkdir(parents=True, exist_ok=True)
  rows = {
      features.TRAIN_SPLIT: _write_examples(out_dir / features.TRAIN_SPLIT / "ratings.tfrecord.gz",
                                            [(train, False)], activity),
      features.EVAL_SPLIT: _write_examples(out_dir / features.EVAL_SPLIT / "ratings.tfrecord.gz",
                                           [(held_out, False), (sampled, True)], activity),
  }
  loaded.movies.rename(columns={"movie_id": "movieId"}).to_csv(out_dir / "movies.csv", index=False)
  saved = {"fingerprint": fingerprint, "source": str(source), "rows": rows,
           "users": int(table.user_id.nunique()), "movies": int(len(loaded.movies)),
           "skipped_rows": bad_rows.count, "skipped_summary": bad_rows.summary()}
  manifest.write_text(json.dumps(saved, indent=2) + "\n")
  return _from_manifest(out_dir, saved)


def _from_manifest(out_dir: Path, saved: dict) -> PreparedData:
  return PreparedData(examples_dir=out_dir, movies_csv=out_dir / "movies.csv", rows=saved["rows"],
                      users=saved["users"], movies=saved["movies"], skipped_rows=saved["skipped_rows"],
                      skipped_summary=saved["skipped_summary"])


def _fingerprint(data: DataConfig, source: Path) -> str:
  """Hash of the settings that shape the examples and of the source files' names, sizes and mtimes."""
  settings = {k: v for k, v in dataclasses.asdict(data).items() if k not in ("cache_dir", "data_dir")}
  files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(source).iterdir() if p.is_file())
  return hashlib.sha256(json.dumps([settings, files], default=str).encode()).hexdigest()


def _write_examples(path: Path, parts: list, activity: pd.Series) -> int:
  """Writes (table, is_sampled) parts as GZIP tf.Examples to `path`; returns the number written."""
  total = sum(len(table) for table, _ in parts)
  progress = Progress(f"write {path.parent.name}", total, "examples", interval=5.0)
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for table, is_sampled in parts:
      user_activity = activity.reindex(table.user_id.to_numpy()).fillna(
          features.USER_ACTIVITY_BUCKETS[0][1]).to_numpy()
      rating = np.zeros(len(table), np.float32) if is_sampled else table.rating.to_numpy(np.float32)
      timestamp = np.zeros(len(table), np.int64) if is_sampled else table.timestamp.to_numpy(np.int64)
      for user, movie, genres, stars, stamp, bucket in zip(
          table.user_id.to_numpy(), table.movie_id.to_numpy(), table.genres.to_numpy(), rating,
          timestamp, user_activity):
        writer.write(_example(user, movie, genres, stars, stamp, bucket, is_sampled).SerializeToString())
      progress.update(len(table))
  progress.close()
  return total


def _example(user: int, movie: int, genres: str, rating: float, timestamp: int, activity: str,
             is_sampled: bool):
  """One (user, movie) pair as a tf.Example with the features named in components.features."""
  def text(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

  def integer(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: text(str(user)),
      features.MOVIE_ID: text(str(movie)),
      features.GENRES: text(*genres.split("|")),
      features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[float(rating)])),
      features.TIMESTAMP: integer(timestamp),
      features.LIKED: integer(rating >= features.LIKED_THRESHOLD),
      features.INTERACTION: integer(not is_sampled),
      features.IS_SAMPLED: integer(is_sampled),
      features.USER_ACTIVITY: text(activity),
  }))
