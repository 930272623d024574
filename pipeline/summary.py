"""The end-of-run summary, read back from ML Metadata: what ran (or came from the cache) and for how long,
rows per split, each head's AUC against its threshold and the baseline, blessing and the pushed version.
"""
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional

from pipeline.config import PipelineConfig

HEAD_AUC = "auc"


@dataclasses.dataclass
class ComponentRun:
  """One node's execution in the run: its MLMD state (COMPLETE, CACHED, FAILED, ...) and wall seconds."""
  state: str
  seconds: float


@dataclasses.dataclass
class HeadAuc:
  """A head's AUC on the overall eval slice, its lower bound and the latest blessed model's AUC (if any)."""
  value: Optional[float]
  threshold: float
  baseline: Optional[float] = None


@dataclasses.dataclass
class RunSummary:
  """What `recsys pipeline run` prints and writes with --summary-json."""
  pipeline_name: str
  run_id: str
  dataset: str
  rows: Dict[str, int]
  auc: Dict[str, HeadAuc]
  model_path: Optional[str]  # the Trainer's SavedModel of this run
  blessed: Optional[bool]
  pushed_path: Optional[str]
  components: Dict[str, ComponentRun]
  wall_seconds: float

  def as_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def format(self) -> str:
    """Human-readable lines for the terminal."""
    lines = [f"pipeline {self.pipeline_name} run {self.run_id} on {self.dataset}",
             "rows: " + ", ".join(f"{split} {count:,}" for split, count in self.rows.items())]
    for head, auc in self.auc.items():
      value = "n/a" if auc.value is None else f"{auc.value:.4f}"
      baseline = "no baseline" if auc.baseline is None else f"baseline {auc.baseline:.4f}"
      lines.append(f"AUC {head}: {value} (threshold >= {auc.threshold:.2f}, {baseline})")
    lines.append("blessed: " + {True: "yes", False: "NO", None: "not evaluated"}[self.blessed])
    lines.append(f"pushed: {self.pushed_path or 'nothing'}")
    lines.append("wall time per component:")
    for name, run in self.components.items():
      lines.append(f"  {name:<32} {run.seconds:7.1f} s  {run.state.lower()}")
    lines.append(f"  {'total':<32} {self.wall_seconds:7.1f} s")
    return "\n".join(lines)


def _split_rows(statistics_uri: str) -> Dict[str, int]:
  """Examples per split from StatisticsGen's output (Split-<name>/FeatureStats.pb)."""
  from tensorflow_data_validation import load_stats_binary

  rows = {}
  for split_dir in sorted(Path(statistics_uri).glob("Split-*")):
    stats = load_stats_binary(str(split_dir / "FeatureStats.pb"))
    rows[split_dir.name[len("Split-"):]] = int(stats.datasets[0].num_examples)
  return rows


def _overall_aucs(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
  """{head: {"candidate": auc, "baseline": auc}} on the overall slice from the Evaluator's metrics."""
  import tensorflow_model_analysis as tfma

  aucs: Dict[str, Dict[str, float]] = {}
  for metrics in tfma.load_metrics(evaluation_uri):
    if metrics.slice_key.single_slice_keys or metrics.HasField("cross_slice_key"):
      continue
    for entry in metrics.metric_keys_and_values:
      key = entry.key
      if key.name != HEAD_AUC or key.is_diff:
        continue
      role = "baseline" if key.model_name == "baseline" else "candidate"
      aucs.setdefault(key.output_name, {})[role] = entry.value.double_value.value
  return aucs


def summarize(config: PipelineConfig) -> RunSummary:
  """Reads the latest run of `config.pipeline_name` from its SQLite ML Metadata and returns its summary."""
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  from tfx import v1 as tfx

  from components import features
  from pipeline.pipeline import metadata_path

  store = metadata_store.MetadataStore(
      tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path(config)))
  pipeline_context = store.get_context_by_type_and_name("pipeline", config.pipeline_name)
  if pipeline_context is None:
    raise LookupError(f"no run of pipeline {config.pipeline_name!r} in {metadata_path(config)}")
  pipeline_executions = {e.id for e in store.get_executions_by_context(pipeline_context.id)}
  runs = [run for run in store.get_contexts_by_type("pipeline_run")
          if {e.id for e in store.get_executions_by_context(run.id)} & pipeline_executions]
  run = max(runs, key=lambda context: context.create_time_since_epoch)
  executions = sorted(store.get_executions_by_context(run.id), key=lambda e: e.create_time_since_epoch)

  node_prefix = config.pipeline_name + "."
  components: Dict[str, ComponentRun] = {}
  for execution in executions:
    node = next(c.name[len(node_prefix):] for c in store.get_contexts_by_execution(execution.id)
                if c.type == "node")
    state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
    components[node] = ComponentRun(
        state, (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0)

  outputs: Dict[str, List[Any]] = {}
  events = store.get_events_by_execution_ids([e.id for e in executions])
  output_ids = [e.artifact_id for e in events if e.type in (metadata_store_pb2.Event.OUTPUT,
                                                            metadata_store_pb2.Event.DECLARED_OUTPUT)]
  artifact_types = {t.id: t.name for t in store.get_artifact_types()}
  for artifact in store.get_artifacts_by_id(output_ids):
    outputs.setdefault(artifact_types[artifact.type_id], []).append(artifact)

  rows = _split_rows(outputs["ExampleStatistics"][0].uri) if "ExampleStatistics" in outputs else {}
  measured = _overall_aucs(outputs["ModelEvaluation"][0].uri) if "ModelEvaluation" in outputs else {}
  thresholds = {features.INTERACTION: config.eval.min_interaction_auc, features.LIKED: config.eval.min_liked_auc}
  auc = {head: HeadAuc(measured.get(head, {}).get("candidate"), threshold, measured.get(head, {}).get("baseline"))
         for head, threshold in thresholds.items()}
  model_path = None
  if "Model" in outputs:
    model_path = str(Path(outputs["Model"][0].uri) / "Format-Serving")
  blessed = None
  if "ModelBlessing" in outputs:
    blessed = bool(outputs["ModelBlessing"][0].custom_properties["blessed"].int_value)
  pushed_path = None
  for pushed in outputs.get("PushedModel", []):
    if pushed.custom_properties["pushed"].int_value:
      pushed_path = pushed.custom_properties["pushed_destination"].string_value
  wall = (max(e.last_update_time_since_epoch for e in executions)
          - min(e.create_time_since_epoch for e in executions)) / 1000.0 if executions else 0.0
  return RunSummary(pipeline_name=config.pipeline_name, run_id=run.name, dataset=config.data.dataset, rows=rows,
                    auc=auc, model_path=model_path, blessed=blessed, pushed_path=pushed_path,
                    components=components, wall_seconds=wall)
