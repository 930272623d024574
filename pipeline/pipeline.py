"""The TFX pipeline: ImportExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator
-> AnomaliesGate [spans: -> DriftValidator -> DriftGate, and a window of spans for Transform and Trainer]
-> Transform -> Trainer (two-head NeuMF; with warm start, from the latest blessed model)
-> Evaluator (vs. the latest blessed model) -> InfraValidator (served in a model server subprocess) -> Pusher.
"""
import dataclasses
import json
from typing import List, Optional, Tuple

import tensorflow_model_analysis as tfma
from tfx.components import Evaluator, ExampleValidator, Pusher, SchemaGen, StatisticsGen, Trainer, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import base_node
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration import metadata
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2
from tfx.proto import pusher_pb2
from tfx.proto import range_config_pb2
from tfx.proto import trainer_pb2
from tfx.proto import transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from pipeline import baseline
from components import eval_metrics
from components import features
from components import signatures
from components import transform as transform_module
from pipeline import drift_gate
from pipeline import example_copy
from pipeline import span_resolvers
from pipeline.anomalies_gate import AnomaliesGate
from pipeline.data import spans
from pipeline.infra_validation import InfraValidator, config_parameter
from pipeline.config import EvalConfig, PipelineConfig

SCHEMA_FILE = "schema.pbtxt"
PREPROCESSING_FN = "components.transform.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"
SERVING_SIGNATURE = "serving_default"
# Slices the Evaluator reports; blessing looks at the overall slice only. No `is_sampled` slice: each of its
# values holds one class for `interaction` and no weight for `liked`, so no AUC there could be judged.
SLICES = ((), (features.GENRES,), (features.USER_ACTIVITY,))
# Thresholds of TFMA's AUC (its default is 10,000): the confusion-matrix histogram every slice, head and model
# carries, merged in Python, shrinks tenfold; the AUC moves by less than 0.001 (BENCHMARKS.md, "Scale").
AUC_THRESHOLDS = 1000


def metadata_path(config: PipelineConfig) -> str:
  """The SQLite ML Metadata file of `config` (pipeline_root/metadata.sqlite unless set)."""
  return str(config.metadata_path or config.pipeline_root / "metadata.sqlite")


def trainer_custom_config(config: PipelineConfig) -> dict:
  """The JSON-able Trainer custom_config that components.trainer.run_fn reads back into typed configs."""
  return {"model": dataclasses.asdict(config.model), "train": dataclasses.asdict(config.train),
          "model_name": config.model_name}


def _threshold(lower_bound: float, max_regression: float) -> tfma.MetricThreshold:
  return tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={"value": lower_bound}),
      # A candidate may lose at most `max_regression` against the latest blessed model; without a
      # baseline (first run) TFMA judges by the value threshold alone.
      change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                   absolute={"value": -max_regression}))


def _head_metrics(head: str, min_auc: float, config: EvalConfig, weighted: bool) -> tfma.MetricsSpec:
  overall_only = [tfma.SlicingSpec()]
  return tfma.MetricsSpec(
      output_names=[head],
      # `liked` is weighted by `interaction` (1 rated, 0 sampled): its metrics count rated examples only.
      example_weights=tfma.ExampleWeightOptions(weighted=weighted, unweighted=not weighted),
      metrics=[
          tfma.MetricConfig(
              class_name=eval_metrics.ArrayAUC.__name__, module=eval_metrics.__name__,
              config=json.dumps({"num_thresholds": AUC_THRESHOLDS}),
              per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                  slicing_specs=overall_only, threshold=_threshold(min_auc, config.max_auc_regression))]),
          # example_count (with `weighted`, of the examples that carry weight: rated ones for `liked`),
          # binary_accuracy, precision and recall at 0.5, calibration, mean_label and mean_prediction, all read
          # from the calibration histogram the AUC builds: no per-example work of their own.
          tfma.MetricConfig(class_name=eval_metrics.HistogramSummary.__name__, module=eval_metrics.__name__),
          # Curves and calibration for the report (recsys report), from the same histogram.
          tfma.MetricConfig(class_name=eval_metrics.ArrayConfusionMatrixPlot.__name__, module=eval_metrics.__name__,
                            config='{"num_thresholds": 200}'),
          tfma.MetricConfig(class_name=eval_metrics.ArrayCalibrationPlot.__name__, module=eval_metrics.__name__,
                            config='{"num_buckets": 100}'),
      ])


