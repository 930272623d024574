"""`recsys replay`: the pipeline span after span while a model server serves the pushed versions under live
traffic (pipeline/replay/); writes replay.json and replay.html."""
import argparse
import dataclasses
import functools
import shutil
from pathlib import Path

from pipeline.cli import flags
from pipeline.cli import pipeline as pipeline_cli
from pipeline.cli.flags import Flag
from pipeline.config import ReplayConfig

REPLAY_FLAGS = (
    Flag("first_span", help="The first span replayed."),
    Flag("spans", help="How many spans to replay (None: up to the last one)."),
    Flag("callers", help="Closed-loop callers of the live traffic (predict and recommend, half and half)."),
    Flag("think_s", "think", "Seconds each caller waits between an answer and its next request."),
    Flag("movies_per_request", help="Movies of each predict request of the traffic."),
    Flag("request_timeout_s", "request-timeout", "Deadline of each traffic request in seconds; later is failed."),
    Flag("swap_window_s", "swap-window", "Seconds around each version swap whose latency is reported apart."),
    Flag("server", help="Model server: auto (tensorflow_model_server when on PATH, else the embedded one), tfs "
                        "or embedded."),
)
DEFAULT_OUT = Path("out/replay")


class ReplayDirectoryError(ValueError):
  """The replay's pipeline root already holds runs and --fresh was not given."""


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds `recsys replay`: the pipeline's flags plus the replay's."""
  parser = subparsers.add_parser(
      "replay", help="Run the pipeline span after span under live traffic (needs --span-by).",
      description="Cuts the ratings into spans (--span-by) and runs the pipeline on each in turn, as a production "
                  "loop would as data arrives; from the first push on, a model server serves the serving "
                  "directory and a load generator calls it until the last span is done. Writes replay.json and "
                  "replay.html to --out. The pipeline root, serving directory and examples default to folders of "
                  "--out.")
  pipeline_cli.add_config_arguments(parser)
  replay = parser.add_argument_group("replay")
  replay.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Where the replay writes (default %(default)s).")
  flags.add_flags(replay, ReplayConfig, REPLAY_FLAGS, "replay_")
  replay.add_argument("--inject", action="append", metavar="SPAN:KIND", default=[],
                      help="Put bad data into a span before it runs: shuffled-labels, drifted-genres or "
                           "corrupt-eval; repeatable.")
  replay.add_argument("--fresh", action="store_true",
                      help="Delete the replay's pipeline root and serving directory first (a replay starts from "
                           "an empty ML Metadata, or the pipeline's cache would skip its spans).")
  replay.add_argument("--verbose", action="store_true", help="Also show what the libraries print, live.")
  parser.set_defaults(handler=_replay, pipeline_pipeline_name="movielens-ncf-replay", pipeline_pipeline_root=None,
                      pipeline_serving_dir=None)


def _replay(args: argparse.Namespace) -> int:
  from pipeline.console import RunConsole
  from pipeline.replay import inject
  from pipeline.replay import loop
  from pipeline.replay import page
  from pipeline.runs import summary

  if args.data_span_by is None:
    raise ReplayDirectoryError("recsys replay needs --span-by (week, month, year or N-days)")
  inject.parse_injections(args.inject)  # a malformed --inject fails before any data is read
  args.pipeline_pipeline_root = args.pipeline_pipeline_root or args.out / "pipeline"
  args.pipeline_serving_dir = args.pipeline_serving_dir or args.out / "serving"
  args.pipeline_examples_dir = args.pipeline_examples_dir or args.out / "examples"
  config = pipeline_cli.config_from_args(args)
  replay = flags.from_flags(ReplayConfig, args, REPLAY_FLAGS, "replay_", inject=tuple(args.inject))
  metadata = Path(config.metadata_path or config.pipeline_root / "metadata.sqlite")
  if metadata.exists() or (config.serving_dir / config.model_name).exists():
    if not args.fresh:
      raise ReplayDirectoryError(
          f"{config.pipeline_root} or {config.serving_dir} holds an earlier replay; pass --fresh to delete them "
          "(the examples are kept) or choose another --out")
    shutil.rmtree(config.pipeline_root, ignore_errors=True)
    shutil.rmtree(config.serving_dir, ignore_errors=True)
  config = dataclasses.replace(config, metadata_path=metadata)
  with RunConsole(config.pipeline_root / "logs", functools.partial(summary.describe_node, config), args.verbose):
    result = loop.run_replay(config, replay, args.out)
  out = page.write_page(result, args.out / "replay.html")
  traffic = result.traffic
  if traffic is not None:
    print(f"traffic: {traffic.requests:,} requests, {traffic.failed:,} failed; steady p50/p99 "
          f"{traffic.steady.p50_ms:.1f}/{traffic.steady.p99_ms:.1f} ms; "
          + "; ".join(f"swap {s.from_version}->{s.to_version} p99 {s.around.p99_ms:.1f} ms" for s in traffic.swaps))
  print(f"replay: {args.out / 'replay.json'}, {out}")
  return 0 if traffic is None or traffic.failed == 0 else 1
