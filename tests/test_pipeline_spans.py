"""The pipeline on spans: the DAG it builds, the Kubeflow spec, and LocalDagRunner runs on tiny weekly data
(about 2 minutes on 2 shared cores) in which ML Metadata records the spans read, Transform and the Trainer see the
window, the second span's Trainer warm-starts from the first span's blessed model, and a drifted span stops at the
drift gate naming the feature."""
import dataclasses
import json
from pathlib import Path
from typing import Dict, List

import pytest
from google.protobuf import json_format
from tfx.proto import range_config_pb2

from components import features
from pipeline.config import (CURATED_SCHEMA_DIR, DataConfig, DriftConfig, EvalConfig, InfraValidationConfig,
                             PipelineConfig)
from pipeline.data import spans
from pipeline.data.prepare import prepare_examples
from pipeline.drift_gate import PREVIOUS_SPAN, DataDriftError
from pipeline.pipeline import create_pipeline, metadata_path
from pipeline.runners import local as local_runner
from pipeline.runs import summary
from pipeline.span_resolvers import span_of
from tests.support import span_ratings, testdata

pytestmark = pytest.mark.slow

SPAN_NODES = {"span_window_resolver", "previous_span_statistics_resolver", "DriftValidator", "DriftGate"}
# Weeks 1-5 make spans 1-4; span 4 trains on week 4, whose ratings all go to Drama movies.
SHAPE = span_ratings.WeeklyRatings(movies=80, weeks=5, drifted_week=4)


def _config(work: Path, span=None, **data) -> PipelineConfig:
  return PipelineConfig(
      pipeline_name="spans-test", pipeline_root=work / "root", examples_dir=work / "examples",
      serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR, span=span,
      data=DataConfig(**{"dataset": "ml-latest", "data_dir": work / "raw", "cache_dir": work / "cache",
                         "eval_negatives": 10, "evaluator_negatives": 4, "span_by": "week", "span_window": 2,
                         **data}),
      model=testdata.TINY_MODEL,
      train=dataclasses.replace(testdata.TINY_TRAIN, epochs=2, warm_start=True, warm_start_epochs=1),
      # Every span that reaches the Evaluator is blessed, so the next one has a base model to start from.
      eval=EvalConfig(min_liked_auc=0.0, min_interaction_auc=0.0, min_ndcg=0.0),
      # movie_id's shares move a lot between weeks of 300 ratings: the test looks at genres.
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


def _store(config: PipelineConfig):
  from ml_metadata.metadata_store import metadata_store
  from tfx.orchestration import metadata

  return metadata_store.MetadataStore(
      metadata.sqlite_metadata_connection_config(metadata_path(config)))


def _latest_inputs(config: PipelineConfig, node: str, key: str) -> List:
  """The input artifacts under `key` of `node`'s latest execution (TFX Artifacts)."""
  from ml_metadata.proto import metadata_store_pb2
  from tfx.types import artifact_utils

  store = _store(config)
  context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{node}")
  execution = max(store.get_executions_by_context(context.id), key=lambda e: (e.create_time_since_epoch, e.id))
  ids = [event.artifact_id for event in store.get_events_by_execution_ids([execution.id])
         if event.type == metadata_store_pb2.Event.INPUT and event.path.steps[0].key == key]
  artifacts = store.get_artifacts_by_id(ids)
  types = {t.id: t for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
  return [artifact_utils.deserialize_artifact(types[a.type_id], a) for a in artifacts]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict:
  """Span 1 (trained cold), span 2 (window [1, 2], warm-started from span 1's model), then the drifted span 4."""
  work = tmp_path_factory.mktemp("spans-e2e")
  span_ratings.write(SHAPE, work / "raw")
  results: Dict = {}
  for span in (1, 2):
    config = _config(work, span=span)
    prepare_examples(config.data, config.examples_dir)
    local_runner.run(config)
    results[span] = {"summary": summary.summarize(config),
                     "transform": _latest_inputs(config, "Transform", "examples"),
                     "trainer": _latest_inputs(config, "Trainer", "examples"),
                     "evaluator": _latest_inputs(config, "Evaluator", "examples"),
                     "drift": _latest_inputs(config, "DriftGate", "drift"),
                     "lines": [summary.describe_node(config, node)[1] for node in ("ImportExampleGen",
                                                                                   "DriftValidator")]}
  config = _config(work, span=4)
  with pytest.raises(DataDriftError) as raised:
    local_runner.run(config)
  results[4] = {"error": str(raised.value), "summary": summary.summarize(config),
                "drift_inputs": _latest_inputs(config, "DriftValidator", "previous_examples"),
                "lines": [summary.describe_node(config, node)[1] for node in ("ImportExampleGen", "DriftValidator")]}
  results["example_spans"] = sorted(
      span_of(a) for a in _latest_inputs(config, "StatisticsGen", "examples") + results[1]["evaluator"]
      + results[2]["evaluator"])
  return results


def test_ml_metadata_records_the_span_each_run_read(runs):
  assert runs["example_spans"] == [1, 2, 4]
  assert [span_of(a) for a in runs[2]["evaluator"]] == [2]  # the Evaluator judges the span read, not the window


def test_transform_and_trainer_see_the_window_of_spans(runs):
  assert sorted(span_of(a) for a in runs[1]["transform"]) == [1]  # nothing older was ingested
  assert sorted(span_of(a) for a in runs[2]["transform"]) == [1, 2]
  assert len(runs[2]["trainer"]) == 2  # one transformed examples artifact per span of the window
  for run in (runs[1], runs[2]):
    assert {c.state for c in run["summary"].components.values()} <= {"COMPLETE", "CACHED"}, run["summary"].components


def test_the_first_span_trains_cold_and_the_second_starts_from_its_blessed_model(runs):
  first, second = runs[1]["summary"], runs[2]["summary"]
  assert first.blessed and first.warm_start_from is None
  assert "warm start: no (trained cold)" in first.format()
  # model_path is <Model artifact uri>/Format-Serving; the base model is the first run's Model artifact.
  assert second.warm_start_from == str(Path(first.model_path).parent)
  assert second.as_dict()["warm_start_from"] == second.warm_start_from
  assert f"warm start: from {second.warm_start_from}" in second.format()


def test_the_first_span_is_not_compared_and_the_second_is_compared_with_it(runs):
  first, second = runs[1]["drift"][0], runs[2]["drift"][0]
  assert first.span == 1 and not first.has_custom_property(PREVIOUS_SPAN)
  assert second.span == 2 and second.get_int_custom_property(PREVIOUS_SPAN) == 1
  # What the console prints when those steps end.
  assert runs[1]["lines"] == ["span 1", "span 1: no previous span, nothing compared"]
  assert runs[2]["lines"] == ["span 2", "span 2 vs span 1: no drift"]


def test_a_drifted_span_stops_before_transform_naming_genres(runs):
  message, ran = runs[4]["error"], runs[4]["summary"].components
  # Span 3 was never ingested, so span 4 is compared with span 2. Week 4 (span 4's train) is all Drama.
  assert "span 4's statistics drifted from span 2's" in message
  assert f"split '{features.TRAIN_SPLIT}'" in message and f"{features.GENRES}: " in message
  assert "threshold 0.15" in message
  assert [span_of(a) for a in runs[4]["drift_inputs"]] == [2]
  assert ran["DriftGate"].state == "FAILED" and "Transform" not in ran and "Trainer" not in ran
  assert runs[4]["lines"] == ["span 4", f"span 4 vs span 2: drift in {features.GENRES}"]
