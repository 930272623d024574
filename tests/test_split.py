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


def test_global_temporal_split_has_one_cut_for_everyone():
  rng = np.random.default_rng(1)
  table = ratings_table()
  table["timestamp"] = rng.integers(0, 100_000, len(table))
  late = pd.DataFrame({"user_id": 999, "movie_id": [1, 2], "rating": 4.0, "timestamp": [200_000, 200_001]})
  table = pd.concat([table, late], ignore_index=True)
  cut = split.global_cut_time(table.timestamp.to_numpy(), 0.2)
  train, held_out = split.global_temporal_split(table, 0.2)
  assert train.timestamp.max() <= cut < held_out.timestamp.min()
  assert len(held_out) / len(table) == pytest.approx(0.2, abs=0.01)
  pd.testing.assert_frame_equal(
      pd.concat([train, held_out]).sort_values(["user_id", "movie_id"]).reset_index(drop=True),
      table.sort_values(["user_id", "movie_id"]).reset_index(drop=True))
  # A user who only rated after the cut stays in eval (a cold user), nothing is dropped.
  assert 999 in set(held_out.user_id) and 999 not in set(train.user_id)


def test_global_cut_time_keeps_tied_ratings_together():
  # Half the ratings share the latest timestamp: cutting before them is the only cut with both sides non-empty.
  timestamps = np.array([1, 2, 3, 4, 5, 9, 9, 9, 9, 9])
  assert split.global_cut_time(timestamps, 0.1) == 5
  with pytest.raises(ValueError, match="two different times"):
    split.global_cut_time(np.full(5, 7), 0.1)


def test_split_ratings_dispatches_on_the_mode():
  table = ratings_table()
  for mode, expected in (("temporal", split.temporal_split(table, 0.2)),
                         ("global_temporal", split.global_temporal_split(table, 0.2)),
                         ("random", split.random_split(table, 0.2, 3))):
    for got, want in zip(split.split_ratings(table, mode, 0.2, 3), expected):
      pd.testing.assert_frame_equal(got, want)
  with pytest.raises(ValueError, match="global_temporal"):
    split.split_ratings(table, "by_user", 0.2, 3)


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
