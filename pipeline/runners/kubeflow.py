"""Compiles the pipeline of pipeline/pipeline.py into a KFP v2 PipelineSpec (Kubeflow Pipelines 2.x, Vertex AI).

`recsys pipeline compile --output kubeflow/pipeline.yaml`. The spec is written as YAML holding only the
PipelineSpec, the form both `kfp.Client().create_run_from_pipeline_package` (which refuses .json) and
`aiplatform.PipelineJob(template_path=...)` read; the pipeline root is chosen when a run is submitted.
Compiling needs no cluster, no cloud storage and no network: components find their code in the image by
module path (components.transform.preprocessing_fn, components.trainer.run_fn).
"""
import dataclasses
import importlib.metadata
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

from pipeline.config import PipelineConfig

if TYPE_CHECKING:  # imported where used, so that `recsys --help` does not load TFX
  from kfp.pipeline_spec import pipeline_spec_pb2
  from tfx.orchestration import data_types
  from tfx.orchestration import pipeline as tfx_pipeline_lib

# The image kubeflow/Dockerfile builds, as `docker build -t` names it locally; pass --image with a registry
# path to run anywhere but a cluster that has the local image (kind load, minikube image load).
DEFAULT_IMAGE = f"movielens-ncf-tfx:{importlib.metadata.version('movielens-ncf-tfx')}"
# Where the image holds the curated schema (kubeflow/Dockerfile copies schema/ into its working directory).
IMAGE_SCHEMA_DIR = Path("/pipeline/schema")


@dataclasses.dataclass(frozen=True)
class RuntimeParameterSpec:
  """An exec property of one component that becomes a pipeline parameter operators set per run."""
  component_type: str  # the TFX component class name, e.g. "Trainer"
  exec_property: str
  name: str
  description: str
  # Required parameters get no default: the paths the pipeline was built with are local to the compiling
  # machine and can be right in no cluster.
  required: bool


# TFX's KFP v2 compiler can only replace a whole exec property with a parameter, so the epochs and the AUC
# thresholds travel inside the JSON of the Trainer's custom_config and the Evaluator's EvalConfig.
RUNTIME_PARAMETERS = (
    RuntimeParameterSpec(
        "ImportExampleGen", "input_base", "data_root",
        "Directory with the prepared train/ and eval/ tf.Examples, e.g. gs://BUCKET/movielens/ml-1m.",
        required=True),
    RuntimeParameterSpec(
        "Trainer", "custom_config", "trainer_custom_config",
        'JSON of the Trainer configuration; the epochs are at ["train"]["epochs"].', required=False),
    RuntimeParameterSpec(
        "Evaluator", "eval_config", "eval_config",
        "JSON of the tfma.EvalConfig; the AUC lower bounds are the value thresholds of its AUC metrics.",
        required=False),
    RuntimeParameterSpec(
        "Pusher", "push_destination", "push_destination",
        'JSON of the PushDestination, e.g. {"filesystem": {"baseDirectory": "gs://BUCKET/serving/ncf"}}; '
        "TF Serving reads the versions pushed there.", required=True),
)


def _as_parameter_default(value: Any) -> str:
  """The exec property `value` as the string the executor parses (JSON for protos, as TFX's compiler does)."""
  from google.protobuf import json_format
  from google.protobuf import message

  if isinstance(value, message.Message):
    return json_format.MessageToJson(value, sort_keys=True)
  if isinstance(value, str):
    return value
  raise TypeError(f"cannot make a runtime parameter of a {type(value).__name__} exec property: {value!r}")


