"""The one reader of pipeline runs in ML Metadata, for the summary, the report and the anomalies gate.

A run is the MLMD context of type "pipeline_run": the latest one (of a pipeline, or of any), or the one named by
its run id. Its executions' output artifacts are found by artifact type and output key, and read with the
standard TFX / TFMA / TFDV loaders from the URIs MLMD recorded (fileio, so gs:// works too). Nothing here
guesses folder or file names under the pipeline root.
"""
import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from tensorflow_metadata.proto.v0 import anomalies_pb2

LATEST = "latest"
RUN_CONTEXT_TYPE = "pipeline_run"
PIPELINE_CONTEXT_TYPE = "pipeline"
NODE_CONTEXT_TYPE = "node"
# (artifact type, output key) of the artifacts readers look up.
EXAMPLES = ("Examples", "examples")
STATISTICS = ("ExampleStatistics", "statistics")
ANOMALIES = ("ExampleAnomalies", "anomalies")
MODEL = ("Model", "model")
EVALUATION = ("ModelEvaluation", "evaluation")
BLESSING = ("ModelBlessing", "blessing")
INFRA_BLESSING = ("InfraBlessing", "blessing")
PUSHED_MODEL = ("PushedModel", "pushed_model")


class RunNotFoundError(LookupError):
  """The ML Metadata store has no pipeline run with the requested id (or none at all)."""


@dataclasses.dataclass(frozen=True)
class NodeExecution:
  """One node's execution in a run: its MLMD state (COMPLETE, CACHED, FAILED, ...) and wall seconds."""
  node: str
  state: str
  seconds: float
  started_ms: int
  ended_ms: int


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
  """One run's context, its node executions (in start order) and their output artifacts (TFX Artifacts)."""
  pipeline_name: str
  run_id: str
  created_ms: int
  executions: Tuple[NodeExecution, ...]
  outputs: Dict[Tuple[str, str], list]  # (artifact type, output key) -> artifacts, newest last
  example_gen_input_base: Optional[str]
  # (node id, input key) -> the input artifacts of the node's execution in the run, e.g. ("Trainer", "base_model")
  inputs: Dict[Tuple[str, str], list] = dataclasses.field(default_factory=dict)

  def latest(self, kind: Tuple[str, str]):
    """The newest artifact of `kind` in the run, or None when no execution of the run produced one."""
    found = self.outputs.get(kind)
    return found[-1] if found else None

  @property
  def wall_seconds(self) -> float:
    """From the first execution's start to the last one's end."""
    if not self.executions:
      return 0.0
    return (max(e.ended_ms for e in self.executions) - min(e.started_ms for e in self.executions)) / 1000.0


def open_store(metadata_path: Path):
  """A read-only MetadataStore on the SQLite file `metadata_path` (which must exist)."""
  from ml_metadata.metadata_store import metadata_store  # pylint: disable=g-import-not-at-top
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  if not Path(metadata_path).is_file():
    raise FileNotFoundError(f"no ML Metadata store at {metadata_path}: run `recsys pipeline run` first, or pass "
                            "--metadata-path")
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(metadata_path)
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return metadata_store.MetadataStore(config)


def _pick_run(store, run: str, pipeline_name: Optional[str]):
  """The pipeline_run context named `run` ("latest" = newest by creation time, then id) of `pipeline_name`."""
  runs = store.get_contexts_by_type(RUN_CONTEXT_TYPE)
  if pipeline_name is not None:
    pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name)
    executions = {e.id for e in store.get_executions_by_context(pipeline.id)} if pipeline is not None else set()
    runs = [c for c in runs if {e.id for e in store.get_executions_by_context(c.id)} & executions]
  of_pipeline = f" of pipeline {pipeline_name!r}" if pipeline_name is not None else ""
  if not runs:
    raise RunNotFoundError(f"the ML Metadata store holds no pipeline run{of_pipeline}")
  if run == LATEST:
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
  matching = [c for c in runs if c.name == run]
  if not matching:
    recent = ", ".join(c.name for c in sorted(runs, key=lambda c: -c.create_time_since_epoch)[:5])
    raise RunNotFoundError(f"no pipeline run {run!r}{of_pipeline} in the ML Metadata store; most recent runs: "
                           f"{recent}")
  return matching[0]


