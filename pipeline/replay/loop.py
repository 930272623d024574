"""`recsys replay`: MovieLens history through the production loop, span after span, under live traffic.

1. The ratings are cut into spans (DataConfig.span_by) once; bad data is injected into the spans `--inject`
   names (pipeline/replay/inject.py) just before they run.
2. Each span runs the whole pipeline with ExampleGen reading that span: drift check against the previous
   accepted span, Transform and Trainer on the rolling window, the Evaluator against the latest blessed model,
   infra validation, and the Pusher writing a new numbered version when all of them passed. A run stopped by the
   anomalies or the drift gate is recorded as such and the replay goes on with the next span.
3. Once the first version is pushed, a model server (`recsys serve`, polling the serving directory) serves it and
   a load generator in its own process sends `predict` and `recommend` requests until the last span is done.
   After every push the replay waits until the traffic's trace holds an answer of the new version, so each swap
   happens under traffic and inside its span (the last one too, before the traffic stops).
4. The outcome per span (ReplayResult) and the traffic's trace (pipeline/replay/traffic.py) make replay.json and
   replay.html (pipeline/replay/page.py).
"""
import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from pipeline.config import PipelineConfig, ReplayConfig
from pipeline.replay import inject
from pipeline.replay import traffic as traffic_lib

SERVE_TIMEOUT_S = 300.0  # for the server to make a pushed version AVAILABLE


class ReplayError(RuntimeError):
  """The replay cannot run as asked (no spans, a server that does not serve a pushed version, ...)."""


@dataclasses.dataclass
class SpanOutcome:
  """What happened to one span."""
  span: int
  train_period: str
  eval_period: str
  rows: Dict[str, int]  # prepared examples per split
  injected: Optional[str]  # the injection's kind, or None
  # the drift check's verdict, e.g. "span 1: no previous span, nothing compared", "span 3 vs span 1: no drift",
  # "span 2 vs span 1: drift in genres", or "not checked" (the check is off)
  drift: str
  stopped: Optional[str]  # the gate that stopped the run and its message; None when the run completed
  blessed: Optional[bool]
  infra_blessed: Optional[bool]
  pushed_version: Optional[int]
  warm_start_from: Optional[str]
  serving_version: Optional[int]  # what the server answers with once the span is done
  auc: Dict[str, Optional[float]]  # head -> the candidate's AUC on the span's eval (the next period)
  ranking: Dict[str, Dict[str, float]]  # ranker -> {"k", "hit_rate", "ndcg"} on the next period
  seconds: float  # wall time of the span's pipeline run
  trainer_seconds: Optional[float]
  started_unix_s: float
  # the live traffic's requests sent while the span ran (and until its version was served); None before the
  # first push
  traffic: Optional[traffic_lib.LatencyWindow] = None


@dataclasses.dataclass
class ReplayResult:
  dataset: str
  span_by: str
  spans: List[SpanOutcome]
  traffic: Optional[traffic_lib.TrafficReport]
  loadtest: Optional[dict]  # the load generator's own summary (serving/loadtest.py LoadTestResult)
  server: str
  wall_seconds: float

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


def run_replay(config: PipelineConfig, replay: ReplayConfig, out_dir: Path,
               report: Callable[[str], None] = print) -> ReplayResult:
  """Replays the spans of `config.data` (see the module docstring); writes `out_dir`/replay.json (after every span
  the spans so far, at the end with the traffic) and returns the result. `report` gets one line per span as it
  ends.

  Raises:
    ReplayError: the data makes no span to replay, or the server does not serve a pushed version.
    inject.InjectionError: a malformed --inject.
  """
  from pipeline import model_server_process
  from pipeline.data.prepare import prepare_examples
  from pipeline.runners import local as local_runner

  started = time.monotonic()
  injections = inject.parse_injections(replay.inject)
  out_dir.mkdir(parents=True, exist_ok=True)
  config = local_runner.absolute_paths(config)
  prepared = prepare_examples(config.data, config.examples_dir)
  chosen = [s for s in prepared.spans if s.span >= replay.first_span]
  chosen = chosen[:replay.spans] if replay.spans is not None else chosen
  if not chosen:
    raise ReplayError(f"no span to replay: the data holds spans {prepared.spans[0].span} to "
                      f"{prepared.spans[-1].span}, --first-span is {replay.first_span}")
  inject.check_replayed(injections, [s.span for s in chosen])
  ids_file = _write_traffic_ids(config, out_dir / "traffic-ids.json")
  trace_path, result_path = out_dir / "traffic.csv", out_dir / "loadtest.json"
  for stale in (trace_path, result_path):
    stale.unlink(missing_ok=True)
  outcomes: List[SpanOutcome] = []
  server_name = model_server_process.server_name(replay.server)
  with contextlib.ExitStack() as serving:
    served = load = None
    for prepared_span in chosen:
      injection = injections.get(prepared_span.span)
      if injection is not None:
        inject.inject(config.examples_dir, injection)
      outcome = _run_span(dataclasses.replace(config, span=prepared_span.span), prepared_span, injection)
      if outcome.pushed_version is not None:
        first_push = served is None
        if first_push:
          served = serving.enter_context(model_server_process.served_model(
              config.model_name, config.serving_dir / config.model_name, replay.server,
              out_dir / "server.log", poll_wait_s=1))
        try:
          served.wait_until_available(SERVE_TIMEOUT_S, version=outcome.pushed_version)
        except model_server_process.ModelNotAvailableError as error:
          raise ReplayError(f"span {outcome.span}: pushed version {outcome.pushed_version} was not served: "
                            f"{error}") from error
        if first_push:
          load = serving.enter_context(traffic_lib.traffic(served.target, config.model_name, ids_file, trace_path,
                                                           result_path, replay))
        traffic_lib.wait_for_version(load, trace_path, outcome.pushed_version, SERVE_TIMEOUT_S)
      outcome.serving_version = _serving_version(outcomes, outcome)
      outcomes.append(outcome)
      report(describe(outcome))
      # So far, for a replay that is stopped before its end: the spans done (the traffic is read at the end).
      _write(ReplayResult(config.data.dataset, config.data.span_by, outcomes, None, None, server_name,
                          time.monotonic() - started), out_dir)
  trace = None
  if trace_path.is_file():
    table = traffic_lib.read_trace(trace_path)
    trace = traffic_lib.analyse(table, replay.swap_window_s)
    ends = [o.started_unix_s for o in outcomes[1:]] + [float("inf")]
    for outcome, end in zip(outcomes, ends):
      sent = table[(table.sent_unix_s >= outcome.started_unix_s) & (table.sent_unix_s < end)]
      outcome.traffic = traffic_lib.LatencyWindow.of(sent) if len(sent) else None
  result = ReplayResult(config.data.dataset, config.data.span_by, outcomes, trace,
                        traffic_lib.loadtest_result(result_path), server_name, time.monotonic() - started)
  _write(result, out_dir)
  return result


