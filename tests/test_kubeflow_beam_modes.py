"""The pipeline blesses the same way with Beam multi_processing (2 worker processes) as in_memory.

What a cluster runner changes is where Beam runs, so this runs the real pipeline twice on the same tiny
synthetic examples: once in one process, once with Beam's work split over 2 SDK worker processes.
"""
import dataclasses
from pathlib import Path
from typing import Dict

import pytest
from apache_beam.runners.portability import local_job_service

from components import features
from components import testdata
from pipeline import local_runner
from pipeline import summary
from pipeline.config import CURATED_SCHEMA_DIR, DataConfig, EvalConfig, PipelineConfig
from pipeline.prepare import prepare_examples

BEAM_ARGS = {
    "in_memory": ("--direct_running_mode=in_memory", "--direct_num_workers=1"),
    "multi_processing": ("--direct_running_mode=multi_processing", "--direct_num_workers=2"),
}


def _config(work: Path, mode: str) -> PipelineConfig:
  """Tiny data and model (the end-to-end test's), one pipeline root and serving dir per Beam mode."""
  data = DataConfig(dataset="synthetic", cache_dir=work / "cache", synthetic_users=200, synthetic_movies=100,
                    synthetic_ratings=6000, eval_negatives=30)
  return PipelineConfig(
      pipeline_name=f"beam-{mode.replace('_', '-')}", pipeline_root=work / mode / "root",
      examples_dir=work / "examples", serving_dir=work / mode / "serving", schema_dir=CURATED_SCHEMA_DIR,
      beam_args=BEAM_ARGS[mode], data=data, model=testdata.TINY_MODEL, train=testdata.TINY_TRAIN,
      eval=EvalConfig(min_liked_auc=0.6, min_interaction_auc=0.6, max_auc_regression=0.01))


def _vocabularies(config: PipelineConfig) -> Dict[str, bytes]:
  """Transform's vocabulary files of the run, by name."""
  (transform_fn,) = config.pipeline_root.glob("Transform/transform_graph/*/transform_fn")
  return {path.name: path.read_bytes() for path in (transform_fn / "assets").iterdir()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Runs the pipeline in each Beam mode; returns {mode: (config, summary, SDK worker processes started)}."""
  work = tmp_path_factory.mktemp("beam-modes")
  results = {}
  for mode in BEAM_ARGS:
    config = _config(work, mode)
    prepare_examples(config.data, config.examples_dir)  # written once, then reused: both runs read the same
    workers = []
    original_init = local_job_service.SubprocessSdkWorker.__init__

    def counting_init(self, *args, **kwargs):
      workers.append(self)
      original_init(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(local_job_service.SubprocessSdkWorker, "__init__", counting_init)
      local_runner.run(config)
    results[mode] = (config, summary.summarize(config), len(workers))
  return results


def test_multi_processing_runs_beam_in_worker_processes(runs):
  assert runs["in_memory"][2] == 0
  # Every Beam pipeline of the run (ExampleGen, StatisticsGen, Transform, Evaluator...) starts 2 workers.
  assert runs["multi_processing"][2] >= 2 * 4


def test_both_modes_see_the_same_data_and_vocabularies(runs):
  (in_memory, memory_summary, _), (multi, multi_summary, _) = runs["in_memory"], runs["multi_processing"]
  assert memory_summary.rows == multi_summary.rows
  assert memory_summary.rows[features.TRAIN_SPLIT] > 0
  assert _vocabularies(in_memory) == _vocabularies(multi)


def test_both_modes_bless_and_push(runs):
  for mode, (config, run, _) in runs.items():
    assert all(component.state == "COMPLETE" for component in run.components.values()), (mode, run.components)
    assert run.blessed is True, mode
    assert run.pushed_path is not None and Path(run.pushed_path).parent == config.serving_dir / config.model_name


def test_both_modes_measure_the_same_quality(runs):
  memory_auc, multi_auc = runs["in_memory"][1].auc, runs["multi_processing"][1].auc
  assert memory_auc.keys() == multi_auc.keys() == {features.INTERACTION, features.LIKED}
  for head in memory_auc:
    # Same examples, vocabularies and seeds; multi_processing only writes the transformed training examples
    # in another order, which moved an AUC by 0.0025 on this set. A broken run would be far off.
    assert multi_auc[head].value == pytest.approx(memory_auc[head].value, abs=0.02), head
