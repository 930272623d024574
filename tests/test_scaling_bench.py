"""bench/scaling_bench.py in its small mode (a few thousand ratings) produces every field of its JSON; saved runs
join the growth figures and the plot."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate",
              "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "InfraValidator", "Pusher"}


@pytest.mark.slow
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


def _saved_run(ratings: int, wall: float) -> dict:
  return {"shape": f"10x10x{ratings}", "ratings": ratings, "wall_seconds": wall, "prepare_seconds": 1.0,
          "component_seconds": {"Trainer": wall - 2.0, "Pusher": 0.0}}


def _join_saved(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
  """Runs the script on saved results only (`args`: its --results and other flags), under `tmp_path`."""
  return subprocess.run([sys.executable, str(REPO / "bench" / "scaling_bench.py"), *args, "--work",
                         str(tmp_path / "work")], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_saved_runs_are_combined_in_order_of_size(tmp_path):
  (tmp_path / "report.json").write_text(json.dumps({"results": [_saved_run(5000, 40.0)]}))
  (tmp_path / "one.json").write_text(json.dumps({**_saved_run(1000, 10.0), "growth_vs_previous": {"wall": 9.9}}))
  done = _join_saved(tmp_path, "--results", str(tmp_path / "report.json"), "--results", str(tmp_path / "one.json"),
                     "--plot", str(tmp_path / "scaling.png"))
  assert done.returncode == 0, done.stderr
  small, large = json.loads(done.stdout)["results"]
  assert (small["ratings"], large["ratings"]) == (1000, 5000) and "growth_vs_previous" not in small
  assert large["growth_vs_previous"] == {"ratings": 5.0, "wall": 4.0}
  assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_saved_file_that_is_not_its_output_is_refused(tmp_path):
  (tmp_path / "other.json").write_text(json.dumps({"ratings": 1000}))
  done = _join_saved(tmp_path, "--results", str(tmp_path / "other.json"))
  assert done.returncode != 0
  assert "other.json: a run without ['component_seconds', 'prepare_seconds', 'shape', 'wall_seconds']" in done.stderr


@pytest.mark.parametrize("report", sorted((REPO / "bench" / "results").glob("*.json")), ids=lambda path: path.name)
def test_a_committed_report_joins_new_runs(report, tmp_path):
  done = _join_saved(tmp_path, "--results", str(report))
  assert done.returncode == 0, done.stderr
  runs = json.loads(done.stdout)["results"]
  assert runs and all(set(run["component_seconds"]) == COMPONENTS for run in runs)
  for run in runs:
    assert run["wall_seconds"] == pytest.approx(run["prepare_seconds"] + run["pipeline_seconds"], abs=0.11)
