"""Runs the whole pipeline from an empty pipeline root and prints one JSON object: wall time per component
(from ML Metadata), both heads' AUCs (TFMA), and HR@K / NDCG@K of the trained model next to the most-popular
baseline (pipeline/metrics/ranking.py).

Usage (every `recsys pipeline run` flag is accepted):
  .venv/bin/python bench/pipeline_bench.py --dataset ml-100k --data-dir ../shared/data/movielens/ml-100k \
      --pipeline-root /tmp/bench/ml100k --examples-dir /tmp/bench/ml100k-examples --serving-dir /tmp/bench/serving
  .venv/bin/python bench/pipeline_bench.py --synthetic-ratings 1000000 --beam-mode multi_processing --beam-workers 2 ...
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import os

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.cli import pipeline as pipeline_cli


def measure(config, keep_root: bool = False) -> Dict[str, Any]:
  """Prepares the data and runs the pipeline of `config` (from an empty root unless `keep_root`); returns rows,
  seconds of the preparation and of every component (ML Metadata), AUCs, HR@10 / NDCG@10 and the blessing."""
  from components import features
  from components import trainer
  from pipeline.data.prepare import prepare_examples
  from pipeline.metrics import ranking
  from pipeline.runners import local as local_runner
  from pipeline.runs import summary

  if not keep_root:
    shutil.rmtree(config.pipeline_root, ignore_errors=True)
  start = time.monotonic()
  prepared = prepare_examples(config.data, config.examples_dir)
  prepare_seconds = time.monotonic() - start
  local_runner.run(config)
  run_seconds = time.monotonic() - start - prepare_seconds
  run = summary.summarize(config)
  quality = ranking.evaluate(Path(run.model_path), config.examples_dir / features.TRAIN_SPLIT,
                             config.examples_dir / features.EVAL_SPLIT, config.examples_dir / features.RANKING_SPLIT,
                             k=10)
  return {
      "dataset": config.data.dataset, "rows": prepared.rows, "beam_args": list(config.beam_args),
      "epochs": config.train.epochs,  # configured; the Trainer caps them at max_train_steps:
      "epochs_trained": trainer.epochs_for(trainer.batches_per_epoch(prepared.rows[features.TRAIN_SPLIT],
                                                                     config.train), config.train),
      "prepare_seconds": round(prepare_seconds, 1),
      "pipeline_seconds": round(run_seconds, 1),
      "component_seconds": {name: round(c.seconds, 1) for name, c in run.components.items()},
      "auc": {head: auc.value for head, auc in run.auc.items()}, "ranking": quality, "blessed": run.blessed,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  pipeline_cli.add_config_arguments(parser)
  parser.add_argument("--keep-root", action="store_true",
                      help="Reuse the pipeline root (cached components) instead of starting empty.")
  args = parser.parse_args()
  result = measure(pipeline_cli.config_from_args(args), args.keep_root)
  print(json.dumps({
      "benchmark": "pipeline run", **result,
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
  }, indent=2))


if __name__ == "__main__":
  main()
