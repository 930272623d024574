"""components/eval_metrics gives what TFMA's own metrics give (per-example summaries, AUC, plots, NDCG) in TFMA."""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import math

import numpy as np
import pandas as pd
import pytest
import tensorflow_model_analysis as tfma

from components import eval_metrics

PER_EXAMPLE = ("ExampleCount", "BinaryAccuracy", "Precision", "Recall", "Calibration", "MeanLabel",
               "MeanPrediction")


def _frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
  """Labels, predictions and 0/1 weights, with predictions kept out of [0.5, 0.5001) (the histogram bucket that
  holds the threshold, which the histogram cannot split)."""
  rng = np.random.default_rng(seed)
  label = rng.integers(0, 2, rows).astype(float)
  prediction = np.clip(0.3 * label + rng.uniform(0, 0.7, rows), 0, 1)
  prediction[(prediction >= 0.5) & (prediction < 0.5002)] = 0.49
  return pd.DataFrame({"label": label, "prediction": prediction, "weight": rng.integers(0, 2, rows).astype(float),
                       "group": rng.choice(["a", "b", "c"], rows)})


def _analyze(frame: pd.DataFrame, metrics, weighted: bool) -> tfma.EvalResult:
  """TFMA's evaluation of `frame` with `metrics`, sliced overall and by group."""
  config = tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction",
                                  example_weight_key="weight" if weighted else None)],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["group"])],
      metrics_specs=[tfma.MetricsSpec(metrics=metrics, example_weights=tfma.ExampleWeightOptions(
          weighted=weighted, unweighted=not weighted))])
  return tfma.analyze_raw_data(frame, config)


def _metrics(frame: pd.DataFrame, metrics, weighted: bool):
  """TFMA's metrics of `frame` per slice (overall and by group), keyed by slice and metric name."""
  values = {}
  for slice_key, by_output in _analyze(frame, metrics, weighted).slicing_metrics:
    for name, value in by_output[""][""].items():
      values[(slice_key, name)] = float(value.get("doubleValue", math.nan))  # NaN comes as the string "NaN"
  return values


@pytest.mark.parametrize("weighted", [False, True])
def test_summary_equals_tfma_per_example_metrics(weighted):
  frame = _frame()
  expected = _metrics(frame, [tfma.MetricConfig(class_name=name) for name in PER_EXAMPLE], weighted)
  derived = _metrics(frame, [tfma.MetricConfig(class_name=eval_metrics.HistogramSummary.__name__,
                                               module=eval_metrics.__name__)], weighted)
  compared = {key: value for key, value in derived.items() if key[1] in eval_metrics.NAMES}
  assert len(compared) == 4 * len(eval_metrics.NAMES)  # every metric on the overall slice and three groups
  for key, value in compared.items():
    assert value == pytest.approx(expected[key], rel=1e-6, nan_ok=True), key


def test_summary_of_a_single_class_slice():
  frame = _frame(rows=50)
  frame["label"] = 0.0
  values = _metrics(frame, [tfma.MetricConfig(class_name=eval_metrics.HistogramSummary.__name__,
                                              module=eval_metrics.__name__)], weighted=False)
  overall = {name: values[((), name)] for name in eval_metrics.NAMES}
  assert overall["example_count"] == 50 and overall["mean_label"] == 0.0
  assert math.isnan(overall["recall"]) and math.isnan(overall["calibration"])


def _ndcg_at_3(frame: pd.DataFrame, metric: tfma.MetricConfig, query_key: str = "") -> float:
  """NDCG@3 of `frame` on the overall slice through TFMA, with `metric` in a spec grouped by `query_key`."""
  config = tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
      slicing_specs=[tfma.SlicingSpec()],
      metrics_specs=[tfma.MetricsSpec(metrics=[metric], query_key=query_key,
                                      binarize=tfma.BinarizationOptions(top_k_list={"values": [3]}))])
  (slice_key, by_output), = tfma.analyze_raw_data(frame, config).slicing_metrics
  assert slice_key == ()
  (by_name,) = by_output[""].values()  # one sub key: top 3
  (value,) = by_name.values()
  return float(value["doubleValue"])


def test_query_ndcg_equals_tfma_ndcg_with_query_key():
  rng = np.random.default_rng(1)
  rows = 400
  frame = pd.DataFrame({"user": rng.integers(0, 40, rows).astype(str), "label": rng.integers(0, 2, rows) * 1.0,
                        "prediction": rng.uniform(0, 1, rows)})
  tfma_ndcg = _ndcg_at_3(frame, tfma.MetricConfig(class_name="NDCG", config='{"gain_key": "label"}'), "user")
  ours = _ndcg_at_3(frame, tfma.MetricConfig(class_name=eval_metrics.QueryNDCG.__name__,
                                             module=eval_metrics.__name__, config='{"query_feature": "user"}'))
  assert 0.3 < ours < 0.9
  assert ours == pytest.approx(tfma_ndcg, abs=1e-9)


