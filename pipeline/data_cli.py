"""`recsys data fetch|synth|prepare`."""
import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `data` command group."""
  parser = subparsers.add_parser("data", help="Fetch, generate and prepare MovieLens data.")
  parser.set_defaults(handler=lambda args: parser.print_help())
