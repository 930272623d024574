"""The evaluation report: one self-contained HTML file (inline CSS, figures as data URIs) plus its PNGs.

`write_report` = `load_report` (a pipeline run read through ML Metadata by report/load.py) + `render_report`
(the page and its figures for an already-read RunReport).
"""
import base64
import html
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from components import features
from pipeline.report import data as report_data
from pipeline.report import plots as report_plots
from pipeline.report.data import DEFAULT_K, DEFAULT_MIN_SLICE_EXAMPLES, HeadResult, RunReport

# Section id -> title; the order of the page. Tests check every one is rendered.
SECTIONS: Dict[str, str] = {
    "run": "Run and model",
    "blessing": "Blessing verdict",
    "metrics": "Overall metrics",
    "slices": "AUC by slice",
    "curves": "ROC and precision-recall",
    "calibration": "Calibration",
    "scores": "Score distribution",
    "data": "Data statistics",
    "ranking": "Ranking quality",
}
# TFMA metric names in the order the metrics table lists them; other metrics follow alphabetically.
METRIC_ORDER = ("auc", "binary_accuracy", "precision", "recall", "calibration", "mean_label",
                "mean_prediction", "example_count", "weighted_example_count")
_CALIBRATION_NOTE = ("Points on the diagonal are calibrated: of the examples scored about p, a share p is "
                     "positive. `liked` is weighted by `interaction`, so only rated movies count.")
_SCORES_NOTE = "Each class's histogram sums to 1; well-separated humps mean the head discriminates well."

CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 1.5em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
nav a { margin-right: 1em; } table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } th { background: #f3f3f3; }
.pass { color: #1e7b34; font-weight: bold; } .fail { color: #b52b27; font-weight: bold; }
.verdict { font-size: 1.3em; padding: 0.4em 0.8em; display: inline-block; border-radius: 4px; }
.verdict.pass { background: #e3f4e6; } .verdict.fail { background: #f9e0df; }
img { max-width: 100%; border: 1px solid #eee; } .note { color: #666; font-size: 0.92em; }
"""


def write_report(pipeline_root: Path, metadata_path: Optional[Path], out: Path, run: str = "latest",
                 k: int = DEFAULT_K, min_slice_examples: float = DEFAULT_MIN_SLICE_EXAMPLES) -> Path:
  """Reads pipeline run `run` ("latest" or a run id) from ML Metadata and writes the report to `out` (HTML) with
  its PNGs beside it; returns `out`. See load_report for the arguments."""
  return render_report(load_report(pipeline_root, metadata_path, run, k, min_slice_examples), Path(out))


def load_report(pipeline_root: Path, metadata_path: Optional[Path], run: str = "latest", k: int = DEFAULT_K,
                min_slice_examples: float = DEFAULT_MIN_SLICE_EXAMPLES) -> RunReport:
  """Reads what the report shows about run `run` ("latest" or a run id).

  `metadata_path` is the SQLite ML Metadata file; None means the pipeline's default under `pipeline_root`.
  Artifacts are found through ML Metadata, never by folder names under `pipeline_root`.
  """
  from pipeline import pipeline  # pylint: disable=g-import-not-at-top
  from pipeline.report import load as report_load  # pylint: disable=g-import-not-at-top
  from pipeline.config import PipelineConfig  # pylint: disable=g-import-not-at-top

  store_path = Path(pipeline.metadata_path(PipelineConfig(pipeline_root=Path(pipeline_root),
                                                          metadata_path=metadata_path)))
  return report_load.load_run_report(store_path, run, k=k, min_slice_examples=min_slice_examples)


def summary_lines(report: RunReport) -> List[str]:
  """The report's headline numbers as terminal lines: verdict, overall AUCs, ranking."""
  verdict = {None: "not evaluated", True: "blessed", False: "NOT blessed"}[
      None if report.blessing is None else report.blessing.blessed]
  lines = [f"run {report.identity.run_id}: {verdict}, pushed version {report.identity.model_version or '-'}"]
  if report.infra_validation is not None:
    lines.append(report.infra_validation.describe())
  for head in report.heads:
    baseline = head.baseline_metrics.get("auc")
    lines.append(f"AUC {head.head}: {num(head.metrics.get('auc'))} (baseline {num(baseline)})")
  for score in report.ranking:
    aucs = "".join(f", AUC {head} {auc:.4f}" for head, auc in sorted(score.auc.items()))
    lines.append(f"{score.ranker}: HR@{score.k} {score.hit_rate:.4f}, NDCG@{score.k} {score.ndcg:.4f}{aucs} "
                 f"({score.users:,} users)")
  for full in report.full_catalog:
    lines.append(f"{full.ranker}, full catalog: Recall@{full.k} {full.recall:.4f}, NDCG@{full.k} {full.ndcg:.4f} "
                 f"({full.users:,} of {full.eligible_users:,} users, {full.catalog_movies:,} movies)")
  return lines


def render_report(report: RunReport, out: Path) -> Path:
  """Writes `report` as HTML to `out` and each figure as `<out stem>-<figure>.png` beside it; returns `out`."""
  out.parent.mkdir(parents=True, exist_ok=True)
  figures = _figures(report)
  for stale in out.parent.glob(f"{out.stem}-*.png"):  # figures of an earlier report written to `out`
    stale.unlink()
  for name, png in figures.items():
    out.with_name(f"{out.stem}-{name}.png").write_bytes(png)
  body = [
      f"<h1>Evaluation report: {escape(report.identity.pipeline_name)}</h1>",
      f"<p class='note'>Run <code>{escape(report.identity.run_id)}</code>, started {escape(report.identity.created)}"
      "</p>",
      "<nav>" + "".join(f"<a href='#{key}'>{escape(title)}</a>" for key, title in SECTIONS.items()) + "</nav>",
  ]
  sections = {
      "run": _run_section(report),
      "blessing": _blessing_section(report) + _infra_validation_part(report),
      "metrics": _metrics_section(report.heads),
      "slices": _slices_section(report, figures),
      "curves": _figure_section(figures, ["curves"], "", _missing_plot(report, "ConfusionMatrixPlot")),
      "calibration": _figure_section(figures, ["calibration"], _CALIBRATION_NOTE,
                                     _missing_plot(report, "CalibrationPlot")),
      "scores": _figure_section(figures, ["scores"], _SCORES_NOTE, _missing_plot(report, "CalibrationPlot")),
      "data": _data_section(report, figures),
      "ranking": _ranking_section(report, figures),
  }
  for key, title in SECTIONS.items():
    body.append(f"<section id='{key}'><h2>{escape(title)}</h2>{sections[key]}</section>")
  page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
          f"<title>Evaluation report: {escape(report.identity.run_id)}</title><style>{CSS}</style></head>"
          "<body>" + "\n".join(body) + "</body></html>\n")
  out.write_text(page, encoding="utf-8")
  return out


def _figures(report: RunReport) -> Dict[str, bytes]:
  """Figure name -> PNG bytes, only for figures that have data."""
  figures = {}
  for head in report.heads:
    if "auc" in head.metrics:  # an AUC-by-slice figure; the ranking gate's `score` output has no AUC
      figures[f"slices-{head.head}"] = report_plots.slice_plot(
          head, report.auc_lower_bounds.get(head.head), report.min_slice_examples)
  if any(head.confusion is not None for head in report.heads):
    figures["curves"] = report_plots.curves_plot(report.heads)
  calibrated = [head for head in report.heads if head.calibration is not None]
  if calibrated:
    figures["calibration"] = report_plots.calibration_plot(calibrated)
    figures["scores"] = report_plots.score_distribution_plot(calibrated)
  if report.splits:
    figures["ratings"] = report_plots.rating_histogram_plot(report.splits)
  if report.ranking:
    figures["ranking"] = report_plots.ranking_plot(report.ranking)
  return figures


def _run_section(report: RunReport) -> str:
  identity = report.identity
  rows = [("Pipeline", identity.pipeline_name), ("Run id", identity.run_id), ("Dataset", identity.dataset),
          ("Examples", identity.examples_uri), ("Model (Trainer output)", identity.model_uri),
          ("Pushed version", identity.model_version or "not pushed"),
          ("Pushed to", identity.pushed_destination or "-")]
  rows += [(f"{split.split} rows", f"{split.rows:,}") for split in report.splits]
  return table(["", ""], rows, header=False)


def _blessing_section(report: RunReport) -> str:
  blessing = report.blessing
  if blessing is None:
    return "<p>The Evaluator did not run in this pipeline run, so there is no verdict.</p>"
  verdict = ("<span class='verdict pass'>BLESSED</span>" if blessing.blessed
             else "<span class='verdict fail'>NOT BLESSED</span>")
  baseline = (f"Compared against the last blessed model <code>{escape(blessing.baseline_model_uri)}</code>."
              if blessing.baseline_model_uri else
              "No blessed baseline existed, so only the absolute thresholds were applied.")
  rows = [(check.head, check.metric, check.condition, num(check.value), num(check.baseline_value),
           _pass(check.passed)) for check in blessing.checks]
  return (f"<p>{verdict}</p><p>{baseline} All conditions are on the overall slice.</p>" +
          table(["head", "metric", "condition", "candidate", "baseline", "result"], rows))


def _infra_validation_part(report: RunReport) -> str:
  """The InfraValidator's verdict: the model served and answered like the SavedModel, or why it was refused."""
  infra = report.infra_validation
  title = "<h3>Infra validation</h3>"
  if infra is None:
    return f"{title}<p>The InfraValidator did not run in this pipeline run.</p>"
  if infra.blessed:
    return f"{title}<p><span class='verdict pass'>INFRA BLESSED</span></p><p>{escape(infra.describe())}.</p>"
  return (f"{title}<p><span class='verdict fail'>NOT INFRA BLESSED</span></p><p>The Pusher does not push a "
          f"model refused here. Why:</p><pre>{escape(infra.reason)}</pre>")


def _metrics_section(heads: Sequence[HeadResult]) -> str:
  if not heads:
    return "<p>No TFMA metrics were recorded for this run.</p>"
  parts = []
  for head in heads:
    names = [name for name in METRIC_ORDER if name in head.metrics]
    names += sorted(set(head.metrics) - set(METRIC_ORDER))
    rows = []
    for name in names:
      value, baseline = head.metrics[name], head.baseline_metrics.get(name)
      diff = None if baseline is None else value - baseline
      number = count if name.endswith("example_count") else num
      rows.append((name, number(value), number(baseline), number(diff, signed=True)))
    parts.append(f"<h3>{escape(head.head)}</h3><p class='note'>{escape(head.label)}</p>" +
                 table(["metric", "candidate", "baseline", "candidate - baseline"], rows))
  return "".join(parts)


def _data_section(report: RunReport, figures: Mapping[str, bytes]) -> str:
  if not report.splits:
    return "<p>StatisticsGen did not run in this pipeline run.</p>"
  rows = [(split.split, f"{split.rows:,}", f"{split.distinct_users:,}", f"{split.distinct_movies:,}")
          for split in report.splits]
  parts = ["<p class='note'>From StatisticsGen. The eval split holds each eval user's held-out rated movies "
           "plus the fixed sampled unrated movies (rating 0).</p>",
           table(["split", "rows", "distinct users", "distinct movies"], rows),
           image(figures, "ratings"), "<h3>Anomalies (ExampleValidator)</h3>"]
  if report.anomalies:
    parts.append(table(["split", "feature", "severity", "description"],
                        [(a.split, a.feature, a.severity, a.description) for a in report.anomalies]))
  else:
    parts.append("<p class='pass'>No anomalies against the schema.</p>")
  return "".join(parts)


def _ranking_section(report: RunReport, figures: Mapping[str, bytes]) -> str:
  if not report.ranking:
    return "<p>Ranking quality was not computed (no trained model in this run).</p>"
  k = report.ranking[0].k
  heads = sorted({head for score in report.ranking for head in score.auc})
  rows = [(score.ranker, num(score.hit_rate), num(score.ndcg), *(num(score.auc.get(h)) for h in heads),
           count(score.users)) for score in report.ranking]
  return (f"<p class='note'>NCF protocol: each eval user's held-out liked movie is ranked against the same "
          f"fixed, seeded sampled movies the user has not rated; HR@{k} is the share of users whose movie is in "
          f"the top {k}, NDCG@{k} rewards higher positions. Scored through the exported model's signatures; "
          "the most-popular baseline ranks by train-split rating count. AUCs are on the Evaluator's examples "
          "of each head (the model's from TFMA).</p>" +
          table(["ranker", f"HR@{k}", f"NDCG@{k}", *(f"AUC {h}" for h in heads), "users"], rows) +
          image(figures, "ranking") + _full_catalog_table(report))


def _full_catalog_table(report: RunReport) -> str:
  if not report.full_catalog:
    return ""
  first = report.full_catalog[0]
  k = first.k
  rows = [(full.ranker, num(full.recall), num(full.ndcg), count(full.users)) for full in report.full_catalog]
  return (f"<h3>Full catalog</h3><p class='note'>Every one of the {first.catalog_movies:,} movies with a train "
          f"rating that the user did not rate in train is ranked; relevant are the user's held-out movies rated "
          f"&gt;= {features.LIKED_THRESHOLD:g}. Recall@{k} = hits in the top {k} / min({k}, relevant), NDCG@{k} "
          f"with binary gains; ties in a seeded random order. {first.users:,} of the {first.eligible_users:,} "
          "eval users with a relevant movie are judged (a seeded sample on large sets). Sampled metrics above "
          "can order models differently (Krichene &amp; Rendle, KDD 2020).</p>" +
          table(["ranker", f"Recall@{k}", f"NDCG@{k}", "users judged"], rows))


def _slices_section(report: RunReport, figures: Mapping[str, bytes]) -> str:
  if not any(head.slices for head in report.heads):
    return "<p>No sliced metrics were recorded for this run.</p>"
  parts = [f"<p class='note'>{escape(_slice_note(report))}</p>"]
  for head in (head for head in report.heads if head.slices):
    bound = report.auc_lower_bounds.get(head.head)
    verdicts = [(s, s.verdict(bound, report.min_slice_examples))
                for s in sorted(head.slices, key=report_data.SliceResult.sort_key)]
    flagged = [(s.label, verdict, "undefined" if verdict == report_data.CANNOT_JUDGE else num(s.auc),
                count(s.example_count)) for s, verdict in verdicts if verdict != report_data.OK]
    parts.append(f"<h3>{escape(head.head)}</h3>" + image(figures, f"slices-{head.head}"))
    if flagged:
      parts.append(table(["flagged slice", "verdict", "AUC", "weighted examples"], flagged))
    else:
      above = "above the bound and " if bound is not None else ""
      parts.append(f"<p class='pass'>Every slice is {above}large enough to judge.</p>")
  return "".join(parts)


def _figure_section(figures: Mapping[str, bytes], names: Sequence[str], note: str, missing: str) -> str:
  present = [name for name in names if name in figures]
  if not present:
    return f"<p>{escape(missing)}</p>"
  return (f"<p class='note'>{escape(note)}</p>" if note else "") + "".join(image(figures, n) for n in present)


def _slice_note(report: RunReport) -> str:
  bounds = ", ".join(f"{head} >= {bound:g}" for head, bound in sorted(report.auc_lower_bounds.items()))
  below = (f"Red bars are below the overall AUC lower bound ({bounds}); the bound is enforced on the overall "
           "slice only, per-slice colours are a guide. " if bounds else "")
  return (f"{below}Grey bars cannot be judged: fewer than {report.min_slice_examples:g} weighted examples, or "
          "empty, or a single class (AUC is undefined there).")


def _missing_plot(report: RunReport, plot: str) -> str:
  if not report.heads:
    return "No TFMA results were recorded for this run."
  return f"The Evaluator did not compute {plot} for this run."


def image(figures: Mapping[str, bytes], name: str) -> str:
  if name not in figures:
    return ""
  data = base64.b64encode(figures[name]).decode("ascii")
  return f"<figure><img alt='{escape(name)}' src='data:image/png;base64,{data}'></figure>"


def table(columns: Sequence[str], rows: Sequence[Tuple], header: bool = True) -> str:
  head = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>" if header else ""
  cells = []
  for row in rows:
    cells.append("<tr>" + "".join(_cell(value) for value in row) + "</tr>")
  return f"<table>{head}{''.join(cells)}</table>"


def _cell(value) -> str:
  if isinstance(value, _Html):
    return f"<td>{value}</td>"
  css = " class='num'" if isinstance(value, _Number) else ""
  return f"<td{css}>{escape(str(value))}</td>"


class _Html(str):
  """Markup built here that a table cell must not escape."""


class _Number(str):
  """A formatted number, right-aligned."""


def num(value: Optional[float], signed: bool = False) -> str:
  if value is None or math.isnan(value):
    return _Number("-")
  return _Number(f"{value:+.4f}" if signed else f"{value:.4f}")


def count(value: Optional[float], signed: bool = False) -> str:
  if value is None or math.isnan(value):
    return _Number("-")
  return _Number(f"{value:+,.0f}" if signed else f"{value:,.0f}")


def _pass(passed: bool) -> str:
  return _Html("<span class='pass'>pass</span>" if passed else "<span class='fail'>FAIL</span>")


def escape(text: Optional[str]) -> str:
  return html.escape(str(text), quote=True)
