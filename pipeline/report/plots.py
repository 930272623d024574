"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot global state).

Each function takes report_data objects and returns PNG bytes.
"""
import io
import math
from typing import Dict, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from pipeline.report import data as report_data
from pipeline.report.data import CalibrationHistogram, HeadResult, RankingScore, SliceResult, SplitStats

_COLORS = {report_data.OK: "#2f7ed8", report_data.BELOW: "#d9534f", report_data.TOO_SMALL: "#b0b0b0",
           report_data.CANNOT_JUDGE: "#d8d8d8"}
_UNJUDGED = {report_data.TOO_SMALL: "too small to judge", report_data.CANNOT_JUDGE: "one class: cannot judge"}
_DPI = 100


def slice_plot(head: HeadResult, auc_lower_bound: Optional[float], min_examples: float) -> bytes:
  """AUC and weighted example count per slice of one head, flagging slices below the bound or too small."""
  slices = sorted(head.slices, key=SliceResult.sort_key)
  overall = SliceResult("", "", head.metrics.get("example_count", math.nan), head.metrics.get("auc", math.nan),
                        head.metrics.get("mean_label", math.nan))
  rows = [overall] + slices
  labels = [row.label for row in rows]
  auc = np.array([row.auc for row in rows], float)
  counts = np.array([row.example_count for row in rows], float)
  verdicts = [row.verdict(auc_lower_bound, min_examples) for row in rows]
  colors = [_COLORS[verdict] for verdict in verdicts]

  fig = Figure(figsize=(11, 1.6 + 0.28 * len(rows)), dpi=_DPI, layout="constrained")
  auc_axis, count_axis = fig.subplots(1, 2, sharey=True, width_ratios=(3, 2))
  y = np.arange(len(rows))
  judged = np.array([verdict not in _UNJUDGED for verdict in verdicts])
  auc_axis.barh(y, np.where(judged, np.nan_to_num(auc), 0.0), color=colors)
  if auc_lower_bound is not None:
    auc_axis.axvline(auc_lower_bound, color=_COLORS[report_data.BELOW], linestyle="--",
                     label=f"lower bound {auc_lower_bound:g}")
  auc_axis.axvline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance (0.5)")
  for row_y, value, verdict in zip(y, auc, verdicts):
    unjudged = _UNJUDGED.get(verdict)
    auc_axis.text(0.01, row_y, unjudged or f"{value:.3f}", va="center", fontsize=8,
                  color="black" if unjudged else "white")
  auc_axis.set_yticks(y, labels, fontsize=8)
  auc_axis.invert_yaxis()
  auc_axis.set_xlim(0, 1)
  auc_axis.set_xlabel("AUC")
  auc_axis.legend(loc="lower right", fontsize=8)
  count_axis.barh(y, counts, color=colors)
  count_axis.axvline(min_examples, color="black", linewidth=0.8, linestyle="--",
                     label=f"min. {min_examples:g} examples")
  count_axis.set_xscale("log")
  count_axis.set_xlabel("weighted example count (log)")
  count_axis.legend(loc="lower right", fontsize=8)
  below = "red: below bound, " if auc_lower_bound is not None else ""
  fig.suptitle(f"{head.head}: AUC by slice ({below}grey: too small or one class, cannot judge)")
  return png(fig)


def curves_plot(heads: Sequence[HeadResult]) -> bytes:
  """ROC and precision-recall curves of every head that has TFMA confusion matrices."""
  fig = Figure(figsize=(11, 4.5), dpi=_DPI, layout="constrained")
  roc_axis, pr_axis = fig.subplots(1, 2)
  for head in heads:
    if head.confusion is None:
      continue
    fpr, tpr = head.confusion.roc()
    roc_axis.plot(fpr, tpr, label=f"{head.head} (AUC {head.metrics.get('auc', math.nan):.3f})")
    recall, precision = head.confusion.precision_recall()
    pr_axis.plot(recall, precision, label=head.head)
  roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
  roc_axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1))
  pr_axis.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1), ylim=(0, 1.02))
  roc_axis.legend(loc="lower right", fontsize=8)
  pr_axis.legend(loc="lower left", fontsize=8)
  return png(fig)


def calibration_plot(heads: Sequence[HeadResult], bins: int = 10) -> bytes:
  """Observed label rate against mean predicted score in `bins` bins of similar weight, one panel per head."""
  fig = Figure(figsize=(5.5 * len(heads), 4.5), dpi=_DPI, layout="constrained")
  for axis, head in zip(np.atleast_1d(fig.subplots(1, len(heads))), heads):
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    if head.calibration is not None:
      binned = head.calibration.rebin_by_weight(bins)
      predicted = binned.prediction_sum / binned.weight
      observed = binned.label_sum / binned.weight
      axis.plot(predicted, observed, marker="o", label=head.head)
    axis.set(xlabel="mean predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1),
             title=f"{head.head} ({bins} bins of about equal weight)")
    axis.legend(loc="upper left", fontsize=8)
  return png(fig)


def score_distribution_plot(heads: Sequence[HeadResult], bins: int = 50) -> bytes:
  """Histogram of predicted scores for positive and negative examples, one panel per head, zoomed to the
  scores that occur."""
  fig = Figure(figsize=(5.5 * len(heads), 4), dpi=_DPI, layout="constrained")
  for axis, head in zip(np.atleast_1d(fig.subplots(1, len(heads))), heads):
    low, high = 0.0, 1.0
    if head.calibration is not None:
      edges = _score_edges(head.calibration, bins)
      low, high = edges[0], edges[-1]
      binned = head.calibration.rebin(edges)
      positives, negatives = binned.label_sum, binned.weight - binned.label_sum
      axis.stairs(negatives / max(negatives.sum(), 1e-12), edges, fill=True, alpha=0.5, label="label 0")
      axis.stairs(positives / max(positives.sum(), 1e-12), edges, fill=True, alpha=0.5, label="label 1")
    axis.set(xlabel="predicted probability", ylabel="share of the class's weighted examples", title=head.head)
    axis.set_xlim(max(0.0, low - 0.05), min(1.0, high + 0.05))
    axis.legend(loc="upper center", fontsize=8)
  return png(fig)


def _score_edges(calibration: CalibrationHistogram, bins: int) -> np.ndarray:
  """At most `bins` equal bins over the scores that occur, each a whole number of TFMA buckets wide (finer bins
  would show gaps)."""
  lower = np.sort(calibration.lower[np.isfinite(calibration.lower)])
  bucket = float(np.median(np.diff(lower))) if lower.size > 1 else 1.0 / bins
  occurring = np.clip(calibration.lower[(calibration.weight > 0) & np.isfinite(calibration.lower)], 0, 1)
  low, high = (occurring.min(), occurring.max() + bucket) if occurring.size else (0.0, 1.0)
  width = bucket * max(1, math.ceil((high - low) / bins / bucket))
  return low + width * np.arange(math.ceil((high - low) / width) + 1)


def rating_histogram_plot(splits: Sequence[SplitStats]) -> bytes:
  """StatisticsGen's `rating` histogram of every split, side by side."""
  fig = Figure(figsize=(5.5 * len(splits), 3.8), dpi=_DPI, layout="constrained")
  for axis, split in zip(np.atleast_1d(fig.subplots(1, len(splits))), splits):
    axis.stairs(split.rating_counts, split.rating_edges, fill=True)
    nonzero = split.rating_counts[split.rating_counts > 0]
    if nonzero.size and nonzero.max() > 20 * nonzero.min():
      axis.set_yscale("log")  # the eval split's sampled pairs (rating 0) would flatten the rated ones
    axis.set(xlabel="rating (0 = sampled unrated pair)", ylabel="examples",
             title=f"{split.split}: {split.rows:,} examples")
  return png(fig)


def ranking_plot(scores: Sequence[RankingScore]) -> bytes:
  """HR@K and NDCG@K of each ranker as grouped bars."""
  fig = Figure(figsize=(7, 3.8), dpi=_DPI, layout="constrained")
  axis = fig.subplots()
  metrics: Dict[str, Sequence[float]] = {
      f"HR@{scores[0].k}": [s.hit_rate for s in scores], f"NDCG@{scores[0].k}": [s.ndcg for s in scores]}
  width = 0.8 / len(scores)
  x = np.arange(len(metrics))
  for i, score in enumerate(scores):
    values = [metrics[name][i] for name in metrics]
    bars = axis.bar(x + (i - (len(scores) - 1) / 2) * width, values, width, label=score.ranker)
    axis.bar_label(bars, fmt="%.3f", fontsize=8)
  axis.set_xticks(x, list(metrics))
  axis.set(ylim=(0, 1), ylabel="mean over eval users", title=f"Ranking quality ({scores[0].users:,} users)")
  axis.legend(fontsize=8)
  return png(fig)


def png(fig: Figure) -> bytes:
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  return buffer.getvalue()
