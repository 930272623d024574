"""The pipeline on spans: the DAG it builds and the Kubeflow spec. Its runs on tiny weekly data (the spans read,
the window, warm start, the drift gate) are tested on the replay's runs, in tests/test_replay.py."""
import dataclasses
import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from tfx.proto import range_config_pb2

from pipeline.config import (CURATED_SCHEMA_DIR, DataConfig, DriftConfig, EvalConfig, InfraValidationConfig,
                             PipelineConfig)
from pipeline.data import spans
from pipeline.pipeline import create_pipeline
from tests.support import testdata

SPAN_NODES = {"span_window_resolver", "previous_span_statistics_resolver", "DriftValidator", "DriftGate"}


def _config(work: Path, span=None, **data) -> PipelineConfig:
  return PipelineConfig(
      pipeline_name="spans-test", pipeline_root=work / "root", examples_dir=work / "examples",
      serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR, span=span,
      data=DataConfig(**{"dataset": "ml-latest", "data_dir": work / "raw", "cache_dir": work / "cache",
                         "eval_negatives": 10, "evaluator_negatives": 4, "span_by": "week", "span_window": 2,
                         **data}),
      model=testdata.TINY_MODEL,
      train=dataclasses.replace(testdata.TINY_TRAIN, epochs=2, warm_start=True, warm_start_epochs=1),
      eval=EvalConfig(min_liked_auc=0.0, min_interaction_auc=0.0, min_ndcg=0.0),
      drift=DriftConfig(movie_id_linf=1.0, genres_linf=0.15, rating_jsd=0.5),
      infra_validation=InfraValidationConfig(enabled=False))


def _node_ids(config: PipelineConfig) -> set:
  return {node.id for node in create_pipeline(config).components}


def test_without_spans_the_dag_and_example_gen_are_unchanged(tmp_path):
  config = dataclasses.replace(_config(tmp_path), data=DataConfig())
  pipeline = create_pipeline(config)
  assert not _node_ids(config) & SPAN_NODES
  example_gen = next(c for c in pipeline.components if c.id == "ImportExampleGen")
  assert "{SPAN}" not in example_gen.exec_properties["input_config"]
  assert example_gen.exec_properties["range_config"] is None
  with pytest.raises(spans.SpanError, match="--span 2 picks a span of examples prepared with --span-by"):
    create_pipeline(dataclasses.replace(config, span=2))


def test_with_spans_example_gen_reads_span_folders_and_transform_waits_for_the_drift_gate(tmp_path):
  pipeline = create_pipeline(_config(tmp_path, span=3))
  by_id = {c.id: c for c in pipeline.components}
  assert SPAN_NODES <= set(by_id)
  input_config = json.loads(by_id["ImportExampleGen"].exec_properties["input_config"])
  assert [s["pattern"] for s in input_config["splits"]] == [f"span-{{SPAN}}/{name}/*" for name in ("train", "eval",
                                                                                                    "ranking")]
  range_config = json_format.Parse(by_id["ImportExampleGen"].exec_properties["range_config"],
                                   range_config_pb2.RangeConfig())
  assert range_config.static_range == range_config_pb2.StaticRange(start_span_number=3, end_span_number=3)
  assert {"DriftGate", "AnomaliesGate"} <= {node.id for node in by_id["Transform"].upstream_nodes}
  # A window of one span needs no resolver; no drift check, no drift nodes.
  assert not _node_ids(dataclasses.replace(_config(tmp_path, span_window=1),
                                           drift=DriftConfig(enabled=False))) & SPAN_NODES


def test_kubeflow_compiles_the_latest_span_alone_and_refuses_what_it_cannot_compile(tmp_path):
  from pipeline.runners import kubeflow

  config = dataclasses.replace(_config(tmp_path, span_window=1), drift=DriftConfig(enabled=False))
  spec = kubeflow.compile_pipeline(config, "image:1")
  assert "span-{SPAN}/train/*" in str(spec)  # inside ImportExampleGen's input_config
  with pytest.raises(spans.SpanError, match="--span-window 2 and the drift check need resolvers"):
    kubeflow.compile_pipeline(_config(tmp_path), "image:1")
