"""TFMA metrics that cost the Evaluator no per-example work beyond what it must do.

`HistogramSummary` derives a binary head's summary from the calibration histogram TFMA already builds for AUC.
TFMA's BinaryAccuracy, Precision and Recall at 0.5 (one confusion-matrix combiner), Calibration, MeanLabel and
MeanPrediction (another) and ExampleCount (a third) each read every example of every slice in Python. Their values
are sums the AUC's calibration histogram (TFMA's default 10,000 buckets, shared with ConfusionMatrixPlot and
CalibrationPlot) already holds, so `HistogramSummary` adds no per-example work: it is one derived computation
per slice over that histogram, with TFMA's own metric names, so readers of the evaluation see the same keys.

That histogram is itself built by `_ArrayHistogramCombiner`: `ArrayAUC`, `ArrayConfusionMatrixPlot`,
`ArrayCalibrationPlot` and `HistogramSummary` are TFMA's AUC, plots and matrices (their names, keys and derived
computations unchanged) whose histogram combiner keeps each example's bucket, weighted label, weighted prediction
and weight in arrays and sums them with NumPy, instead of TFMA's per-example Python (its generic
`to_label_prediction_example_weight` and one `Bucket` update per example, slice and head).

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
from tensorflow_model_analysis.metrics import calibration_plot
from tensorflow_model_analysis.metrics import confusion_matrix_metrics
from tensorflow_model_analysis.metrics import confusion_matrix_plot
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


# pylint: disable-next=protected-access
_TFMA_HISTOGRAM_COMBINER = calibration_histogram._CalibrationHistogramCombiner


class _ArrayHistogram:
  """Mixin for a TFMA metric: its computations with each calibration histogram built by _ArrayHistogramCombiner."""

  def computations(self, *args, **kwargs) -> metric_types.MetricComputations:
    return [_ArrayHistogramCombiner.replacing(computation)
            if isinstance(computation, metric_types.MetricComputation)
            and type(computation.combiner) is _TFMA_HISTOGRAM_COMBINER else computation
            for computation in super().computations(*args, **kwargs)]


class HistogramSummary(_ArrayHistogram, metric_types.Metric):
  """ExampleCount, BinaryAccuracy / Precision / Recall at 0.5, Calibration, MeanLabel and MeanPrediction of a
  binary head, derived from the shared calibration histogram instead of three per-example combiners."""

  def __init__(self, name: str = "histogram_summary"):
    super().__init__(metric_util.merge_per_key_computations(_histogram_summary), name=name)


class ArrayAUC(_ArrayHistogram, confusion_matrix_metrics.AUC):
  """TFMA's AUC (`auc`, same arguments) over the histogram built in arrays."""


class ArrayConfusionMatrixPlot(_ArrayHistogram, confusion_matrix_plot.ConfusionMatrixPlot):
  """TFMA's ConfusionMatrixPlot (`confusion_matrix_plot`, same arguments) over the histogram built in arrays."""


class ArrayCalibrationPlot(_ArrayHistogram, calibration_plot.CalibrationPlot):
  """TFMA's CalibrationPlot (`calibration_plot`, same arguments) over the histogram built in arrays."""


class _Buckets:
  """A histogram being built: per-example rows not yet summed, and the sums of the rows before them (sparse)."""

  __slots__ = ["buckets", "rows", "summed_buckets", "summed"]
  PENDING = 4096  # rows kept before they are summed into the sparse part

  def __init__(self):
    self.buckets = array.array("q")
    self.rows = array.array("d")  # weighted label, weighted prediction, weight per example
    self.summed_buckets = np.zeros(0, dtype=np.int64)
    self.summed = np.zeros((0, 3), dtype=np.float64)

  def add(self, bucket: int, weighted_label: float, weighted_prediction: float, weight: float) -> None:
    self.buckets.append(bucket)
    self.rows.extend((weighted_label, weighted_prediction, weight))
    if len(self.buckets) >= self.PENDING:
      self.sum()

  def merge(self, other: "_Buckets") -> None:
    other.sum()
    self.sum(other.summed_buckets, other.summed)

  def sum(self, more_buckets: Optional[np.ndarray] = None, more: Optional[np.ndarray] = None) -> "_Buckets":
    """Sums the pending rows (and `more` summed rows) into the sparse part."""
    parts = [self.summed_buckets, np.frombuffer(self.buckets, dtype=np.int64)]
    values = [self.summed, np.frombuffer(self.rows, dtype=np.float64).reshape(-1, 3)]
    if more_buckets is not None:
      parts.append(more_buckets)
      values.append(more)
    buckets, index = np.unique(np.concatenate(parts), return_inverse=True)
    rows = np.concatenate(values)
    self.summed = np.stack([np.bincount(index, weights=rows[:, column], minlength=buckets.size)
                            for column in range(3)], axis=1)
    self.summed_buckets = buckets
    self.buckets = array.array("q")
    self.rows = array.array("d")
    return self


