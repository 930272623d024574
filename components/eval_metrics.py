"""TFMA metrics that cost the Evaluator no per-example work beyond what it must do.

`HistogramSummary` derives a binary head's summary from the calibration histogram TFMA already builds for AUC.
TFMA's BinaryAccuracy, Precision and Recall at 0.5 (one confusion-matrix combiner), Calibration, MeanLabel and
MeanPrediction (another) and ExampleCount (a third) each read every example of every slice in Python. Their values
are sums the AUC's calibration histogram (TFMA's default 10,000 buckets, shared with ConfusionMatrixPlot and
CalibrationPlot) already holds, so `HistogramSummary` adds no per-example work: it is one derived computation
per slice over that histogram, with TFMA's own metric names, so readers of the evaluation see the same keys.

One difference from the per-example metrics: a prediction in [0.5, 0.5001), the histogram bucket that holds 0.5,
counts as negative (TFMA's own histogram-based matrices), where the per-example matrices count those above 0.5 as
positive.
"""
import array
from typing import Dict, Iterable, List, Mapping, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import binary_confusion_matrices
from tensorflow_model_analysis.metrics import calibration_histogram
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.proto import config_pb2

THRESHOLD = 0.5
# The metric names of TFMA's own classes, so the evaluation's keys do not change.
NAMES = ("example_count", "binary_accuracy", "precision", "recall", "calibration", "mean_label", "mean_prediction")


def _ratio(numerator: float, denominator: float) -> float:
  """numerator / denominator, NaN where the denominator is not positive (TFMA's convention)."""
  return numerator / denominator if denominator > 0 else float("nan")


def summarize(histogram: calibration_histogram.Histogram,
              matrices: binary_confusion_matrices.Matrices) -> Dict[str, float]:
  """The seven values of NAMES from a calibration histogram and its confusion matrix at THRESHOLD."""
  totals = np.array([[b.weighted_labels, b.weighted_predictions, b.weighted_examples] for b in histogram],
                    dtype=np.float64).reshape(-1, 3).sum(axis=0)
  labels, predictions, examples = (float(value) for value in totals)
  tp, tn, fp, fn = (float(matrices.tp[0]), float(matrices.tn[0]), float(matrices.fp[0]), float(matrices.fn[0]))
  return {
      "example_count": examples,
      "binary_accuracy": _ratio(tp + tn, tp + tn + fp + fn),
      "precision": _ratio(tp, tp + fp),
      "recall": _ratio(tp, tp + fn),
      "calibration": float("nan") if np.isclose(labels, 0.0) else predictions / labels,
      "mean_label": _ratio(labels, examples),
      "mean_prediction": _ratio(predictions, examples),
  }


def _histogram_summary(name: str = "histogram_summary",
                       eval_config: Optional[config_pb2.EvalConfig] = None,
                       model_name: str = "",
                       output_name: str = "",
                       sub_key: Optional[metric_types.SubKey] = None,
                       aggregation_type: Optional[metric_types.AggregationType] = None,
                       class_weights: Optional[Dict[int, float]] = None,
                       example_weighted: bool = False) -> metric_types.MetricComputations:
  """The shared default histogram, TFMA's matrices at THRESHOLD read from it, and one derived computation."""
  del name  # the outputs carry TFMA's metric names
  shared = dict(eval_config=eval_config, model_name=model_name, output_name=output_name, sub_key=sub_key,
                aggregation_type=aggregation_type, class_weights=class_weights, example_weighted=example_weighted)
  histogram_computations = calibration_histogram.calibration_histogram(**shared)
  histogram_key = histogram_computations[-1].keys[-1]
  matrices_computations = binary_confusion_matrices.binary_confusion_matrices(
      thresholds=[THRESHOLD], use_histogram=True, **shared)
  matrices_key = matrices_computations[-1].keys[-1]
  keys = {metric: metric_types.MetricKey(name=metric, model_name=model_name, output_name=output_name,
                                         sub_key=sub_key, example_weighted=example_weighted) for metric in NAMES}

  def result(metrics: Dict[metric_types.MetricKey, object]) -> Dict[metric_types.MetricKey, float]:
    values = summarize(metrics[histogram_key], metrics[matrices_key])
    return {keys[metric]: values[metric] for metric in NAMES}

  derived = metric_types.DerivedMetricComputation(keys=list(keys.values()), result=result)
  computations: List = [*histogram_computations, *matrices_computations, derived]
  return computations


class HistogramSummary(metric_types.Metric):
  """ExampleCount, BinaryAccuracy / Precision / Recall at 0.5, Calibration, MeanLabel and MeanPrediction of a
  binary head, derived from TFMA's shared calibration histogram instead of three per-example combiners."""

  def __init__(self, name: str = "histogram_summary"):
    super().__init__(metric_util.merge_per_key_computations(_histogram_summary), name=name)


class QueryNDCG(metric_types.Metric):
  """TFMA's NDCG@k (`ndcg`, one query per value of the feature `query_feature`, gains from the label, queries
  without a positive gain weigh nothing) without TFMA's query grouping.

  TFMA's own NDCG needs `MetricsSpec.query_key`, which groups every example's extracts by query through a
  shuffle (each one pickled) and evaluates a whole query in every slice any of its examples falls in (a user in
  ~15 genre slices). This combiner keeps (query, prediction, gain) per example in compact arrays and ranks each
  query once per slice at the end, with NumPy. On the overall slice the value is TFMA's; on a feature slice it is
  the NDCG of each query's examples in that slice. Ties in prediction may be ordered differently from TFMA's.
  The spec names k through `binarize.top_k_list`, as for TFMA's NDCG, so thresholds find the same keys. (The
  parameter is not called `query_key`: TFMA fills an argument of that name from the spec, which must not group.)
  """

  def __init__(self, query_feature: str, name: str = "ndcg"):
    super().__init__(_query_ndcg, query_feature=query_feature, name=name)


