"""The end-of-run summary, read back from ML Metadata: what ran (or came from the cache) and for how long,
rows per split, each head's AUC against its threshold and the baseline, blessing, infra validation and the pushed
version.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Tuple

from pipeline.config import PipelineConfig
from pipeline.runs import reader

HEAD_AUC = "auc"
NDCG = "ndcg"  # TFMA's NDCG of the ranking gate, at EvalConfig.ndcg_k


class NotBlessedError(RuntimeError):
  """The run's candidate model was not blessed or not infra blessed, and the user asked for a blessed one
  (--require-blessed)."""


@dataclasses.dataclass
class ComponentRun:
  """One node's execution in the run: its MLMD state (COMPLETE, CACHED, FAILED, ...) and wall seconds."""
  state: str
  seconds: float


@dataclasses.dataclass
class GatedMetric:
  """A blessing metric on the overall eval slice (a head's AUC, the ranking gate's NDCG): the candidate's value,
  its lower bound and the latest blessed model's value (if any)."""
  value: Optional[float]
  threshold: float
  baseline: Optional[float] = None

  def describe(self) -> str:
    """e.g. "0.7712 (threshold >= 0.60, baseline 0.7650)"."""
    value = "n/a" if self.value is None else f"{self.value:.4f}"
    baseline = "no baseline" if self.baseline is None else f"baseline {self.baseline:.4f}"
    return f"{value} (threshold >= {self.threshold:.2f}, {baseline})"


@dataclasses.dataclass
class RunSummary:
  """What `recsys pipeline run` prints and writes with --summary-json."""
  pipeline_name: str
  run_id: str
  dataset: str
  rows: Dict[str, int]
  auc: Dict[str, GatedMetric]
  ranking_gate: Dict[str, GatedMetric]  # "ndcg@K" -> TFMA's NDCG@K of `score` over each eval user's examples
  failed_checks: List[str]  # blessing conditions TFMA's validation failed, e.g. "score ndcg@10 change"
  model_path: Optional[str]  # the Trainer's SavedModel of this run
  blessed: Optional[bool]
  pushed_path: Optional[str]
  components: Dict[str, ComponentRun]
  wall_seconds: float
  # ranker ("NCF (exported model)", "most popular") -> {"k", "hit_rate", "ndcg"} under the report's protocol
  ranking: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
  # ranker -> {"k", "recall", "ndcg", "users", "eligible_users", "catalog_movies"} over the full catalog
  full_catalog: Dict[str, Dict[str, float]] = dataclasses.field(default_factory=dict)
  # The InfraValidator's verdict (pipeline/infra_validation.py); None when it did not run.
  infra_blessed: Optional[bool] = None
  infra_validation: str = ""  # its one-line description: queries and seconds, or why the model was refused
  # The URI of the Model artifact the Trainer warm-started from (its base_model input); None: it trained cold.
  warm_start_from: Optional[str] = None

  def as_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def format(self) -> str:
    """Human-readable lines for the terminal."""
    lines = [f"pipeline {self.pipeline_name} run {self.run_id} on {self.dataset}",
             "rows: " + ", ".join(f"{split} {count:,}" for split, count in self.rows.items())]
    for head, auc in self.auc.items():
      lines.append(f"AUC {head}: {auc.describe()}")
    for name, gate in self.ranking_gate.items():
      lines.append(f"{name} of score per eval user (TFMA): {gate.describe()}")
    for ranker, scores in self.ranking.items():
      k = int(scores["k"])
      lines.append(f"{ranker:<22} HR@{k} {scores['hit_rate']:.3f}  NDCG@{k} {scores['ndcg']:.3f}")
    for ranker, scores in self.full_catalog.items():
      k = int(scores["k"])
      lines.append(f"{ranker:<22} full catalog: Recall@{k} {scores['recall']:.3f}  NDCG@{k} {scores['ndcg']:.3f}  "
                   f"({int(scores['users']):,} of {int(scores['eligible_users']):,} users, "
                   f"{int(scores['catalog_movies']):,} movies)")
    lines.append("blessed: " + {True: "yes", False: "NO", None: "not evaluated"}[self.blessed])
    if self.failed_checks:
      lines.append("failed: " + ", ".join(self.failed_checks))
    lines.append(f"warm start: {'from ' + self.warm_start_from if self.warm_start_from else 'no (trained cold)'}")
    lines.append(f"infra validation: {self.infra_validation or 'not run'}")
    lines.append(f"pushed: {self.pushed_path or 'nothing'}")
    lines.append("wall time per component:")
    for name, run in self.components.items():
      lines.append(f"  {name:<32} {run.seconds:7.1f} s  {run.state.lower()}")
    lines.append(f"  {'total':<32} {self.wall_seconds:7.1f} s")
    return "\n".join(lines)


