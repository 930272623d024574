"""What `recsys pipeline run` prints: component lines and progress on the terminal, library output in the log."""
import logging
import os
import re
import subprocess
import sys

import pytest

from pipeline import console

COMPONENTS = ("ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate",
              "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "Pusher")
LIBRARY_NOISE = re.compile(r"warning|W\d{4} |E\d{4} |tensorflow/|absl|Traceback", re.IGNORECASE)


def test_component_records_become_lines_and_library_output_goes_to_the_log(tmp_path, capfd):
  absl = logging.getLogger("absl")
  with console.RunConsole(tmp_path / "logs", lambda node: ("complete", f"{node} figure"), heartbeat_s=0.05) as run:
    absl.info(console.COMPONENT_RUNNING, "Trainer")
    logging.getLogger("components.trainer").info("Trainer epoch 1/1: loss 0.5")
    os.write(2, b"2026-01-01 W0000 tensorflow/core/a C++ log line\n")
    print("project output")
    run._stop.wait(0.2)  # pylint: disable=protected-access  # a heartbeat or two
    absl.info(console.COMPONENT_FINISHED, "Trainer")
  out, err = capfd.readouterr()
  lines = out.splitlines()
  assert lines[0] == f"what TensorFlow, TFX and Beam print goes to {run.log_path}"
  assert [line.split()[:2] for line in lines if line.startswith("Trainer ")][0] == ["Trainer", "running"]
  assert re.search(r"^Trainer +complete +\d+\.\d s  Trainer figure$", out, re.MULTILINE)
  assert "Trainer epoch 1/1: loss 0.5" in lines and "project output" in lines
  assert "still running" in out
  assert not LIBRARY_NOISE.search(out) and err == ""
  log = run.log_path.read_text()
  assert "C++ log line" in log and "Trainer epoch 1/1" in log and "Trainer figure" in log


@pytest.mark.slow
def test_a_tiny_pipeline_run_prints_one_start_and_one_end_line_per_component(tmp_path):
  done = subprocess.run(
      [sys.executable, "-m", "pipeline.cli", "pipeline", "run", "--synthetic-users", "60", "--synthetic-movies",
       "40", "--synthetic-ratings", "1200", "--eval-negatives", "5", "--pipeline-root", str(tmp_path / "root"),
       "--examples-dir", str(tmp_path / "examples"), "--serving-dir", str(tmp_path / "serving"),
       "--gmf-dim", "4", "--mlp-dim", "4", "--mlp-layers", "8,4", "--epochs", "2", "--batch-size", "256",
       "--min-liked-auc", "0", "--min-interaction-auc", "0"],
      capture_output=True, text=True, timeout=1500)
  assert done.returncode == 0, done.stdout + done.stderr
  for component in COMPONENTS:
    assert len(re.findall(rf"^{component} +running$", done.stdout, re.MULTILINE)) == 1, (component, done.stdout)
    assert len(re.findall(rf"^{component} +complete +\d", done.stdout, re.MULTILINE)) == 1, (component, done.stdout)
  assert re.search(r"^Trainer epoch 2/2: loss \d", done.stdout, re.MULTILINE)
  assert re.search(r"HR@10 \d\.\d{3}  NDCG@10 \d\.\d{3}", done.stdout)
  assert not LIBRARY_NOISE.search(done.stdout), done.stdout
  assert done.stderr == ""
  log_path = next((tmp_path / "root" / "logs").glob("run-*.log"))
  assert str(log_path) in done.stdout
  log = log_path.read_text()
  assert all(f"Component {component} is finished." in log for component in COMPONENTS)
  assert "WARNING" in log  # what the libraries print is kept, just not on the terminal
  assert "Tables initialized inside a tf.function" not in log  # fixed at the source: Transform in graph mode
