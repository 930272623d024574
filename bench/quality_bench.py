"""Model quality over seeds: trains the Trainer's model on one Transform output per variant and seed, exports it as
the pipeline does and prints one JSON object with HR@10 / NDCG@10 on the NCF protocol, both AUCs and their mean and
spread over seeds.

Variants are overrides of ModelConfig / TrainConfig fields (`model.<field>=<value>`, `train.<field>=<value>`);
`--variant` repeats, each a comma-separated list of overrides ("" is the default config). With `--validation`, the
train split is split again the same way (each user's latest train ratings held out) and the variants are judged on
that validation split, so that choices are never made on the eval split.

  .venv/bin/python -m bench.quality_bench --dataset ml-100k --data-dir ../shared/data/movielens/ml-100k \
      --seeds 1 2 3 --variant "" --variant "train.negatives_per_positive=4"
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import argparse
import ast
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from sklearn.metrics import roc_auc_score

from components import features
from components import model_export
from components import trainer
from components.hparams import ModelConfig, TrainConfig
from pipeline.config import DataConfig
from pipeline.data import movielens
from pipeline.data import prepare
from pipeline.data import split
from pipeline.data.bad_rows import BadRows
from pipeline.metrics import ranking
from tests.support import testdata


def parse_variant(text: str) -> Tuple[ModelConfig, TrainConfig]:
  """"model.l2=1e-5,train.epochs=20" -> (ModelConfig, TrainConfig) with those fields replaced."""
  overrides: Dict[str, Dict[str, Any]] = {"model": {}, "train": {}}
  for item in filter(None, (part.strip() for part in text.split(","))):
    key, _, value = item.partition("=")
    scope, _, field = key.partition(".")
    if scope not in overrides or not field or not value:
      raise ValueError(f"variant item {item!r}: expected model.<field>=<value> or train.<field>=<value>")
    try:
      overrides[scope][field] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      overrides[scope][field] = value  # a bare word: a string field such as train.negative_sampler=popularity
  return (dataclasses.replace(ModelConfig(), **overrides["model"]),
          dataclasses.replace(TrainConfig(), **overrides["train"]))


def validation_source(data: DataConfig, work_dir: Path) -> Path:
  """A MovieLens-format copy of `data`'s train split only: preparing it holds out each user's latest train
  ratings as a validation split (the eval split's ratings are not in it)."""
  loaded = movielens.load(prepare.source_dir(data), BadRows("fail"))
  train, _ = split.temporal_split(movielens.ratings_table(loaded), data.eval_fraction)
  target = work_dir / "validation-source"
  movielens.write_latest_csv([train], loaded.movies, target)
  return target


def heads_on(model_dir: Path, users: np.ndarray, movies: np.ndarray) -> Dict[str, np.ndarray]:
  """interaction / liked / score of the `predict` signature for raw id pairs."""
  predict = tf.saved_model.load(str(model_dir)).signatures["predict"]
  out: Dict[str, List[np.ndarray]] = {}
  for start in range(0, len(users), ranking.PREDICT_BATCH):
    batch = slice(start, start + ranking.PREDICT_BATCH)
    result = predict(user_id=tf.constant(list(users[batch])), movie_id=tf.constant(list(movies[batch])))
    for name, values in result.items():
      out.setdefault(name, []).append(values.numpy())
  return {name: np.concatenate(values) for name, values in out.items()}


def judge(model_dir: Path, examples_dir: Path) -> Dict[str, float]:
  """HR@10 / NDCG@10 (NCF protocol) and the AUCs of both heads on the eval split, as the Evaluator computes them."""
  result = ranking.evaluate(model_dir, examples_dir / features.TRAIN_SPLIT, examples_dir / features.EVAL_SPLIT,
                            examples_dir / features.RANKING_SPLIT)
  rows = ranking.read_split(examples_dir / features.EVAL_SPLIT,
                            [features.USER_ID, features.MOVIE_ID, features.INTERACTION, features.LIKED])
  heads = heads_on(model_dir, rows[features.USER_ID], rows[features.MOVIE_ID])
  rated = rows[features.INTERACTION] == 1
  return {"hr10": result["model"]["hit_rate"], "ndcg10": result["model"]["ndcg"],
          "interaction_auc": float(roc_auc_score(rows[features.INTERACTION], heads[features.INTERACTION])),
          "liked_auc": float(roc_auc_score(rows[features.LIKED][rated], heads[features.LIKED][rated])),
          "popularity_hr10": result["most_popular"]["hit_rate"], "popularity_ndcg10": result["most_popular"]["ndcg"]}


def run(variants: List[str], seeds: List[int], data: DataConfig, work_dir: Path) -> Dict[str, Any]:
  """Prepares and transforms the data once, then trains, exports and judges every variant with every seed."""
  examples_dir = work_dir / "examples"
  prepared = prepare.prepare_examples(data, examples_dir)
  transform_dir = work_dir / "transform"
  if not (transform_dir / "transform_fn").is_dir():
    shutil.rmtree(transform_dir, ignore_errors=True)
    testdata.run_transform(examples_dir, transform_dir, TrainConfig().vocab_oov_buckets)
  tf_transform_output = tft.TFTransformOutput(str(transform_dir))
  train_files = [str(examples_dir / features.TRAIN_SPLIT / "*")]  # raw: the Trainer applies the transform graph
  results = []
  for variant in variants:
    model_config, train_config = parse_variant(variant)
    runs = []
    for seed in seeds:
      config = dataclasses.replace(train_config, seed=seed)
      start = time.monotonic()
      with contextlib.redirect_stdout(sys.stderr):
        model, _ = trainer.train_model(train_files, tf_transform_output, testdata.tfrecord_dataset_factory,
                                       model_config, config)
      seconds = time.monotonic() - start
      with tempfile.TemporaryDirectory() as export:
        model_export.export_serving_model(model, tf_transform_output, Path(export), config, model_name="ncf")
        metrics = judge(Path(export), examples_dir)
      runs.append({"seed": seed, "train_seconds": round(seconds, 1), **metrics})
      print(json.dumps({"variant": variant, **runs[-1]}), file=sys.stderr, flush=True)
    names = [name for name in runs[0] if name not in ("seed",)]
    results.append({"variant": variant or "(default)", "runs": runs,
                    "mean": {n: float(np.mean([r[n] for r in runs])) for n in names},
                    "std": {n: float(np.std([r[n] for r in runs])) for n in names}})
  return {"benchmark": "quality", "dataset": data.dataset, "split": data.split, "rows": prepared.rows,
          "seeds": seeds, "machine": {"cpus": str(len(os.sched_getaffinity(0))),
                                      "cpu": platform.processor() or platform.machine()},
          "results": results}


def table(result: Dict[str, Any]) -> str:
  """A Markdown table of the means (and spreads) per variant."""
  lines = ["| variant | HR@10 | NDCG@10 | interaction AUC | liked AUC | train s |", "|---|---:|---:|---:|---:|---:|"]
  for row in result["results"]:
    mean, std = row["mean"], row["std"]
    cells = [f"{mean[n]:.3f} ± {std[n]:.3f}" for n in ("hr10", "ndcg10", "interaction_auc", "liked_auc")]
    lines.append(f"| {row['variant']} | " + " | ".join(cells) + f" | {mean['train_seconds']:.0f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="ml-100k")
  parser.add_argument("--data-dir", type=Path)
  parser.add_argument("--split", default="temporal")
  parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
  parser.add_argument("--variant", action="append", help="comma-separated overrides; repeat for more variants")
  parser.add_argument("--validation", action="store_true", help="judge on a validation split carved from train")
  parser.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "recsys" / "quality")
  args = parser.parse_args()
  data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, split=args.split)
  work_dir = args.work_dir / f"{args.dataset}-{args.split}{'-validation' if args.validation else ''}"
  work_dir.mkdir(parents=True, exist_ok=True)
  if args.validation:
    data = dataclasses.replace(data, data_dir=validation_source(data, work_dir))
  result = run(args.variant or [""], args.seeds, data, work_dir)
  print(json.dumps(result, indent=2))
  print(table(result), file=sys.stderr)


if __name__ == "__main__":
  main()
