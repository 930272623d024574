"""`recsys replay` on tiny weekly data (three spans, about 5 minutes on 2 shared cores): the pipeline runs span
after span while the embedded model server serves the pushed versions under live traffic; span 2 is drifted on
purpose, is stopped by the drift gate and never pushed, span 3 is compared with span 1 (the last accepted span),
and no request fails. Plus the parts that need no pipeline: --inject parsing and the trace analysis."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import (CURATED_SCHEMA_DIR, DataConfig, DriftConfig, EvalConfig, InfraValidationConfig,
                             PipelineConfig, ReplayConfig)
from pipeline.replay import inject
from pipeline.replay import loop
from pipeline.replay import page
from pipeline.replay import traffic
from serving import loadtest
from tests.support import span_ratings, testdata

pytestmark = pytest.mark.slow

SHAPE = span_ratings.WeeklyRatings(movies=80, weeks=4)  # weeks 1-4 make spans 1-3


def test_injections_are_parsed_and_refused_with_what_is_expected():
  injections = inject.parse_injections(["2:drifted-genres", "3:corrupt-eval"])
  assert injections == {2: inject.Injection(2, "drifted-genres"), 3: inject.Injection(3, "corrupt-eval")}
  inject.check_replayed(injections, [1, 2, 3])
  with pytest.raises(inject.InjectionError, match="expected SPAN:KIND with KIND one of shuffled-labels"):
    inject.parse_injections(["2:bad"])
  with pytest.raises(inject.InjectionError, match="span 2 is named twice"):
    inject.parse_injections(["2:corrupt-eval", "2:drifted-genres"])
  with pytest.raises(inject.InjectionError, match="span 3 is not replayed"):
    inject.check_replayed(injections, [1, 2])


def test_the_trace_gives_swaps_the_latency_around_them_and_the_steady_state():
  # Version 1 answers for 30 s at 2 ms, then version 2; the requests within 5 s of the swap take 20 ms.
  times = [1000.0 + i * 0.5 for i in range(120)]
  rows = [(t, "predict", "OK", 1 if t < 1030 else 2, 20.0 if abs(t - 1030) <= 5 else 2.0) for t in times]
  rows.append((1010.25, "recommend", "DEADLINE_EXCEEDED", None, 10000.0))
  report = traffic.analyse(pd.DataFrame(rows, columns=list(loadtest.TRACE_COLUMNS)).sort_values("sent_unix_s")
                           .assign(version=lambda t: t.version.fillna(-1).astype(int)), swap_window_s=5.0)
  assert (report.requests, report.failed, report.errors) == (121, 1, {"DEADLINE_EXCEEDED": 1})
  [swap] = report.swaps
  assert (swap.from_version, swap.to_version, swap.at_unix_s) == (1, 2, 1030.0)
  assert swap.around.requests == 21 and swap.around.p50_ms == 20.0
  assert report.steady.p99_ms == 2.0 and report.steady.failed == 1


def test_the_wait_for_a_version_reads_the_trace_as_it_grows_and_names_what_it_saw(tmp_path):
  trace = tmp_path / "traffic.csv"
  sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
  try:
    with pytest.raises(traffic.TrafficError, match="newest: None"):
      traffic.wait_for_version(sleeper, trace, 1, timeout_s=0.3)  # no trace yet
    trace.write_text(",".join(loadtest.TRACE_COLUMNS)
                     + "\n1000.0,predict,OK,1,2.0\n1000.1,predict,UNAVAILABLE,,1.0\n")
    traffic.wait_for_version(sleeper, trace, 1, timeout_s=1.0)
    with pytest.raises(traffic.TrafficError, match="no answer of version 2 .* within 0.3 s \\(newest: 1\\)"):
      traffic.wait_for_version(sleeper, trace, 2, timeout_s=0.3)
    with trace.open("a") as more:
      more.write("1000.2,recommend,OK,2,3.0")  # a row still being written is not read yet
    with pytest.raises(traffic.TrafficError, match="newest: 1"):
      traffic.wait_for_version(sleeper, trace, 2, timeout_s=0.3)
    with trace.open("a") as more:
      more.write("\n")
    traffic.wait_for_version(sleeper, trace, 2, timeout_s=1.0)
  finally:
    sleeper.kill()
    sleeper.wait()
  with pytest.raises(traffic.TrafficError, match="exited with status -9 before an answer of version 3"):
    traffic.wait_for_version(sleeper, trace, 3, timeout_s=5.0)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
  work = tmp_path_factory.mktemp("replay")
  span_ratings.write(SHAPE, work / "raw")
  config = PipelineConfig(
      pipeline_name="replay-test", pipeline_root=work / "root", examples_dir=work / "examples",
      serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR,
      data=DataConfig(dataset="ml-latest", data_dir=work / "raw", cache_dir=work / "cache", eval_negatives=10,
                      evaluator_negatives=4, span_by="week", span_window=2),
      model=testdata.TINY_MODEL, train=dataclasses.replace(testdata.TINY_TRAIN, epochs=2),
      eval=EvalConfig(min_liked_auc=0.0, min_interaction_auc=0.0, min_ndcg=0.0, max_auc_regression=1.0,
                      max_ndcg_regression=1.0),
      drift=DriftConfig(movie_id_linf=1.0, genres_linf=0.15, rating_jsd=0.5),
      # The replay's own server serves every pushed version; infra validation would start one more per span.
      infra_validation=InfraValidationConfig(enabled=False))
  replay = ReplayConfig(callers=2, server="embedded", inject=("2:drifted-genres",))
  lines = []
  result = loop.run_replay(config, replay, work / "out", report=lines.append)
  return result, lines, work / "out"


def test_a_drifted_span_is_stopped_and_the_next_one_is_compared_with_the_last_accepted(replayed):
  result, lines, _ = replayed
  assert [o.span for o in result.spans] == [1, 2, 3]
  assert [o.drift for o in result.spans] == ["span 1: no previous span, nothing compared",
                                             "span 2 vs span 1: drift in genres", "span 3 vs span 1: no drift"]
  first, drifted, third = result.spans
  assert drifted.injected == "drifted-genres" and drifted.stopped.startswith("drift gate: ")
  assert drifted.pushed_version is None and drifted.blessed is None
  assert first.pushed_version and third.pushed_version and third.pushed_version > first.pushed_version
  assert [o.serving_version for o in result.spans] == [first.pushed_version] * 2 + [third.pushed_version]
  assert all(o.ranking and o.auc for o in (first, third))
  assert len(lines) == 3 and "stopped by the drift gate" in lines[1]


def test_live_traffic_sees_the_swap_and_no_request_fails(replayed):
  result, _, out = replayed
  report = result.traffic
  assert report.requests > 50 and report.failed == 0, report.errors
  assert [(s.from_version, s.to_version) for s in report.swaps] == [
      (result.spans[0].pushed_version, result.spans[2].pushed_version)]
  assert report.swaps[0].around.requests > 0 and report.steady.requests > 0
  # Traffic starts once span 1's version is served; every later span ran under it.
  assert result.spans[0].traffic is None or result.spans[0].traffic.requests < 50
  assert all(o.traffic.requests > 0 and o.traffic.failed == 0 for o in result.spans[1:])
  assert sum(o.traffic.requests for o in result.spans if o.traffic) == report.requests
  assert result.loadtest["requests"] >= report.requests and not result.loadtest["errors"]
  saved = json.loads((out / "replay.json").read_text())
  assert [s["pushed_version"] for s in saved["spans"]] == [o.pushed_version for o in result.spans]


def test_the_page_shows_spans_quality_and_traffic(replayed, tmp_path):
  result, _, _ = replayed
  html = page.write_page(result, tmp_path / "replay.html").read_text()
  for text in ("Spans", "Quality per span", "Live traffic", "steady state", "drift gate", "<img"):
    assert text in html
  assert html.count("<img") == 2


def test_the_examples_are_clean_again_after_a_replay(replayed):
  # The injection removed the manifest, so the next preparation rewrites span 2 without the drifted genres.
  _, _, out = replayed
  assert not (Path(out).parent / "examples" / "prepared.json").exists()
