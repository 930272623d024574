"""replay.html: one self-contained page per replay, built like the evaluation report (pipeline/report/html.py's
table and figure helpers, matplotlib's Agg canvas): the spans' verdicts, quality per span against popularity,
and the latency of the live traffic over time with the version swaps marked."""
import math
from pathlib import Path
from typing import Dict, List

import numpy as np
from matplotlib.figure import Figure

from pipeline.replay.loop import ReplayResult, SpanOutcome
from pipeline.report import html as report_html
from pipeline.report import load as report_load
from pipeline.report import plots as report_plots

_DPI = 100


def write_page(result: ReplayResult, out: Path) -> Path:
  """Writes the page of `result` to `out` (figures inline) and returns `out`."""
  traffic = result.traffic
  body = [f"<h1>Replay: {report_html.escape(result.dataset)} by {report_html.escape(result.span_by)}</h1>",
          f"<p class='note'>{len(result.spans)} spans in {result.wall_seconds:.0f} s; model server: "
          f"{report_html.escape(result.server)}.</p>",
          "<h2>Spans</h2>", _span_table(result.spans)]
  if any(o.ranking for o in result.spans):
    body += ["<h2>Quality per span (judged on the next period)</h2>", _figure(quality_plot(result.spans))]
  body.append("<h2>Live traffic</h2>")
  if traffic is None:
    body.append("<p>No version was pushed, so nothing was served.</p>")
  else:
    verdict = "pass" if traffic.failed == 0 else "fail"
    body += [f"<p><span class='verdict {verdict}'>{traffic.requests:,} requests in {traffic.duration_s:.0f} s, "
             f"{traffic.failed:,} failed</span> "
             + report_html.escape(", ".join(f"{code} {n}" for code, n in traffic.errors.items())) + "</p>",
             report_html.table(["", "requests", "failed", "p50 ms", "p99 ms"], [
                 ("steady state", report_html.count(traffic.steady.requests),
                  report_html.count(traffic.steady.failed), report_html.num(traffic.steady.p50_ms),
                  report_html.num(traffic.steady.p99_ms))] + [
                 (f"swap {s.from_version} -> {s.to_version} (±window)", report_html.count(s.around.requests),
                  report_html.count(s.around.failed), report_html.num(s.around.p50_ms),
                  report_html.num(s.around.p99_ms)) for s in traffic.swaps]),
             _figure(latency_plot(result))]
  page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
          f"<title>Replay: {report_html.escape(result.dataset)}</title><style>{report_html.CSS}</style></head>"
          "<body>" + "\n".join(body) + "</body></html>\n")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(page, encoding="utf-8")
  return out


def _span_table(outcomes: List[SpanOutcome]) -> str:
  rows = []
  for o in outcomes:
    model, popular = _rankers(o)
    verdict = o.stopped or ("blessed" if o.blessed else "not blessed") + (
        "" if o.infra_blessed is None else (", infra blessed" if o.infra_blessed else ", not infra blessed"))
    rows.append((str(o.span), o.train_period, report_html.count(o.rows.get("train")),
                 report_html.count(o.rows.get("eval")), o.injected or "", o.drift, verdict,
                 str(o.pushed_version or "-"), "yes" if o.warm_start_from else "no", str(o.serving_version or "-"),
                 report_html.num(model.get("hit_rate")), report_html.num(popular.get("hit_rate")),
                 report_html.num(model.get("ndcg")), report_html.num(popular.get("ndcg")),
                 report_html.num(o.auc.get("interaction")), report_html.num(o.auc.get("liked")),
                 report_html.count(o.seconds), report_html.count(o.traffic.requests if o.traffic else None),
                 report_html.count(o.traffic.failed if o.traffic else None)))
  return report_html.table(["span", "train period", "train rows", "eval rows", "injected", "drift", "verdict",
                            "pushed", "warm start", "serving", "HR@10", "HR@10 popular", "NDCG@10",
                            "NDCG@10 popular", "AUC interaction", "AUC liked", "seconds", "requests", "failed"], rows)


def _rankers(outcome: SpanOutcome):
  """(the model's ranking scores, popularity's) of a span; empty dicts when it has none."""
  return (outcome.ranking.get(report_load.MODEL_RANKER, {}), outcome.ranking.get(report_load.POPULAR_RANKER, {}))


def quality_plot(outcomes: List[SpanOutcome]) -> bytes:
  """HR@10 and NDCG@10 per span of the span's model and of the most-popular list; hollow markers: not pushed."""
  fig = Figure(figsize=(10, 3.8), dpi=_DPI, layout="constrained")
  axes = fig.subplots(1, 2)
  spans = [o.span for o in outcomes]
  for axis, metric, title in zip(axes, ("hit_rate", "ndcg"), ("HR@10", "NDCG@10")):
    for which, style in ((0, "o-"), (1, "s--")):
      values = [_rankers(o)[which].get(metric, math.nan) for o in outcomes]
      axis.plot(spans, values, style, label="model" if which == 0 else "most popular")
    for o in outcomes:
      if o.pushed_version is None:
        axis.axvspan(o.span - 0.4, o.span + 0.4, color="#f2b8b5", alpha=0.5, lw=0)
    axis.set(xlabel="span (shaded: nothing pushed)", ylabel=title, title=f"{title} on the next period",
             ylim=(0, 1))
    axis.set_xticks(spans)
    axis.legend(fontsize=8)
  return report_plots.png(fig)


def latency_plot(result: ReplayResult) -> bytes:
  """p50 and p99 latency per second of the traffic, with each version swap marked."""
  traffic = result.traffic
  series: Dict[str, List[float]] = traffic.per_second
  fig = Figure(figsize=(11, 3.8), dpi=_DPI, layout="constrained")
  axis = fig.subplots()
  t = np.array(series["t"])
  axis.plot(t, series["p99_ms"], lw=0.8, label="p99")
  axis.plot(t, series["p50_ms"], lw=0.8, label="p50")
  for swap in traffic.swaps:
    x = swap.at_unix_s - traffic.start_unix_s
    axis.axvline(x, color="black", ls=":", lw=1)
    axis.text(x, max(series["p99_ms"], default=1.0), f" v{swap.to_version}", fontsize=8, va="top")
  axis.set_yscale("log")
  axis.set(xlabel="seconds since the first request", ylabel="latency (ms, log)",
           title=f"Live traffic: {traffic.requests:,} requests, {traffic.failed} failed (dotted: version swaps)")
  axis.legend(fontsize=8)
  return report_plots.png(fig)


def _figure(png: bytes) -> str:
  return report_html.image({"figure": png}, "figure")
