"""Infra validation (pipeline/infra_validation.py): a model server subprocess must load the candidate and answer
every signature like the SavedModel does in process; the verdict is TFX's InfraBlessing, which the Pusher obeys.

The component's function is called directly on artifacts made here (no pipeline run); the end-to-end test runs it
in the DAG.
"""
import contextlib
import json
import shutil
from pathlib import Path
from typing import List

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import predict_pb2
from tfx.components.pusher import executor as pusher_executor
from tfx.components.util import model_utils
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components import features
from components import signatures
from pipeline import infra_requests
from pipeline import infra_validation
from pipeline import model_server_process
from pipeline.config import InfraValidationConfig
from serving import launcher
from tests.support import testdata
from tests.support.tiny_model import save_unservable_model
from tests.support.tiny_model import write_warmup_for_missing_signature

pytestmark = pytest.mark.slow

EMBEDDED = InfraValidationConfig(server="embedded", num_examples=6, load_timeout_s=120.0)
NCF_SIGNATURES = (signatures.PREDICT, signatures.RECOMMEND, signatures.SERVING_DEFAULT)
NCF_WARMUP_RECORDS = 2  # components/model_export.py: one `predict`, one `recommend`


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> standard_artifacts.Examples:
  """An Examples artifact laid out as ExampleGen writes it (Split-train/, Split-eval/), from the made-up data."""
  artifact = standard_artifacts.Examples()
  artifact.uri = str(tmp_path_factory.mktemp("examples"))
  artifact.split_names = artifact_utils.encode_split_names([features.TRAIN_SPLIT, features.EVAL_SPLIT])
  for split, split_examples in testdata.make_examples().items():
    split_dir = Path(artifact_utils.get_split_uri([artifact], split))
    split_dir.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split_dir / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
      for example in split_examples:
        writer.write(example.SerializeToString())
  return artifact


def _model(root: Path, export: Path) -> standard_artifacts.Model:
  """A Model artifact holding a copy of the SavedModel `export` where the Trainer puts it."""
  model = standard_artifacts.Model()
  model.uri = str(root / "model")
  shutil.copytree(export, path_utils.serving_model_dir(model.uri))
  return model


def _output(artifact_type, root: Path, name: str):
  artifact = artifact_type()
  artifact.uri = str(root / name)
  Path(artifact.uri).mkdir(parents=True)
  return artifact


def _model_blessing(root: Path, blessed: bool) -> standard_artifacts.ModelBlessing:
  blessing = _output(standard_artifacts.ModelBlessing, root, "model_blessing")
  blessing.set_int_custom_property("blessed", int(blessed))
  return blessing


def _push(model, infra_blessing, root: Path) -> standard_artifacts.PushedModel:
  """Runs TFX's Pusher executor with `infra_blessing`; returns its PushedModel."""
  pushed = _output(standard_artifacts.PushedModel, root, "pushed_model")
  destination = pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=str(root / "serving")))
  pusher_executor.Executor().Do({"model": [model], "infra_blessing": [infra_blessing]}, {"pushed_model": [pushed]},
                                {"push_destination": json_format.MessageToJson(destination)})
  return pushed


@pytest.fixture
def servers(monkeypatch) -> List[model_server_process.ServedModel]:
  """Every model server the validator starts during the test (to check each one was stopped)."""
  started = []
  original = model_server_process.served_model

  @contextlib.contextmanager
  def recording(*args, **kwargs):
    with original(*args, **kwargs) as served:
      started.append(served)
      yield served

  monkeypatch.setattr(model_server_process, "served_model", recording)
  return started


def _validate(tmp_path, export: Path, examples, config: InfraValidationConfig, blessed_by_evaluator: bool = True):
  model = _model(tmp_path, export)
  blessing = _output(standard_artifacts.InfraBlessing, tmp_path, "infra_blessing")
  verdict = infra_validation.infra_validate(model, examples, blessing, _model_blessing(tmp_path, blessed_by_evaluator),
                                            config)
  return model, blessing, verdict


def _markers(blessing) -> set:
  return {p.name for p in Path(blessing.uri).iterdir()} & {infra_validation.BLESSED_FILE,
                                                            infra_validation.NOT_BLESSED_FILE}


