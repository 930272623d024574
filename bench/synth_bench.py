"""Times `recsys data synth` and records its peak memory; prints one JSON object.

Usage: .venv/bin/python bench/synth_bench.py --users 162541 --movies 59047 --ratings 25000095 --out /tmp/ml25m-synth
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--users", type=int, default=162_541)
  parser.add_argument("--movies", type=int, default=59_047)
  parser.add_argument("--ratings", type=int, default=25_000_095)
  parser.add_argument("--out", type=Path, required=True)
  args = parser.parse_args()
  command = [sys.executable, "-m", "pipeline.cli", "data", "synth", "--users", str(args.users),
             "--movies", str(args.movies), "--ratings", str(args.ratings), "--out", str(args.out)]
  start = time.monotonic()
  subprocess.run(command, check=True)
  seconds = time.monotonic() - start
  peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
  print(json.dumps({
      "benchmark": "data synth", "users": args.users, "movies": args.movies, "ratings": args.ratings,
      "seconds": round(seconds, 1), "peak_rss_mib": round(peak_kib / 1024, 1),
      "ratings_csv_mib": round((args.out / "ratings.csv").stat().st_size / 2**20, 1),
      "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
      "command": " ".join(["python", "bench/synth_bench.py"] + sys.argv[1:]),
  }, indent=2))


if __name__ == "__main__":
  main()