def overall_values(evaluation_uri: str, metric: str) -> Dict[str, Dict[str, float]]:
  """{output: {"candidate": value, "baseline": value}} of TFMA metric `metric` on the overall slice from the
  Evaluator's metrics."""
  import tensorflow_model_analysis as tfma

  values: Dict[str, Dict[str, float]] = {}
  for metrics in tfma.load_metrics(evaluation_uri):
    if metrics.slice_key.single_slice_keys or metrics.HasField("cross_slice_key"):
      continue
    for entry in metrics.metric_keys_and_values:
      key = entry.key
      if key.name != metric or key.is_diff:
        continue
      role = "baseline" if key.model_name == "baseline" else "candidate"
      values.setdefault(key.output_name, {})[role] = entry.value.double_value.value
  return values


def failed_checks(evaluation_uri: str) -> List[str]:
  """The blessing conditions TFMA's validation failed, as "<output> <metric>[@k] <bound|change>"."""
  import tensorflow_model_analysis as tfma

  failed = []
  for per_slice in tfma.load_validation_result(evaluation_uri).metric_validations_per_slice:
    for failure in per_slice.failures:
      key = failure.metric_key
      name = f"{key.name}@{key.sub_key.top_k.value}" if key.sub_key.HasField("top_k") else key.name
      failed.append(f"{key.output_name} {name} {'change' if key.is_diff else 'bound'}")
  return failed


def _blessing_text(blessing) -> str:
  return "blessed" if blessing.get_int_custom_property("blessed") else "NOT blessed"


def describe_node(config: PipelineConfig, node: str) -> Tuple[str, str]:
  """(MLMD state, the figure that matters) of `node`'s execution in the latest run, for its end-of-step line:
  rows per split (StatisticsGen), anomalies (ExampleValidator), AUCs and blessing (Evaluator), the push; with
  spans, the span read (ImportExampleGen) and the drift verdict (DriftValidator)."""
  from pipeline.pipeline import metadata_path

  found = reader.read_run(reader.open_store(metadata_path(config)), pipeline_name=config.pipeline_name)
  execution = next((e for e in reversed(found.executions) if e.node == node), None)
  state = execution.state.lower() if execution is not None else "done"
  figure = ""
  if node == "StatisticsGen" and found.latest(reader.STATISTICS) is not None:
    figure = "rows: " + ", ".join(f"{split} {count:,}" for split, count
                                  in reader.split_rows(found.latest(reader.STATISTICS)).items())
  elif node == "ImportExampleGen" and config.data.span_by and found.latest(reader.EXAMPLES) is not None:
    from pipeline.span_resolvers import span_of
    figure = f"span {span_of(found.latest(reader.EXAMPLES))}"
  elif node == "DriftValidator":
    from pipeline import drift_gate
    if found.latest(drift_gate.DRIFT) is not None:
      figure = drift_gate.describe(found.latest(drift_gate.DRIFT))
  elif node == "ExampleValidator" and found.latest(reader.ANOMALIES) is not None:
    anomalies = found.latest(reader.ANOMALIES)
    count = sum(len(reader.load_anomalies(anomalies, split).anomaly_info) for split in reader.split_names(anomalies))
    figure = f"{count} anomalies" if count else "no anomalies"
  elif node == "Evaluator" and found.latest(reader.EVALUATION) is not None:
    uri = found.latest(reader.EVALUATION).uri
    measured = {**{f"AUC {head}": values for head, values in overall_values(uri, HEAD_AUC).items()},
                **{f"NDCG {output}": values for output, values in overall_values(uri, NDCG).items()}}
    figure = ", ".join(f"{name} {values['candidate']:.4f}" for name, values in sorted(measured.items())
                       if "candidate" in values)
    if found.latest(reader.BLESSING) is not None:
      figure += f"; {_blessing_text(found.latest(reader.BLESSING))}"
  elif node == "InfraValidator" and found.latest(reader.INFRA_BLESSING) is not None:
    from pipeline.infra_validation import verdict_in_run
    figure = verdict_in_run(found).describe()
  elif node == "Pusher" and found.latest(reader.PUSHED_MODEL) is not None:
    pushed = found.latest(reader.PUSHED_MODEL)
    figure = (f"pushed {pushed.get_string_custom_property('pushed_destination')}"
              if pushed.get_int_custom_property("pushed") else "nothing pushed")
  return state, figure