def _query_ndcg(query_feature: str, name: str = "ndcg",
                model_names: Optional[List[str]] = None,
                output_names: Optional[List[str]] = None,
                sub_keys: Optional[List[Optional[metric_types.SubKey]]] = None) -> metric_types.MetricComputations:
  """One computation per model and output; its keys are NDCG@k for each k of the spec's top_k sub keys."""
  top_ks = sorted({key.top_k for key in sub_keys or [] if key is not None and key.top_k is not None})
  if not top_ks:
    raise ValueError(f"{name}: give k through the MetricsSpec's binarize.top_k_list")
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      keys = [metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                     sub_key=metric_types.SubKey(top_k=k)) for k in top_ks]
      computations.append(metric_types.MetricComputation(
          keys=keys,
          preprocessors=[metric_types.CombinedFeaturePreprocessor(feature_keys=[query_feature])],
          combiner=_QueryNDCGCombiner(keys, model_name, output_name, query_feature)))
  return computations


class _Rows:
  """The examples of one slice: query index, prediction and gain per example, and the query indices."""

  __slots__ = ["queries", "predictions", "gains", "query_index"]

  def __init__(self):
    self.queries = array.array("q")
    self.predictions = array.array("d")
    self.gains = array.array("d")
    self.query_index: Dict[object, int] = {}

  def add(self, query: object, prediction: float, gain: float) -> None:
    self.queries.append(self.query_index.setdefault(query, len(self.query_index)))
    self.predictions.append(prediction)
    self.gains.append(gain)


class _QueryNDCGCombiner(beam.CombineFn):
  """Collects (query, prediction, gain) per example; ranks every query at extract_output."""

  def __init__(self, keys: List[metric_types.MetricKey], model_name: str, output_name: str, query_feature: str):
    self._keys = keys
    self._model_name = model_name
    self._output_name = output_name
    self._query_feature = query_feature

  def create_accumulator(self) -> _Rows:
    return _Rows()

  def add_input(self, rows: _Rows, element: metric_types.StandardMetricInputs) -> _Rows:
    # Read directly rather than through metric_util.to_label_prediction_example_weight, whose generality
    # (label and prediction keys, class weights, multi-value outputs) cost this combiner 80% of its time.
    query = np.asarray(element.combined_features[self._query_feature]).reshape(-1)
    if query.size != 1:
      raise ValueError(f"{self._keys[0].name}: expected one {self._query_feature} per example, got {query!r}")
    rows.add(query[0], self._one_value(element.prediction, "prediction"), self._one_value(element.label, "label"))
    return rows

  def _one_value(self, values: object, what: str) -> float:
    """The example's single `what` of this combiner's model and output (each level looked up where keyed)."""
    for key in (self._model_name, self._output_name):
      if key and isinstance(values, Mapping) and key in values:
        values = values[key]
    if isinstance(values, Mapping) or np.size(values) != 1:
      raise ValueError(f"{self._keys[0].name}: expected one {what} of output {self._output_name!r} per example, "
                       f"got {values!r}")
    return float(np.asarray(values).reshape(-1)[0])

  def merge_accumulators(self, accumulators: Iterable[_Rows]) -> _Rows:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for rows in accumulators:
      remap = np.array([result.query_index.setdefault(query, len(result.query_index))
                        for query in rows.query_index], dtype=np.int64)
      if len(rows.queries):
        result.queries.extend(remap[np.frombuffer(rows.queries, dtype=np.int64)].tolist())
      result.predictions.extend(rows.predictions)
      result.gains.extend(rows.gains)
    return result

  def extract_output(self, rows: _Rows) -> Dict[metric_types.MetricKey, float]:
    queries = np.frombuffer(rows.queries, dtype=np.int64)
    predictions = np.frombuffer(rows.predictions, dtype=np.float64)
    gains = np.frombuffer(rows.gains, dtype=np.float64)
    return {key: query_ndcg(queries, predictions, gains, key.sub_key.top_k) for key in self._keys}


def query_ndcg(queries: np.ndarray, predictions: np.ndarray, gains: np.ndarray, k: int) -> float:
  """Mean NDCG@k over queries with a positive gain (TFMA's NDCG, unweighted). All arrays have shape [N]."""
  if not queries.size:
    return float("nan")
  ranked = np.lexsort((-predictions, queries))  # by query, best prediction first
  ideal = np.lexsort((-gains, queries))
  sorted_queries = queries[ranked]
  starts = np.flatnonzero(np.r_[True, sorted_queries[1:] != sorted_queries[:-1]])
  position = np.arange(queries.size) - np.repeat(starts, np.diff(np.r_[starts, queries.size]))
  discount = np.where(position < k, 1.0 / np.log2(position + 2.0), 0.0)
  dcg = np.add.reduceat(gains[ranked] * discount, starts)
  ideal_dcg = np.add.reduceat(gains[ideal] * discount, starts)
  judged = np.maximum.reduceat(gains[ranked], starts) > 0
  if not judged.any():
    return float("nan")
  return float(np.mean(dcg[judged] / ideal_dcg[judged]))
