"""What ranking every user row at export (TrainConfig.recommend_precompute) adds to the Trainer; prints JSON.

Builds the project's NeuMF (default ModelConfig, untrained: the cost depends on the shapes, not the weights) with
`--users` users and `--movies` movies (default: ml-25m's 162,541 and 59,047), then times the two steps the export
adds: `components.model_export.CatalogRanker` (the movie-side tables) and `PrecomputedRanker` (the top K of every
user row, vocabulary and OOV bucket, with the default TrainConfig's K and candidates), and the process's peak RSS.

  .venv/bin/python -m bench.precompute_bench                              # ml-25m's shape
  .venv/bin/python -m bench.precompute_bench --users 2000 --movies 59047  # the recommend bench's
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import argparse
import json
import resource
import time

import numpy as np

from bench.serving_bench import machine
from components import model as ncf_model
from components import model_export
from components.hparams import ModelConfig, TrainConfig
from pipeline.data.synthetic import GENRES

ML25M_USERS, ML25M_MOVIES = 162_541, 59_047


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--users", type=int, default=ML25M_USERS, help="Users in the vocabulary.")
  parser.add_argument("--movies", type=int, default=ML25M_MOVIES, help="Movies in the vocabulary.")
  args = parser.parse_args()
  genres = np.zeros((args.movies + 1, len(GENRES)), np.float32)  # one genre per movie; the OOV row has none
  genres[np.arange(args.movies), np.random.default_rng(0).integers(0, len(GENRES), args.movies)] = 1.0
  train = TrainConfig()
  model = ncf_model.build_model(args.users + 1, args.movies + 1, genres, ModelConfig())  # + 1 OOV bucket each
  started = time.perf_counter()
  ranker = model_export.CatalogRanker(model, args.users, args.movies, train.recommend_candidates, train.liked_blend)
  tables_s = time.perf_counter() - started
  started = time.perf_counter()
  model_export.PrecomputedRanker(ranker, train.recommend_k)
  ranked_s = time.perf_counter() - started
  print(json.dumps({
      "benchmark": "recommend lists ranked at export", "machine": machine(), "users": args.users,
      "movies": args.movies, "user_rows": ranker.num_users, "recommend_k": train.recommend_k,
      "recommend_candidates": train.recommend_candidates, "movie_tables_s": round(tables_s, 2),
      "rank_every_user_s": round(ranked_s, 1), "ms_per_user_row": round(ranked_s * 1e3 / ranker.num_users, 3),
      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}, indent=2))


if __name__ == "__main__":
  main()