def test_the_exported_ncf_model_is_infra_blessed_and_pushed(tiny_ncf_export, examples, tmp_path, servers):
  model, blessing, verdict = _validate(tmp_path, tiny_ncf_export, examples, InfraValidationConfig(num_examples=6))
  assert verdict.blessed, verdict.reason
  assert verdict.reason == ""
  assert verdict.queries == len(NCF_SIGNATURES) + NCF_WARMUP_RECORDS
  assert verdict.server == model_server_process.server_name("auto")
  assert _markers(blessing) == {infra_validation.BLESSED_FILE}
  assert model_utils.is_infra_validated(blessing)
  recorded = infra_validation.Verdict.from_artifact(blessing)
  assert (recorded.blessed, recorded.reason, recorded.server, recorded.queries) == (
      True, "", verdict.server, verdict.queries)
  assert recorded.seconds == pytest.approx(verdict.seconds, abs=1e-3)
  assert (Path(blessing.uri) / infra_validation.SERVER_LOG).read_text()  # the server's output
  assert [served.process.poll() is not None for served in servers] == [True]

  pushed = _push(model, blessing, tmp_path)
  assert pushed.get_int_custom_property("pushed") == 1
  assert (Path(pushed.get_string_custom_property("pushed_destination")) / "saved_model.pb").is_file()


def test_signatures_the_server_cannot_answer_right_are_named_and_not_pushed(examples, tmp_path, servers):
  export = tmp_path / "unservable"
  save_unservable_model(export)
  model, blessing, verdict = _validate(tmp_path, export, examples, EMBEDDED)
  assert not verdict.blessed
  reason = verdict.reason
  # Each signature's problem, in signature order.
  runtime_failure = reason.index("signature 'refuses' on 6 eval examples: the server answered INVALID_ARGUMENT")
  dtype = reason.index("signature 'complex_rating' on 6 eval examples: the server answered INVALID_ARGUMENT: "
                       "input 'rating'")
  mismatch = reason.index("signature 'noisy' on 6 eval examples: output 'score' differs by up to")
  assert dtype < mismatch < runtime_failure
  assert "not supported" in reason[dtype:mismatch]
  assert "this signature refuses every request" in reason[runtime_failure:]
  assert verdict.queries == 0
  assert _markers(blessing) == {infra_validation.NOT_BLESSED_FILE}
  assert blessing.get_int_custom_property("blessed") == 0
  assert blessing.get_string_custom_property(infra_validation.REASON_KEY) == verdict.reason
  assert all(served.process.poll() is not None for served in servers) and len(servers) == 1

  pushed = _push(model, blessing, tmp_path)
  assert pushed.get_int_custom_property("pushed") == 0
  assert not (tmp_path / "serving").exists()


def test_a_model_whose_version_fails_to_load_is_refused_with_the_server_error(tiny_ncf_export, examples, tmp_path,
                                                                              servers):
  export = tmp_path / "bad-warmup"
  shutil.copytree(tiny_ncf_export, export)
  write_warmup_for_missing_signature(export, "missing")
  _, blessing, verdict = _validate(tmp_path, export, examples, EMBEDDED)
  assert not verdict.blessed
  assert verdict.reason.startswith(f"the embedded server failed to load version 1 of model "
                                   f"'{infra_validation.MODEL_NAME}': ")
  assert '"missing"' in verdict.reason
  assert _markers(blessing) == {infra_validation.NOT_BLESSED_FILE}
  assert all(served.process.poll() is not None for served in servers) and len(servers) == 1


def test_a_server_that_exits_or_is_too_slow_is_stopped_and_named(tiny_ncf_export, examples, tmp_path, servers):
  if shutil.which(launcher.TFS_BINARY):
    pytest.skip("tensorflow_model_server is on PATH; --server tfs would start it")
  # --server tfs without tensorflow_model_server on PATH: `recsys serve` says so and exits with status 2.
  _, _, exited = _validate(tmp_path / "exits", tiny_ncf_export, examples,
                           InfraValidationConfig(server="tfs", load_timeout_s=120.0))
  assert exited.reason.startswith("the tensorflow_model_server exited with status 2 before model")
  assert "tensorflow_model_server is not on PATH" in exited.reason
  _, _, slow = _validate(tmp_path / "slow", tiny_ncf_export, examples,
                         InfraValidationConfig(server="embedded", load_timeout_s=0.0))
  assert "was not AVAILABLE on the embedded server after 0 s" in slow.reason
  assert not exited.blessed and not slow.blessed
  assert [served.process.poll() is not None for served in servers] == [True, True]


