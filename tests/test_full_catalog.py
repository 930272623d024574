"""Full-catalog Recall@K / NDCG@K on a hand-made case whose answer is worked out below."""
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipeline.data import prepare
from pipeline.metrics import full_catalog

# Train ratings per movie: 1:2, 2:2, 3:1, 4:3, 5:4, so the most-popular order is 5, 4, 1|2, 3.
TRAIN = {1: [1, 2], 2: [1, 3], 3: [2, 4, 5], 4: [4, 5], 5: [5], 6: [4], 7: [5]}
# (user, movie, rating) held out; movie 6 has no train rating (outside the catalog), user 3 liked nothing.
HELD_OUT = [(1, 3, 5.0), (1, 4, 2.0), (1, 6, 5.0), (2, 4, 4.0), (2, 5, 4.5), (3, 1, 3.0)]
SAMPLED = [(1, 5), (2, 2)]  # the eval split's sampled unrated movies: no part in the full-catalog metrics


def _write_splits(root):
  train = pd.DataFrame([(user, movie, 4.0, 1) for user, movies in TRAIN.items() for movie in movies],
                       columns=["user_id", "movie_id", "rating", "timestamp"])
  held_out = pd.DataFrame([(*row, 2) for row in HELD_OUT], columns=["user_id", "movie_id", "rating", "timestamp"])
  sampled = pd.DataFrame(SAMPLED, columns=["user_id", "movie_id"])
  activity = pd.Series("<20", index=list(TRAIN))
  for name, parts in (("train", [(train, False)]), ("eval", [(held_out, False), (sampled, True)])):
    (root / name).mkdir()
    parts = [(table.assign(genres="Drama"), is_sampled) for table, is_sampled in parts]
    prepare._write_examples(root / name, parts, activity, 10)  # pylint: disable=protected-access


class _InverseIdModel(tf.Module):
  """A stand-in for the exported model: score = 1 / movie id, whoever the user."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id"),
                                tf.TensorSpec([None], tf.string, name="movie_id")])
  def predict(self, user_id, movie_id):
    del user_id
    return {"score": 1.0 / tf.strings.to_number(movie_id)}


def test_hand_made_case(tmp_path):
  _write_splits(tmp_path)
  model = _InverseIdModel()
  tf.saved_model.save(model, str(tmp_path / "model"), signatures={"predict": model.predict})

  result = full_catalog.evaluate(tmp_path / "model", tmp_path / "train", tmp_path / "eval", k=2)

  # Candidates: catalog movies 1-5 less the user's train movies. Judged: users 1 (relevant {3}) and 2 ({4, 5}).
  assert (result["users"], result["eligible_users"], result["catalog_movies"]) == (2, 2, 5)
  assert result["relevant_outside_catalog"] == 1
  # Model (low ids first). User 1: 3, 4, 5 -> top 2 [3, 4], recall 1/1, NDCG 1.
  # User 2: 2, 4, 5 -> top 2 [2, 4], recall 1/2, NDCG (1/log2 3) / (1 + 1/log2 3).
  second = 1 / math.log2(3)
  assert result["model"]["recall"] == pytest.approx((1 + 0.5) / 2)
  assert result["model"]["ndcg"] == pytest.approx((1 + second / (1 + second)) / 2)
  # Most popular. User 1: 5, 4, 3 -> [5, 4], no hit. User 2: 5, 4, 2 -> [5, 4], both relevant: recall 1, NDCG 1.
  assert result["most_popular"] == pytest.approx({"recall": 0.5, "ndcg": 0.5})


def test_recall_divides_by_the_smaller_of_k_and_the_relevant_count():
  scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
  relevant = np.array([[True, False, True, True, True]])
  excluded = np.zeros_like(relevant)
  metrics = full_catalog.top_k_metrics(scores, excluded, relevant, k=2, tiebreak=np.arange(5))
  # Top 2: [relevant, not]: 1 hit of min(2, 4) = 2; DCG 1, ideal 1 + 1/log2 3.
  assert metrics.recall == pytest.approx(0.5)
  assert metrics.ndcg == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_equal_scores_follow_the_tiebreak_and_excluded_movies_never_rank():
  scores = np.zeros((1, 4))
  relevant = np.array([[False, False, True, False]])
  excluded = np.array([[False, True, False, False]])
  # Ties in tiebreak order: movie 0, (1 excluded), 2, 3.
  first = full_catalog.top_k_metrics(scores, excluded, relevant, k=1, tiebreak=np.arange(4))
  assert (first.recall, first.ndcg) == (0.0, 0.0)
  second = full_catalog.top_k_metrics(scores, excluded, relevant, k=2, tiebreak=np.arange(4))
  assert second.recall == 1.0 and second.ndcg == pytest.approx(1 / math.log2(3))
  unexcluded = full_catalog.top_k_metrics(scores, np.zeros_like(excluded), relevant, k=2, tiebreak=np.arange(4))
  assert unexcluded.recall == 0.0


def test_users_without_a_relevant_movie_are_refused():
  with pytest.raises(ValueError, match="no relevant movie"):
    full_catalog.top_k_metrics(np.zeros((2, 3)), np.zeros((2, 3), bool), np.array([[1, 0, 0], [0, 0, 0]], bool),
                               k=1, tiebreak=np.arange(3))


def test_a_seeded_sample_of_users_is_judged(tmp_path):
  _write_splits(tmp_path)
  cases = full_catalog.full_catalog_cases(tmp_path / "train", tmp_path / "eval", max_users=1, seed=3)
  again = full_catalog.full_catalog_cases(tmp_path / "train", tmp_path / "eval", max_users=1, seed=3)
  assert len(cases.users) == 1 and cases.eligible_users == 2
  assert list(cases.users) == list(again.users)
  assert sorted(cases.excluded) == list(cases.users)  # only the judged users' train movies are kept