def read_run(store, run: str = LATEST, pipeline_name: Optional[str] = None) -> RunArtifacts:
  """Finds pipeline run `run` ("latest" or a run id; of `pipeline_name` when given) in `store` and collects its
  node executions and output artifacts."""
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  # Imported for its side effect: deserialize_artifact maps MLMD types onto these registered classes.
  from tfx.types import standard_artifacts  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401

  context = _pick_run(store, run, pipeline_name)
  executions = sorted(store.get_executions_by_context(context.id), key=lambda e: (e.create_time_since_epoch, e.id))
  events = store.get_events_by_execution_ids([e.id for e in executions])
  output_types = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
  keyed = [(event.artifact_id, event.path.steps[0].key) for event in events
           if event.type in output_types and event.path.steps]
  keyed_inputs = [(event.execution_id, event.artifact_id, event.path.steps[0].key) for event in events
                  if event.type == metadata_store_pb2.Event.INPUT and event.path.steps]
  artifact_ids = {artifact_id for artifact_id, _ in keyed} | {artifact_id for _, artifact_id, _ in keyed_inputs}
  artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted(artifact_ids))}
  types = {t.id: t for t in store.get_artifact_types_by_id(sorted({a.type_id for a in artifacts.values()}))}

  def deserialized(artifact_id: int):
    artifact = artifacts[artifact_id]
    return artifact_utils.deserialize_artifact(types[artifact.type_id], artifact)

  outputs: Dict[Tuple[str, str], list] = {}
  for artifact_id, key in keyed:
    outputs.setdefault((types[artifacts[artifact_id].type_id].name, key), []).append(deserialized(artifact_id))
  for found in outputs.values():
    found.sort(key=lambda a: a.mlmd_artifact.create_time_since_epoch)

  nodes: List[NodeExecution] = []
  input_base = None
  names = set()
  node_of: Dict[int, str] = {}
  for execution in executions:
    # TFX records a component's exec properties as the execution's MLMD custom properties.
    if "input_base" in execution.custom_properties:
      input_base = execution.custom_properties["input_base"].string_value
    node = next(c.name for c in store.get_contexts_by_execution(execution.id) if c.type == NODE_CONTEXT_TYPE)
    pipeline, node_id = node.rsplit(".", 1)  # node contexts are named "<pipeline>.<node id>"
    names.add(pipeline)
    node_of[execution.id] = node_id
    nodes.append(NodeExecution(
        node_id, metadata_store_pb2.Execution.State.Name(execution.last_known_state),
        (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0,
        execution.create_time_since_epoch, execution.last_update_time_since_epoch))
  inputs: Dict[Tuple[str, str], list] = {}
  for execution_id, artifact_id, key in keyed_inputs:
    inputs.setdefault((node_of[execution_id], key), []).append(deserialized(artifact_id))
  return RunArtifacts(pipeline_name=pipeline_name or next(iter(names), ""), run_id=context.name,
                      created_ms=context.create_time_since_epoch, executions=tuple(nodes), outputs=outputs,
                      example_gen_input_base=input_base, inputs=inputs)


def split_names(artifact) -> List[str]:
  """The splits a multi-split artifact (Examples, ExampleStatistics, ExampleAnomalies) holds."""
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top

  return artifact_utils.decode_split_names(artifact.split_names)


def split_rows(statistics) -> Dict[str, int]:
  """Examples per split, from StatisticsGen's ExampleStatistics artifact."""
  from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top

  return {split: int(stats_artifact_utils.load_statistics(statistics, split).proto().datasets[0].num_examples)
          for split in split_names(statistics)}


def anomalies_file(anomalies, split: str) -> str:
  """Where ExampleValidator wrote the anomalies of `split` of its ExampleAnomalies artifact `anomalies`."""
  from tfx.components.example_validator import executor  # pylint: disable=g-import-not-at-top
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top

  return os.path.join(artifact_utils.get_split_uri([anomalies], split), executor.DEFAULT_FILE_NAME)


def load_anomalies(anomalies, split: str) -> anomalies_pb2.Anomalies:
  """The Anomalies proto of `split` of the ExampleAnomalies artifact `anomalies` (fileio: it may be on gs://)."""
  from tfx.dsl.io import fileio  # pylint: disable=g-import-not-at-top

  with fileio.open(anomalies_file(anomalies, split), "rb") as f:
    return anomalies_pb2.Anomalies.FromString(f.read())


def anomaly_reasons(info: anomalies_pb2.AnomalyInfo) -> str:
  """One feature's (or the dataset's) anomaly as text: `short description: description; ...`."""
  return "; ".join(f"{reason.short_description}: {reason.description}" for reason in info.reason) or info.description
