"""Fills a report.data.RunReport from one pipeline run read through ML Metadata (pipeline/runs/reader.py).

The Evaluator's metrics, plots and validation result are read with TFMA's loaders, statistics and anomalies with
TFX's, and the ranking metrics are computed from the run's model and examples (pipeline/metrics/).
"""
import datetime
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from components import features
from components import signatures
from pipeline.report.data import (DEFAULT_K, DEFAULT_MIN_SLICE_EXAMPLES, Anomaly, Blessing, CalibrationHistogram,
                                  ConfusionCurve, FullCatalogScore, HeadResult, RankingScore, RunIdentity, RunReport,
                                  SliceResult, SplitStats, ThresholdCheck)
from pipeline.runs import reader
from pipeline.runs.reader import (ANOMALIES, BLESSING, EVALUATION, EXAMPLES, LATEST, MODEL, PUSHED_MODEL, STATISTICS,
                                  RunArtifacts)

# Readers' descriptions of the heads this project's Evaluator judges; other heads get a generic one.
HEAD_LABELS = {
    features.INTERACTION: "P(rated): rated vs. sampled unrated movies; every eval example counts.",
    features.LIKED: (f"P(rating >= {features.LIKED_THRESHOLD:g}): weighted by `{features.INTERACTION}`, so only "
                     "rated eval movies count."),
    signatures.SCORE_OUTPUT: ("The ranking score P(interaction) * P(liked) ** blend: NDCG@K ranks each eval user's "
                              "examples (one query per user: held-out rated and sampled unrated movies), gains from "
                              f"`{features.LIKED}`; users without a liked movie carry no weight."),
}
MAX_ANOMALIES = 20
MODEL_RANKER, POPULAR_RANKER = "NCF (exported model)", "most popular"


def load_run_report(metadata_path: Path, run: str = LATEST, k: int = DEFAULT_K,
                    min_slice_examples: float = DEFAULT_MIN_SLICE_EXAMPLES) -> RunReport:
  """Reads everything the report shows about run `run` of the ML Metadata store at `metadata_path`."""
  from pipeline.infra_validation import verdict_in_run  # pylint: disable=g-import-not-at-top
  found = reader.read_run(reader.open_store(metadata_path), run)
  evaluation, blessing_artifact = found.latest(EVALUATION), found.latest(BLESSING)
  heads: Tuple[HeadResult, ...] = ()
  blessing = None
  bounds: Dict[str, float] = {}
  if evaluation is not None:
    heads, blessing, bounds = _evaluation(evaluation.uri, blessing_artifact)
  statistics, anomalies = found.latest(STATISTICS), found.latest(ANOMALIES)
  model, examples = found.latest(MODEL), found.latest(EXAMPLES)
  ranking: Tuple[RankingScore, ...] = ()
  full: Tuple[FullCatalogScore, ...] = ()
  if model is not None and examples is not None:
    model_aucs = {head.head: head.metrics["auc"] for head in heads if "auc" in head.metrics}
    ranking = ranking_scores(model.uri, examples, k, model_aucs)
    full = full_catalog_scores(model.uri, examples)
  return RunReport(
      identity=_identity(found),
      blessing=blessing,
      heads=heads,
      splits=read_split_stats(statistics) if statistics is not None else (),
      anomalies=read_anomalies(anomalies) if anomalies is not None else (),
      ranking=ranking,
      auc_lower_bounds=bounds,
      min_slice_examples=min_slice_examples,
      full_catalog=full,
      infra_validation=verdict_in_run(found))


def _identity(found: RunArtifacts) -> RunIdentity:
  model, examples, pushed = found.latest(MODEL), found.latest(EXAMPLES), found.latest(PUSHED_MODEL)
  version = destination = None
  if pushed is not None and pushed.get_int_custom_property("pushed"):
    version = pushed.get_string_custom_property("pushed_version")
    destination = pushed.get_string_custom_property("pushed_destination")
  created = datetime.datetime.fromtimestamp(found.created_ms / 1000, datetime.timezone.utc)
  return RunIdentity(
      pipeline_name=found.pipeline_name, run_id=found.run_id, dataset=_dataset(found.example_gen_input_base),
      examples_uri=examples.uri if examples is not None else "-", model_uri=model.uri if model is not None else "-",
      model_version=version, pushed_destination=destination,
      created=created.strftime("%Y-%m-%d %H:%M:%S UTC"))


