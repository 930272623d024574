"""Warm start: epochs and Trainer seconds saved for the same HR@10. Prints one JSON object.

Cuts the ratings into spans (`--span-by`, month); for each span N of `--spans` (default: the latest) transforms
span N - 1's and span N's windows of `--span-window` spans as the pipeline's Transform sees them, trains span
N - 1's model cold (the "latest blessed model"), then span N cold for each of `--cold-epochs` and warm-started
from span N - 1's model for each of `--warm-epochs` (components/warm_start.py), and judges every model on span
N's eval: HR@10 / NDCG@10 under the report's protocol (pipeline/metrics/ranking.py) and both AUCs, as
bench/quality_bench.py does. "0" warm epochs is span N - 1's model itself. Trainer seconds are train_model's
wall and CPU time (catalog scan, build, warm start, fit). "mean" averages every row over the spans.

  nice -n 19 .venv/bin/python -m bench.warm_start_bench --data-dir ../shared/data/movielens/ml-100k --spans 5 6 7
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import argparse
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
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow_transform as tft

from bench.quality_bench import judge
from components import features
from components import model_export
from components import trainer
from components import warm_start
from components.hparams import ModelConfig, TrainConfig
from pipeline.config import DataConfig
from pipeline.data import prepare
from pipeline.data import spans
from tests.support import testdata


def window_transform(examples_dir: Path, span: int, window: int, work_dir: Path) -> Path:
  """Runs the Transform on the train splits of spans span - window + 1 .. span (the pipeline's window) and
  returns its output directory (transform_fn/ and transformed_train*.gz)."""
  out_dir = work_dir / f"transform-{span}"
  if (out_dir / "transform_fn").is_dir():
    return out_dir
  shutil.rmtree(out_dir, ignore_errors=True)
  raw_dir = work_dir / f"window-{span}"
  shutil.rmtree(raw_dir, ignore_errors=True)
  (raw_dir / features.TRAIN_SPLIT).mkdir(parents=True)
  for member in range(max(1, span - window + 1), span + 1):
    span_dir = examples_dir / spans.SPAN_FOLDER_PATTERN.format(SPAN=member) / features.TRAIN_SPLIT
    for path in sorted(span_dir.iterdir()):
      os.symlink(path.resolve(), raw_dir / features.TRAIN_SPLIT / f"span-{member}-{path.name}")
  testdata.run_transform(raw_dir, out_dir, TrainConfig().vocab_oov_buckets)
  return out_dir


def train(transform_dir: Path, model_config: ModelConfig, train_config: TrainConfig, export_dir: Path,
          base_model_dir: Optional[Path] = None) -> Dict[str, float]:
  """Trains (warm from `base_model_dir` when given) and exports to `export_dir`; returns the Trainer's wall and
  CPU seconds (CPU time of all threads: less moved than wall time by other work on shared cores)."""
  tf_transform_output = tft.TFTransformOutput(str(transform_dir))
  start, start_cpu = time.monotonic(), time.process_time()
  with contextlib.redirect_stdout(sys.stderr):
    model, _ = trainer.train_model([str(transform_dir / "transformed_train*.gz")], tf_transform_output,
                                   testdata.tfrecord_dataset_factory, model_config, train_config,
                                   base_model_dir=str(base_model_dir) if base_model_dir else None)
  seconds = {"train_seconds": round(time.monotonic() - start, 1),
             "train_cpu_seconds": round(time.process_time() - start_cpu, 1)}
  model_export.export_serving_model(model, tf_transform_output, export_dir, train_config, model_name="ncf")
  return seconds


def id_changes(base_transform: Path, new_transform: Path) -> Dict[str, Dict[str, int]]:
  """Per vocabulary, ids copied / new / dropped from span N - 1's model to span N's."""
  base, new = tft.TFTransformOutput(str(base_transform)), tft.TFTransformOutput(str(new_transform))
  changes = {}
  for name in warm_start.ID_TABLES:
    base_vocabulary, new_vocabulary = base.vocabulary_by_name(name), new.vocabulary_by_name(name)
    mapping = warm_start.row_mapping(base_vocabulary, len(base_vocabulary), new_vocabulary, len(new_vocabulary))
    changes[name] = {"base": len(base_vocabulary), "new_vocabulary": len(new_vocabulary), "copied": mapping.copied,
                     "new": mapping.new, "dropped": mapping.dropped}
  return changes


def run_span(examples_dir: Path, prepared: prepare.PreparedData, data: DataConfig, span: int,
             cold_epochs: List[int], warm_epochs: List[int], seed: int, work_dir: Path) -> Dict[str, Any]:
  """Span N - 1's model, then span N cold and warm; one row per (start, epochs)."""
  if span < 2:
    raise ValueError(f"span {span}: warm start needs the span before it")
  transforms = {s: window_transform(examples_dir, s, data.span_window, work_dir) for s in (span - 1, span)}
  span_examples = examples_dir / spans.SPAN_FOLDER_PATTERN.format(SPAN=span)
  model_config, base_config = ModelConfig(), dataclasses.replace(TrainConfig(), seed=seed)
  rows: List[Dict[str, Any]] = []
  with tempfile.TemporaryDirectory() as models:
    models_dir = Path(models)
    base_dir = models_dir / "base"
    base_seconds = train(transforms[span - 1], model_config, base_config, base_dir)
    rows.append({"start": "warm", "epochs": 0, "train_seconds": 0.0, "train_cpu_seconds": 0.0,
                 **judge(base_dir, span_examples)})
    print(json.dumps({"span": span, **rows[-1]}), file=sys.stderr, flush=True)
    for start, epoch_list in (("cold", cold_epochs), ("warm", warm_epochs)):
      for epochs in epoch_list:
        config = (dataclasses.replace(base_config, epochs=epochs) if start == "cold" else
                  dataclasses.replace(base_config, warm_start=True, warm_start_epochs=epochs))
        export_dir = models_dir / f"{start}-{epochs}"
        seconds = train(transforms[span], model_config, config, export_dir,
                        base_model_dir=base_dir if start == "warm" else None)
        rows.append({"start": start, "epochs": epochs, **seconds, **judge(export_dir, span_examples)})
        print(json.dumps({"span": span, **rows[-1]}), file=sys.stderr, flush=True)
        shutil.rmtree(export_dir)
  info = next(s for s in prepared.spans if s.span == span)
  return {"span": span, "train_period": info.train_period, "eval_period": info.eval_period, "rows": info.rows,
          "base_model_train_seconds": base_seconds["train_seconds"],
          "ids": id_changes(transforms[span - 1], transforms[span]), "results": rows}


def run(data: DataConfig, span_numbers: Optional[List[int]], cold_epochs: List[int], warm_epochs: List[int],
        seed: int, work_dir: Path) -> Dict[str, Any]:
  load_before = os.getloadavg()
  examples_dir = work_dir / "examples"
  prepared = prepare.prepare_examples(data, examples_dir)
  per_span = [run_span(examples_dir, prepared, data, span, cold_epochs, warm_epochs, seed, work_dir)
              for span in span_numbers or [prepared.spans[-1].span]]
  keys = [(row["start"], row["epochs"]) for row in per_span[0]["results"]]
  metrics = [name for name in per_span[0]["results"][0] if name not in ("start", "epochs")]
  mean = [{"start": start, "epochs": epochs,
           **{name: float(np.mean([next(r[name] for r in result["results"]
                                        if (r["start"], r["epochs"]) == (start, epochs)) for result in per_span]))
              for name in metrics}} for start, epochs in keys]
  return {"benchmark": "warm_start", "dataset": data.dataset, "span_by": data.span_by,
          "span_window": data.span_window, "seed": seed, "spans": per_span, "mean": mean,
          "machine": {"cpus": len(os.sched_getaffinity(0)), "cpu": platform.processor() or platform.machine(),
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average_after": [round(x, 2) for x in os.getloadavg()]}}


def table(result: Dict[str, Any]) -> str:
  """A Markdown table of the means over the spans."""
  lines = ["| start | epochs | HR@10 | NDCG@10 | liked AUC | interaction AUC | Trainer s | Trainer CPU s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for row in result["mean"]:
    lines.append(f"| {row['start']} | {row['epochs']} | {row['hr10']:.3f} | {row['ndcg10']:.3f} | "
                 f"{row['liked_auc']:.3f} | {row['interaction_auc']:.3f} | {row['train_seconds']:.1f} | "
                 f"{row['train_cpu_seconds']:.1f} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="ml-100k")
  parser.add_argument("--data-dir", type=Path)
  parser.add_argument("--span-by", default="month")
  parser.add_argument("--span-window", type=int, default=DataConfig().span_window)
  parser.add_argument("--spans", type=int, nargs="+",
                      help="the spans to train (default: the latest), each warm-started from the one before")
  parser.add_argument("--cold-epochs", type=int, nargs="+", default=[1, 2, 3, 5, TrainConfig().epochs])
  parser.add_argument("--warm-epochs", type=int, nargs="+", default=[1, 2, 3, 5])
  parser.add_argument("--seed", type=int, default=TrainConfig().seed)
  parser.add_argument("--work-dir", type=Path, default=Path.home() / ".cache" / "recsys" / "warm-start")
  args = parser.parse_args()
  data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, span_by=args.span_by,
                    span_window=args.span_window)
  work_dir = args.work_dir / f"{args.dataset}-{args.span_by}-w{args.span_window}"
  work_dir.mkdir(parents=True, exist_ok=True)
  result = run(data, args.spans, args.cold_epochs, args.warm_epochs, args.seed, work_dir)
  print(json.dumps(result, indent=2))
  print(table(result), file=sys.stderr)


if __name__ == "__main__":
  main()
