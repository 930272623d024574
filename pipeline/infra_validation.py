"""Infra validation without Docker: a component between the Evaluator and the Pusher that serves the candidate in
a model server subprocess and records TFX's InfraBlessing, so the Pusher never pushes a model that cannot serve.

TFX's own InfraValidator starts the server with Docker or Kubernetes only. This one starts it through
`recsys serve` (pipeline/model_server_process.py: tensorflow_model_server when on PATH, else the embedded server,
with the shipped batching config) on a copy of the model as version 1 of a temporary base path, waits until
GetModelStatus says AVAILABLE, then (LOAD_AND_QUERY) sends a request built from a few eval examples to every
signature and replays the warmup requests (pipeline/infra_requests.py), and checks each answer equals the
SavedModel's own, called in this process. The verdict is written the way TFX's InfraValidator writes it (the
`blessed` custom property 1/0 and an empty INFRA_BLESSED or INFRA_NOT_BLESSED file), so
`Pusher(infra_blessing=...)` reads it; the reason of a refusal goes into the `reason` custom property and the
log, and the server's output into `model_server.log` beside the marker file.
"""
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Tuple

import grpc
import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.components.util import model_utils
from tfx.types import artifact_utils
from tfx.utils import io_utils
from tfx.utils import path_utils

from components import features
from pipeline import infra_requests
from pipeline import model_server_process
from pipeline.config import InfraValidationConfig
from pipeline.runs import reader

# As tfx/components/infra_validator/executor.py writes them, and tfx.components.util.model_utils reads them.
BLESSED_KEY = "blessed"
BLESSED_FILE = "INFRA_BLESSED"
NOT_BLESSED_FILE = "INFRA_NOT_BLESSED"
# This component's own custom properties.
REASON_KEY = "reason"  # why the model was refused; empty when blessed
SERVER_KEY = "server"  # which server validated it
QUERIES_KEY = "queries"  # requests answered and checked
SECONDS_KEY = "validation_seconds"
SERVER_LOG = "model_server.log"
MODEL_NAME = "infra-validation-model"  # TFX's InfraValidator serves under this name too
VERSION = 1

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Verdict:
  """Whether the model served and answered like the SavedModel, and if not, why."""
  blessed: bool
  reason: str  # empty when blessed
  server: str  # model_server_process.server_name(); "" when no server was started
  queries: int  # requests answered and checked
  seconds: float

  @classmethod
  def from_artifact(cls, blessing: standard_artifacts.InfraBlessing) -> "Verdict":
    """The verdict write_blessing recorded on `blessing` (an artifact read back from ML Metadata)."""
    return cls(model_utils.is_infra_validated(blessing), blessing.get_string_custom_property(REASON_KEY),
               blessing.get_string_custom_property(SERVER_KEY), blessing.get_int_custom_property(QUERIES_KEY),
               blessing.get_float_custom_property(SECONDS_KEY))

  def describe(self) -> str:
    """One line for the run's summary and report, e.g. `infra blessed: 6 queries answered like the SavedModel
    on the embedded server in 9.1 s`."""
    if self.blessed:
      return (f"infra blessed: {self.queries} queries answered like the SavedModel on the {self.server} in "
              f"{self.seconds:.1f} s")
    return f"NOT infra blessed: {self.reason}"


def _query_problems(served: model_server_process.ServedModel, query: infra_requests.Query,
                    saved_model_signatures, config: InfraValidationConfig) -> List[str]:
  """Sends `query`; what went wrong: the server refused it, or answered otherwise than the SavedModel."""
  try:
    response = served.predict(query.request, config.request_timeout_s)
  except grpc.RpcError as error:
    return [f"{query.description}: the server answered {error.code().name}: {error.details()}"]
  try:
    expected = infra_requests.expected_outputs(query, saved_model_signatures)
  except (KeyError, tf.errors.OpError) as error:
    return [f"{query.description}: the server answered, but the SavedModel fails in process: "
            f"{type(error).__name__}: {error}"]
  return [f"{query.description}: {difference}"
          for difference in infra_requests.differences(expected, response, config.tolerance)]