def _write(result: ReplayResult, out_dir: Path) -> None:
  (out_dir / "replay.json").write_text(json.dumps(result.as_dict(), indent=2) + "\n")


def _run_span(config: PipelineConfig, prepared_span, injection: Optional[inject.Injection]) -> SpanOutcome:
  """Runs the pipeline on one span; a stop by the anomalies or the drift gate is an outcome, not an error."""
  from pipeline.anomalies_gate import ExampleAnomaliesError
  from pipeline.drift_gate import DataDriftError
  from pipeline.runners import local as local_runner
  from pipeline.runs import summary

  started, started_unix_s = time.monotonic(), time.time()
  stopped = None
  try:
    local_runner.run(config)
  except ExampleAnomaliesError as error:
    stopped = f"anomalies gate: {str(error).splitlines()[0].rstrip('.')}"
  except DataDriftError as error:
    stopped = f"drift gate: {str(error).splitlines()[0].rstrip('.')}"
  seconds = time.monotonic() - started
  run = summary.summarize(config)
  # What the console printed when the drift check ended, e.g. "span 3 vs span 1: no drift"
  drift = summary.describe_node(config, "DriftValidator")[1] if "DriftValidator" in run.components else (
      "not checked")
  pushed = int(Path(run.pushed_path).name) if run.pushed_path else None
  trainer = run.components.get("Trainer")
  return SpanOutcome(
      span=prepared_span.span, train_period=prepared_span.train_period, eval_period=prepared_span.eval_period,
      rows=dict(prepared_span.rows), injected=injection.kind if injection else None, drift=drift, stopped=stopped,
      blessed=run.blessed if stopped is None else None, infra_blessed=run.infra_blessed if stopped is None else None,
      pushed_version=pushed if stopped is None else None, warm_start_from=run.warm_start_from,
      serving_version=None, auc={head: gated.value for head, gated in run.auc.items()} if stopped is None else {},
      ranking=run.ranking if stopped is None else {}, seconds=seconds,
      trainer_seconds=trainer.seconds if trainer is not None and stopped is None else None,
      started_unix_s=started_unix_s)


def _serving_version(earlier: List[SpanOutcome], outcome: SpanOutcome) -> Optional[int]:
  """The latest version pushed so far: what the server answers with (it waited for each push)."""
  pushed = [o.pushed_version for o in [*earlier, outcome] if o.pushed_version is not None]
  return pushed[-1] if pushed else None


def _write_traffic_ids(config: PipelineConfig, path: Path) -> Path:
  """The users and movies of the ratings, for the load generator's requests."""
  from pipeline.data import movielens
  from pipeline.data.bad_rows import BadRows
  from pipeline.data.prepare import source_dir

  table = movielens.ratings_table(movielens.load(source_dir(config.data), BadRows(config.data.on_bad_rows)))
  ids = {"users": sorted(map(str, table.user_id.unique())), "movies": sorted(map(str, table.movie_id.unique()))}
  path.write_text(json.dumps(ids))
  return path


def describe(outcome: SpanOutcome) -> str:
  """One line per span, e.g. "span 3 (train 1997-11-01..1997-12-01): blessed, pushed version 3, HR@10 0.61
  (popular 0.45), 143 s"."""
  head = f"span {outcome.span} (train {outcome.train_period}{', injected ' + outcome.injected if outcome.injected else ''})"
  if outcome.stopped:
    verdict = f"stopped by the {outcome.stopped}"
  else:
    verdict = ("blessed" if outcome.blessed else "not blessed") + (
        "" if outcome.infra_blessed is None else (", infra blessed" if outcome.infra_blessed else ", not infra blessed"))
    verdict += f", pushed version {outcome.pushed_version}" if outcome.pushed_version else ", not pushed"
    for ranker, score in outcome.ranking.items():
      verdict += f"; {ranker} HR@{score['k']:g} {score['hit_rate']:.3f} NDCG {score['ndcg']:.3f}"
  serving = f"; serving version {outcome.serving_version}" if outcome.serving_version else ""
  return f"{head}: {verdict}{serving} ({outcome.seconds:.0f} s)"
