"""`recsys replay` on tiny weekly data (three spans, about a minute on 2 idle cores): the pipeline runs span after
span while the embedded model server serves the pushed versions under live traffic; span 2 is drifted on purpose,
is stopped by the drift gate and never pushed, span 3 is compared with span 1 (the last accepted span), and no
request fails. What ML Metadata recorded of those runs shows the pipeline on spans at work: the span each run
read, the window of accepted spans that Transform and the Trainer saw (span 3's leaves out the drifted span 2),
span 3's Trainer warm-started from span 1's blessed model, and the drift check's reference span. Plus the parts
that need no pipeline: --inject parsing and the trace analysis (tests/test_pipeline_spans.py: the DAG on spans)."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pandas as pd
import pytest

from components import features
from pipeline.config import (CURATED_SCHEMA_DIR, DataConfig, DriftConfig, EvalConfig, InfraValidationConfig,
                             PipelineConfig, ReplayConfig)
from pipeline.drift_gate import PREVIOUS_SPAN, DataDriftError, check_drift
from pipeline.pipeline import metadata_path
from pipeline.replay import inject
from pipeline.replay import loop
from pipeline.replay import page
from pipeline.replay import traffic
from pipeline.runs import reader, summary
from pipeline.span_resolvers import span_of
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


@dataclasses.dataclass(frozen=True)
class Replayed:
  """One replay of the tiny weekly data: its result, its report lines, its output folder and its config."""
  result: loop.ReplayResult
  lines: List[str]  # what the replay reported after each span
  out: Path
  config: PipelineConfig


@pytest.fixture(scope="module")
def replayed(tmp_path_factory) -> Replayed:
  work = tmp_path_factory.mktemp("replay")
  span_ratings.write(SHAPE, work / "raw")
  config = PipelineConfig(
      pipeline_name="replay-test", pipeline_root=work / "root", examples_dir=work / "examples",
      serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR,
      data=DataConfig(dataset="ml-latest", data_dir=work / "raw", cache_dir=work / "cache", eval_negatives=10,
                      evaluator_negatives=4, span_by="week", span_window=2),
      model=testdata.TINY_MODEL,
      train=dataclasses.replace(testdata.TINY_TRAIN, epochs=2, warm_start=True, warm_start_epochs=1),
      # Every span that reaches the Evaluator is blessed, so the next one has a base model to start from.
      eval=EvalConfig(min_liked_auc=0.0, min_interaction_auc=0.0, min_ndcg=0.0, max_auc_regression=1.0,
                      max_ndcg_regression=1.0),
      # movie_id's shares move a lot between weeks of 300 ratings: the drift check looks at genres.
      drift=DriftConfig(movie_id_linf=1.0, genres_linf=0.15, rating_jsd=0.5),
      # The replay's own server serves every pushed version; infra validation would start one more per span.
      infra_validation=InfraValidationConfig(enabled=False))
  replay = ReplayConfig(callers=2, server="embedded", inject=("2:drifted-genres",))
  lines = []
  result = loop.run_replay(config, replay, work / "out", report=lines.append)
  return Replayed(result, lines, work / "out", config)


def _inputs_per_run(config: PipelineConfig, node: str, key: str) -> List[List]:
  """The input artifacts under `key` of each execution of `node`, oldest first (TFX Artifacts)."""
  from ml_metadata.proto import metadata_store_pb2
  from tfx.types import artifact_utils

  store = reader.open_store(Path(metadata_path(config)))
  context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.{node}")
  executions = sorted(store.get_executions_by_context(context.id), key=lambda e: (e.create_time_since_epoch, e.id))
  per_run = []
  for execution in executions:
    ids = [event.artifact_id for event in store.get_events_by_execution_ids([execution.id])
           if event.type == metadata_store_pb2.Event.INPUT and event.path.steps[0].key == key]
    artifacts = store.get_artifacts_by_id(ids)
    types = {t.id: t for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    per_run.append([artifact_utils.deserialize_artifact(types[a.type_id], a) for a in artifacts])
  return per_run


def test_a_drifted_span_is_stopped_and_the_next_one_is_compared_with_the_last_accepted(replayed):
  result, lines = replayed.result, replayed.lines
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
  result, out = replayed.result, replayed.out
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
  result = replayed.result
  html = page.write_page(result, tmp_path / "replay.html").read_text()
  for text in ("Spans", "Quality per span", "Live traffic", "steady state", "drift gate", "<img"):
    assert text in html
  assert html.count("<img") == 2


def test_the_examples_are_clean_again_after_a_replay(replayed):
  # The injection removed the manifest, so the next preparation rewrites span 2 without the drifted genres.
  assert not (replayed.out.parent / "examples" / "prepared.json").exists()


def test_ml_metadata_records_the_span_each_run_read(replayed):
  assert [span_of(a) for (a,) in _inputs_per_run(replayed.config, "StatisticsGen", "examples")] == [1, 2, 3]
  # The Evaluator judges the span read, not the window; the drifted span 2 never got that far.
  assert [[span_of(a) for a in run] for run in _inputs_per_run(replayed.config, "Evaluator", "examples")] == [[1], [3]]


def test_transform_and_trainer_see_the_window_of_accepted_spans(replayed):
  transform_runs = _inputs_per_run(replayed.config, "Transform", "examples")
  # Span 1: nothing older was ingested. Span 3, window 2: the drift gate stopped span 2, so it is not in the window.
  assert [sorted(span_of(a) for a in run) for run in transform_runs] == [[1], [1, 3]]
  assert [len(run) for run in _inputs_per_run(replayed.config, "Trainer", "examples")] == [1, 2]


def test_the_first_span_trains_cold_and_the_next_accepted_one_starts_from_its_blessed_model(replayed):
  first, _, third = replayed.result.spans
  assert first.warm_start_from is None
  (span_1_model,) = _inputs_per_run(replayed.config, "Evaluator", "model")[0]
  assert third.warm_start_from == span_1_model.uri
  last = summary.summarize(dataclasses.replace(replayed.config, span=3))
  assert last.warm_start_from == third.warm_start_from and last.as_dict()["warm_start_from"] == last.warm_start_from
  assert f"warm start: from {third.warm_start_from}" in last.format()


def test_the_drift_check_compares_with_the_last_accepted_span_and_its_gate_names_the_feature(replayed):
  first, drifted, third = (run[0] for run in _inputs_per_run(replayed.config, "DriftGate", "drift"))
  assert first.span == 1 and not first.has_custom_property(PREVIOUS_SPAN)
  assert (drifted.span, drifted.get_int_custom_property(PREVIOUS_SPAN)) == (2, 1)
  assert (third.span, third.get_int_custom_property(PREVIOUS_SPAN)) == (3, 1)
  with pytest.raises(DataDriftError) as raised:
    check_drift(drifted)  # what stopped span 2's run, in full
  message = str(raised.value)
  assert "span 2's statistics drifted from span 1's" in message
  assert f"split '{features.TRAIN_SPLIT}'" in message and f"{features.GENRES}: " in message
  assert "threshold 0.15" in message
  assert replayed.result.spans[1].stopped == f"drift gate: {message.splitlines()[0].rstrip('.')}"
  check_drift(third)  # passes
