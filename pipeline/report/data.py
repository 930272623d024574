"""What an evaluation report shows, as plain data: filled from ML Metadata by report/load.py, drawn by
plots.py and laid out by html.py."""
import dataclasses
import math
from typing import TYPE_CHECKING, Dict, Optional, Tuple

import numpy as np

from pipeline.config import ReportConfig

if TYPE_CHECKING:  # the verdict's module imports TensorFlow; this one stays plain data
  from pipeline.infra_validation import Verdict

DEFAULT_K = ReportConfig.k
DEFAULT_MIN_SLICE_EXAMPLES = ReportConfig.min_slice_examples
# Slice verdicts (SliceResult.verdict).
OK, BELOW, TOO_SMALL, CANNOT_JUDGE = "ok", "below bound", "too small", "cannot judge"


@dataclasses.dataclass(frozen=True)
class RunIdentity:
  """Which run, data and model the report is about."""
  pipeline_name: str
  run_id: str
  dataset: str  # the data layer's source directory (prepared.json), or the examples' input_base
  examples_uri: str
  model_uri: str
  model_version: Optional[str]  # the pushed version, None when the model was not pushed
  pushed_destination: Optional[str]
  created: str  # when the run's first execution was recorded, ISO 8601 UTC


@dataclasses.dataclass(frozen=True)
class ConfusionCurve:
  """TFMA ConfusionMatrixPlot counts at ascending thresholds (weighted); all arrays have shape [T]."""
  thresholds: np.ndarray
  true_positives: np.ndarray
  false_positives: np.ndarray
  true_negatives: np.ndarray
  false_negatives: np.ndarray

  def roc(self) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (false positive rate, true positive rate), each [T]."""
    positives = self.true_positives + self.false_negatives
    negatives = self.false_positives + self.true_negatives
    return (_ratio(self.false_positives, negatives), _ratio(self.true_positives, positives))

  def precision_recall(self) -> Tuple[np.ndarray, np.ndarray]:
    """Returns (recall, precision), each [T']; thresholds that predict no positive are dropped."""
    predicted = self.true_positives + self.false_positives
    keep = predicted > 0
    recall = _ratio(self.true_positives, self.true_positives + self.false_negatives)
    return recall[keep], self.true_positives[keep] / predicted[keep]


@dataclasses.dataclass(frozen=True)
class CalibrationHistogram:
  """TFMA CalibrationPlot buckets by predicted score (weighted); all arrays have shape [B]."""
  lower: np.ndarray  # inclusive lower bound of each bucket's score
  weight: np.ndarray  # weighted example count
  label_sum: np.ndarray  # weighted sum of labels
  prediction_sum: np.ndarray  # weighted sum of predictions

  def rebin(self, edges: np.ndarray) -> "CalibrationHistogram":
    """Merges buckets into the bins [edges[i], edges[i+1]); scores outside [0, 1] go to the end bins."""
    index = np.clip(np.searchsorted(edges, self.lower, side="right") - 1, 0, len(edges) - 2)
    def total(values: np.ndarray) -> np.ndarray:
      return np.bincount(index, weights=values, minlength=len(edges) - 1)
    return CalibrationHistogram(np.asarray(edges[:-1], float), total(self.weight), total(self.label_sum),
                                total(self.prediction_sum))

  def rebin_by_weight(self, bins: int) -> "CalibrationHistogram":
    """Merges neighbouring buckets into about `bins` bins of similar weight (empty buckets dropped)."""
    order = np.argsort(self.lower, kind="stable")
    weight = self.weight[order]
    before = np.cumsum(weight) - weight
    index = np.minimum((before / max(weight.sum(), 1e-12) * bins).astype(int), bins - 1)
    def total(values: np.ndarray) -> np.ndarray:
      return np.bincount(index, weights=values[order], minlength=bins)
    used = total(self.weight) > 0
    lower = np.array([self.lower[order][index == i].min() if u else np.nan for i, u in enumerate(used)])
    return CalibrationHistogram(lower[used], total(self.weight)[used], total(self.label_sum)[used],
                                total(self.prediction_sum)[used])


@dataclasses.dataclass(frozen=True)
class SliceResult:
  """One head's metrics on one slice; `feature` is "" for the overall slice."""
  feature: str
  value: str
  example_count: float  # weighted: for the `liked` head only rated examples count
  auc: float  # NaN when TFMA could not compute it
  mean_label: float = math.nan  # weighted share of positives; 0 or 1: one class only, so AUC is undefined

  @property
  def label(self) -> str:
    return f"{self.feature}={self.value}" if self.feature else "Overall"

  def sort_key(self) -> Tuple[str, float, str]:
    """Orders slices by feature, then largest first."""
    return (self.feature, -self.example_count, self.value)

  @property
  def single_class(self) -> bool:
    """Empty, or every example of one class: AUC is undefined (TFMA then reports 0 or NaN)."""
    return not self.example_count > 0 or self.mean_label in (0.0, 1.0)

  def verdict(self, auc_lower_bound: Optional[float], min_examples: float) -> str:
    """"cannot judge" (empty, one class, or no AUC), "too small" (fewer weighted examples than
    `min_examples`), "below" the bound (only where a bound applies), or "ok"."""
    if self.single_class or math.isnan(self.auc):
      return CANNOT_JUDGE
    if self.example_count < min_examples:
      return TOO_SMALL
    if auc_lower_bound is not None and self.auc < auc_lower_bound:
      return BELOW
    return OK


@dataclasses.dataclass(frozen=True)
class HeadResult:
  """TFMA results of one model head (TFMA output name)."""
  head: str
  label: str  # what the head predicts and which examples count, for readers
  metrics: Dict[str, float]  # overall slice, candidate model: TFMA metric name -> value
  baseline_metrics: Dict[str, float]  # same keys for the baseline model; empty without a baseline
  slices: Tuple[SliceResult, ...]  # every non-overall slice
  confusion: Optional[ConfusionCurve]  # None when the Evaluator did not compute ConfusionMatrixPlot
  calibration: Optional[CalibrationHistogram]  # None when it did not compute CalibrationPlot


@dataclasses.dataclass(frozen=True)
class ThresholdCheck:
  """One blessing condition on the overall slice, from the eval config and the validation result."""
  head: str
  metric: str
  condition: str  # e.g. ">= 0.7" or "regression <= 0.01 vs. baseline"
  value: float  # the candidate's value
  baseline_value: Optional[float]
  passed: bool


@dataclasses.dataclass(frozen=True)
class Blessing:
  """The Evaluator's verdict."""
  blessed: bool
  baseline_model_uri: Optional[str]  # None on a first run judged by absolute thresholds only
  checks: Tuple[ThresholdCheck, ...]


@dataclasses.dataclass(frozen=True)
class SplitStats:
  """StatisticsGen's summary of one split."""
  split: str
  rows: int
  distinct_users: int
  distinct_movies: int
  rating_edges: np.ndarray  # [H + 1] histogram bucket edges of the `rating` feature
  rating_counts: np.ndarray  # [H]


@dataclasses.dataclass(frozen=True)
class Anomaly:
  """One ExampleValidator finding."""
  split: str
  feature: str
  severity: str
  description: str


@dataclasses.dataclass(frozen=True)
class RankingScore:
  """HR@K and NDCG@K of one ranker under the NCF protocol."""
  ranker: str
  k: int
  hit_rate: float
  ndcg: float
  users: int
  auc: Dict[str, float]  # head -> AUC on the Evaluator's examples for that head; empty when unknown


@dataclasses.dataclass(frozen=True)
class FullCatalogScore:
  """Recall@K and NDCG@K of one ranker over every known movie a judged user did not rate in train
  (pipeline/metrics/full_catalog.py)."""
  ranker: str
  k: int
  recall: float
  ndcg: float
  users: int  # judged: a seeded sample of the eligible ones on large sets
  eligible_users: int  # eval users with a liked held-out movie in the catalog
  catalog_movies: int


@dataclasses.dataclass(frozen=True)
class RunReport:
  """Everything the HTML report shows about one pipeline run."""
  identity: RunIdentity
  blessing: Optional[Blessing]  # None when the Evaluator did not run (e.g. the run stopped earlier)
  heads: Tuple[HeadResult, ...]
  splits: Tuple[SplitStats, ...]
  anomalies: Tuple[Anomaly, ...]
  ranking: Tuple[RankingScore, ...]
  auc_lower_bounds: Dict[str, float]  # head -> AUC lower bound on the overall slice
  min_slice_examples: float  # slices with fewer weighted examples are too small to judge
  # The InfraValidator's verdict; None when it did not run (turned off, or the run stopped earlier).
  infra_validation: Optional["Verdict"] = None
  full_catalog: Tuple[FullCatalogScore, ...] = ()  # empty when there was no trained model


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float),
                   where=denominator > 0)
