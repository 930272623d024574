"""bench/scaling_bench.py in its small mode (a few thousand ratings) produces every field of its JSON."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate",
              "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "InfraValidator", "Pusher"}


def test_small_mode_reports_every_field(tmp_path):
  done = subprocess.run([sys.executable, str(REPO / "bench" / "scaling_bench.py"), "--small", "--work",
                         str(tmp_path), "--plot", str(tmp_path / "scaling.png")],
                        capture_output=True, text=True, cwd=REPO, timeout=900, check=True)
  report = json.loads(done.stdout)
  assert report["benchmark"] == "pipeline scaling" and report["cpus"] >= 1 and report["cpu"]
  (run,) = report["results"]
  assert run["ratings"] == 3000 and set(run["rows"]) == {"train", "eval", "ranking"}
  assert set(run["component_seconds"]) == COMPONENTS
  assert all(seconds >= 0 for seconds in run["component_seconds"].values())
  assert run["wall_seconds"] >= run["pipeline_seconds"] > 0 and run["prepare_seconds"] > 0
  assert run["peak_rss_mib"] > 100  # the run's own process (TensorFlow alone takes more)
  assert set(run["auc"]) == {"interaction", "liked"} and all(0 <= v <= 1 for v in run["auc"].values())
  assert 0 <= run["ndcg10"] <= run["hr10"] <= 1 and 0 <= run["popularity_ndcg10"] <= run["popularity_hr10"] <= 1
  assert run["blessed"] in (True, False)
  assert run["epochs"] == 2 and run["epochs_trained"] == 2  # the small mode's --epochs 2, under the step cap
  assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