def _ranking_metrics(config: EvalConfig) -> tfma.MetricsSpec:
  """The ranking gate: NDCG@`ndcg_k` of the `score` output (the one `recommend` ranks by), one query per eval
  user over all of the user's eval examples (held-out rated and sampled unrated movies), gains from `liked` (the
  label of `score`), so liked movies must come first; users without a liked movie carry no weight (TFMA's NDCG,
  computed by components/eval_metrics.QueryNDCG without TFMA's per-query shuffle)."""
  return tfma.MetricsSpec(
      output_names=[signatures.SCORE_OUTPUT],
      binarize=tfma.BinarizationOptions(top_k_list={"values": [config.ndcg_k]}),
      example_weights=tfma.ExampleWeightOptions(unweighted=True),
      metrics=[
          tfma.MetricConfig(
              class_name=eval_metrics.QueryNDCG.__name__, module=eval_metrics.__name__,
              config=json.dumps({"query_feature": features.USER_ID}),
              per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                  slicing_specs=[tfma.SlicingSpec()],
                  threshold=_threshold(config.min_ndcg, config.max_ndcg_regression))]),
      ])


def eval_config(config: EvalConfig) -> tfma.EvalConfig:
  """TFMA config: per-head metrics on the eval split, slices, and blessing thresholds on the overall slice."""
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name=SERVING_SIGNATURE,
          model_type=tfma.TF_GENERIC,  # a tf.Module SavedModel, not a Keras one
          # `score` is labelled by `liked` only because TFMA needs a label per output; NDCG reads its gains
          # from the `liked` feature.
          label_keys={features.INTERACTION: features.INTERACTION, features.LIKED: features.LIKED,
                      signatures.SCORE_OUTPUT: features.LIKED},
          example_weight_keys={features.LIKED: features.INTERACTION})],
      slicing_specs=[tfma.SlicingSpec(feature_keys=list(keys)) for keys in SLICES],
      metrics_specs=[
          _head_metrics(features.INTERACTION, config.min_interaction_auc, config, weighted=False),
          _head_metrics(features.LIKED, config.min_liked_auc, config, weighted=True),
          _ranking_metrics(config),
      ])


def _baseline_resolver(config: EvalConfig, candidate: Channel) -> Resolver:
  """The Resolver of the Evaluator's baseline: the latest blessed model (other than `candidate` if configured)."""
  channels = {baseline.MODEL: Channel(type=standard_artifacts.Model),
              baseline.MODEL_BLESSING: Channel(type=standard_artifacts.ModelBlessing)}
  if config.baseline_excludes_candidate:
    strategy = baseline.LatestBlessedOtherModelStrategy
    channels[baseline.CANDIDATE] = candidate
  else:
    strategy = LatestBlessedModelStrategy
  return Resolver(strategy_class=strategy, **channels).with_id("latest_blessed_model_resolver")


def _warm_start_resolver() -> Resolver:
  """The Resolver of the Trainer's base_model (TrainConfig.warm_start): the latest blessed model, none on the
  first run. TFX's LatestBlessedModelStrategy, which the Kubeflow V2 compiler compiles too."""
  return Resolver(
      strategy_class=LatestBlessedModelStrategy,
      model=Channel(type=standard_artifacts.Model),
      model_blessing=Channel(type=standard_artifacts.ModelBlessing)).with_id(
          "warm_start_model_resolver")


def _example_gen(config: PipelineConfig) -> example_copy.ImportExampleGen:
  """ImportExampleGen of the splits train/eval/ranking; with spans, of span-{SPAN}/<split>/, the latest span or
  `config.span`. The prepared splits are GZIP tf.Example TFRecords already: copied, not re-written through Beam."""
  if config.span is not None and not config.data.span_by:
    raise spans.SpanError(f"--span {config.span} picks a span of examples prepared with --span-by; none given")
  prefix = f"{spans.SPAN_FOLDER_PATTERN}/" if config.data.span_by else ""
  range_config = None
  if config.span is not None:
    range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
        start_span_number=config.span, end_span_number=config.span))
  return example_copy.ImportExampleGen(
      input_base=str(config.examples_dir),
      input_config=example_gen_pb2.Input(splits=[
          example_gen_pb2.Input.Split(name=split, pattern=f"{prefix}{split}/*")
          for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT, features.RANKING_SPLIT)]),
      range_config=range_config)


def _span_nodes(config: PipelineConfig, example_gen, statistics_gen, schema_gen
                ) -> Tuple[Channel, List[base_node.BaseNode], Optional[base_node.BaseNode]]:
  """(the examples Transform and the Trainer see, the nodes that make them, the drift gate or None).

  Without spans: ExampleGen's examples, no nodes. With spans: the rolling window of the last `span_window`
  spans up to the one ExampleGen read, and (DriftConfig.enabled) the drift check of this span's statistics
  against the previous span's, both resolved from ML Metadata (pipeline/span_resolvers.py). The history channels
  name no producer: TFX's compiler would give them the input key of the producer's output channel, which
  `current` already holds for this run.
  """
  training_examples, nodes, gate = example_gen.outputs["examples"], [], None
  if config.data.span_by and config.data.span_window > 1:
    window = Resolver(
        strategy_class=span_resolvers.SpanWindowStrategy, config={"num_spans": config.data.span_window},
        history=Channel(type=standard_artifacts.Examples, output_key="examples"),
        current=example_gen.outputs["examples"]).with_id("span_window_resolver")
    training_examples = window.outputs[span_resolvers.HISTORY]
    nodes.append(window)
  if config.data.span_by and config.drift.enabled:
    previous = Resolver(
        strategy_class=span_resolvers.PreviousSpanStrategy,
        previous_examples=Channel(type=standard_artifacts.Examples, output_key="examples"),
        previous_statistics=Channel(type=standard_artifacts.ExampleStatistics, output_key="statistics"),
        current=example_gen.outputs["examples"]).with_id("previous_span_statistics_resolver")
    validator = drift_gate.DriftValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"],
        examples=example_gen.outputs["examples"],
        previous_examples=previous.outputs[span_resolvers.PREVIOUS_EXAMPLES],
        previous_statistics=previous.outputs[span_resolvers.PREVIOUS_STATISTICS],
        drift_comparators=json.dumps([dataclasses.asdict(c) for c in drift_gate.comparators(config.drift)]))
    gate = drift_gate.DriftGate(drift=validator.outputs["drift"])
    nodes += [previous, validator, gate]
  return training_examples, nodes, gate