def _dataset(input_base: Optional[str]) -> str:
  """The data layer's source (its prepared.json manifest beside the imported splits), else the input base."""
  import json  # pylint: disable=g-import-not-at-top

  from pipeline.data import prepare  # pylint: disable=g-import-not-at-top

  if input_base is None:
    return "unknown (no ExampleGen execution in this run)"
  manifest = Path(input_base) / prepare.MANIFEST
  if manifest.is_file():
    return f"{json.loads(manifest.read_text())['source']} (imported from {input_base})"
  return input_base


def _evaluation(uri: str, blessing_artifact) -> Tuple[Tuple[HeadResult, ...], Optional[Blessing], Dict[str, float]]:
  """Heads, blessing verdict and AUC lower bounds from the Evaluator's output at `uri`."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top
  from tensorflow_model_analysis.writers import eval_config_writer  # pylint: disable=g-import-not-at-top

  from components import eval_metrics  # pylint: disable=g-import-not-at-top  (TFMA and Beam: only here)

  eval_config = eval_config_writer.load_eval_run(uri)[0]
  candidate = next((s.name for s in eval_config.model_specs if not s.is_baseline), "")
  baseline = next((s.name for s in eval_config.model_specs if s.is_baseline), None)
  weighted_heads = {head for spec in eval_config.model_specs for head in spec.example_weight_keys}
  head_names = [name for spec in eval_config.metrics_specs for name in spec.output_names]
  # Slices are judged by AUC (TFMA's, or the same over the array histogram: runs before and after it);
  # heads without one (the ranking gate's `score`) have no slice table.
  sliced_heads = {name for spec in eval_config.metrics_specs for name in spec.output_names
                  if any(metric.class_name in ("AUC", eval_metrics.ArrayAUC.__name__) for metric in spec.metrics)}

  overall: Dict[Tuple[str, str], Dict[str, float]] = {}  # (model, head) -> metric -> value
  slices: Dict[str, List[SliceResult]] = {head: [] for head in head_names}
  for metrics in tfma.load_metrics(uri):
    if metrics.HasField("cross_slice_key"):
      continue
    values = _metric_values(metrics, weighted_heads)
    if not metrics.slice_key.single_slice_keys:
      overall.update(values)
      continue
    feature = "×".join(k.column for k in metrics.slice_key.single_slice_keys)
    value = "×".join(_slice_value(k) for k in metrics.slice_key.single_slice_keys)
    for head in sliced_heads:
      head_values = values.get((candidate, head), {})
      count = head_values.get("weighted_example_count", head_values.get("example_count", 0.0))
      slices[head].append(SliceResult(feature, value, count, head_values.get("auc", math.nan),
                                      head_values.get("mean_label", math.nan)))

  confusion, calibration = _plots(uri, candidate)
  heads = tuple(HeadResult(
      head=head, label=HEAD_LABELS.get(head, f"output `{head}`"), metrics=overall.get((candidate, head), {}),
      baseline_metrics=overall.get((baseline, head), {}) if baseline is not None else {},
      slices=tuple(slices[head]), confusion=confusion.get(head), calibration=calibration.get(head))
      for head in head_names)
  checks, bounds = _threshold_checks(eval_config, tfma.load_validation_result(uri), overall, candidate, baseline)
  blessing = None
  if blessing_artifact is not None:
    baseline_uri = blessing_artifact.get_string_custom_property("baseline_model") or None
    blessing = Blessing(bool(blessing_artifact.get_int_custom_property("blessed")), baseline_uri, tuple(checks))
  return heads, blessing, bounds


def _metric_values(metrics, weighted_heads) -> Dict[Tuple[str, str], Dict[str, float]]:
  """(model name, head) -> metric name -> value of one MetricsForSlice, without diffs; a weighted head's
  weighted values win over its unweighted ones."""
  values: Dict[Tuple[str, str], Dict[str, float]] = {}
  for entry in metrics.metric_keys_and_values:
    key = entry.key
    if key.is_diff or entry.value.WhichOneof("type") != "double_value":
      continue
    weighted = key.example_weighted.value
    if weighted != (key.output_name in weighted_heads):
      continue
    top_k = key.sub_key.top_k.value if key.sub_key.HasField("top_k") else None
    values.setdefault((key.model_name, key.output_name), {})[metric_name(key.name, top_k)] = (
        entry.value.double_value.value)
  return values


def metric_name(name: str, top_k: Optional[int]) -> str:
  """A TFMA metric's name as the report shows it: with its cut-off for ranking metrics ("ndcg@10")."""
  return name if top_k is None else f"{name}@{top_k}"


def _slice_value(key) -> str:
  kind = key.WhichOneof("kind")
  value = getattr(key, kind)
  return value.decode() if isinstance(value, bytes) else f"{value:g}" if kind == "float_value" else str(value)