class _ArrayHistogramCombiner(beam.CombineFn):
  """TFMA's calibration histogram (same key, buckets and output: a list of `Bucket`s by bucket id) for a head with
  one prediction, one label in [0, 1] and at most one weight per example."""

  def __init__(self, key: metric_types.PlotKey, num_buckets: int, left: float, right: float,
               example_weighted: bool, fractional_labels: bool):
    self._key = key
    self._num_buckets = num_buckets
    self._left = left
    self._range = right - left
    self._example_weighted = example_weighted
    self._fractional_labels = fractional_labels
    self._where = f"{key.name} of output {key.output_name!r}"

  @classmethod
  def replacing(cls, computation: metric_types.MetricComputation) -> metric_types.MetricComputation:
    """The computation of TFMA's histogram `computation` with this combiner; a ValueError for what it lacks."""
    tfma_combiner = computation.combiner
    # pylint: disable=protected-access
    unsupported = {"preprocessors": computation.preprocessors, "sub_key": tfma_combiner._key.sub_key,
                   "aggregation_type": tfma_combiner._aggregation_type,
                   "class_weights": tfma_combiner._class_weights,
                   "label-based bucketing": not tfma_combiner._prediction_based_bucketing}
    if any(unsupported.values()):
      raise ValueError(f"{tfma_combiner._key.name}: the array histogram of output "
                       f"{tfma_combiner._key.output_name!r} supports none of "
                       f"{sorted(name for name, value in unsupported.items() if value)}; use TFMA's own metric")
    return metric_types.MetricComputation(
        keys=computation.keys, preprocessors=None,
        combiner=cls(tfma_combiner._key, tfma_combiner._num_buckets, tfma_combiner._left,
                     tfma_combiner._left + tfma_combiner._range, tfma_combiner._example_weighted,
                     tfma_combiner._fractional_labels))
    # pylint: enable=protected-access

  def create_accumulator(self) -> _Buckets:
    return _Buckets()

  def add_input(self, buckets: _Buckets, element: metric_types.StandardMetricInputs) -> _Buckets:
    model, output, where = self._key.model_name, self._key.output_name, self._where
    label = _one_value(element.label, model, output, "label", where)
    prediction = _one_value(element.prediction, model, output, "prediction", where)
    weight = (_one_value(element.example_weight, model, output, "example weight", where)
              if self._example_weighted else 1.0)
    if self._fractional_labels:
      if not 0.0 <= label <= 1.0:
        raise ValueError(f"{where}: labels must be in [0, 1], got {label}")
      if weight == 0.0:  # TFMA's fractional labels yield nothing for a weightless example
        return buckets
    if prediction != prediction:
      raise ValueError(f"{where}: the prediction is NaN")  # TFMA raises too, without saying where
    # TFMA's bucket: truncated, 0 below `left`, num_buckets + 1 from `right` up.
    index = (prediction - self._left) / self._range * self._num_buckets + 1
    bucket = 0 if index < 0 else self._num_buckets + 1 if index >= self._num_buckets + 1 else int(index)
    buckets.add(bucket, label * weight, prediction * weight, weight)
    return buckets

  def merge_accumulators(self, accumulators: Iterable[_Buckets]) -> _Buckets:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for buckets in accumulators:
      result.merge(buckets)
    return result

  def compact(self, buckets: _Buckets) -> _Buckets:
    return buckets.sum()

  def extract_output(self, buckets: _Buckets) -> Dict[metric_types.PlotKey, calibration_histogram.Histogram]:
    buckets.sum()
    return {self._key: [calibration_histogram.Bucket(int(bucket), float(row[0]), float(row[1]), float(row[2]))
                        for bucket, row in zip(buckets.summed_buckets, buckets.summed)]}


def _one_value(values: object, model_name: str, output_name: str, what: str, where: str) -> float:
  """The example's single `what` of one model and output (each level looked up where keyed)."""
  for key in (model_name, output_name):
    if key and isinstance(values, Mapping) and key in values:
      values = values[key]
  if isinstance(values, Mapping) or np.size(values) != 1:
    raise ValueError(f"{where}: expected one {what} per example, got {values!r}")
  return float(np.asarray(values).reshape(-1)[0])


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
    where = f"{self._keys[0].name} of output {self._output_name!r}"
    rows.add(query[0], _one_value(element.prediction, self._model_name, self._output_name, "prediction", where),
             _one_value(element.label, self._model_name, self._output_name, "label", where))
    return rows

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
