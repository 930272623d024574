"""`recsys serve|predict|recommend|status|metadata|loadtest`."""
import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the serving commands."""
  parser = subparsers.add_parser("serve", help="Start a TF-Serving-compatible model server.")
  parser.set_defaults(handler=lambda args: parser.print_help())
