"""`recsys pipeline run|compile`: builds a PipelineConfig from flags and runs or compiles the pipeline."""
import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `pipeline` command group."""
  parser = subparsers.add_parser("pipeline", help="Run or compile the TFX pipeline.")
  parser.set_defaults(handler=lambda args: parser.print_help())
