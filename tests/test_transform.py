"""`preprocessing_fn` through tft_beam on a handful of examples: vocabularies from train only, OOV, genres."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from tests.support import testdata

OOV_BUCKETS = 2
TRAIN = [  # user, movie, genres, rating
    ("7", "10", ["Action", "Comedy"], 5.0),
    ("7", "11", ["Drama"], 2.0),
    ("7", "12", ["Comedy"], 4.0),
    ("8", "10", ["Action", "Comedy"], 3.0),
    ("9", "10", ["Action", "Comedy"], 4.5),
]
EVAL = [("99", "13", ["Western"], 0.0), ("8", "12", ["Comedy"], 4.0)]  # unseen user, movie and genre


@pytest.fixture(scope="module")
def transform_output(tmp_path_factory) -> tft.TFTransformOutput:
  work = tmp_path_factory.mktemp("transform")
  examples = {
      features.TRAIN_SPLIT: [testdata.make_example(u, m, g, r, i, False, "<20") for i, (u, m, g, r) in
                             enumerate(TRAIN)],
      features.EVAL_SPLIT: [testdata.make_example(u, m, g, r, 0, r == 0.0, "<20") for u, m, g, r in EVAL],
  }
  testdata.write_examples(examples, work / "raw")
  transform_dir, _ = testdata.run_transform(work / "raw", work / "out", oov_buckets=OOV_BUCKETS)
  return tft.TFTransformOutput(str(transform_dir))


def _transform(output: tft.TFTransformOutput, rows) -> dict:
  examples = [testdata.make_example(u, m, g, r, 0, r == 0.0, "<20").SerializeToString() for u, m, g, r in rows]
  raw = tf.io.parse_example(tf.constant(examples), output.raw_feature_spec())
  return output.transform_features_layer()(raw)


def test_vocabularies_come_from_train_only_most_frequent_first(transform_output):
  users = transform_output.vocabulary_by_name(features.USER_ID)
  assert users[0] == b"7" and sorted(users) == [b"7", b"8", b"9"]
  assert transform_output.vocabulary_by_name(features.MOVIE_ID)[0] == b"10"
  assert sorted(transform_output.vocabulary_by_name(features.MOVIE_ID)) == [b"10", b"11", b"12"]
  assert sorted(transform_output.vocabulary_by_name(features.GENRES)) == [b"Action", b"Comedy", b"Drama"]
  assert transform_output.num_buckets_for_transformed_feature(features.USER_ID) == 3 + OOV_BUCKETS


def test_unseen_ids_map_to_oov_buckets(transform_output):
  transformed = _transform(transform_output, EVAL)
  users = transformed[features.USER_ID].numpy().reshape(-1)
  movies = transformed[features.MOVIE_ID].numpy().reshape(-1)
  assert 3 <= users[0] < 3 + OOV_BUCKETS and 3 <= movies[0] < 3 + OOV_BUCKETS
  vocab = transform_output.vocabulary_by_name(features.USER_ID)
  assert vocab[users[1]] == b"8"
  genres = tf.sparse.to_dense(transformed[features.GENRES], default_value=-1).numpy()
  assert 3 <= genres[0, 0] < 3 + OOV_BUCKETS  # "Western" never appeared in train


def test_every_genre_of_a_movie_is_kept(transform_output):
  transformed = _transform(transform_output, TRAIN[:1])
  genre_vocab = transform_output.vocabulary_by_name(features.GENRES)
  ids = transformed[features.GENRES].values.numpy()
  assert sorted(genre_vocab[i] for i in ids) == [b"Action", b"Comedy"]


def test_labels_pass_through(transform_output):
  transformed = _transform(transform_output, TRAIN + EVAL)
  expected_liked = [int(r >= features.LIKED_THRESHOLD) for _, _, _, r in TRAIN + EVAL]
  np.testing.assert_array_equal(transformed[features.LIKED].numpy().reshape(-1), expected_liked)
  np.testing.assert_array_equal(transformed[features.INTERACTION].numpy().reshape(-1), [1] * 5 + [0, 1])
  np.testing.assert_array_equal(transformed[features.IS_SAMPLED].numpy().reshape(-1), [0] * 5 + [1, 0])
