"""`recommend` at three catalog sizes: latency in process and through the server, QPS, recall@10; prints JSON.

For each catalog (1,682 / 9,742 / 59,047 movies: ml-100k, ml-latest-small and ml-25m) it trains the project's
NeuMF (default ModelConfig) briefly on made-up ratings through the real Transform + Trainer path, exports it with
`components.model_export.export_serving_model` as the pipeline does, once with each `recommend`
(TrainConfig.recommend_precompute: lists ranked at export, the default, and ranked per request), and measures
for each: the export's seconds, the in-process `recommend` call (1 user, and 32 users in one call), `recommend`
through `recsys serve --server embedded` (batching on, the shipped config) at concurrency 1 and with 32 callers
after a 2 s warm-up (the load from `recsys loadtest` in a process of its own: serving_bench.load_phase), and
recall@10 of the exported `recommend` against the exhaustive NeuMF ranking (the Keras model scoring every known
movie) over 1,000 users. Trained models are cached under --cache_dir; the exports are redone every run, so the
numbers are always those of the current export code.

Usage (from the repository root; it imports bench.serving_bench and tests.support):
  .venv/bin/python -m bench.recommend_bench                    # all three catalogs
  .venv/bin/python -m bench.recommend_bench --catalogs 59047   # one
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components import model_export
from components import trainer
from components.hparams import ModelConfig, TrainConfig
from pipeline.data.synthetic import GENRES
from bench.serving_bench import (BATCHING_FILE, IN_PROCESS_BATCH, ServerProcess, load_phase, machine,
                                 model_server_command, percentiles_ms)
from tests.support import testdata

CATALOGS = {1682: "ml-100k", 9742: "ml-latest-small", 59047: "ml-25m"}
USERS = 2000
TASTE_FACTORS = 8
RECALL_K = 10
TRAIN = TrainConfig(epochs=2)
EXPORTS = {"precomputed": True, "per_request": False}  # name -> TrainConfig.recommend_precompute
WARM_UP_S = 2.0  # a concurrency-1 phase before the measured ones


@dataclasses.dataclass(frozen=True)
class MadeUpCatalog:
  """Made-up ratings over a catalog of `movies`: every movie is rated at least once (so all are in the
  vocabulary); the rest follow Zipf popularity and a latent user/movie taste, and `liked` follows the taste."""
  movies: int
  users: int = USERS
  ratings_per_user: int = 100
  seed: int = 0

  def examples(self) -> Dict[str, List[tf.train.Example]]:
    rng = np.random.default_rng(self.seed)
    movie_taste = rng.normal(0, 1, (self.movies, TASTE_FACTORS))
    user_taste = rng.normal(0, 1, (self.users, TASTE_FACTORS))
    genre_directions = rng.normal(0, 1, (len(GENRES), TASTE_FACTORS))
    genre_order = np.argsort(-(movie_taste @ genre_directions.T), axis=1)
    movie_genres = [[GENRES[g] for g in row[:1 + m % 2]] for m, row in enumerate(genre_order)]
    popularity = 1.0 / np.arange(1, self.movies + 1) ** 0.8
    forced = np.array_split(rng.permutation(self.movies), self.users)  # every movie once
    train = []
    for u in range(self.users):
      weights = popularity * np.exp(movie_taste @ user_taste[u] / np.sqrt(TASTE_FACTORS))
      drawn = rng.choice(self.movies, size=self.ratings_per_user, replace=False, p=weights / weights.sum())
      for m in np.union1d(drawn, forced[u]):
        taste = movie_taste[m] @ user_taste[u] / np.sqrt(TASTE_FACTORS)
        rating = float(np.clip(np.round(3.3 + taste + rng.normal(0, 0.7)), 1, 5))
        train.append(testdata.make_example(str(u + 1), str(m + 1), movie_genres[m], rating, 1_000_000, False,
                                           "100-199"))
    return {features.TRAIN_SPLIT: train}


def trained_model(catalog_size: int, cache_dir: Path):
  """The cached (Keras model, TFTransformOutput) for `catalog_size`; trains and caches it when missing."""
  directory = cache_dir / f"ncf-recommend-{catalog_size}"
  model_file = directory / "model.keras"
  if not model_file.exists():
    shutil.rmtree(directory, ignore_errors=True)
    with tempfile.TemporaryDirectory() as work:
      work_dir = Path(work)
      testdata.write_examples(MadeUpCatalog(catalog_size).examples(), work_dir / "raw")
      transform_dir, transformed_train = testdata.run_transform(work_dir / "raw", work_dir / "transform")
      with contextlib.redirect_stdout(sys.stderr):  # Keras' progress lines; stdout is the JSON
        model, _ = trainer.train_model([transformed_train], tft.TFTransformOutput(str(transform_dir)),
                                       testdata.tfrecord_dataset_factory, ModelConfig(), TRAIN)
      shutil.copytree(transform_dir, directory / "transform",
                      ignore=shutil.ignore_patterns("tmp", "transformed_train*"))
      model.save(model_file)
  # compile=False: the bench scores and exports; the training losses (the Trainer's own functions) are not needed.
  return (keras.models.load_model(model_file, compile=False),
          tft.TFTransformOutput(str(directory / "transform")))


def exhaustive_top_k(model: keras.Model, known_movies: int, users: np.ndarray, k: int) -> np.ndarray:
  """int [n_users, k] movie indices: the Keras NeuMF scores every known movie for each user (the reference)."""
  movies = tf.range(known_movies, dtype=tf.int64)

  @tf.function
  def top(user: tf.Tensor) -> tf.Tensor:
    heads = model({features.USER_ID: tf.fill([known_movies], user), features.MOVIE_ID: movies}, training=False)
    scores = heads[features.INTERACTION] * tf.pow(heads[features.LIKED], TRAIN.liked_blend)
    return tf.math.top_k(scores, k=k).indices

  return np.stack([top(tf.constant(u, tf.int64)).numpy() for u in users])


def recall_at_k(export_dir: Path, expected: np.ndarray, tf_transform_output: tft.TFTransformOutput) -> float:
  """Share of the exhaustive top-k movies (`expected`, movie indices of the first users) that the exported
  `recommend` returns for those users."""
  user_vocab = tf_transform_output.vocabulary_by_name(features.USER_ID)[:len(expected)]
  movie_vocab = np.array(tf_transform_output.vocabulary_by_name(features.MOVIE_ID), dtype=object)
  recommend = tf.saved_model.load(str(export_dir)).signatures["recommend"]
  hits = 0
  for start in range(0, len(user_vocab), 100):
    got = recommend(user_id=tf.constant(user_vocab[start:start + 100]))["movie_ids"].numpy()
    for row, want in zip(got, expected[start:start + 100]):
      hits += len(set(row) & set(movie_vocab[want]))
  return hits / (len(user_vocab) * RECALL_K)


def in_process_ms(export_dir: Path, users: List[str], calls: int) -> Dict[str, Dict[str, float]]:
  """Times the exported `recommend` in this process: 1 user per call, and IN_PROCESS_BATCH users per call."""
  recommend = tf.saved_model.load(str(export_dir)).signatures["recommend"]
  results = {}
  for batch, batch_calls in ((1, calls), (IN_PROCESS_BATCH, max(10, calls // IN_PROCESS_BATCH))):
    inputs = [tf.constant([users[(i * batch + j) % len(users)] for j in range(batch)]) for i in range(batch_calls)]
    for user_id in inputs[:10]:  # warm up
      recommend(user_id=user_id)
    times = []
    for user_id in inputs:
      started = time.perf_counter()
      recommend(user_id=user_id)["movie_ids"].numpy()
      times.append(time.perf_counter() - started)
    results["recommend" if batch == 1 else f"recommend_batch_{batch}"] = percentiles_ms(times)
  return results


def bench_catalog(catalog_size: int, args: argparse.Namespace) -> Dict:
  model, tf_transform_output = trained_model(catalog_size, args.cache_dir)
  users = [u.decode() for u in tf_transform_output.vocabulary_by_name(features.USER_ID)]
  movies = [m.decode() for m in tf_transform_output.vocabulary_by_name(features.MOVIE_ID)]
  result = {"catalog": CATALOGS.get(catalog_size, "custom"), "movies": len(movies), "users": len(users)}
  expected = exhaustive_top_k(model, len(movies), np.arange(min(args.recall_users, len(users))), RECALL_K)
  ids = {"users": users, "movies": movies}
  for name, precompute in EXPORTS.items():
    with tempfile.TemporaryDirectory() as work:
      ids_file = Path(work) / "ids.json"
      ids_file.write_text(json.dumps(ids))
      base = Path(work) / "ncf"
      export_dir = base / "1"
      started = time.perf_counter()
      model_export.export_serving_model(model, tf_transform_output, export_dir,
                                        dataclasses.replace(TRAIN, recommend_precompute=precompute), "ncf")
      export = {"export_s": time.perf_counter() - started,
                "recall_at_10": recall_at_k(export_dir, expected, tf_transform_output),
                "in_process_ms": in_process_ms(export_dir, users, args.calls)}
      server = ServerProcess(model_server_command(base, BATCHING_FILE))
      try:
        load_phase(server.target, "recommend", 1, WARM_UP_S, ids_file)
        for concurrency in (1, 32):
          export[f"server_concurrency_{concurrency}"] = load_phase(server.target, "recommend", concurrency,
                                                                   args.seconds, ids_file)
      finally:
        server.stop()
    result[name] = export
  return result


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--catalogs", type=int, nargs="+", default=list(CATALOGS),
                      help="Catalog sizes (movies) to build and measure.")
  parser.add_argument("--cache_dir", type=Path, default=Path.home() / ".cache" / "recsys" / "bench")
  parser.add_argument("--seconds", type=float, default=8.0, help="Duration of each server phase.")
  parser.add_argument("--calls", type=int, default=500, help="In-process calls per measurement.")
  parser.add_argument("--recall_users", type=int, default=1000, help="Users the recall is measured over.")
  args = parser.parse_args()
  result = {"benchmark": "recommend", "machine": machine(), "train": dataclasses.asdict(TRAIN),
            "batching_parameters_file": str(BATCHING_FILE), "catalogs": []}
  for catalog_size in args.catalogs:
    result["catalogs"].append(bench_catalog(catalog_size, args))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
