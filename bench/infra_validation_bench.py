"""Seconds the InfraValidator adds to a pipeline run on an ml-100k-sized NCF model; prints one JSON object.

Each round runs pipeline.infra_validation.validate_model as the component does (copy the model, start the server
subprocess, wait for AVAILABLE, query every signature and replay the warmup requests, compare with the in-process
SavedModel, stop), and separately times the server process from start to AVAILABLE alone.

Usage:
  .venv/bin/python bench/infra_validation_bench.py                  # the ml-100k-shaped model of serving_bench.py
  .venv/bin/python bench/infra_validation_bench.py --model_dir out/serving/ncf/<version>
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `bench.serving_bench` and `tests.support`; run as a script from anywhere

from bench import serving_bench  # noqa: E402  pylint: disable=wrong-import-position
from pipeline import infra_validation  # noqa: E402  pylint: disable=wrong-import-position
from pipeline import model_server_process  # noqa: E402  pylint: disable=wrong-import-position
from pipeline.config import InfraValidationConfig  # noqa: E402  pylint: disable=wrong-import-position


def eval_examples(count: int) -> List[bytes]:
  """`count` serialized eval examples with ml-100k's ids (users 1..943, movies 1..1682)."""
  from tests.support import testdata  # pylint: disable=import-outside-toplevel

  shape = testdata.TinyData(users=count, movies=serving_bench.ML100K_MOVIES, ratings_per_user=4,
                            eval_ratings_per_user=1, eval_negatives=1)
  return [e.SerializeToString() for e in testdata.make_examples(shape)["eval"][:count]]


def seconds_to_available(model_dir: Path, config: InfraValidationConfig, work: Path) -> float:
  """From starting the server process to GetModelStatus saying AVAILABLE."""
  base = work / "available" / infra_validation.MODEL_NAME
  base.mkdir(parents=True)
  (base / "1").symlink_to(model_dir.resolve())
  started = time.monotonic()
  with model_server_process.served_model(infra_validation.MODEL_NAME, base, config.server,
                                         work / "available.log") as served:
    served.wait_until_available(config.load_timeout_s)
    return time.monotonic() - started


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model_dir", type=Path, default=None,
                      help="An exported NCF SavedModel; default: serving_bench.py's ml-100k-shaped one (cached).")
  parser.add_argument("--cache_dir", type=Path, default=Path.home() / ".cache" / "recsys" / "bench")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--server", choices=("auto", "tfs", "embedded"), default=InfraValidationConfig.server)
  args = parser.parse_args()

  model_dir = args.model_dir
  model_source = f"--model_dir {model_dir}"
  if model_dir is None:
    model_dir = args.cache_dir / "ncf-ml100k-shaped"
    model_source = "serving_bench.py's ml-100k-shaped NeuMF (943 users x 1682 movies, default ModelConfig)"
    if not (model_dir / "saved_model.pb").exists():
      shutil.rmtree(model_dir, ignore_errors=True)
      serving_bench.build_ml100k_shaped_model(model_dir)
  config = InfraValidationConfig(server=args.server)
  examples = eval_examples(config.num_examples)
  rounds = []
  with tempfile.TemporaryDirectory() as work:
    for i in range(args.rounds):
      verdict = infra_validation.validate_model(str(model_dir), examples, config, f"{work}/round-{i}.log")
      if not verdict.blessed:
        sys.exit(f"the model failed infra validation: {verdict.reason}")
      round_dir = Path(work) / f"round-{i}"
      round_dir.mkdir()
      rounds.append({"validate_model_s": round(verdict.seconds, 2), "queries": verdict.queries,
                     "start_to_available_s": round(seconds_to_available(model_dir, config, round_dir), 2)})
  print(json.dumps({
      "benchmark": "infra_validation", "model": model_source, "server": verdict.server,
      "model_mib": round(sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file()) / 2**20, 1),
      "examples_per_signature": config.num_examples, "machine": serving_bench.machine(), "rounds": rounds,
      "median_validate_model_s": statistics.median(r["validate_model_s"] for r in rounds),
      "median_start_to_available_s": statistics.median(r["start_to_available_s"] for r in rounds),
  }, indent=2))


if __name__ == "__main__":
  main()
