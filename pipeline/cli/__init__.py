"""The `recsys` command line: one parser; each command group is registered by its module in this package.

`python -m pipeline.cli` and the `recsys` console script both run `main`. Expected failures (bad input, no
network, no server, ...) end in one `error: ...` line and exit status 2 (usage or input) or 1 (runtime), here and
not per command; `--debug` shows their traceback. Any other exception keeps its traceback.
"""
import components.keras3  # noqa: F401  (first: Keras 3 before anything imports TensorFlow)
import argparse
import sys
from typing import Optional, Sequence, Tuple

USAGE_ERROR = 2
RUNTIME_ERROR = 1

# (module, exception class, exit status, what to do when the message does not say it). Looked up in sys.modules
# when an exception arrives: `recsys --help` imports none of these modules, and an exception of a module that was
# never imported cannot have been raised. The first matching row wins, so subclasses come before their bases.
EXPECTED_ERRORS: Tuple[Tuple[str, str, int, str], ...] = (
    ("pipeline.data.bad_rows", "BadRowError", USAGE_ERROR,
     "fix the row, or pass --on-bad-rows skip to skip and count malformed rows"),
    ("pipeline.data.fetch", "ChecksumError", RUNTIME_ERROR, "run the command again to download it afresh"),
    ("pipeline.data.fetch", "DownloadError", RUNTIME_ERROR, ""),
    ("pipeline.anomalies_gate", "ExampleAnomaliesError", USAGE_ERROR,
     "fix the data, or pass --infer-schema for a new data source"),
    ("pipeline.drift_gate", "DataDriftError", USAGE_ERROR,
     "check the span's data; if the change is expected, raise the threshold named (--genres-linf, ...) or pass "
     "--no-drift-check"),
    ("pipeline.data.spans", "SpanError", USAGE_ERROR, ""),
    ("pipeline.runs.reader", "RunNotFoundError", USAGE_ERROR, "pass --run latest or one of the runs listed"),
    ("pipeline.runs.summary", "NotBlessedError", RUNTIME_ERROR, ""),
    ("serving.client", "ServerUnreachableError", RUNTIME_ERROR, ""),
    ("pipeline.cli.replay", "ReplayDirectoryError", USAGE_ERROR, ""),
    ("pipeline.replay.inject", "InjectionError", USAGE_ERROR, ""),
    ("pipeline.replay.loop", "ReplayError", RUNTIME_ERROR, "see server.log in the replay's --out"),
    ("pipeline.replay.traffic", "TrafficError", RUNTIME_ERROR, "see loadtest.log in the replay's --out"),
    ("pipeline.runners.beam_cluster", "ClusterStartError", RUNTIME_ERROR,
     "see the service's log named above, or pick other ports with --job-port / --worker-pool-port"),
    ("serving.config_files", "ConfigFileError", USAGE_ERROR, "fix the file or the flag that names it"),
    ("serving.batcher", "BatchingConfigError", USAGE_ERROR, "fix --batching_parameters_file"),
    ("serving.errors", "ServingError", RUNTIME_ERROR, ""),
    ("builtins", "FileNotFoundError", USAGE_ERROR, "check the path"),
)


def build_parser() -> argparse.ArgumentParser:
  """Returns the `recsys` parser. Subcommand modules import TensorFlow lazily, so `--help` is fast."""
  from pipeline.cli import beam as beam_cli
  from pipeline.cli import data as data_cli
  from pipeline.cli import pipeline as pipeline_cli
  from pipeline.cli import replay as replay_cli
  from pipeline.cli import report as report_cli
  from pipeline.cli import serving as serving_cli

  parser = argparse.ArgumentParser(
      prog="recsys",
      description="Train a NeuMF recommender on MovieLens with TFX and serve it with TF Serving.")
  parser.add_argument("--debug", action="store_true",
                      help="Show the traceback of expected errors too (bad input, no network, no server, ...).")
  subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  beam_cli.register(subparsers)
  data_cli.register(subparsers)
  pipeline_cli.register(subparsers)
  report_cli.register(subparsers)
  replay_cli.register(subparsers)
  serving_cli.register(subparsers)
  return parser


def expected_error(error: BaseException) -> Optional[Tuple[int, str]]:
  """(exit status, `error: ...` line) when `error` is one of EXPECTED_ERRORS, else None."""
  for module, name, status, advice in EXPECTED_ERRORS:
    error_type = getattr(sys.modules.get(module), name, None)
    if error_type is not None and isinstance(error, error_type):
      first, *rest = (str(error).strip() or type(error).__name__).splitlines()
      return status, "\n".join([f"error: {first}" + (f"; {advice}" if advice else ""), *rest])
  return None


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Parses `argv` and runs the chosen subcommand's handler; returns the process exit status."""
  from pipeline import console

  console.filter_unfixable_warnings()
  console.show_progress()
  args = build_parser().parse_args(argv)
  try:
    return int(args.handler(args) or 0)
  except Exception as error:  # pylint: disable=broad-except  # re-raised unless it is an expected failure
    known = expected_error(error)
    if known is None or args.debug:
      raise
    status, line = known
    print(line, file=sys.stderr)
    return status
