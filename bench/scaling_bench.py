"""How the pipeline's cost grows with the data: one full run per synthetic data size, from an empty root.

Each size runs in its own process (so its peak RSS is its own): data preparation, then the whole pipeline with
LocalDagRunner. Prints one JSON object: per size the rows, seconds of preparation and of every component (from
ML Metadata), wall time, peak RSS, both heads' AUCs and HR@10 / NDCG@10 against popularity; with --plot, a
log-log PNG of seconds per component against ratings.

Usage:
  .venv/bin/python bench/scaling_bench.py --shape 943x1682x100000 --shape 6040x3706x1000209 \
      --shape 32500x11800x5000000 --work /tmp/scaling --plot BENCHMARKS-scaling.png
  .venv/bin/python bench/scaling_bench.py --small --work /tmp/scaling-small     # a few thousand ratings
  .venv/bin/python bench/scaling_bench.py --results /tmp/s1/6040x3706x1000209.json --results /tmp/s5/report.json \
      --shape 943x1682x100000 --work /tmp/scaling --plot BENCHMARKS-scaling.png      # saved runs with new ones
Extra flags after `--` go to every run, e.g. `-- --epochs 5 --beam-mode multi_processing --beam-workers 2`.
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SMALL_SHAPE = "60x120x3000"
MAX_RSS_UNIT = 1024  # ru_maxrss is in KiB on Linux


def _cpu_model() -> str:
  for line in Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return platform.processor() or "unknown"


def run_one(shape: str, work: Path, extra: Sequence[str]) -> Dict[str, object]:
  """Prepares and runs the pipeline on the synthetic set `shape` (USERSxMOVIESxRATINGS) under `work`."""
  from bench import pipeline_bench
  from pipeline.cli import pipeline as pipeline_cli

  users, movies, ratings = (int(v) for v in shape.split("x"))
  parser = argparse.ArgumentParser()
  pipeline_cli.add_config_arguments(parser)
  args = parser.parse_args([
      "--synthetic-users", str(users), "--synthetic-movies", str(movies), "--synthetic-ratings", str(ratings),
      "--cache-dir", str(work / "cache"), "--pipeline-root", str(work / "root"),
      "--examples-dir", str(work / "examples"), "--serving-dir", str(work / "serving"), *extra])
  result = pipeline_bench.measure(pipeline_cli.config_from_args(args))
  quality = result.pop("ranking")
  return {
      "shape": shape, "ratings": ratings, **result,
      "wall_seconds": round(result["prepare_seconds"] + result["pipeline_seconds"], 1),
      "hr10": quality["model"]["hit_rate"], "ndcg10": quality["model"]["ndcg"],
      "popularity_hr10": quality["most_popular"]["hit_rate"], "popularity_ndcg10": quality["most_popular"]["ndcg"],
  }


def run_in_subprocess(shape: str, work: Path, extra: Sequence[str]) -> Dict[str, object]:
  """run_one in a fresh process; adds its peak RSS (the largest of it and its children) in MiB."""
  out = work / f"{shape}.json"
  command = [sys.executable, __file__, "--one", shape, "--work", str(work / shape), "--out", str(out), "--", *extra]
  print(f"[scaling] {shape}: {' '.join(command)}", file=sys.stderr, flush=True)
  process = subprocess.Popen(command, cwd=REPO)
  _, status, usage = os.wait4(process.pid, 0)
  if os.waitstatus_to_exitcode(status) != 0:
    raise RuntimeError(f"the run of {shape} failed with exit status {os.waitstatus_to_exitcode(status)}")
  result = json.loads(out.read_text())
  result["peak_rss_mib"] = round(usage.ru_maxrss / MAX_RSS_UNIT, 1)
  return result


def saved_results(path: Path) -> List[Dict[str, object]]:
  """The runs in `path`: a report this script printed (its "results") or one run's file (WORK/SHAPE.json)."""
  saved = json.loads(path.read_text())
  runs = saved["results"] if "results" in saved else [saved]
  for run in runs:
    missing = {"shape", "ratings", "wall_seconds", "prepare_seconds", "component_seconds"} - set(run)
    if missing:
      raise ValueError(f"{path}: a run without {sorted(missing)}; expected this script's JSON output")
    run.pop("growth_vs_previous", None)  # recomputed against the runs it is now shown with
  return runs


def plot(results: List[Dict[str, object]], path: Path) -> None:
  """Log-log seconds per component (and preparation, and the wall time) against ratings."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot

  figure, axes = pyplot.subplots(figsize=(8, 5))
  ratings = [r["ratings"] for r in results]
  series = {"wall": [r["wall_seconds"] for r in results], "prepare": [r["prepare_seconds"] for r in results]}
  for name in results[0]["component_seconds"]:
    seconds = [r["component_seconds"].get(name, 0.0) for r in results]
    if max(seconds) >= 1.0:  # the resolver, the gates and the Pusher take well under a second at every size
      series[name] = seconds
  for name, seconds in series.items():
    axes.plot(ratings, seconds, marker="o", linewidth=2.5 if name == "wall" else 1.2, label=name)
  axes.plot(ratings, [series["wall"][0] * r / ratings[0] for r in ratings], "k:", label="linear from the first")
  axes.set(xscale="log", yscale="log", xlabel="ratings", ylabel="seconds", title="Pipeline cost by data size")
  axes.grid(True, which="both", alpha=0.3)
  axes.legend(fontsize=7, ncol=2)
  figure.tight_layout()
  figure.savefig(path, dpi=110)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shape", action="append", help="USERSxMOVIESxRATINGS of a synthetic set; repeatable.")
  parser.add_argument("--small", action="store_true", help=f"One tiny run ({SMALL_SHAPE}) to check the fields.")
  parser.add_argument("--work", type=Path, required=True, help="Working directory (data, roots, results).")
  parser.add_argument("--plot", type=Path, help="Also write the log-log plot here (PNG).")
  parser.add_argument("--results", type=Path, action="append", default=[],
                      help="A saved JSON of this script (a report, or one run's WORK/SHAPE.json) whose runs join "
                           "the new ones in the growth figures and the plot; repeatable.")
  parser.add_argument("--one", help=argparse.SUPPRESS)
  parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
  parser.add_argument("extra", nargs="*", help="Flags for every `recsys pipeline run` (after --).")
  args = parser.parse_args()
  args.work.mkdir(parents=True, exist_ok=True)
  if args.one:
    args.out.write_text(json.dumps(run_one(args.one, args.work, args.extra)))
    return
  shapes = [SMALL_SHAPE] if args.small else (args.shape or [])
  if not shapes and not args.results:
    parser.error("give --shape at least once, --small or --results")
  extra = ["--epochs", "2", *args.extra] if args.small else args.extra
  results = [run for path in args.results for run in saved_results(path)]
  results += [run_in_subprocess(shape, args.work, extra) for shape in shapes]
  results.sort(key=lambda run: run["ratings"])
  for previous, current in zip(results, results[1:]):
    current["growth_vs_previous"] = {"ratings": round(current["ratings"] / previous["ratings"], 2),
                                     "wall": round(current["wall_seconds"] / previous["wall_seconds"], 2)}
  if args.plot:
    plot(results, args.plot)
  print(json.dumps({"benchmark": "pipeline scaling", "cpu": _cpu_model(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "results": results}, indent=2))


if __name__ == "__main__":
  main()
