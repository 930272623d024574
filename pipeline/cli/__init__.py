"""The `recsys` command line: one parser; each command group is registered by its module in this package.

`python -m pipeline.cli` and the `recsys` console script both run `main`.
"""
import components.keras3  # noqa: F401  (first: Keras 3 before anything imports TensorFlow)
import argparse
from typing import Optional, Sequence


def build_parser() -> argparse.ArgumentParser:
  """Returns the `recsys` parser. Subcommand modules import TensorFlow lazily, so `--help` is fast."""
  from pipeline.cli import data as data_cli
  from pipeline.cli import pipeline as pipeline_cli
  from pipeline.cli import report as report_cli
  from pipeline.cli import serving as serving_cli

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