def test_a_model_the_evaluator_did_not_bless_is_not_served(tiny_ncf_export, examples, tmp_path, servers):
  _, blessing, verdict = _validate(tmp_path, tiny_ncf_export, examples, EMBEDDED, blessed_by_evaluator=False)
  assert not verdict.blessed and "did not bless" in verdict.reason
  assert _markers(blessing) == {infra_validation.NOT_BLESSED_FILE}
  assert servers == []


def test_queries_fill_inputs_from_features_or_serialized_examples(tiny_ncf_export):
  loaded = tf.saved_model.load(str(tiny_ncf_export))
  eval_examples = [e.SerializeToString() for e in testdata.make_examples()[features.EVAL_SPLIT][:3]]
  queries = {q.signature_name: q for q in infra_requests.example_queries(loaded.signatures, "m", eval_examples)}
  assert sorted(queries) == sorted(NCF_SIGNATURES)
  users = [tf.train.Example.FromString(e).features.feature[features.USER_ID].bytes_list.value[0]
           for e in eval_examples]
  assert list(queries[signatures.RECOMMEND].inputs()[signatures.USER_ID_INPUT]) == users
  assert list(queries[signatures.SERVING_DEFAULT].inputs()[signatures.EXAMPLES_INPUT]) == eval_examples
  assert all(q.request.model_spec.name == "m" for q in queries.values())
  warmup = infra_requests.warmup_queries(tiny_ncf_export, "m")
  assert [q.signature_name for q in warmup] == [signatures.PREDICT, signatures.RECOMMEND]
  assert all(q.request.model_spec.name == "m" for q in warmup)


def test_an_input_no_feature_can_fill_is_named(tmp_path):
  class Module(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="embedding")])
    def project(self, embedding):
      return {"sum": tf.reduce_sum(embedding, 1)}

  module = Module()
  tf.saved_model.save(module, str(tmp_path), signatures={"project": module.project.get_concrete_function()})
  eval_examples = [e.SerializeToString() for e in testdata.make_examples()[features.EVAL_SPLIT][:2]]
  with pytest.raises(infra_requests.QueryBuildError, match=r"signature 'project' input 'embedding' \(float32 "
                                                           r"\(None, 3\)\): no eval feature of that name"):
    infra_requests.example_queries(tf.saved_model.load(str(tmp_path)).signatures, "m", eval_examples)


def test_answers_are_compared_with_a_float_tolerance_and_exactly_otherwise():
  def response(**outputs) -> predict_pb2.PredictResponse:
    answer = predict_pb2.PredictResponse()
    for key, value in outputs.items():
      answer.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return answer

  expected = {"score": np.array([0.5, 0.25], np.float32), "movie_ids": np.array([b"1", b"2"], object)}
  assert infra_requests.differences(expected, response(score=np.array([0.500001, 0.25], np.float32),
                                                       movie_ids=[b"1", b"2"]), 1e-5) == []
  found = infra_requests.differences(expected, response(score=np.array([0.6, 0.25], np.float32),
                                                        movie_ids=[b"2", b"2"]), 1e-5)
  assert found == ["output 'movie_ids' differs in 1 of 2 values",
                   "output 'score' differs by up to 0.1 (tolerance 1e-05)"]
  assert infra_requests.differences(expected, response(score=np.array([0.5], np.float32)), 1e-5) == [
      "outputs ['score'] instead of ['movie_ids', 'score']", "output 'score' is float32 [1] instead of float32 [2]"]


@pytest.mark.parametrize("flags, validated", [([], True), (["--no-infra-validation"], False)])
def test_the_pusher_takes_the_infra_blessing_unless_infra_validation_is_off(flags, validated):
  from pipeline import cli  # pylint: disable=import-outside-toplevel
  from pipeline.cli.pipeline import config_from_args  # pylint: disable=import-outside-toplevel
  from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel

  config = config_from_args(cli.build_parser().parse_args(["pipeline", "run", "--infra-examples", "3", *flags]))
  assert config.infra_validation == InfraValidationConfig(enabled=validated, num_examples=3)
  components = {component.id: component for component in create_pipeline(config).components}
  assert ("InfraValidator" in components) == validated
  pusher_inputs = components["Pusher"].inputs
  assert ("infra_blessing" in pusher_inputs) == validated
  if validated:
    validator = components["InfraValidator"]
    assert pusher_inputs["infra_blessing"].producer_component_id == "InfraValidator"
    assert InfraValidationConfig(**json.loads(validator.exec_properties["config"])) == config.infra_validation
