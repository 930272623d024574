"""`recsys data fetch|synth|prepare`: get MovieLens, generate a synthetic set, write train/eval examples."""
import argparse
from pathlib import Path

from pipeline.config import DataConfig

DATASETS = ("ml-100k", "ml-1m", "ml-latest-small", "ml-25m")


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `data` command group."""
  parser = subparsers.add_parser("data", help="Fetch, generate and prepare MovieLens data.")
  commands = parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

  fetch = commands.add_parser("fetch", help="Download a MovieLens release from GroupLens (checksummed).")
  fetch.add_argument("--dataset", choices=DATASETS, required=True)
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
  synth.add_argument("--out", type=Path, required=True, help="Output directory.")
  synth.set_defaults(handler=_synth)

  prepare = commands.add_parser("prepare", help="Split into train/eval and write tf.Examples.")
  add_data_flags(prepare)
  prepare.add_argument("--out", type=Path, required=True, help="Output directory.")
  prepare.set_defaults(handler=_prepare)


def add_data_flags(parser: argparse.ArgumentParser) -> None:
  """Flags that build a DataConfig; shared by `data prepare` and `pipeline run`."""
  parser.add_argument("--dataset", choices=("synthetic",) + DATASETS, default=DataConfig.dataset,
                      help="MovieLens release, or the seeded synthetic set (default).")
  parser.add_argument("--data-dir", type=Path, help="An unpacked copy of the release on disk.")
  parser.add_argument("--cache-dir", type=Path, default=DataConfig.cache_dir)
  parser.add_argument("--split", choices=("temporal", "random"), default=DataConfig.split)
  parser.add_argument("--eval-fraction", type=float, default=DataConfig.eval_fraction)
  parser.add_argument("--eval-negatives", type=int, default=DataConfig.eval_negatives,
                      help="Sampled unrated movies per eval user.")
  parser.add_argument("--seed", type=int, default=DataConfig.seed)
  parser.add_argument("--on-bad-rows", choices=("fail", "skip"), default=DataConfig.on_bad_rows)
  parser.add_argument("--synthetic-users", type=int, default=DataConfig.synthetic_users)
  parser.add_argument("--synthetic-movies", type=int, default=DataConfig.synthetic_movies)
  parser.add_argument("--synthetic-ratings", type=int, default=DataConfig.synthetic_ratings)


def data_config(args: argparse.Namespace) -> DataConfig:
  """The DataConfig named by the flags of `add_data_flags`."""
  dataset = args.dataset
  if args.data_dir is not None and dataset == "synthetic":
    dataset = "ml-latest"  # a directory on disk is read in whatever MovieLens format it holds
  return DataConfig(dataset=dataset, data_dir=args.data_dir, cache_dir=args.cache_dir, split=args.split,
                    eval_fraction=args.eval_fraction, eval_negatives=args.eval_negatives,
                    seed=args.seed, on_bad_rows=args.on_bad_rows, synthetic_users=args.synthetic_users,
                    synthetic_movies=args.synthetic_movies, synthetic_ratings=args.synthetic_ratings)


def _fetch(args: argparse.Namespace) -> int:
  from pipeline import fetch  # pylint: disable=g-import-not-at-top

  print(fetch.fetch(args.dataset, args.cache_dir, args.data_dir))
  return 0


def _synth(args: argparse.Namespace) -> int:
  from pipeline import synthetic  # pylint: disable=g-import-not-at-top

  shape = synthetic.SyntheticShape(args.users, args.movies, args.ratings, args.seed)
  print(synthetic.generate(shape, args.out))
  return 0


def _prepare(args: argparse.Namespace) -> int:
  from pipeline import prepare  # pylint: disable=g-import-not-at-top

  prepared = prepare.prepare_examples(data_config(args), args.out)
  if prepared.skipped_summary:
    print(prepared.skipped_summary)
  print(f"{prepared.examples_dir}: {prepared.rows} examples, {prepared.users} users, "
        f"{prepared.movies} movies")
  return 0
