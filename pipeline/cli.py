"""The `recsys` command line: one parser; each subcommand is registered by the module that owns it."""
import os

# Keras 3 everywhere. tensorflow_transform sets TF_USE_LEGACY_KERAS=1 when it is unset, which would
# silently switch tf.keras to Keras 2, so it is set before anything imports TensorFlow.
os.environ["TF_USE_LEGACY_KERAS"] = "0"

import argparse  # noqa: E402
import sys  # noqa: E402
from typing import Optional, Sequence  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
  """Returns the `recsys` parser. Subcommand modules import TensorFlow lazily, so `--help` is fast."""
  from pipeline import data_cli
  from pipeline import pipeline_cli
  from pipeline import report_cli
  from serving import cli as serving_cli

  parser = argparse.ArgumentParser(
      prog="recsys",
      description="Train a NeuMF recommender on MovieLens with TFX and serve it with TF Serving.")
  subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  data_cli.register(subparsers)
  pipeline_cli.register(subparsers)
  report_cli.register(subparsers)
  serving_cli.register(subparsers)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Parses `argv` and runs the chosen subcommand's handler; returns the process exit status."""
  args = build_parser().parse_args(argv)
  return int(args.handler(args) or 0)


if __name__ == "__main__":
  sys.exit(main())