def create_pipeline(config: PipelineConfig) -> Pipeline:
  """Builds the pipeline for `config`; runners only choose the orchestrator (see local_runner.py)."""
  example_gen = _example_gen(config)
  # The ranking split holds one row of candidate movie ids per user, not examples of the schema; the ranking
  # metrics read it (pipeline/metrics/ranking.py) and say what is wrong with it.
  statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"], exclude_splits=[features.RANKING_SPLIT])
  if config.schema_dir:
    schema_gen = ImportSchemaGen(schema_file=str(config.schema_dir / SCHEMA_FILE))
  else:
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
  example_validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                       schema=schema_gen.outputs["schema"])
  anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
  training_examples, span_nodes, span_drift_gate = _span_nodes(config, example_gen, statistics_gen, schema_gen)
  transform = Transform(
      examples=training_examples,
      schema=schema_gen.outputs["schema"],
      preprocessing_fn=PREPROCESSING_FN,
      # Vocabularies from train only: eval-only ids must look unseen, as they will at serving time.
      splits_config=transform_pb2.SplitsConfig(analyze=[features.TRAIN_SPLIT]),
      custom_config={"vocab_oov_buckets": config.train.vocab_oov_buckets},
      # Pre/post-transform statistics would double Transform's time; StatisticsGen already covers the input.
      disable_statistics=True,
      # No transformed examples: writing them was half of Transform's time (BENCHMARKS.md, "Scale"), and their one
      # reader, the Trainer, reads the raw split once and applies the transform graph itself.
      materialize=False,
      force_tf_compat_v1=transform_module.FORCE_TF_COMPAT_V1)
  transform.add_upstream_node(anomalies_gate)
  if span_drift_gate is not None:
    transform.add_upstream_node(span_drift_gate)
  warm_start = _warm_start_resolver() if config.train.warm_start else None
  trainer = Trainer(
      run_fn=RUN_FN,
      base_model=warm_start.outputs["model"] if warm_start else None,
      examples=training_examples,
      transform_graph=transform.outputs["transform_graph"],
      schema=schema_gen.outputs["schema"],
      train_args=trainer_pb2.TrainArgs(splits=[features.TRAIN_SPLIT]),
      eval_args=trainer_pb2.EvalArgs(splits=[features.EVAL_SPLIT]),
      custom_config=trainer_custom_config(config))
  baseline_resolver = _baseline_resolver(config.eval, candidate=trainer.outputs["model"])
  evaluator = Evaluator(
      examples=example_gen.outputs["examples"],
      model=trainer.outputs["model"],
      baseline_model=baseline_resolver.outputs["model"],
      schema=schema_gen.outputs["schema"],
      example_splits=[features.EVAL_SPLIT],
      eval_config=eval_config(config.eval))
  # Serves the candidate in a model server subprocess; the Pusher pushes only what loaded and answered right.
  infra_validator = None
  if config.infra_validation.enabled:
    infra_validator = InfraValidator(model=trainer.outputs["model"], examples=example_gen.outputs["examples"],
                                     model_blessing=evaluator.outputs["blessing"],
                                     config=config_parameter(config.infra_validation))
  pusher = Pusher(
      model=trainer.outputs["model"],
      model_blessing=evaluator.outputs["blessing"],
      infra_blessing=infra_validator.outputs["blessing"] if infra_validator else None,
      push_destination=pusher_pb2.PushDestination(filesystem=pusher_pb2.PushDestination.Filesystem(
          base_directory=str(config.serving_dir / config.model_name))))
  components: List = [example_gen, statistics_gen, schema_gen, example_validator, anomalies_gate, *span_nodes,
                      transform, *filter(None, [warm_start]),
                      trainer, baseline_resolver, evaluator, *filter(None, [infra_validator]), pusher]
  return Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=str(config.pipeline_root),
      components=components,
      enable_cache=True,
      metadata_connection_config=metadata.sqlite_metadata_connection_config(
          metadata_path(config)),
      beam_pipeline_args=list(config.beam_args))
