"""The committed KFP v2 spec kubeflow/pipeline.yaml: current, valid, complete, portable."""
import dataclasses
import difflib
import importlib
import json
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List

import pytest
import yaml
from google.protobuf import json_format

from pipeline import cli
from pipeline.cli.pipeline import config_from_args
from pipeline.runners import kubeflow as kubeflow_runner

REPO = Path(__file__).resolve().parents[1]
COMMITTED_SPEC = REPO / "kubeflow" / "pipeline.yaml"
COMPILE_ARGS = ["pipeline", "compile", "--output", str(COMMITTED_SPEC.relative_to(REPO))]
RESOLVER_ID = "latest_blessed_model_resolver"


@pytest.fixture(scope="module")
def compiled_spec(tmp_path_factory) -> Path:
  """What `recsys pipeline compile` writes now, with the arguments the committed spec was compiled with."""
  output = tmp_path_factory.mktemp("kfp") / COMMITTED_SPEC.name
  assert cli.main([*COMPILE_ARGS[:-1], str(output)]) == 0
  return output


@pytest.fixture(scope="module")
def config():
  """The PipelineConfig that COMPILE_ARGS build."""
  args = cli.build_parser().parse_args(COMPILE_ARGS)
  return config_from_args(args)


@pytest.fixture(scope="module")
def spec():
  from kfp.pipeline_spec import pipeline_spec_pb2

  with COMMITTED_SPEC.open() as f:
    document = yaml.safe_load(f)
  # No ignore_unknown_fields: every field must be a PipelineSpec field.
  return json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())


def _tasks(spec) -> Dict[str, Any]:
  return dict(spec.root.dag.tasks)


def _producer(task, artifact: str) -> tuple:
  source = task.inputs.artifacts[artifact].task_output_artifact
  return source.producer_task, source.output_artifact_key


def _constant(task, parameter: str) -> Any:
  return json_format.MessageToDict(task.inputs.parameters[parameter].runtime_value.constant)


def _strings(value: Any) -> List[str]:
  """Every string in a JSON-like document, and in the JSON documents those strings hold."""
  if isinstance(value, dict):
    return [s for v in value.values() for s in _strings(v)]
  if isinstance(value, list):
    return [s for v in value for s in _strings(v)]
  if isinstance(value, str):
    try:
      inner = json.loads(value)
    except ValueError:
      return [value]
    return [value, *_strings(inner)] if isinstance(inner, (dict, list)) else [value]
  return []


def test_committed_spec_is_what_compiling_gives_now(compiled_spec):
  # Compiling is deterministic (sorted keys; the only version string, sdkVersion tfx-1.16.0, is pinned), so
  # nothing needs normalizing: any difference means the pipeline changed and the spec was not recompiled.
  committed, current = COMMITTED_SPEC.read_text(), compiled_spec.read_text()
  diff = "".join(list(difflib.unified_diff(committed.splitlines(True), current.splitlines(True),
                                           "committed", "compiled now"))[:40])
  assert committed == current, f"{COMMITTED_SPEC} is stale; run `recsys {' '.join(COMPILE_ARGS)}`:\n{diff}"


def test_spec_is_a_kfp_v2_pipeline_spec(spec, config):
  assert spec.schema_version == "2.1.0"
  assert spec.pipeline_info.name == config.pipeline_name


def test_spec_holds_every_component_of_the_pipeline(spec, config):
  from pipeline.pipeline import create_pipeline

  tasks = _tasks(spec)
  for component in create_pipeline(kubeflow_runner.kubeflow_config(config)).components:
    # KFP v2 resolves the latest blessed model in two queries: the blessing, then its model.
    expected = ([f"{RESOLVER_ID}-model-blessing-resolver", f"{RESOLVER_ID}-model-resolver"]
                if component.id == RESOLVER_ID else [component.id])
    for name in expected:
      assert name in tasks, f"{component.id} is not a task of the spec"


def test_evaluator_judges_the_trainer_model_against_the_latest_blessed_one(spec):
  tasks = _tasks(spec)
  evaluator = tasks["Evaluator"]
  assert _producer(evaluator, "model") == ("Trainer", "model")
  assert _producer(evaluator, "baseline_model") == (f"{RESOLVER_ID}-model-resolver", "model")
  assert {"Trainer", f"{RESOLVER_ID}-model-resolver"} <= set(evaluator.dependent_tasks)
  resolver = tasks[f"{RESOLVER_ID}-model-resolver"]
  assert _producer(resolver, "input") == (f"{RESOLVER_ID}-model-blessing-resolver", "model_blessing")
  queries = spec.deployment_spec["executors"][f"{RESOLVER_ID}-model-blessing-resolver_executor"]
  assert "tfx.ModelBlessing" in json.dumps(json_format.MessageToDict(queries))


def test_pusher_is_gated_by_the_evaluator_blessing(spec):
  pusher = _tasks(spec)["Pusher"]
  assert _producer(pusher, "model_blessing") == ("Evaluator", "blessing")
  assert _producer(pusher, "model") == ("Trainer", "model")
  assert "Evaluator" in pusher.dependent_tasks


