"""Turns a MovieLens release (or the synthetic set) into the train/eval tf.Examples ExampleGen imports.

Output layout (read by ImportExampleGen as the named splits `train`, `eval` and `ranking`):
  out_dir/train/ratings.tfrecord.gz   rated pairs of the train split
  out_dir/eval/ratings.tfrecord.gz    held-out rated pairs + the first `evaluator_negatives` of each eval user's
                                      fixed sampled unrated pairs (what the Evaluator judges)
  out_dir/ranking/candidates.tfrecord.gz  one example per eval user: user_id and, as a list in movie_id, the
                                      rest of that user's sampled movies (ranking candidates only)
  out_dir/movies.csv                  movieId,title,genres of every movie (for titles in clients)
  out_dir/prepared.json               what was written, and the inputs it was written from
A second call with the same inputs returns the existing output untouched, so the pipeline's cache
(which fingerprints the example files) sees the same data.
"""
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
WRITE_CHUNK = 100_000  # rows encoded at once: bounds memory, amortises the per-call cost


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
  # Eval users with no train rating and their eval ratings (kept in eval; None: prepared before they were counted).
  cold_eval_users: Optional[int] = None
  cold_eval_ratings: Optional[int] = None

  @property
  def cold_summary(self) -> str:
    """A line on the eval split's cold users, or "" when there are none (or they were not counted)."""
    if not self.cold_eval_users:
      return ""
    return (f"eval: {self.cold_eval_users:,} users without train ratings (cold: their ids are out of vocabulary "
            f"for the model) with {self.cold_eval_ratings:,} eval ratings, kept in eval")


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
  train, held_out = split.split_ratings(table, data.split, data.eval_fraction, data.seed)
  # Eval users without train ratings (global_temporal or random splits) stay in eval: their ids are out of
  # vocabulary for the model, as a new user's are at serving time; counted so that nothing goes unnoticed.
  cold = ~held_out.user_id.isin(train.user_id.unique())
  catalog = np.unique(train.movie_id.to_numpy())
  sampled = split.sample_unrated(table, held_out.user_id.unique(), catalog, data.eval_negatives, data.seed)
  sampled = sampled.merge(loaded.movies, on="movie_id", how="left")
  activity = split.user_activity(train)
  judged = sampled.groupby("user_id", sort=False).cumcount().to_numpy() < data.evaluator_negatives
  parts = {features.TRAIN_SPLIT: [(train, False)],
           features.EVAL_SPLIT: [(held_out, False), (sampled[judged], True)]}
  rows = {}
  for name, split_parts in parts.items():
    (out_dir / name).mkdir(parents=True, exist_ok=True)
    rows[name] = _write_examples(out_dir / name / "ratings.tfrecord.gz", split_parts, activity)
  (out_dir / features.RANKING_SPLIT).mkdir(parents=True, exist_ok=True)
  rows[features.RANKING_SPLIT] = _write_candidates(out_dir / features.RANKING_SPLIT / "candidates.tfrecord.gz",
                                                   sampled[~judged])
  loaded.movies.rename(columns={"movie_id": "movieId"}).to_csv(out_dir / "movies.csv", index=False)
  saved = {"fingerprint": fingerprint, "source": str(source), "rows": rows,
           "users": int(table.user_id.nunique()), "movies": int(len(loaded.movies)),
           "skipped_rows": bad_rows.count, "skipped_summary": bad_rows.summary(),
           "cold_eval_users": int(held_out.user_id[cold].nunique()), "cold_eval_ratings": int(cold.sum())}
  manifest.write_text(json.dumps(saved, indent=2) + "\n")
  return _from_manifest(out_dir, saved)


def _from_manifest(out_dir: Path, saved: dict) -> PreparedData:
  return PreparedData(examples_dir=out_dir, movies_csv=out_dir / "movies.csv", rows=saved["rows"],
                      users=saved["users"], movies=saved["movies"], skipped_rows=saved["skipped_rows"],
                      skipped_summary=saved["skipped_summary"], cold_eval_users=saved.get("cold_eval_users"),
                      cold_eval_ratings=saved.get("cold_eval_ratings"))


