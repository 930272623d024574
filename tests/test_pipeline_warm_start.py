"""Warm start in the pipeline: two LocalDagRunner runs on tiny weekly spans (about 2 minutes on 2 shared cores).
The first trains cold (no blessed model yet), the second's Trainer takes the first run's blessed model as its
base_model, as ML Metadata records and the run summary says."""
import dataclasses
from pathlib import Path

import pytest

from pipeline.config import (CURATED_SCHEMA_DIR, DataConfig, DriftConfig, EvalConfig, InfraValidationConfig,
                             PipelineConfig)
from pipeline.data.prepare import prepare_examples
from pipeline.runners import local as local_runner
from pipeline.runs import summary
from tests.support import span_ratings, testdata

pytestmark = pytest.mark.slow


def _config(work: Path, span: int) -> PipelineConfig:
  return PipelineConfig(
      pipeline_name="warm-start-e2e", pipeline_root=work / "root", examples_dir=work / "examples",
      serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR, span=span,
      data=DataConfig(dataset="ml-latest", data_dir=work / "raw", cache_dir=work / "cache", eval_negatives=10,
                      evaluator_negatives=4, span_by="week", span_window=1),
      model=testdata.TINY_MODEL,
      train=dataclasses.replace(testdata.TINY_TRAIN, epochs=2, warm_start=True, warm_start_epochs=1),
      eval=EvalConfig(min_liked_auc=0.0, min_interaction_auc=0.0, min_ndcg=0.0),
      drift=DriftConfig(enabled=False), infra_validation=InfraValidationConfig(enabled=False))


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
  work = tmp_path_factory.mktemp("warm-start-e2e")
  span_ratings.write(span_ratings.WeeklyRatings(movies=60, weeks=3), work / "raw")
  found = {}
  for span in (1, 2):
    config = _config(work, span)
    prepare_examples(config.data, config.examples_dir)
    local_runner.run(config)
    found[span] = summary.summarize(config)
  return found


def test_the_first_run_trains_cold_and_the_second_starts_from_its_blessed_model(summaries):
  first, second = summaries[1], summaries[2]
  assert first.blessed and first.warm_start_from is None
  assert "warm start: no (trained cold)" in first.format()
  # model_path is <Model artifact uri>/Format-Serving; the base model is the first run's Model artifact.
  assert second.warm_start_from == str(Path(first.model_path).parent)
  assert second.as_dict()["warm_start_from"] == second.warm_start_from
  assert f"warm start: from {second.warm_start_from}" in second.format()
