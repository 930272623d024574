"""`recsys data fetch|synth|prepare`: get MovieLens, generate a synthetic set, write train/eval examples."""
import argparse
import dataclasses
from pathlib import Path
from typing import get_args

from pipeline.cli import flags
from pipeline.cli.flags import Flag
from pipeline.config import DataConfig, SyntheticLike

FETCHABLE = ("ml-100k", "ml-1m", "ml-latest-small", "ml-25m")  # the releases of pipeline/data/fetch.py


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `data` command group."""
  parser = subparsers.add_parser("data", help="Fetch, generate and prepare MovieLens data.")
  commands = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

  fetch = commands.add_parser("fetch", help="Download a MovieLens release from GroupLens (checksummed).")
  fetch.add_argument("--dataset", choices=FETCHABLE, required=True)
  fetch.add_argument("--cache-dir", type=Path, default=DataConfig.cache_dir,
                     help="Where downloads are kept (default: %(default)s).")
  fetch.add_argument("--data-dir", type=Path,
                     help="Use an unpacked copy already on disk instead of downloading.")
  fetch.set_defaults(handler=_fetch)

  synth = commands.add_parser("synth", help="Write a seeded synthetic set in ml-latest CSV layout.")
  synth.add_argument("--users", type=int, default=DataConfig.synthetic_users)
  synth.add_argument("--movies", type=int, default=DataConfig.synthetic_movies)
  synth.add_argument("--ratings", type=int, default=DataConfig.synthetic_ratings)
  synth.add_argument("--seed", type=int, default=DataConfig.seed)
  synth.add_argument("--like", choices=get_args(SyntheticLike), default=DataConfig.synthetic_like,
                     help="The release whose statistics the set imitates.")
  synth.add_argument("--out", type=Path, required=True, help="Output directory.")
  synth.set_defaults(handler=_synth)

  prepare = commands.add_parser("prepare", help="Split into train/eval and write tf.Examples.")
  add_data_flags(prepare)
  prepare.add_argument("--out", type=Path, required=True, help="Output directory.")
  prepare.set_defaults(handler=_prepare)


DATA_FLAGS = (
    Flag("dataset", help="MovieLens release, or the seeded synthetic set."),
    Flag("data_dir", help="An unpacked copy of the release on disk."),
    "cache_dir", "split", "eval_fraction",
    Flag("eval_negatives", help="Sampled unrated movies per eval user (ranking candidates)."),
    Flag("evaluator_negatives", help="How many of them the Evaluator (TFMA) judges."),
    "seed", "on_bad_rows", "synthetic_users", "synthetic_movies", "synthetic_ratings",
    Flag("synthetic_like", help="The release whose statistics the synthetic set imitates."),
    Flag("span_by", help="Cut the ratings by timestamp into spans (week, month, year or N-days), written as "
                         "span-<N>/: span N trains on period N and is judged on period N + 1."),
    Flag("span_window", help="Spans Transform and the Trainer see: the latest ones up to the span read."),
)
PREFIX = "data_"


def add_data_flags(parser: argparse.ArgumentParser) -> None:
  """Flags that build a DataConfig; shared by `data prepare` and `pipeline run`."""
  flags.add_flags(parser.add_argument_group("data"), DataConfig, DATA_FLAGS, PREFIX)


def data_config(args: argparse.Namespace) -> DataConfig:
  """The DataConfig named by the flags of `add_data_flags`."""
  config = flags.from_flags(DataConfig, args, DATA_FLAGS, PREFIX)
  if config.data_dir is not None and config.dataset == "synthetic":
    # a directory on disk is read in whatever MovieLens format it holds
    config = dataclasses.replace(config, dataset="ml-latest")
  if config.span_by is not None:
    from pipeline.data import spans  # pylint: disable=g-import-not-at-top  (pandas: only when asked for)

    spans.parse_span_by(config.span_by)  # a malformed --span-by fails here, before any data is read
  return config


def _fetch(args: argparse.Namespace) -> int:
  from pipeline.data import fetch  # pylint: disable=g-import-not-at-top

  print(fetch.fetch(args.dataset, args.cache_dir, args.data_dir))
  return 0


def _synth(args: argparse.Namespace) -> int:
  from pipeline.data import synthetic  # pylint: disable=g-import-not-at-top

  shape = synthetic.SyntheticShape(args.users, args.movies, args.ratings, args.seed, args.like)
  print(synthetic.generate(shape, args.out))
  return 0


def _prepare(args: argparse.Namespace) -> int:
  from pipeline.data import prepare  # pylint: disable=g-import-not-at-top

  prepared = prepare.prepare_examples(data_config(args), args.out)
  if prepared.skipped_summary:
    print(prepared.skipped_summary)
  if prepared.cold_summary:
    print(prepared.cold_summary)
  for span in prepared.spans:
    print(f"span {span.span}: train {span.train_period}, eval {span.eval_period}: {span.rows} examples, "
          f"{span.cold_eval_users} cold eval users ({span.cold_eval_ratings} eval ratings)")
  print(f"{prepared.examples_dir}: {prepared.rows} examples, {prepared.users} users, "
        f"{prepared.movies} movies")
  return 0
