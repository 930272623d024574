"""Turns a MovieLens release (or the synthetic set) into the train/eval tf.Examples ExampleGen imports.

Output layout (read by ImportExampleGen as the named splits `train`, `eval` and `ranking`; each split is written
as files ratings-NNNNN-of-MMMMM.tfrecord.gz of at most `examples_per_file` examples, read in name order):
  out_dir/train/ratings-*.tfrecord.gz  rated pairs of the train split
  out_dir/eval/ratings-*.tfrecord.gz   held-out rated pairs + the first `evaluator_negatives` of each eval user's
                                       fixed sampled unrated pairs (what the Evaluator judges)
  out_dir/ranking/candidates-*.tfrecord.gz  one example per eval user: user_id and, as a list in movie_id, the
                                       rest of that user's sampled movies (ranking candidates only)
  out_dir/movies.csv                  movieId,title,genres of every movie (for titles in clients)
  out_dir/prepared.json               what was written, and the inputs it was written from
With `span_by` (pipeline/data/spans.py) the ratings are cut into numbered periods and every period but the last
becomes a span with these three folders in ExampleGen's span layout, out_dir/span-<N>/train|eval|ranking/: span
N's train holds the ratings of period N, its eval all ratings of period N + 1 (train on <= T, judge on
(T, T + delta]) with the sampled movies as above. The history a model trained on span N knows is the rolling
window of the last `span_window` spans: the catalog the sampled movies come from and the user activity are the
window's, and eval users with no rating in the window are cold users, kept in eval and counted per span in
prepared.json (as the global temporal split does).
A second call with the same inputs returns the existing output untouched, so the pipeline's cache
(which fingerprints the example files) sees the same data.
"""
import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from components import features
from pipeline.data import fetch
from pipeline.data import movielens
from pipeline.data import spans
from pipeline.data import split
from pipeline.data import synthetic
from pipeline.data.bad_rows import BadRows
from pipeline.config import DataConfig
from pipeline.data.progress import Progress

MANIFEST = "prepared.json"
WRITE_CHUNK = 100_000  # rows encoded at once: bounds memory, amortises the per-call cost


@dataclasses.dataclass(frozen=True)
class PreparedSpan:
  """One span of a `span_by` preparation: its periods (`YYYY-MM-DD..YYYY-MM-DD`, end exclusive), rows per split,
  and its cold eval users (no rating in the window) with their eval ratings, all kept in eval."""
  span: int
  train_period: str
  eval_period: str
  rows: Dict[str, int]
  cold_eval_users: int
  cold_eval_ratings: int


@dataclasses.dataclass(frozen=True)
class PreparedData:
  """Where the examples are and how many rows, users and movies they hold (rows: of the latest span if spans)."""
  examples_dir: Path
  movies_csv: Path
  rows: Dict[str, int]
  users: int
  movies: int
  skipped_rows: int = 0
  skipped_summary: str = ""
  spans: Tuple[PreparedSpan, ...] = ()
  # Eval users with no train rating and their eval ratings (kept in eval; None: prepared before they were counted).
  cold_eval_users: Optional[int] = None
  cold_eval_ratings: Optional[int] = None

  def span_summary(self, span: Optional[int], window: int) -> str:
    """A line on the span ExampleGen reads (`span`, None: the latest) and its window; raises SpanError when
    `span` was not prepared."""
    read = {prepared.span: prepared for prepared in self.spans}.get(self.spans[-1].span if span is None else span)
    if read is None:
      raise spans.SpanError(f"--span {span}: the examples hold spans {self.spans[0].span} to {self.spans[-1].span}")
    rows = ", ".join(f"{split} {count:,}" for split, count in read.rows.items())
    return (f"span {read.span} of {len(self.spans)} (train {read.train_period}, eval {read.eval_period}: {rows}; "
            f"{read.cold_eval_users:,} cold eval users); Transform and the Trainer see the last {window} spans "
            "that ML Metadata holds up to it")

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
                                     data.synthetic_ratings, data.seed, data.synthetic_like)
    target = Path(data.cache_dir) / (f"synthetic-v{synthetic.GENERATOR_VERSION}-{shape.users}u-{shape.movies}m-"
                                      f"{shape.ratings}r-s{shape.seed}-{shape.like}")
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
  saved = {"fingerprint": fingerprint, "source": str(source)}
  if data.span_by is None:
    train, held_out = split.split_ratings(table, data.split, data.eval_fraction, data.seed)
    saved.update(_write_splits(out_dir, train, held_out, train, table, loaded.movies, data, data.seed))
  else:
    saved["spans"] = _write_spans(out_dir, table, loaded.movies, data)
    latest = saved["spans"][-1]
    saved.update({key: latest[key] for key in ("rows", "cold_eval_users", "cold_eval_ratings")})
  loaded.movies.rename(columns={"movie_id": "movieId"}).to_csv(out_dir / "movies.csv", index=False)
  saved.update({"users": int(table.user_id.nunique()), "movies": int(len(loaded.movies)),
                "skipped_rows": bad_rows.count, "skipped_summary": bad_rows.summary()})
  manifest.write_text(json.dumps(saved, indent=2) + "\n")
  return _from_manifest(out_dir, saved)