def _fingerprint(data: DataConfig, source: Path) -> str:
  """Hash of the settings that shape the examples and of the source files' names, sizes and mtimes."""
  settings = {k: v for k, v in dataclasses.asdict(data).items() if k not in ("cache_dir", "data_dir")}
  files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(source).iterdir() if p.is_file())
  return hashlib.sha256(json.dumps([settings, files], default=str).encode()).hexdigest()


def _write_examples(path: Path, parts: list, activity: pd.Series) -> int:
  """Writes (table, is_sampled) parts as GZIP tf.Examples to `path`; returns the number written.

  Rows are encoded WRITE_CHUNK at a time from Arrow columns by tfx_bsl's C++ encoder, so memory stays bounded
  by the chunk and no Python runs per example.
  """
  from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top

  total = sum(len(table) for table, _ in parts)
  progress = Progress(f"write {path.parent.name}", total, "examples", interval=5.0)
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for table, is_sampled in parts:
      for start in range(0, len(table), WRITE_CHUNK):
        chunk = table.iloc[start:start + WRITE_CHUNK]
        for record in example_coder.RecordBatchToExamples(_record_batch(chunk, is_sampled, activity)):
          writer.write(record)
        progress.update(len(chunk))
  progress.close()
  return total


def _record_batch(table: pd.DataFrame, is_sampled: bool, activity: pd.Series) -> pa.RecordBatch:
  """One Arrow column per feature of components.features, one list value per row (genres: one per genre)."""
  n = len(table)
  user_activity = activity.reindex(table.user_id.to_numpy()).fillna(features.USER_ACTIVITY_BUCKETS[0][1])
  rating = np.zeros(n, np.float32) if is_sampled else table.rating.to_numpy(np.float32)
  timestamp = np.zeros(n, np.int64) if is_sampled else table.timestamp.to_numpy(np.int64)
  flag = np.full(n, int(is_sampled), np.int64)
  genres = pc.split_pattern(_text(table.genres), "|").cast(pa.large_list(pa.large_binary()))
  columns = {
      features.USER_ID: _one_each(_text(table.user_id.astype(str)).cast(pa.large_binary())),
      features.MOVIE_ID: _one_each(_text(table.movie_id.astype(str)).cast(pa.large_binary())),
      features.GENRES: genres,
      features.RATING: _one_each(pa.array(rating, pa.float32())),
      features.TIMESTAMP: _one_each(pa.array(timestamp, pa.int64())),
      features.LIKED: _one_each(pa.array((rating >= features.LIKED_THRESHOLD).astype(np.int64), pa.int64())),
      features.INTERACTION: _one_each(pa.array(1 - flag, pa.int64())),
      features.IS_SAMPLED: _one_each(pa.array(flag, pa.int64())),
      features.USER_ACTIVITY: _one_each(_text(user_activity.astype(str)).cast(pa.large_binary())),
  }
  return pa.RecordBatch.from_arrays(list(columns.values()), list(columns))


def _write_candidates(path: Path, sampled: pd.DataFrame) -> int:
  """Writes one tf.Example per user: `user_id` and, in `movie_id`, the user's other sampled unrated movies in
  their drawn order (the ranking split: candidates only, so 99 of them cost one row, not 99). Returns users."""
  from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top

  ordered = sampled.sort_values("user_id", kind="stable")
  users, starts = np.unique(ordered.user_id.to_numpy(), return_index=True)
  offsets = pa.array(np.append(starts, len(ordered)), pa.int64())
  movies = pa.LargeListArray.from_arrays(offsets, _text(ordered.movie_id.astype(str)).cast(pa.large_binary()))
  batch = pa.RecordBatch.from_arrays(
      [_one_each(_text(pd.Series(users).astype(str)).cast(pa.large_binary())), movies],
      [features.USER_ID, features.MOVIE_ID])
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for record in example_coder.RecordBatchToExamples(batch):
      writer.write(record)
  return len(users)


def _text(values: pd.Series) -> pa.Array:
  return pa.array(values.to_numpy(dtype=object), pa.large_string())


def _one_each(values: pa.Array) -> pa.LargeListArray:
  """[v0, v1, ...] -> [[v0], [v1], ...]: the list-per-row form tf.Example features take."""
  return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), pa.int64()), values)