def test_query_ndcg_of_a_hand_made_case():
  # Query 0: gains by prediction 0, 1, 1 -> DCG@2 = 1/log2(3), ideal 1 + 1/log2(3).
  # Query 1: its only positive first -> 1. Query 2: no positive -> not counted.
  queries = np.array([0, 0, 0, 1, 1, 2])
  predictions = np.array([0.9, 0.5, 0.1, 0.2, 0.1, 0.7])
  gains = np.array([0.0, 1.0, 1.0, 1.0, 0.0, 0.0])
  expected = ((1 / np.log2(3)) / (1 + 1 / np.log2(3)) + 1.0) / 2
  assert eval_metrics.query_ndcg(queries, predictions, gains, k=2) == pytest.approx(expected)
  assert np.isnan(eval_metrics.query_ndcg(queries[5:], predictions[5:], gains[5:], k=2))


def test_query_ndcg_refuses_an_output_with_several_values_per_example():
  (computation,) = eval_metrics.QueryNDCG(query_feature="user").computations(
      output_names=["score"], sub_keys=[tfma.metrics.SubKey(top_k=3)])
  combiner = computation.combiner
  one = tfma.metrics.StandardMetricInputs(labels={"score": np.array([1.0])}, predictions={"score": np.array([0.2])},
                                          features={"user": np.array([b"u1"])})
  rows = combiner.add_input(combiner.create_accumulator(), one)
  assert combiner.extract_output(rows) == {computation.keys[0]: 1.0}
  two = tfma.metrics.StandardMetricInputs(labels={"score": np.array([1.0])},
                                          predictions={"score": np.array([0.2, 0.3])},
                                          features={"user": np.array([b"u1"])})
  with pytest.raises(ValueError, match="ndcg of output 'score': expected one prediction per example"):
    combiner.add_input(rows, two)


def _metrics_and_plots(frame: pd.DataFrame, metrics, weighted: bool):
  """TFMA's metrics and plots of `frame` per slice (overall and by group), keyed by slice and name."""
  result = _analyze(frame, metrics, weighted)
  values = {(slice_key, name): value for slice_key, by_output in result.slicing_metrics
            for name, value in by_output[""][""].items()}
  values.update({(slice_key, name): value for slice_key, by_output in result.plots
                 for name, value in by_output[""][""].items()})
  return values


@pytest.mark.parametrize("weighted", [False, True])
def test_array_auc_and_plots_equal_tfma_s(weighted, monkeypatch):
  # A few rows at a time are summed, so that sums, merges and pending rows all take part.
  monkeypatch.setattr(eval_metrics._Buckets, "PENDING", 7)
  frame = _frame(rows=800, seed=3)
  frame.loc[::50, "prediction"] = [-0.5, 1.5] * 8  # outside [0, 1]: TFMA's first and last buckets
  configs = {"AUC": '{"num_thresholds": 1000}', "ConfusionMatrixPlot": '{"num_thresholds": 200}',
             "CalibrationPlot": '{"num_buckets": 100}'}
  expected = _metrics_and_plots(frame, [tfma.MetricConfig(class_name=name, config=config)
                                        for name, config in configs.items()], weighted)
  ours = _metrics_and_plots(frame, [tfma.MetricConfig(class_name=f"Array{name}", module=eval_metrics.__name__,
                                                      config=config) for name, config in configs.items()], weighted)
  assert set(ours) == set(expected)
  assert {name for _, name in ours} >= {"auc", "confusionMatrixAtThresholds", "calibrationHistogramBuckets"}
  assert 0.6 < float(ours[((), "auc")]["doubleValue"]) < 0.95
  for key, value in expected.items():
    assert _close(ours[key], value), key


def _close(ours, expected) -> bool:
  """Nested dicts and lists from TFMA's results equal, numbers to 1e-9 (summation order differs)."""
  if isinstance(expected, dict):
    return set(ours) == set(expected) and all(_close(ours[key], expected[key]) for key in expected)
  if isinstance(expected, list):
    return len(ours) == len(expected) and all(_close(a, b) for a, b in zip(ours, expected))
  if isinstance(expected, float):
    return ours == pytest.approx(expected, rel=1e-9, abs=1e-12, nan_ok=True)
  return ours == expected


@pytest.mark.parametrize("label, prediction, message", [
    (4.0, 0.2, "of output 'liked': labels must be in \\[0, 1\\], got 4.0"),
    (1.0, float("nan"), "of output 'liked': the prediction is NaN")])
def test_array_histogram_refuses_what_tfma_cannot_bucket(label, prediction, message):
  (computation,) = [c for c in eval_metrics.ArrayAUC().computations(output_names=["liked"])
                    if isinstance(c, tfma.metrics.MetricComputation)]
  combiner = computation.combiner
  example = tfma.metrics.StandardMetricInputs(labels={"liked": np.array([label])},
                                              predictions={"liked": np.array([prediction])})
  with pytest.raises(ValueError, match=message):
    combiner.add_input(combiner.create_accumulator(), example)