def _write_splits(out_dir: Path, train: pd.DataFrame, held_out: pd.DataFrame, history: pd.DataFrame,
                  table: pd.DataFrame, movies: pd.DataFrame, data: DataConfig, seed: int) -> dict:
  """Writes out_dir/train|eval|ranking from `train` and the rated `held_out` pairs; the sampled movies come from
  the movies of `history` (what a model trained there knows) that the user never rated in `table`, and user
  activity from `history`. Returns rows per split and the cold eval users (no rating in `history`) and their
  eval ratings, as prepared.json records them."""
  catalog = np.unique(history.movie_id.to_numpy())
  sampled = split.sample_unrated(table, held_out.user_id.unique(), catalog, data.eval_negatives, seed)
  sampled = sampled.merge(movies, on="movie_id", how="left")
  activity = split.user_activity(history)
  judged = sampled.groupby("user_id", sort=False).cumcount().to_numpy() < data.evaluator_negatives
  parts = {features.TRAIN_SPLIT: [(train, False)],
           features.EVAL_SPLIT: [(held_out, False), (sampled[judged], True)]}
  rows = {}
  for name, split_parts in parts.items():
    (out_dir / name).mkdir(parents=True, exist_ok=True)
    rows[name] = _write_examples(out_dir / name, split_parts, activity, data.examples_per_file)
  (out_dir / features.RANKING_SPLIT).mkdir(parents=True, exist_ok=True)
  rows[features.RANKING_SPLIT] = _write_candidates(out_dir / features.RANKING_SPLIT, sampled[~judged],
                                                   data.examples_per_file)
  cold = ~held_out.user_id.isin(history.user_id.unique()).to_numpy()
  return {"rows": rows, "cold_eval_users": int(held_out.user_id[cold].nunique()),
          "cold_eval_ratings": int(cold.sum())}


def _write_spans(out_dir: Path, table: pd.DataFrame, movies: pd.DataFrame, data: DataConfig) -> List[dict]:
  """Writes out_dir/span-<N>/ for spans 1 .. P-1 of the P periods of `data.span_by` (the module docstring);
  returns what prepared.json records of each span."""
  if data.span_window < 1:
    raise spans.SpanError(f"--span-window must be at least 1, got {data.span_window}")
  span_of_rating, periods = spans.assign_spans(table.timestamp.to_numpy(), spans.parse_span_by(data.span_by))
  if len(periods) < 2:
    raise spans.SpanError(f"--span-by {data.span_by} cuts the ratings into {len(periods)} period(s); spans need "
                          "at least two, since a span's eval is the next period's ratings")
  order = np.argsort(span_of_rating, kind="stable")
  table = table.iloc[order].reset_index(drop=True)
  first_row = np.searchsorted(span_of_rating[order], np.arange(1, len(periods) + 2))  # of spans 1 .. P + 1

  def of_spans(first: int, last: int) -> pd.DataFrame:
    return table.iloc[first_row[max(first, 1) - 1]:first_row[last]]

  for stale in out_dir.glob("span-*"):  # spans of an earlier cut would be read as the latest
    if spans.SPAN_FOLDER_REGEX.fullmatch(stale.name) and stale.is_dir():
      shutil.rmtree(stale)
  written = []
  for span in range(1, len(periods)):
    held_out = of_spans(span + 1, span + 1)
    # Only the eval users' ratings matter to which movies they never rated; the whole table would be grouped
    # once per span.
    eval_users_ratings = table[table.user_id.isin(held_out.user_id.unique())]
    written.append({"span": span, "train_period": periods[span - 1].label(), "eval_period": periods[span].label(),
                    **_write_splits(out_dir / spans.SPAN_FOLDER_PATTERN.format(SPAN=span), of_spans(span, span),
                                    held_out, of_spans(span - data.span_window + 1, span), eval_users_ratings,
                                    movies, data, data.seed + span)})
  return written


