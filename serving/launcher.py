"""`recsys serve`: runs tensorflow_model_server when it is installed, else the embedded server, same flags.

`--serving_dir DIR` (a launcher option, not a TF Serving flag) serves a model config written for the container
layout (base paths under /models/, as in the image and on Kubernetes) from a local folder: it writes a resolved
copy of the config with /models/X replaced by DIR/X and version labels moved onto the versions present (see
resolve_model_config) and serves that copy. The committed config stays valid for real TF Serving.
"""
import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import List

from tensorflow_serving.config import model_server_config_pb2

from serving import config_files
from serving import flags

CONTAINER_MODELS_ROOT = "/models/"
TFS_BINARY = "tensorflow_model_server"

log = logging.getLogger(__name__)


def resolve_model_config(config: model_server_config_pb2.ModelServerConfig,
                         serving_dir: Path) -> model_server_config_pb2.ModelServerConfig:
  """A copy of `config` for local use: base paths /models/X -> serving_dir/X (absolute), and each model's
  version labels, taken in the order of the versions they name, mapped onto that many newest versions on
  disk (with one version on disk every label names it). The label that names the higher version stays on the
  newer one, so 'stable: 1, canary: 2' becomes 'stable: <previous push>, canary: <latest push>'.

  Raises:
    config_files.ConfigFileError: a model has labels but no version on disk yet.
  """
  resolved = model_server_config_pb2.ModelServerConfig()
  resolved.CopyFrom(config)
  for model in resolved.model_config_list.config:
    if model.base_path.startswith(CONTAINER_MODELS_ROOT):
      model.base_path = str((serving_dir / model.base_path[len(CONTAINER_MODELS_ROOT):]).resolve())
    base = Path(model.base_path)
    on_disk = sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []
    if not model.version_labels:
      continue
    if not on_disk:
      raise config_files.ConfigFileError(
          f"model {model.name!r}: no version under {base} to put the labels {sorted(model.version_labels)} on; "
          "push a model first (make run)")
    labels = sorted(model.version_labels.items(), key=lambda item: item[1])
    newest = on_disk[-len(labels):]
    model.version_labels.clear()
    for i, (label, _) in enumerate(labels):
      model.version_labels[label] = newest[max(0, i - (len(labels) - len(newest)))]
  return resolved


def serve(args: argparse.Namespace) -> int:
  """Runs the server chosen by --server with the parsed TF Serving flags; returns the exit status."""
  options = flags.options_from_args(args)
  if args.serving_dir is not None:
    if not options.model_config_file:
      raise config_files.ConfigFileError("--serving_dir needs --model_config_file")
    config = config_files.read_model_server_config(Path(options.model_config_file))
    resolved = resolve_model_config(config, args.serving_dir)
    copy = Path(tempfile.mkdtemp(prefix="recsys-serve-")) / Path(options.model_config_file).name
    copy.write_text(str(resolved))
    log.info("Serving %s with /models/ resolved to %s: %s", options.model_config_file, args.serving_dir, copy)
    options.model_config_file = str(copy)
  binary = shutil.which(TFS_BINARY)
  if args.server == "tfs" and binary is None:
    print(f"--server tfs: {TFS_BINARY} is not on PATH", file=sys.stderr)
    return 2
  if args.server != "embedded" and binary is not None:
    argv: List[str] = [binary] + flags.to_argv(options)
    log.info("exec %s", " ".join(argv))
    os.execv(binary, argv)
  return _serve_embedded(options)


def _serve_embedded(options: flags.ServerOptions) -> int:
  from serving.server import ModelServer  # pylint: disable=import-outside-toplevel  # imports TensorFlow

  server = ModelServer(options)
  server.start()
  print(f"Serving gRPC on port {server.grpc_port}"
        + (f", REST on port {server.rest_port}" if server.rest_port else "") + " (Ctrl-C stops)", flush=True)
  for signum in (signal.SIGINT, signal.SIGTERM):
    signal.signal(signum, lambda *_: server.stop())
  server.wait()
  return 0
