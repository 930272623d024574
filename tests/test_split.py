"""Train/eval splits and the eval split's sampled unrated movies."""
import numpy as np
import pandas as pd
import pytest

from pipeline.data import split


def ratings_table(users=30, per_user=12, seed=0) -> pd.DataFrame:
  rng = np.random.default_rng(seed)
  rows = []
  for user in range(1, users + 1):
    for movie in rng.choice(np.arange(1, 101), per_user + user % 5, replace=False):
      rows.append((user, int(movie), float(rng.integers(1, 6)), int(rng.integers(0, 50))))
  return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


def test_temporal_split_has_no_user_time_leakage():
  table = ratings_table()  # timestamps drawn from 50 values, so ties are frequent
  train, held_out = split.temporal_split(table, 0.25)
  assert len(train) + len(held_out) == len(table)
  assert not pd.concat([train, held_out]).duplicated(["user_id", "movie_id"]).any()
  last_train = train.groupby("user_id").timestamp.max()
  first_eval = held_out.groupby("user_id").timestamp.min()
  assert (last_train.loc[first_eval.index] <= first_eval).all()
  counts = table.groupby("user_id").size()
  expected = np.clip(np.round(0.25 * counts), 1, counts - 1)
  pd.testing.assert_series_equal(held_out.groupby("user_id").size(), expected.astype("int64"),
                                 check_names=False)


def test_temporal_split_keeps_single_rating_users_in_train():
  table = pd.DataFrame({"user_id": [1, 2, 2], "movie_id": [1, 1, 2], "rating": [4.0, 3.0, 5.0],
                        "timestamp": [5, 1, 2]})
  train, held_out = split.temporal_split(table, 0.5)
  assert train.user_id.tolist() == [1, 2] and held_out.movie_id.tolist() == [2]


def test_random_split_is_seeded():
  table = ratings_table()
  first = split.random_split(table, 0.2, seed=3)[1]
  again = split.random_split(table, 0.2, seed=3)[1]
  pd.testing.assert_frame_equal(first, again)
  assert 0.1 < len(first) / len(table) < 0.3
  assert not first.equals(split.random_split(table, 0.2, seed=4)[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_bad_fraction_is_refused(fraction):
  with pytest.raises(ValueError, match="eval_fraction"):
    split.temporal_split(ratings_table(), fraction)


def test_sampled_movies_are_unrated_distinct_and_seeded():
  table = ratings_table()
  users = table.user_id.unique()
  catalog = np.arange(1, 101)
  sampled = split.sample_unrated(table, users, catalog, 50, seed=1)
  assert (sampled.groupby("user_id").size() == 50).all()
  assert not sampled.duplicated().any()
  rated = set(zip(table.user_id, table.movie_id))
  assert not any(pair in rated for pair in zip(sampled.user_id, sampled.movie_id))
  pd.testing.assert_frame_equal(sampled, split.sample_unrated(table, users, catalog, 50, seed=1))


def test_sampling_stops_at_what_is_left_unrated():
  table = pd.DataFrame({"user_id": [1, 1, 1], "movie_id": [1, 2, 3], "rating": 4.0, "timestamp": 0})
  sampled = split.sample_unrated(table, np.array([1]), np.arange(1, 6), 99, seed=0)
  assert sorted(sampled.movie_id) == [4, 5]


def test_user_activity_buckets():
  train = pd.DataFrame({"user_id": [1] * 5 + [2] * 20 + [3] * 250, "movie_id": 0})
  assert split.user_activity(train).to_dict() == {1: "<20", 2: "20-49", 3: "200+"}
