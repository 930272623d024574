"""Span-to-span drift as the pipeline's drift check measures it, to judge DriftConfig's thresholds.

  .venv/bin/python -m bench.drift_bench --dataset ml-100k --data-dir ../shared/data/movielens/ml-100k --span-by month

Prepares the spans (pipeline/data/prepare.py), computes TFDV statistics of each span's train split as StatisticsGen
does (default StatsOptions), and prints as JSON, per span, its train rows and each comparator's distance to the
previous span (pipeline/drift_gate.py, the curated schema), then the largest distance of each comparator and its
default threshold.
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

from components import features
from pipeline import drift_gate
from pipeline.config import CURATED_SCHEMA_DIR, DataConfig, DriftConfig
from pipeline.data import prepare


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="ml-100k")
  parser.add_argument("--data-dir", type=Path, required=True)
  parser.add_argument("--span-by", default="month")
  args = parser.parse_args()

  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_metadata.proto.v0 import schema_pb2  # pylint: disable=g-import-not-at-top

  schema = text_format.Parse((CURATED_SCHEMA_DIR / "schema.pbtxt").read_text(), schema_pb2.Schema())
  comparators = drift_gate.comparators(DriftConfig())
  with tempfile.TemporaryDirectory() as tmp:
    data = DataConfig(dataset=args.dataset, data_dir=args.data_dir, cache_dir=Path(tmp) / "cache",
                      span_by=args.span_by)
    prepared = prepare.prepare_examples(data, Path(tmp) / "examples")
    rows, previous = [], None
    for span in prepared.spans:
      statistics = tfdv.generate_statistics_from_tfrecord(
          str(prepared.examples_dir / f"span-{span.span}" / features.TRAIN_SPLIT / "*"))
      row = {"span": span.span, "train_period": span.train_period, "train_rows": span.rows[features.TRAIN_SPLIT]}
      if previous is not None:
        anomalies = drift_gate.drift_anomalies(statistics, previous, schema, comparators)
        row.update({".".join(info.path.step): round(measurement.value, 4) for info in anomalies.drift_skew_info
                    for measurement in info.drift_measurements})
      rows.append(row)
      previous = statistics
  largest = {c.feature: {"max": max((row[c.feature] for row in rows if c.feature in row), default=None),
                         "threshold": c.threshold, "comparator": c.kind} for c in comparators}
  print(json.dumps({"dataset": args.dataset, "span_by": args.span_by, "spans": rows, "largest": largest,
                    "config": dataclasses.asdict(DriftConfig())}, indent=2))


if __name__ == "__main__":
  main()
