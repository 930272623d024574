"""Reads TF Serving's text-proto config files (ModelServerConfig, BatchingParameters, MonitoringConfig).

The protobuf text format is the only parser, so a file that works here works in tensorflow_model_server and
the other way round.
"""
from pathlib import Path
from typing import TypeVar

from google.protobuf import message as proto_message
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.protos import batching_parameters_pb2
from serving.protos import monitoring_config_pb2

M = TypeVar("M", bound=proto_message.Message)
# The shipped BatchingParameters (installed with the package), tuned for the NCF model on a 2-core CPU.
BATCHING_PARAMETERS_FILE = Path(__file__).resolve().parent / "config" / "batching_parameters.txt"


class ConfigFileError(ValueError):
  """A config file is missing or is not a valid text proto of the expected message."""


def parse_text_proto(path: Path, message: M) -> M:
  """Parses the text proto at `path` into `message` and returns it; errors name the file, line and field."""
  try:
    text = Path(path).read_text()
  except OSError as e:
    raise ConfigFileError(f"cannot read {message.DESCRIPTOR.full_name} file {path}: {e.strerror}") from e
  try:
    return text_format.Parse(text, message)
  except text_format.ParseError as e:
    raise ConfigFileError(f"{path}: not a valid {message.DESCRIPTOR.full_name} text proto: {e}") from e


def read_model_server_config(path: Path) -> model_server_config_pb2.ModelServerConfig:
  """Parses a --model_config_file and checks what TF Serving checks before it loads anything."""
  config = parse_text_proto(path, model_server_config_pb2.ModelServerConfig())
  validate_model_server_config(config, source=str(path))
  return config


def validate_model_server_config(config: model_server_config_pb2.ModelServerConfig, source: str) -> None:
  """Raises ConfigFileError for configs tensorflow_model_server rejects: no model_config_list, duplicate or
  empty names, relative base paths (TF Serving requires absolute paths or URIs), unknown platforms."""
  if config.WhichOneof("config") != "model_config_list":
    raise ConfigFileError(f"{source}: only model_config_list is supported (custom_model_config is not)")
  names = set()
  for model in config.model_config_list.config:
    if not model.name:
      raise ConfigFileError(f"{source}: a model config has no name")
    if model.name in names:
      raise ConfigFileError(f"{source}: model name {model.name!r} appears more than once")
    names.add(model.name)
    if not model.base_path.startswith("/") and "://" not in model.base_path:
      raise ConfigFileError(f"{source}: model {model.name!r} must have an absolute base_path or URI; "
                            f"got base_path: {model.base_path!r}")
    if model.model_platform not in ("", "tensorflow"):
      raise ConfigFileError(f"{source}: model {model.name!r} has model_platform {model.model_platform!r}; "
                            "only 'tensorflow' is served")


def read_batching_parameters(path: Path) -> batching_parameters_pb2.BatchingParameters:
  """Parses a --batching_parameters_file."""
  return parse_text_proto(path, batching_parameters_pb2.BatchingParameters())


def read_monitoring_config(path: Path) -> monitoring_config_pb2.MonitoringConfig:
  """Parses a --monitoring_config_file."""
  return parse_text_proto(path, monitoring_config_pb2.MonitoringConfig())