def parameterize(tfx_pipeline: "tfx_pipeline_lib.Pipeline") -> List["data_types.RuntimeParameter"]:
  """Replaces the exec properties of RUNTIME_PARAMETERS in `tfx_pipeline` by RuntimeParameters.

  Optional parameters default to the value the pipeline was built with. Returns the RuntimeParameters.
  Raises ValueError when a component of RUNTIME_PARAMETERS is not in the pipeline exactly once.
  """
  from tfx.orchestration import data_types

  parameters = []
  for spec in RUNTIME_PARAMETERS:
    components = [c for c in tfx_pipeline.components if type(c).__name__ == spec.component_type]
    if len(components) != 1:
      raise ValueError(f"pipeline {tfx_pipeline.pipeline_info.pipeline_name} has {len(components)} "
                       f"{spec.component_type} components; runtime parameter {spec.name} needs exactly one")
    exec_properties = components[0].exec_properties
    default = None if spec.required else _as_parameter_default(exec_properties[spec.exec_property])
    parameter = data_types.RuntimeParameter(name=spec.name, ptype=str, default=default)
    exec_properties[spec.exec_property] = parameter
    parameters.append(parameter)
  return parameters


def kubeflow_config(config: PipelineConfig) -> PipelineConfig:
  """`config` with the paths a container can resolve (the curated schema as the image holds it) and the
  baseline strategy the KFP v2 compiler supports (TFX's LatestBlessedModelStrategy)."""
  return dataclasses.replace(config, schema_dir=IMAGE_SCHEMA_DIR if config.schema_dir else None,
                             eval=dataclasses.replace(config.eval, baseline_excludes_candidate=False))


def compile_pipeline(config: PipelineConfig, image: str) -> "pipeline_spec_pb2.PipelineSpec":
  """Builds `create_pipeline(config)` and compiles it with KubeflowV2DagRunner; returns the PipelineSpec.

  Runtime parameters get descriptions from RUNTIME_PARAMETERS and, unless required, their build values as
  defaults.
  """
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

  from pipeline.pipeline import create_pipeline

  # Both resolve artifacts of earlier runs with the strategies of pipeline/span_resolvers.py.
  uncompilable = [name for name, used in ((f"--span-window {config.data.span_window}", config.data.span_window > 1),
                                          ("the drift check", config.drift.enabled)) if used and config.data.span_by]
  if uncompilable:
    from pipeline.data.spans import SpanError

    raise SpanError(f"{' and '.join(uncompilable)} need{'s' if len(uncompilable) == 1 else ''} resolvers that TFX "
                    "1.16's Kubeflow V2 compiler cannot compile (it compiles LatestArtifactStrategy and "
                    "LatestBlessedModelStrategy only); they run with `recsys pipeline run`. Compile with "
                    "--span-window 1 --no-drift-check to train on the latest span alone")
  tfx_pipeline = create_pipeline(kubeflow_config(config))
  parameters = parameterize(tfx_pipeline)
  runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
      config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
          default_image=image, use_pipeline_spec_2_1=True))
  pipeline_job = runner.run(tfx_pipeline, write_out=False)
  spec = json_format.ParseDict(pipeline_job["pipelineSpec"], pipeline_spec_pb2.PipelineSpec())
  # TFX puts parameter defaults only into the PipelineJob's runtimeConfig, which a PipelineSpec file lacks.
  descriptions = {p.name: p.description for p in RUNTIME_PARAMETERS}
  for parameter in parameters:
    definition = spec.root.input_definitions.parameters[parameter.name]
    definition.description = descriptions[parameter.name]
    if parameter.default is not None:
      definition.default_value.string_value = parameter.default
      definition.is_optional = True
  return spec


def write_spec(spec: "pipeline_spec_pb2.PipelineSpec", output: Path) -> None:
  """Writes the PipelineSpec `spec` to `output` (JSON for .json, YAML otherwise) with sorted keys."""
  import yaml
  from google.protobuf import json_format

  output.parent.mkdir(parents=True, exist_ok=True)
  document = json_format.MessageToDict(spec)
  with output.open("w") as f:
    if output.suffix == ".json":
      json.dump(document, f, indent=2, sort_keys=True)
    else:
      yaml.safe_dump(document, f, sort_keys=True)
