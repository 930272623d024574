"""Cost of one optimizer step against the embedding tables' size: Keras' Adam vs. LazyAdam; prints one JSON object.

For each catalog shape (users x movies) it builds the project's default NeuMF (components/model.py) and times
train steps on random batches of `TrainConfig.batch_size` pairs: the gradient of the mean of every output plus the
model's regularisation losses (so each table's gradient is sparse or dense exactly as in the Trainer), applied
by each optimizer variant. The Trainer's losses and input pipeline are the same for every variant and are left
out: the difference between variants is the optimizer's.

Usage:
  .venv/bin/python bench/optimizer_bench.py                        # ml-100k, ml-1m, 5M-synthetic, ml-25m shapes
  .venv/bin/python bench/optimizer_bench.py --shape 943x1682 --steps 50
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from components import model as ncf_model  # noqa: E402
from components import trainer  # noqa: E402
from components.hparams import ModelConfig, TrainConfig  # noqa: E402

SHAPES = ("943x1682", "6040x3706", "32500x11800", "162541x59047")
GENRES = 20
# name -> (TrainConfig.optimizer, ModelConfig overrides); the last is the default
VARIANTS = {"adam, l2 1e-6": ("adam", {"l2": 1e-6}), "adam, l2 0": ("adam", {"l2": 0.0}),
            "lazy_adam, l2 1e-6": ("lazy_adam", {"l2": 1e-6}), "lazy_adam, l2 0": ("lazy_adam", {"l2": 0.0})}


def _cpu_model() -> str:
  for line in Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or "unknown"


def step_milliseconds(users: int, movies: int, optimizer_name: str, model_config: ModelConfig,
                      steps: int, batch: int) -> float:
  """Median of `steps` timed train steps (after warm-up), in ms."""
  keras.utils.set_random_seed(1)
  genres = np.eye(GENRES, dtype=np.float32)[np.arange(movies) % GENRES]
  model = ncf_model.build_model(users, movies, genres, model_config)
  optimizer = trainer.OPTIMIZERS[optimizer_name](TrainConfig().learning_rate)
  rng = np.random.default_rng(1)
  inputs = [{"user_id": tf.constant(rng.integers(0, users, batch)), "movie_id": tf.constant(rng.integers(0, movies, batch))}
            for _ in range(8)]

  @tf.function
  def train_step(features):
    with tf.GradientTape() as tape:
      outputs = model(features, training=True)
      loss = tf.add_n([tf.reduce_mean(output) for output in outputs.values()] + list(model.losses))
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)

  for features in inputs:  # trace and build the optimizer's slots
    train_step(features)
  seconds = []
  for step in range(steps):
    start = time.perf_counter()
    train_step(inputs[step % len(inputs)])
    seconds.append(time.perf_counter() - start)
  return float(np.median(seconds) * 1000)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shape", action="append", help="USERSxMOVIES; repeatable (default: four MovieLens shapes).")
  parser.add_argument("--steps", type=int, default=100, help="Timed steps per shape and variant.")
  args = parser.parse_args()
  batch = TrainConfig().batch_size
  results: List[Dict[str, object]] = []
  for shape in args.shape or SHAPES:
    users, movies = (int(v) for v in shape.split("x"))
    row = {"shape": shape, "users": users, "movies": movies}
    for name, (optimizer_name, overrides) in VARIANTS.items():
      model_config = dataclasses.replace(ModelConfig(), **overrides)
      row[f"{name} ms"] = round(step_milliseconds(users, movies, optimizer_name, model_config, args.steps, batch), 2)
      print(f"[optimizer] {shape} {name}: {row[f'{name} ms']} ms a step", file=sys.stderr, flush=True)
    results.append(row)
  print(json.dumps({"benchmark": "optimizer step", "cpu": _cpu_model(), "cpus": os.cpu_count(),
                    "batch": batch, "steps": args.steps, "results": results}, indent=2))


if __name__ == "__main__":
  main()
