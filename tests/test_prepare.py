"""prepare_examples: the tf.Examples ExampleGen imports, their features, and idempotence."""
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components import features
from pipeline.data import prepare
from pipeline.config import DataConfig


def read(path: Path) -> list:
  return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path), "GZIP")]


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
  train = read(data.examples_dir / "train" / "ratings.tfrecord.gz")
  held_out = read(data.examples_dir / "eval" / "ratings.tfrecord.gz")
  assert data.rows == {"train": len(train), "eval": len(held_out)}
  assert all(value(e, features.INTERACTION) == [1] and value(e, features.IS_SAMPLED) == [0] for e in train)
  sampled = [e for e in held_out if value(e, features.IS_SAMPLED) == [1]]
  rated = [e for e in held_out if value(e, features.IS_SAMPLED) == [0]]
  assert len(sampled) == 60 * config.eval_negatives and len(rated) + len(train) == 3000
  assert all(value(e, features.INTERACTION) == [0] and value(e, features.RATING) == [0.0]
             and value(e, features.LIKED) == [0] for e in sampled)
  for example in rated + train:
    assert value(example, features.LIKED) == [int(value(example, features.RATING)[0] >= 4.0)]
  rated_pairs = {(value(e, "user_id")[0], value(e, "movie_id")[0]) for e in train + rated}
  assert not any((value(e, "user_id")[0], value(e, "movie_id")[0]) in rated_pairs for e in sampled)


def test_examples_carry_every_feature_with_multi_valued_genres(prepared):
  _, data = prepared
  examples = read(data.examples_dir / "eval" / "ratings.tfrecord.gz")
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
  path = data.examples_dir / "train" / "ratings.tfrecord.gz"
  before = path.stat().st_mtime_ns
  assert prepare.prepare_examples(config, data.examples_dir) == data
  assert path.stat().st_mtime_ns == before