def validate_model(model_dir: str, eval_examples: List[bytes], config: InfraValidationConfig,
                   log_destination: str) -> Verdict:
  """Serves the SavedModel at `model_dir` (any fileio path) and checks its answers to queries built from
  `eval_examples` (serialized tf.Examples) and to its warmup requests. The server's output is copied to
  `log_destination` (a fileio path) once it stopped."""
  started = time.monotonic()
  server = model_server_process.server_name(config.server)
  with tempfile.TemporaryDirectory(prefix="infra-validation-") as work:
    version_dir = Path(work) / MODEL_NAME / str(VERSION)
    io_utils.copy_dir(model_dir, str(version_dir))
    log_path = Path(work) / SERVER_LOG
    try:
      reason, answered = _serve_and_query(version_dir, eval_examples, config, log_path)
    finally:
      io_utils.copy_file(str(log_path), log_destination, overwrite=True)
  return Verdict(not reason, reason, server, answered, time.monotonic() - started)


def _serve_and_query(version_dir: Path, eval_examples: List[bytes], config: InfraValidationConfig,
                     log_path: Path) -> Tuple[str, int]:
  """(why the model is refused, "" when it is not; how many queries it answered right)."""
  with model_server_process.served_model(MODEL_NAME, version_dir.parent, config.server, log_path) as served:
    # The server loads the model in its own process meanwhile.
    saved_model = tf.saved_model.load(str(version_dir))
    try:
      queries = (infra_requests.example_queries(saved_model.signatures, MODEL_NAME, eval_examples)
                 + infra_requests.warmup_queries(version_dir, MODEL_NAME))
    except infra_requests.QueryBuildError as error:
      return f"cannot build the queries: {error}", 0
    try:
      served.wait_until_available(config.load_timeout_s)
    except model_server_process.ModelNotAvailableError as error:
      return str(error), 0
    problems = [_query_problems(served, query, saved_model.signatures, config) for query in queries]
  return "; ".join(line for lines in problems for line in lines), sum(not lines for lines in problems)


def verdict_in_run(found: reader.RunArtifacts) -> Optional[Verdict]:
  """The verdict of the InfraValidator in the pipeline run `found`, or None when it did not run."""
  blessing = found.latest(reader.INFRA_BLESSING)
  return Verdict.from_artifact(blessing) if blessing is not None else None


def write_blessing(blessing: standard_artifacts.InfraBlessing, verdict: Verdict) -> None:
  """Records `verdict` on the InfraBlessing artifact as TFX's InfraValidator does, plus its reason."""
  marker = BLESSED_FILE if verdict.blessed else NOT_BLESSED_FILE
  io_utils.write_string_file(f"{blessing.uri}/{marker}", "")
  blessing.set_int_custom_property(BLESSED_KEY, int(verdict.blessed))
  blessing.set_string_custom_property(REASON_KEY, verdict.reason)
  blessing.set_string_custom_property(SERVER_KEY, verdict.server)
  blessing.set_int_custom_property(QUERIES_KEY, verdict.queries)
  blessing.set_float_custom_property(SECONDS_KEY, round(verdict.seconds, 3))


def infra_validate(model: standard_artifacts.Model, examples: standard_artifacts.Examples,
                   blessing: standard_artifacts.InfraBlessing,
                   model_blessing: Optional[standard_artifacts.ModelBlessing],
                   config: InfraValidationConfig) -> Verdict:
  """Validates the Trainer's `model` on the eval split of `examples` and records the verdict on `blessing`. A
  model the Evaluator did not bless (`model_blessing`) is refused without starting a server."""
  if model_blessing is not None and not model_utils.is_model_blessed(model_blessing):
    verdict = Verdict(False, "not validated: the Evaluator did not bless the model", "", 0, 0.0)
  else:
    eval_examples = infra_requests.read_examples(artifact_utils.get_split_uri([examples], features.EVAL_SPLIT),
                                                 config.num_examples)
    model_dir = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    verdict = validate_model(model_dir, eval_examples, config, f"{blessing.uri}/{SERVER_LOG}")
  write_blessing(blessing, verdict)
  if verdict.blessed:
    log.info("Model %s passed infra validation on the %s (%d queries, %.1f s)", model.uri, verdict.server,
             verdict.queries, verdict.seconds)
  else:
    log.error("Model %s failed infra validation: %s", model.uri, verdict.reason)
  return verdict


@component
def InfraValidator(  # pylint: disable=invalid-name
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    blessing: OutputArtifact[standard_artifacts.InfraBlessing],
    config: Parameter[str],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing] = None,
) -> None:
  """Serves `model` in a model server subprocess and records whether it loads and answers like the SavedModel
  on `blessing`. `config` is the JSON of an InfraValidationConfig (config_parameter)."""
  infra_validate(model, examples, blessing, model_blessing, InfraValidationConfig(**json.loads(config)))


def config_parameter(config: InfraValidationConfig) -> str:
  """The InfraValidator's `config` parameter for `config`."""
  return json.dumps(dataclasses.asdict(config), sort_keys=True)
