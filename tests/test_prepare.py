"""prepare_examples: the tf.Examples ExampleGen imports, their features, and idempotence."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components import features
from pipeline.data import prepare
from pipeline.config import DataConfig
from tests.support.testdata import read_split



def value(example, name):
  feature = example.features.feature[name]
  kind = feature.WhichOneof("kind")
  values = list(getattr(feature, kind).value)
  return [v.decode() for v in values] if kind == "bytes_list" else values


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  cache = tmp_path_factory.mktemp("cache")
  config = DataConfig(cache_dir=cache, synthetic_users=60, synthetic_movies=300, synthetic_ratings=3000,
                      eval_negatives=20)
  return config, prepare.prepare_examples(config, tmp_path_factory.mktemp("examples"))


def test_splits_hold_rated_train_and_rated_plus_sampled_eval(prepared):
  config, data = prepared
  train = read_split(data.examples_dir / "train")
  held_out = read_split(data.examples_dir / "eval")
  candidates = read_split(data.examples_dir / "ranking")
  assert data.rows == {"train": len(train), "eval": len(held_out), "ranking": len(candidates)}
  assert all(value(e, features.INTERACTION) == [1] and value(e, features.IS_SAMPLED) == [0] for e in train)
  judged = [e for e in held_out if value(e, features.IS_SAMPLED) == [1]]
  rated = [e for e in held_out if value(e, features.IS_SAMPLED) == [0]]
  assert all(value(e, features.INTERACTION) == [0] and value(e, features.RATING) == [0.0]
             and value(e, features.LIKED) == [0] for e in judged)
  for example in rated + train:
    assert value(example, features.LIKED) == [int(value(example, features.RATING)[0] >= 4.0)]
  # The Evaluator judges `evaluator_negatives` of each eval user's sampled movies; the ranking split holds the
  # rest, one example per user with the movies as a list.
  assert len(judged) == 60 * config.evaluator_negatives and len(candidates) == 60
  assert all(set(e.features.feature) == {features.USER_ID, features.MOVIE_ID} for e in candidates)
  sampled = [(value(e, "user_id")[0], value(e, "movie_id")[0]) for e in judged] + [
      (value(e, "user_id")[0], movie) for e in candidates for movie in value(e, "movie_id")]
  assert len(sampled) == 60 * config.eval_negatives == len(set(sampled)) and len(rated) + len(train) == 3000
  rated_pairs = {(value(e, "user_id")[0], value(e, "movie_id")[0]) for e in train + rated}
  assert not rated_pairs & set(sampled)
  assert data.cold_eval_users == 0 and data.cold_summary == ""  # the per-user split keeps every eval user in train


def test_examples_carry_every_feature_with_multi_valued_genres(prepared):
  _, data = prepared
  examples = read_split(data.examples_dir / "eval")
  names = {features.USER_ID, features.MOVIE_ID, features.GENRES, features.RATING, features.TIMESTAMP,
           features.LIKED, features.INTERACTION, features.IS_SAMPLED, features.USER_ACTIVITY}
  assert all(set(e.features.feature) == names for e in examples)
  assert max(len(value(e, features.GENRES)) for e in examples) > 1
  assert {value(e, features.USER_ACTIVITY)[0] for e in examples} <= {
      label for _, label in features.USER_ACTIVITY_BUCKETS}
  titles = np.genfromtxt(data.movies_csv, delimiter=",", names=True, dtype=None, encoding="utf-8")
  assert len(titles) == 300 and "title" in titles.dtype.names


def test_same_inputs_leave_files_untouched(prepared):
  config, data = prepared
  path, = (data.examples_dir / "train").glob("*.tfrecord.gz")
  before = path.stat().st_mtime_ns
  assert prepare.prepare_examples(config, data.examples_dir) == data
  assert path.stat().st_mtime_ns == before


def _reference_example(user: int, movie: int, genres: str, rating: float, timestamp: int, activity: str,
                       is_sampled: bool) -> tf.train.Example:
  """The per-example encoding the data layer used before it wrote Arrow batches (kept here as the reference)."""
  def text(*values: str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

  def integer(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: text(str(user)), features.MOVIE_ID: text(str(movie)),
      features.GENRES: text(*genres.split("|")),
      features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[float(rating)])),
      features.TIMESTAMP: integer(timestamp), features.LIKED: integer(rating >= features.LIKED_THRESHOLD),
      features.INTERACTION: integer(not is_sampled), features.IS_SAMPLED: integer(is_sampled),
      features.USER_ACTIVITY: text(activity)}))


@pytest.mark.parametrize("is_sampled", [False, True])
def test_batched_encoding_equals_the_per_example_one(tmp_path, is_sampled):
  import pandas as pd

  table = pd.DataFrame({"user_id": [1, 2, 30, 2], "movie_id": [10, 11, 12, 1000],
                        "rating": [4.0, 3.5, 5.0, 0.5], "timestamp": [100, 200, 300, 2**40],
                        "genres": ["Drama", "Action|Comedy|Sci-Fi", "(no genres listed)", "Film-Noir|Drama"]})
  activity = pd.Series(["20-49", "200+"], index=[1, 2])  # user 30 has no train ratings: the lowest bucket
  folder = tmp_path / "split"
  folder.mkdir()
  assert prepare._write_examples(folder, [(table, is_sampled)], activity, 3) == 4  # pylint: disable=protected-access
  expected = [_reference_example(
      row.user_id, row.movie_id, row.genres, 0.0 if is_sampled else row.rating, 0 if is_sampled else row.timestamp,
      activity.get(row.user_id, features.USER_ACTIVITY_BUCKETS[0][1]), is_sampled) for row in table.itertuples()]
  assert sorted(p.name for p in folder.iterdir()) == ["ratings-00000-of-00002.tfrecord.gz",
                                                      "ratings-00001-of-00002.tfrecord.gz"]
  assert read_split(folder) == expected


def test_splits_are_written_in_files_of_at_most_examples_per_file(prepared, tmp_path):
  config, whole = prepared
  data = prepare.prepare_examples(dataclasses.replace(config, examples_per_file=500), tmp_path / "examples")
  assert data.rows == whole.rows
  for split in ("train", "eval", "ranking"):
    files = sorted((data.examples_dir / split).glob("*.tfrecord.gz"))
    expected = -(-data.rows[split] // 500)
    assert len(files) == expected and files[-1].name.endswith(f"-of-{expected:05d}.tfrecord.gz"), split
    sizes = [sum(1 for _ in tf.data.TFRecordDataset(str(f), "GZIP")) for f in files]
    assert max(sizes) <= 500 and max(sizes) - min(sizes) <= 1 and sum(sizes) == data.rows[split], split
    assert read_split(data.examples_dir / split) == read_split(whole.examples_dir / split), split
  # A preparation with other settings into the same folder leaves no file of the earlier one behind.
  data = prepare.prepare_examples(dataclasses.replace(config, examples_per_file=10**6), tmp_path / "examples")
  assert [p.name for p in (data.examples_dir / "train").iterdir()] == ["ratings-00000-of-00001.tfrecord.gz"]


def test_global_temporal_split_end_to_end(tmp_path):
  config = DataConfig(cache_dir=tmp_path / "cache", synthetic_users=80, synthetic_movies=200,
                      synthetic_ratings=4000, eval_negatives=20, split="global_temporal", eval_fraction=0.2)
  data = prepare.prepare_examples(config, tmp_path / "examples")
  train = read_split(data.examples_dir / "train")
  held_out = read_split(data.examples_dir / "eval")
  rated = [e for e in held_out if value(e, features.IS_SAMPLED) == [0]]
  assert len(train) + len(rated) == 4000
  assert len(rated) / 4000 == pytest.approx(0.2, abs=0.02)
  assert max(value(e, features.TIMESTAMP)[0] for e in train) < min(value(e, features.TIMESTAMP)[0] for e in rated)
  # Users who only rated after the cut stay in eval and are counted; they get sampled negatives like the others.
  train_users = {value(e, features.USER_ID)[0] for e in train}
  cold = {value(e, features.USER_ID)[0] for e in rated} - train_users
  assert cold and data.cold_eval_users == len(cold)
  assert data.cold_eval_ratings == sum(value(e, features.USER_ID)[0] in cold for e in rated)
  assert str(len(cold)) in data.cold_summary
  sampled_users = {value(e, features.USER_ID)[0] for e in held_out if value(e, features.IS_SAMPLED) == [1]}
  assert cold <= sampled_users
  assert prepare.prepare_examples(config, data.examples_dir) == data  # read back from the manifest
