"""A reference for the `liked` head: biased matrix factorisation of the rating fitted by alternating least squares
(no TensorFlow, no negatives), judged like the Evaluator's liked AUC (rating >= 4 among rated eval movies).

Prints one JSON object: the liked AUC for each (factors, L2) on the eval split of the temporal split, and on a
validation split carved from train the same way (each user's latest train ratings), which is where a choice
would be made.

  .venv/bin/python -m bench.mf_reference --data-dir ../shared/data/movielens/ml-100k
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from components import features
from pipeline.data import movielens
from pipeline.data import split
from pipeline.data.bad_rows import BadRows


def fit_als(train: pd.DataFrame, factors: int, l2: float, iterations: int = 12,
            seed: int = 0) -> Tuple[Dict[int, int], Dict[int, int], np.ndarray, np.ndarray, float]:
  """Fits rating ~ mean + b_u + b_m + p_u . q_m by ALS (L2 `l2` on factors and biases, as in the ALS literature:
  per least-squares solve, not scaled by the rating count); returns id -> row maps, P [U, k + 2], Q [M, k + 2]
  (columns: factors, user bias or 1, 1 or movie bias) and the mean."""
  users = {u: i for i, u in enumerate(np.unique(train.user_id))}
  movies = {m: i for i, m in enumerate(np.unique(train.movie_id))}
  user_rows, movie_rows = train.user_id.map(users).to_numpy(), train.movie_id.map(movies).to_numpy()
  mean = float(train.rating.mean())
  residual_target = train.rating.to_numpy(float) - mean
  rng = np.random.default_rng(seed)
  k = factors
  p = np.hstack([rng.normal(0, 0.1, (len(users), k)), np.zeros((len(users), 1)), np.ones((len(users), 1))])
  q = np.hstack([rng.normal(0, 0.1, (len(movies), k)), np.ones((len(movies), 1)), np.zeros((len(movies), 1))])
  by_user = pd.Series(np.arange(len(train))).groupby(user_rows).apply(np.asarray)
  by_movie = pd.Series(np.arange(len(train))).groupby(movie_rows).apply(np.asarray)
  identity = l2 * np.eye(k + 1)
  for _ in range(iterations):
    for row, idx in by_user.items():  # solve [p_u, b_u] with q_m and b_m fixed
      x = q[movie_rows[idx], :k + 1]
      p[row, :k + 1] = np.linalg.solve(x.T @ x + identity, x.T @ (residual_target[idx] - q[movie_rows[idx], k + 1]))
    for row, idx in by_movie.items():  # solve [q_m, b_m] with p_u and b_u fixed
      x = np.hstack([p[user_rows[idx], :k], np.ones((len(idx), 1))])
      solved = np.linalg.solve(x.T @ x + identity, x.T @ (residual_target[idx] - p[user_rows[idx], k]))
      q[row, :k], q[row, k + 1] = solved[:k], solved[k]
  return users, movies, p, q, mean


def liked_auc(train: pd.DataFrame, judged: pd.DataFrame, factors: int, l2: float) -> float:
  """AUC of the predicted rating for rating >= 4 over `judged`'s ratings (unknown ids get the mean's part)."""
  users, movies, p, q, mean = fit_als(train, factors, l2)
  user_rows = judged.user_id.map(users)
  movie_rows = judged.movie_id.map(movies)
  known = user_rows.notna().to_numpy() & movie_rows.notna().to_numpy()
  predicted = np.full(len(judged), mean)
  predicted[known] += (p[user_rows[known].astype(int)] * q[movie_rows[known].astype(int)]).sum(1)
  return float(roc_auc_score(judged.rating.to_numpy() >= features.LIKED_THRESHOLD, predicted))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data-dir", type=Path, required=True)
  parser.add_argument("--eval-fraction", type=float, default=0.1)
  parser.add_argument("--factors", type=int, nargs="+", default=[0, 5, 20])
  parser.add_argument("--l2", type=float, nargs="+", default=[5.0, 15.0, 30.0])
  args = parser.parse_args()
  ratings = movielens.ratings_table(movielens.load(args.data_dir, BadRows("fail")))
  train, evaluation = split.temporal_split(ratings, args.eval_fraction)
  fit, validation = split.temporal_split(train, args.eval_fraction)
  grid: List[dict] = []
  for factors in args.factors:
    for l2 in args.l2:
      grid.append({"factors": factors, "l2": l2, "validation_liked_auc": liked_auc(fit, validation, factors, l2),
                   "eval_liked_auc": liked_auc(train, evaluation, factors, l2)})
  best = max(grid, key=lambda row: row["validation_liked_auc"])
  print(json.dumps({"benchmark": "mf_reference", "data_dir": str(args.data_dir), "grid": grid,
                    "chosen_on_validation": best}, indent=2))


if __name__ == "__main__":
  main()
