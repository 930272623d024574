"""Times TFMA as the Evaluator runs it, on a finished pipeline root's model and eval split, with the pipeline's
eval_config ("derived": components/eval_metrics) and with TFMA's own metrics ("per_example": TFMA's AUC and plots
over its own calibration histogram, ExampleCount, BinaryAccuracy, Precision, Recall, Calibration, MeanLabel,
MeanPrediction per head and the ranking gate's NDCG through `query_key`, the config before issue 11's changes).
Prints one JSON object: seconds per variant and round, and both variants' overall-slice metrics (they must agree).

Usage (after a pipeline run, e.g. bench/pipeline_bench.py ... --pipeline-root /tmp/bench/ml100k):
  .venv/bin/python bench/evaluator_bench.py --pipeline-root /tmp/bench/ml100k --work /tmp/evaluator-bench --rounds 2
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow_model_analysis as tfma

from components import eval_metrics, features, signatures
from pipeline.config import EvalConfig
from pipeline.pipeline import eval_config

PER_EXAMPLE = ("ExampleCount", "BinaryAccuracy", "Precision", "Recall", "Calibration", "MeanLabel", "MeanPrediction")


def per_example_config(config: tfma.EvalConfig) -> tfma.EvalConfig:
  """`config` with the derived metrics swapped for TFMA's per-example ones (the same keys)."""
  config = tfma.EvalConfig.FromString(config.SerializeToString())
  for spec in config.metrics_specs:
    for metric in spec.metrics:
      if metric.class_name.startswith("Array"):  # eval_metrics.ArrayAUC -> TFMA's AUC, ...
        metric.class_name = metric.class_name[len("Array"):]
        metric.ClearField("module")
    names = [metric.class_name for metric in spec.metrics]
    if eval_metrics.HistogramSummary.__name__ in names:
      del spec.metrics[names.index(eval_metrics.HistogramSummary.__name__)]
      spec.metrics.extend(tfma.MetricConfig(class_name=name) for name in PER_EXAMPLE)
    if eval_metrics.QueryNDCG.__name__ in names:
      spec.query_key = features.USER_ID
      del spec.metrics[:]
      spec.metrics.append(tfma.MetricConfig(class_name="NDCG", config=json.dumps({"gain_key": features.LIKED})))
  return config


def without_thresholds(config: tfma.EvalConfig) -> tfma.EvalConfig:
  """`config` without thresholds: TFMA refuses change thresholds without a baseline outside TFX's Evaluator."""
  for spec in config.metrics_specs:
    for metric in spec.metrics:
      metric.ClearField("per_slice_thresholds")
  return config


def evaluate(model_dir: str, eval_files: str, config: tfma.EvalConfig, out: Path) -> Dict:
  """Runs TFMA on `eval_files`; returns its seconds and the overall slice's metrics."""
  start = time.monotonic()
  shared = tfma.default_eval_shared_model(eval_saved_model_path=model_dir, eval_config=config)
  tfma.run_model_analysis(eval_shared_model=shared, eval_config=config, data_location=eval_files,
                          file_format="tfrecords", output_path=str(out))
  seconds = time.monotonic() - start
  overall = dict(tfma.load_eval_result(str(out)).slicing_metrics)[()]
  values = {f"{output}/{name}": float(value["doubleValue"]) for output, by_sub_key in overall.items()
            for by_name in by_sub_key.values() for name, value in by_name.items()}
  return {"seconds": round(seconds, 1), "overall": values}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pipeline-root", type=Path, required=True)
  parser.add_argument("--work", type=Path, required=True)
  parser.add_argument("--rounds", type=int, default=1, help="Variants run alternately this many times.")
  args = parser.parse_args()
  (model_dir,) = sorted(args.pipeline_root.glob("Trainer/model/*/Format-Serving"))[-1:]
  (examples,) = sorted(args.pipeline_root.glob("ImportExampleGen/examples/*"))[-1:]
  eval_files = str(examples / f"Split-{features.EVAL_SPLIT}" / "*")
  derived = without_thresholds(eval_config(EvalConfig()))
  variants = {"derived": derived, "per_example": per_example_config(derived)}
  results = {name: [] for name in variants}
  for round_ in range(args.rounds):
    for name, config in variants.items():
      result = evaluate(str(model_dir), eval_files, config, args.work / f"{name}-{round_}")
      results[name].append(result)
      print(f"{name} round {round_ + 1}: {result['seconds']} s", file=sys.stderr, flush=True)
  print(json.dumps({
      "benchmark": "evaluator", "model": str(model_dir), "score_output": signatures.SCORE_OUTPUT,
      "seconds": {name: [r["seconds"] for r in runs] for name, runs in results.items()},
      "overall": {name: runs[-1]["overall"] for name, runs in results.items()},
      "load_average": os.getloadavg(),
      "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
  }, indent=2))


if __name__ == "__main__":
  main()