def summarize(config: PipelineConfig) -> RunSummary:
  """Reads the latest run of `config.pipeline_name` from its SQLite ML Metadata and returns its summary."""
  from tfx.utils import path_utils

  from components import features
  from components import signatures
  from pipeline.pipeline import metadata_path

  found = reader.read_run(reader.open_store(metadata_path(config)), pipeline_name=config.pipeline_name)
  components = {e.node: ComponentRun(e.state, e.seconds) for e in found.executions}
  statistics, evaluation = found.latest(reader.STATISTICS), found.latest(reader.EVALUATION)
  model, blessing, pushed = (found.latest(kind) for kind in (reader.MODEL, reader.BLESSING, reader.PUSHED_MODEL))
  measured = overall_values(evaluation.uri, HEAD_AUC) if evaluation is not None else {}
  thresholds = {features.INTERACTION: config.eval.min_interaction_auc, features.LIKED: config.eval.min_liked_auc}
  auc = {head: GatedMetric(measured.get(head, {}).get("candidate"), threshold, measured.get(head, {}).get("baseline"))
         for head, threshold in thresholds.items()}
  ndcg = (overall_values(evaluation.uri, NDCG) if evaluation is not None else {}).get(signatures.SCORE_OUTPUT, {})
  ranking = {}
  full = {}
  if model is not None and found.latest(reader.EXAMPLES) is not None:
    from pipeline.report import load as report_load  # the report's ranking protocol, so both show one number
    from pipeline.report.data import DEFAULT_K
    ranking = {score.ranker: {"k": score.k, "hit_rate": score.hit_rate, "ndcg": score.ndcg}
               for score in report_load.ranking_scores(model.uri, found.latest(reader.EXAMPLES), DEFAULT_K, {})}
    full = {score.ranker: {"k": score.k, "recall": score.recall, "ndcg": score.ndcg, "users": score.users,
                           "eligible_users": score.eligible_users, "catalog_movies": score.catalog_movies}
            for score in report_load.full_catalog_scores(model.uri, found.latest(reader.EXAMPLES))}
  from pipeline.infra_validation import verdict_in_run
  infra = verdict_in_run(found)
  pushed_path = None
  if pushed is not None and pushed.get_int_custom_property("pushed"):
    pushed_path = pushed.get_string_custom_property("pushed_destination")
  return RunSummary(
      pipeline_name=config.pipeline_name, run_id=found.run_id, dataset=config.data.dataset,
      rows=reader.split_rows(statistics) if statistics is not None else {}, auc=auc,
      ranking_gate={f"{NDCG}@{config.eval.ndcg_k}": GatedMetric(ndcg.get("candidate"), config.eval.min_ndcg,
                                                                 ndcg.get("baseline"))},
      failed_checks=failed_checks(evaluation.uri) if evaluation is not None else [],
      model_path=path_utils.serving_model_path(model.uri) if model is not None else None,
      blessed=bool(blessing.get_int_custom_property("blessed")) if blessing is not None else None,
      pushed_path=pushed_path, components=components, wall_seconds=found.wall_seconds, ranking=ranking,
      full_catalog=full,
      infra_blessed=infra.blessed if infra is not None else None,
      infra_validation=infra.describe() if infra is not None else "",
      warm_start_from=warm_start_from(found))


def warm_start_from(found: reader.RunArtifacts) -> Optional[str]:
  """The URI of the Model the run's Trainer took as its base_model (TrainConfig.warm_start), or None when it had
  none (warm start off, or no blessed model yet) or did not run."""
  base_models = found.inputs.get(("Trainer", "base_model"), [])
  return base_models[-1].uri if base_models else None