def _plots(uri: str, candidate: str) -> Tuple[Dict[str, ConfusionCurve], Dict[str, CalibrationHistogram]]:
  """Overall-slice ConfusionMatrixPlot and CalibrationPlot of the candidate model, by head."""
  import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top

  confusion: Dict[str, ConfusionCurve] = {}
  calibration: Dict[str, CalibrationHistogram] = {}
  for plots in tfma.load_plots(uri):
    if plots.slice_key.single_slice_keys or plots.HasField("cross_slice_key"):
      continue
    for entry in plots.plot_keys_and_values:
      if entry.key.model_name != candidate:
        continue
      head = entry.key.output_name
      if entry.value.HasField("confusion_matrix_at_thresholds"):
        points = sorted(entry.value.confusion_matrix_at_thresholds.matrices, key=lambda m: m.threshold)
        confusion[head] = ConfusionCurve(*(_column(points, name) for name in (
            "threshold", "true_positives", "false_positives", "true_negatives", "false_negatives")))
      if entry.value.HasField("calibration_histogram_buckets"):
        buckets = entry.value.calibration_histogram_buckets.buckets
        calibration[head] = CalibrationHistogram(*(_column(buckets, name) for name in (
            "lower_threshold_inclusive", "num_weighted_examples", "total_weighted_label",
            "total_weighted_refined_prediction")))
  return confusion, calibration


def _column(messages, field: str) -> np.ndarray:
  """`field` of every proto message as a float array; DoubleValue wrappers are unwrapped."""
  values = [getattr(message, field) for message in messages]
  return np.array([v if isinstance(v, (int, float)) else v.value for v in values], float)


def _threshold_checks(eval_config, validation, overall, candidate: str, baseline: Optional[str]
                      ) -> Tuple[List[ThresholdCheck], Dict[str, float]]:
  """Blessing conditions on the overall slice, as TFMA expands them from the eval config; pass/fail from TFMA's
  validation result. Returns the checks and each head's AUC lower bound.
  """
  from tensorflow_model_analysis.metrics import metric_specs  # pylint: disable=g-import-not-at-top
  from tensorflow_model_analysis.metrics import metric_types  # pylint: disable=g-import-not-at-top
  from tensorflow_model_analysis.proto import config_pb2  # pylint: disable=g-import-not-at-top

  def shown(key: "metric_types.MetricKey") -> str:
    return metric_name(key.name, key.sub_key.top_k if key.sub_key is not None else None)

  failed = {(shown(key), key.output_name, key.is_diff)
            for key in (metric_types.MetricKey.from_proto(f.metric_key)
                        for per_slice in validation.metric_validations_per_slice
                        if not per_slice.slice_key.single_slice_keys for f in per_slice.failures)}
  checks: List[ThresholdCheck] = []
  bounds: Dict[str, float] = {}
  thresholds = metric_specs.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config)
  for key, slices_and_thresholds in sorted(thresholds.items(), key=lambda item: (item[0].output_name,
                                                                                 item[0].name, item[0].is_diff)):
    if key.model_name != candidate:
      continue
    name = shown(key)
    value = overall.get((candidate, key.output_name), {}).get(name, math.nan)
    base = overall.get((baseline, key.output_name), {}).get(name) if baseline is not None else None
    for slice_spec, threshold in slices_and_thresholds:
      if slice_spec is not None and slice_spec != config_pb2.SlicingSpec():
        continue  # the report judges the overall slice; per-slice bounds would need their own table
      if isinstance(threshold, config_pb2.GenericChangeThreshold):
        if baseline is None:
          continue  # TFMA applies change thresholds only when there is a baseline model to compare with
        higher = threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
        amount = (f"{threshold.absolute.value:g}" if threshold.HasField("absolute")
                  else f"{threshold.relative.value:g} (relative)")
        condition = f"change {'>=' if higher else '<='} {amount} vs. baseline"
      elif threshold.HasField("lower_bound"):
        condition = f">= {threshold.lower_bound.value:g}"
        if key.name == "auc":
          bounds[key.output_name] = threshold.lower_bound.value
      else:
        condition = f"<= {threshold.upper_bound.value:g}"
      checks.append(ThresholdCheck(key.output_name, name, condition, value, base,
                                   (name, key.output_name, key.is_diff) not in failed))
  return checks, bounds