def _from_manifest(out_dir: Path, saved: dict) -> PreparedData:
  return PreparedData(examples_dir=out_dir, movies_csv=out_dir / "movies.csv", rows=saved["rows"],
                      users=saved["users"], movies=saved["movies"], skipped_rows=saved["skipped_rows"],
                      skipped_summary=saved["skipped_summary"], cold_eval_users=saved.get("cold_eval_users"),
                      cold_eval_ratings=saved.get("cold_eval_ratings"),
                      spans=tuple(PreparedSpan(**span) for span in saved.get("spans", ())))


def _fingerprint(data: DataConfig, source: Path) -> str:
  """Hash of the settings that shape the examples and of the source files' names, sizes and mtimes."""
  settings = {k: v for k, v in dataclasses.asdict(data).items() if k not in ("cache_dir", "data_dir")}
  files = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in Path(source).iterdir() if p.is_file())
  return hashlib.sha256(json.dumps([settings, files], default=str).encode()).hexdigest()


class _ShardedWriter:
  """Writes `total` GZIP records into folder/<stem>-NNNNN-of-MMMMM.tfrecord.gz: as few files as hold at most
  `per_file` records each, filled evenly (so that workers reading one file each finish together).

  A GZIP file cannot be split, so Beam reads each one with a single worker: one file per split would leave every
  other worker of a multi-process or cluster runner idle in StatisticsGen, Transform and the Evaluator. The
  folder's files of an earlier preparation are removed first, since ImportExampleGen reads every file there.
  """

  def __init__(self, folder: Path, stem: str, total: int, per_file: int):
    if per_file < 1:
      raise ValueError(f"DataConfig.examples_per_file must be at least 1, got {per_file}")
    for stale in folder.glob("*.tfrecord*"):
      stale.unlink()
    files = max(1, -(-total // per_file))
    self._paths = [folder / f"{stem}-{i:05d}-of-{files:05d}.tfrecord.gz" for i in range(files)]
    self._ends = [(i + 1) * total // files for i in range(files)]  # file i ends before record _ends[i]
    self._file = -1
    self._written = 0
    self._writer: Optional[tf.io.TFRecordWriter] = None

  def write(self, record: bytes) -> None:
    while self._file < 0 or self._written == self._ends[self._file]:
      self._next_file()
    self._writer.write(record)
    self._written += 1

  def close(self) -> None:
    """Closes the last file; files not reached (fewer records than `total`, or none) are written empty."""
    while self._file < len(self._paths) - 1:
      self._next_file()
    self._writer.close()

  def _next_file(self) -> None:
    if self._writer is not None:
      self._writer.close()
    self._file += 1
    self._writer = tf.io.TFRecordWriter(str(self._paths[self._file]), options="GZIP")


def _write_examples(folder: Path, parts: list, activity: pd.Series, per_file: int) -> int:
  """Writes (table, is_sampled) parts as GZIP tf.Examples into `folder`, `per_file` to a file; returns the number
  written.

  Rows are encoded WRITE_CHUNK at a time from Arrow columns by tfx_bsl's C++ encoder, so memory stays bounded
  by the chunk and no Python runs per example.
  """
  from tfx_bsl.coders import example_coder  # pylint: disable=g-import-not-at-top

  total = sum(len(table) for table, _ in parts)
  progress = Progress(f"write {folder.name}", total, "examples", interval=5.0)
  writer = _ShardedWriter(folder, "ratings", total, per_file)
  for table, is_sampled in parts:
    for start in range(0, len(table), WRITE_CHUNK):
      chunk = table.iloc[start:start + WRITE_CHUNK]
      for record in example_coder.RecordBatchToExamples(_record_batch(chunk, is_sampled, activity)):
        writer.write(record)
      progress.update(len(chunk))
  writer.close()
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


def _write_candidates(folder: Path, sampled: pd.DataFrame, per_file: int) -> int:
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
  writer = _ShardedWriter(folder, "candidates", len(users), per_file)
  for record in example_coder.RecordBatchToExamples(batch):
    writer.write(record)
  writer.close()
  return len(users)


def _text(values: pd.Series) -> pa.Array:
  return pa.array(values.to_numpy(dtype=object), pa.large_string())


def _one_each(values: pa.Array) -> pa.LargeListArray:
  """[v0, v1, ...] -> [[v0], [v1], ...]: the list-per-row form tf.Example features take."""
  return pa.LargeListArray.from_arrays(pa.array(np.arange(len(values) + 1), pa.int64()), values)
