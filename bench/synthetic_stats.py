"""Real MovieLens vs. the synthetic generator, side by side: shape statistics and how personal the signal is.

  .venv/bin/python bench/synthetic_stats.py [--movielens-dir ../shared/data/movielens] [--json out.json]

For ml-100k and ml-latest-small (when present) and a synthetic set of each one's shape, prints the statistics of
pipeline/data/shape_stats.py as JSON, then a Markdown table for BENCHMARKS.md.
"""
import argparse
import json
import tempfile
from pathlib import Path

from pipeline.data import movielens, shape_stats, synthetic
from pipeline.data.bad_rows import BadRows

RELEASES = ("ml-100k", "ml-latest-small")
ROWS = ("ratings", "users", "movies", "liked_share", "user_ratings_median", "user_gini", "user_top1_share",
        "movie_gini", "movie_top1_share", "span_days", "same_second_share", "most_popular_hr", "item_knn_hr", "ease_hr")


def _stats(data_dir: Path) -> dict:
  loaded = movielens.load(data_dir, BadRows("fail"))
  return {**shape_stats.describe(loaded.ratings, loaded.movies), **shape_stats.protocol_hit_rates(loaded.ratings)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--movielens-dir", type=Path, default=Path("../shared/data/movielens"))
  parser.add_argument("--json", type=Path, help="Also write the results here.")
  args = parser.parse_args()
  results = {}
  with tempfile.TemporaryDirectory() as tmp:
    for release in RELEASES:
      if not (args.movielens_dir / release).is_dir():
        continue
      real = _stats(args.movielens_dir / release)
      shape = synthetic.SyntheticShape(real["users"], real["movies"], real["ratings"], like=release)
      results[release] = {"real": real,
                          "synthetic": _stats(synthetic.generate(shape, Path(tmp) / release))}
  text = json.dumps(results, indent=2)
  print(text)
  if args.json:
    args.json.write_text(text + "\n")
  print("\n| statistic | " + " | ".join(f"{r} real | {r} synthetic" for r in results) + " |")
  print("|---|" + "---:|" * (2 * len(results)))
  for row in ROWS + ("rating_shares", "genre_shares"):
    cells = [json.dumps(results[r][side][row]).replace('"', "").replace("|", "/")
             for r in results for side in ("real", "synthetic")]
    print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