def read_split_stats(statistics) -> Tuple[SplitStats, ...]:
  """Rows, distinct users/movies and the rating histogram of every split StatisticsGen described."""
  from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top

  result = []
  for split in reader.split_names(statistics):
    dataset = stats_artifact_utils.load_statistics(statistics, split).proto().datasets[0]
    by_name = {"/".join(f.path.step): f for f in dataset.features}
    histogram = next((h for h in by_name[features.RATING].num_stats.histograms
                      if h.type == h.STANDARD), None) if features.RATING in by_name else None
    buckets = list(histogram.buckets) if histogram is not None else []
    edges = np.array([b.low_value for b in buckets] + [b.high_value for b in buckets[-1:]], float)
    result.append(SplitStats(
        split=split, rows=int(dataset.num_examples),
        distinct_users=_distinct(by_name.get(features.USER_ID)), distinct_movies=_distinct(by_name.get(
            features.MOVIE_ID)),
        rating_edges=edges, rating_counts=np.array([b.sample_count for b in buckets], float)))
  return tuple(result)


def _distinct(feature) -> int:
  return int(feature.string_stats.unique) if feature is not None else 0


def read_anomalies(anomalies) -> Tuple[Anomaly, ...]:
  """ExampleValidator's findings per split, most severe first, at most MAX_ANOMALIES."""
  from tensorflow_metadata.proto.v0 import anomalies_pb2  # pylint: disable=g-import-not-at-top

  found = []
  for split in reader.split_names(anomalies):
    proto = reader.load_anomalies(anomalies, split)
    for feature, info in proto.anomaly_info.items():
      found.append((info.severity, Anomaly(split, feature, anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                                           reader.anomaly_reasons(info))))
    if proto.HasField("dataset_anomaly_info"):
      info = proto.dataset_anomaly_info
      found.append((info.severity, Anomaly(split, "(dataset)", anomalies_pb2.AnomalyInfo.Severity.Name(
          info.severity), info.description)))
  found.sort(key=lambda pair: (-pair[0], pair[1].split, pair[1].feature))
  return tuple(anomaly for _, anomaly in found[:MAX_ANOMALIES])


def ranking_scores(model_uri: str, examples, k: int, model_aucs: Dict[str, float]) -> Tuple[RankingScore, ...]:
  """HR@k / NDCG@k of the Trainer's serving model (pipeline.metrics.ranking) with its AUCs `model_aucs` (head -> TFMA
  AUC), and of the most-popular list with its AUCs on the same eval examples (pipeline.metrics.popularity_auc)."""
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.utils import path_utils  # pylint: disable=g-import-not-at-top

  from pipeline.metrics import popularity_auc  # pylint: disable=g-import-not-at-top
  from pipeline.metrics import ranking  # pylint: disable=g-import-not-at-top

  splits = {split: artifact_utils.get_split_uri([examples], split)
            for split in reader.split_names(examples)}
  ranking_dir = Path(splits[features.RANKING_SPLIT]) if features.RANKING_SPLIT in splits else None
  result = ranking.evaluate(Path(path_utils.serving_model_path(model_uri)), Path(splits[features.TRAIN_SPLIT]),
                            Path(splits[features.EVAL_SPLIT]), ranking_dir, k)
  popular_aucs = popularity_auc.popularity_aucs(Path(splits[features.TRAIN_SPLIT]),
                                                Path(splits[features.EVAL_SPLIT]))
  return tuple(RankingScore(ranker, result["k"], result[key]["hit_rate"], result[key]["ndcg"], result["users"], aucs)
               for ranker, key, aucs in ((MODEL_RANKER, "model", model_aucs),
                                         (POPULAR_RANKER, "most_popular", popular_aucs)))


def full_catalog_scores(model_uri: str, examples) -> Tuple[FullCatalogScore, ...]:
  """Recall@K / NDCG@K over the full catalog (pipeline.metrics.full_catalog, its default K and user sample) of the
  Trainer's serving model and of the most-popular list, on the run's train and eval splits."""
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.utils import path_utils  # pylint: disable=g-import-not-at-top

  from pipeline.metrics import full_catalog  # pylint: disable=g-import-not-at-top

  train_dir, eval_dir = (Path(artifact_utils.get_split_uri([examples], split))
                         for split in (features.TRAIN_SPLIT, features.EVAL_SPLIT))
  result = full_catalog.evaluate(Path(path_utils.serving_model_path(model_uri)), train_dir, eval_dir)
  return tuple(FullCatalogScore(ranker, result["k"], result[key]["recall"], result[key]["ndcg"], result["users"],
                                result["eligible_users"], result["catalog_movies"])
               for ranker, key in ((MODEL_RANKER, "model"), (POPULAR_RANKER, "most_popular")))
