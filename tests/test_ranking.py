"""The ranking protocol's cases: the held-out liked movie against the eval split's sampled movies followed by
the ranking split's candidates, as the data layer writes them."""
import pandas as pd

from pipeline.data import prepare
from pipeline.metrics import ranking


def test_cases_join_the_judged_negatives_and_the_candidates_in_order(tmp_path):
  rated = pd.DataFrame({"user_id": [1, 1, 2, 3], "movie_id": [10, 11, 12, 13], "rating": [5.0, 4.0, 4.5, 2.0],
                        "timestamp": [100, 200, 300, 400], "genres": ["Drama"] * 4})
  judged = pd.DataFrame({"user_id": [1, 2, 3], "movie_id": [20, 21, 22], "genres": ["Drama"] * 3})
  candidates = pd.DataFrame({"user_id": [1, 1, 2, 2, 3, 3], "movie_id": [30, 31, 32, 33, 34, 35]})
  activity = pd.Series(["<20"] * 3, index=[1, 2, 3])
  for split in ("eval", "ranking"):
    (tmp_path / split).mkdir()
  prepare._write_examples(tmp_path / "eval", [(rated, False), (judged, True)], activity, 3)  # pylint: disable=protected-access
  assert prepare._write_candidates(tmp_path / "ranking", candidates, 2) == 3  # pylint: disable=protected-access

  cases = ranking.ranking_cases(tmp_path / "eval", tmp_path / "ranking")

  # User 3 liked nothing in eval: no case. User 1's latest liked movie is 11 (timestamp 200).
  assert list(cases.users) == [b"1", b"2"]
  assert list(cases.positives) == [b"11", b"12"]
  assert cases.negatives.tolist() == [[b"20", b"30", b"31"], [b"21", b"32", b"33"]]
  assert ranking.ranking_cases(tmp_path / "eval").negatives.tolist() == [[b"20"], [b"21"]]