def test_pusher_is_gated_by_the_infra_validation_of_the_evaluated_model(spec):
  tasks = _tasks(spec)
  validator = tasks["InfraValidator"]
  assert _producer(validator, "model") == ("Trainer", "model")
  assert _producer(validator, "model_blessing") == ("Evaluator", "blessing")
  assert _producer(validator, "examples") == ("ImportExampleGen", "examples")
  assert _producer(tasks["Pusher"], "infra_blessing") == ("InfraValidator", "blessing")


def test_training_waits_for_the_anomalies_gate(spec):
  tasks = _tasks(spec)
  assert _producer(tasks["AnomaliesGate"], "anomalies") == ("ExampleValidator", "anomalies")
  assert "AnomaliesGate" in tasks["Transform"].dependent_tasks
  assert _producer(tasks["Trainer"], "transform_graph") == ("Transform", "transform_graph")


def test_every_step_runs_in_the_project_image(spec):
  executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
  containers = {name: e["container"] for name, e in executors.items() if "container" in e}
  resolvers = {name for name, e in executors.items() if "resolver" in e}
  assert len(containers) + len(resolvers) == len(executors) == len(_tasks(spec))
  assert {c["image"] for c in containers.values()} == {kubeflow_runner.DEFAULT_IMAGE}


def test_components_find_their_code_by_module_path(spec):
  tasks = _tasks(spec)
  for task, parameter in (("Transform", "preprocessing_fn"), ("Trainer", "run_fn")):
    module_name, _, function = _constant(tasks[task], parameter).rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), function))
    assert not {"module_file", "module_path"} & set(tasks[task].inputs.parameters)


def test_spec_holds_no_path_of_the_compiling_machine(spec):
  document = json_format.MessageToDict(spec)
  local_roots = {str(REPO), str(Path.home()), tempfile.gettempdir(), str(Path.cwd())} - {"/"}
  for text in _strings(document):
    for root in local_roots:
      assert root not in text, f"the spec holds the local path {root}: {text[:200]}"
    for path in re.findall(r"(?<![\w:/.])/[\w.-]+(?:/[\w.-]+)+", text):
      assert path.startswith("/pipeline/"), f"the spec holds {path}, which is not a path of the image"


def test_runtime_parameters_feed_the_components(spec, config):
  import tensorflow_model_analysis as tfma
  from pipeline.pipeline import eval_config, trainer_custom_config

  parameters = dict(spec.root.input_definitions.parameters)
  assert set(parameters) == {p.name for p in kubeflow_runner.RUNTIME_PARAMETERS}
  tasks = _tasks(spec)
  for runtime_parameter in kubeflow_runner.RUNTIME_PARAMETERS:
    task_input = tasks[runtime_parameter.component_type].inputs.parameters[runtime_parameter.exec_property]
    assert task_input.component_input_parameter == runtime_parameter.name
    definition = parameters[runtime_parameter.name]
    assert definition.description
    assert definition.HasField("default_value") != runtime_parameter.required
    assert definition.is_optional != runtime_parameter.required
  trainer = json.loads(parameters["trainer_custom_config"].default_value.string_value)
  assert trainer == json.loads(json.dumps(trainer_custom_config(config)))
  assert trainer["train"]["epochs"] == config.train.epochs
  evaluation = json_format.Parse(parameters["eval_config"].default_value.string_value, tfma.EvalConfig())
  assert evaluation == eval_config(config.eval)


def test_beam_args_of_the_config_reach_every_beam_step(config):
  dataflow = ("--runner=DataflowRunner", "--region=us-central1")
  compiled = kubeflow_runner.compile_pipeline(
      dataclasses.replace(config, beam_args=config.beam_args + dataflow), kubeflow_runner.DEFAULT_IMAGE)
  executors = json_format.MessageToDict(compiled.deployment_spec)["executors"]
  for step in ("ImportExampleGen", "StatisticsGen", "Transform", "Evaluator"):
    args = executors[f"{step}_executor"]["container"]["args"]
    assert args[-len(dataflow):] == list(dataflow), step


def test_the_image_matches_what_the_spec_expects_of_it():
  import tfx

  instructions = [line.split(maxsplit=1) for line in (REPO / "kubeflow" / "Dockerfile").read_text().splitlines()
                  if line and not line.startswith(("#", " "))]
  # The steps run TFX's executor entry points of the version that compiled the spec.
  assert ["FROM", f"tensorflow/tfx:{tfx.__version__}"] in instructions
  (workdir,) = [PurePosixPath(arg) for instruction, arg in instructions if instruction == "WORKDIR"]
  assert ["COPY", "schema schema"] in instructions
  assert workdir / "schema" == PurePosixPath(kubeflow_runner.IMAGE_SCHEMA_DIR)
  assert any(instruction == "ENV" and "TF_USE_LEGACY_KERAS=0" in arg for instruction, arg in instructions)


def test_json_output_holds_the_same_spec(spec, tmp_path):
  kubeflow_runner.write_spec(spec, tmp_path / "pipeline.json")
  with COMMITTED_SPEC.open() as f:
    assert json.loads((tmp_path / "pipeline.json").read_text()) == yaml.safe_load(f)


def test_compile_refuses_an_output_neither_kfp_nor_vertex_reads(capsys):
  with pytest.raises(SystemExit):
    cli.build_parser().parse_args([*COMPILE_ARGS[:-1], "pipeline.txt"])
  assert "pipeline.txt: expected a .yaml" in capsys.readouterr().err
