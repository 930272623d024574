"""tensorflow_model_server's flags: same names, same defaults, same `--flag=value` / bare boolean syntax; and the
launcher's own two (serving/launcher.py), here so that declaring them imports no server code."""
import argparse
import dataclasses
from pathlib import Path


@dataclasses.dataclass
class ServerOptions:
  """What the embedded server reads from its flags (field names are the flag names)."""
  port: int = 8500
  rest_api_port: int = 0  # 0: no REST API
  rest_api_timeout_in_ms: int = 30000
  model_name: str = "default"
  model_base_path: str = ""
  model_config_file: str = ""
  model_config_file_poll_wait_seconds: int = 0  # 0: read the config file once
  file_system_poll_wait_seconds: int = 1  # 0: poll once at startup
  enable_batching: bool = False
  batching_parameters_file: str = ""
  allow_version_labels_for_unavailable_models: bool = False
  enable_model_warmup: bool = True
  monitoring_config_file: str = ""
  tensorflow_intra_op_parallelism: int = 0  # 0: TensorFlow chooses
  tensorflow_inter_op_parallelism: int = 0
  grpc_channel_arguments: str = ""  # comma-separated key=value gRPC server options
  # Not tensorflow_model_server flags: the limits that keep one request from hurting the server.
  max_request_elements: int = 10_000_000
  max_request_bytes: int = 64 << 20
  request_log_interval_seconds: int = 60  # 0: no per-version request log line


# The embedded server's own flags, which tensorflow_model_server does not know (to_argv leaves them out).
EMBEDDED_ONLY = ("max_request_elements", "max_request_bytes", "request_log_interval_seconds")
DEFAULT_TARGET = f"localhost:{ServerOptions.port}"  # where a client finds a server started with the defaults


def _parse_bool(text: str) -> bool:
  value = text.strip().lower()
  if value in ("true", "1", "yes"):
    return True
  if value in ("false", "0", "no"):
    return False
  raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_HELP = {
    "port": "TCP port for gRPC (PredictionService and ModelService).",
    "rest_api_port": "Port for the HTTP/REST API; 0 disables it.",
    "rest_api_timeout_in_ms": "Timeout for REST requests in milliseconds.",
    "model_name": "Name of the model served with --model_base_path (ignored with --model_config_file).",
    "model_base_path": "Path (absolute) of the folder holding the model's numeric version folders.",
    "model_config_file": "ModelServerConfig text proto; overrides --model_name/--model_base_path.",
    "model_config_file_poll_wait_seconds": "Seconds between re-reads of --model_config_file; 0 reads it once.",
    "file_system_poll_wait_seconds": "Seconds between polls of the base paths for new versions; 0 polls once.",
    "enable_batching": "Batch concurrent requests to each model version and signature.",
    "batching_parameters_file": "BatchingParameters text proto (used with --enable_batching).",
    "allow_version_labels_for_unavailable_models": "Allow new version labels to name versions not loaded yet.",
    "enable_model_warmup": "Replay assets.extra/tf_serving_warmup_requests before a version takes traffic.",
    "monitoring_config_file": "MonitoringConfig text proto (Prometheus metrics on the REST port).",
    "tensorflow_intra_op_parallelism": "Threads per TensorFlow op; 0 lets TensorFlow choose.",
    "tensorflow_inter_op_parallelism": "TensorFlow ops run in parallel; 0 lets TensorFlow choose.",
    "grpc_channel_arguments": "Comma-separated key=value gRPC server arguments.",
    "max_request_elements": "Most tensor elements one request may declare over all its inputs (a broadcast "
                            "single value counts as the whole shape); more is INVALID_ARGUMENT. Not a "
                            "tensorflow_model_server flag (not passed to it).",
    "request_log_interval_seconds": "Seconds between the log lines that count requests and their latency per "
                                    "model version and version label; 0 turns them off. Not a "
                                    "tensorflow_model_server flag (not passed to it).",
    "max_request_bytes": "Largest gRPC message or REST body, and most string bytes one request may carry; more "
                         "is RESOURCE_EXHAUSTED (gRPC), 413 (REST) or INVALID_ARGUMENT (strings). Not a "
                         "tensorflow_model_server flag (not passed to it).",
}


def add_server_flags(parser: argparse.ArgumentParser) -> None:
  """Adds every ServerOptions field as a flag with its default."""
  for field in dataclasses.fields(ServerOptions):
    flag = f"--{field.name}"
    if field.type in (bool, "bool"):
      parser.add_argument(flag, type=_parse_bool, nargs="?", const=True, default=field.default,
                          metavar="true|false", help=_HELP[field.name])
    else:
      kind = int if field.type in (int, "int") else str
      parser.add_argument(flag, type=kind, default=field.default, help=_HELP[field.name])


def options_from_args(args: argparse.Namespace) -> ServerOptions:
  return ServerOptions(**{field.name: getattr(args, field.name) for field in dataclasses.fields(ServerOptions)})


def to_argv(options: ServerOptions) -> list:
  """The `--flag=value` list that gives `options` to tensorflow_model_server (non-default flags only)."""
  argv = []
  for field in dataclasses.fields(ServerOptions):
    if field.name in EMBEDDED_ONLY:
      continue
    value = getattr(options, field.name)
    if value != field.default:
      argv.append(f"--{field.name}={str(value).lower() if isinstance(value, bool) else value}")
  return argv



def add_launcher_flags(parser: argparse.ArgumentParser) -> None:
  """`recsys serve`'s options that are not tensorflow_model_server flags: which server, and --serving_dir."""
  parser.add_argument("--server", choices=("auto", "tfs", "embedded"), default="auto",
                      help="auto: tensorflow_model_server when on PATH, else the embedded server.")
  parser.add_argument("--serving_dir", type=Path, default=None,
                      help="Local folder that stands in for /models/ in --model_config_file (e.g. out/serving).")
