"""The real pipeline with LocalDagRunner on a small synthetic set (about a minute on 2 idle cores).

Runs, in order: a good model (blessed, pushed), the same run twice more (cached), a candidate trained on
shuffled labels (not blessed, not pushed: it fails the AUC and the ranking gates), and a run on corrupted examples
(stops at validation). `recsys report` reports on the first run and on the refused candidate.
"""

import dataclasses
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import tensorflow as tf

from components import features
from tests.support import report_page, testdata
from pipeline.anomalies_gate import ExampleAnomaliesError
from pipeline.runners import local as local_runner
from pipeline.runs import reader, summary
from pipeline.config import CURATED_SCHEMA_DIR, DataConfig, EvalConfig, PipelineConfig
from pipeline.pipeline import metadata_path
from pipeline.data.prepare import prepare_examples

pytestmark = pytest.mark.slow

COMPONENTS = {"ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate",
              "Transform", "Trainer", "latest_blessed_model_resolver", "Evaluator", "InfraValidator", "Pusher"}
EXPECTED_ARTIFACTS = {"Examples", "ExampleStatistics", "Schema", "ExampleAnomalies", "TransformGraph", "Model",
                      "ModelEvaluation", "ModelBlessing", "InfraBlessing", "PushedModel"}


def _config(work: Path) -> PipelineConfig:
  data = DataConfig(dataset="synthetic", cache_dir=work / "cache", synthetic_users=120, synthetic_movies=80,
                    synthetic_ratings=3600, eval_negatives=10)
  return PipelineConfig(
      pipeline_name="e2e-test", pipeline_root=work / "root", examples_dir=work / "examples",
      serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR, data=data, model=testdata.TINY_MODEL,
      train=testdata.TINY_TRAIN, eval=EvalConfig(min_liked_auc=0.6, min_interaction_auc=0.6,
                                                 max_auc_regression=0.01, min_ndcg=0.5,
                                                 max_ndcg_regression=0.01))


def _artifact_types(config: PipelineConfig) -> set:
  store = reader.open_store(Path(metadata_path(config)))
  types = {t.id: t.name for t in store.get_artifact_types()}
  return {types[a.type_id] for a in store.get_artifacts()}


def _mlmd_runs(config: PipelineConfig) -> List[Tuple[str, Dict[str, object]]]:
  """(run id, {artifact type: newest artifact of the run}) of every pipeline run, oldest first, from ML Metadata."""
  store = reader.open_store(Path(metadata_path(config)))
  types = {t.id: t.name for t in store.get_artifact_types()}
  runs = []
  for context in sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.create_time_since_epoch):
    artifacts = {types[a.type_id]: a for a in sorted(store.get_artifacts_by_context(context.id),
                                                     key=lambda a: a.id)}
    runs.append((context.name, artifacts))
  return runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Runs the good, repeated and worse pipelines in order; returns their configs and summaries."""
  work = tmp_path_factory.mktemp("e2e")
  config = _config(work)
  results = {"config": config, "prepared": prepare_examples(config.data, config.examples_dir)}
  local_runner.run(config)
  results["first"] = summary.summarize(config)
  results["first_versions"] = sorted(p.name for p in (config.serving_dir / config.model_name).iterdir())
  local_runner.run(config)
  results["second"] = summary.summarize(config)
  results["second_versions"] = sorted(p.name for p in (config.serving_dir / config.model_name).iterdir())
  local_runner.run(config)
  results["third"] = summary.summarize(config)
  worse = dataclasses.replace(config, train=dataclasses.replace(config.train, shuffle_labels=True))
  local_runner.run(worse)
  results["worse"] = summary.summarize(worse)
  results["artifact_types"] = _artifact_types(config)
  return results


def test_first_run_executes_every_component_and_records_artifacts(runs):
  first = runs["first"]
  assert set(first.components) == COMPONENTS
  assert all(run.state == "COMPLETE" for run in first.components.values()), first.components
  assert EXPECTED_ARTIFACTS <= runs["artifact_types"]
  assert first.rows[features.TRAIN_SPLIT] > 0 and first.rows[features.EVAL_SPLIT] > 0


def test_first_run_is_blessed_by_absolute_thresholds_and_pushed(runs):
  first, config = runs["first"], runs["config"]
  assert first.blessed is True
  assert first.infra_blessed is True, first.infra_validation  # served and answered like the SavedModel
  for name, gate in {**first.auc, **first.ranking_gate}.items():
    assert gate.baseline is None  # nothing blessed before: judged by the lower bound alone
    assert gate.value >= gate.threshold, name
  assert list(first.ranking_gate) == ["ndcg@10"]
  assert first.failed_checks == []
  assert first.pushed_path is not None
  pushed = Path(first.pushed_path)
  assert pushed.parent == config.serving_dir / config.model_name and pushed.name.isdigit()
  assert (pushed / "saved_model.pb").exists()
  assert (pushed / "assets.extra" / "tf_serving_warmup_requests").exists()
  assert runs["first_versions"] == [pushed.name]


def test_identical_runs_are_cached(runs):
  # The baseline resolver leaves the candidate out (components/baseline.py), so the first run's blessed model
  # does not become its own baseline: every component but the resolver (which always queries ML Metadata)
  # comes from the cache, and nothing new is pushed.
  for run in (runs["second"], runs["third"]):
    assert set(run.components) == COMPONENTS
    cached = {name for name, component in run.components.items() if component.state == "CACHED"}
    assert cached == COMPONENTS - {"latest_blessed_model_resolver"}, run.components
    assert run.blessed is True
    assert run.auc[features.LIKED].baseline is None
  assert runs["second_versions"] == runs["first_versions"]


def test_worse_candidate_is_not_blessed_and_not_pushed(runs):
  worse, first, config = runs["worse"], runs["first"], runs["config"]
  assert worse.components["Trainer"].state == "COMPLETE"  # retrained; upstream came from the cache
  assert worse.components["Transform"].state == "CACHED"
  assert worse.auc[features.INTERACTION].baseline == pytest.approx(first.auc[features.INTERACTION].value)
  assert worse.auc[features.LIKED].value < first.auc[features.LIKED].value - config.eval.max_auc_regression
  # The ranking gate refuses it too: its NDCG@10 over each user's eval examples falls below the first model's
  # by more than the allowed regression, and TFMA records that in the same validation result as the AUCs.
  gate, good = worse.ranking_gate["ndcg@10"], first.ranking_gate["ndcg@10"]
  assert gate.baseline == pytest.approx(good.value)
  assert gate.value < good.value - config.eval.max_ndcg_regression
  assert "score ndcg@10 change" in worse.failed_checks
  assert "liked auc change" in worse.failed_checks
  assert worse.blessed is False
  assert worse.infra_blessed is False and "did not bless" in worse.infra_validation  # not served at all
  assert worse.pushed_path is None
  assert sorted(p.name for p in (config.serving_dir / config.model_name).iterdir()) == runs["second_versions"]


def test_report_of_the_refused_candidate(runs, tmp_path):
  from pipeline import cli
  from pipeline.report import html as report

  config, prepared = runs["config"], runs["prepared"]
  mlmd_runs = _mlmd_runs(config)
  (first_id, first), (latest_id, latest) = mlmd_runs[0], mlmd_runs[-1]
  out = tmp_path / "latest" / "report.html"
  assert cli.main(["report", "--pipeline-root", str(config.pipeline_root), "--out", str(out)]) == 0

  page = report_page.parse(out)
  assert page.sections == list(report.SECTIONS)
  pngs = {p.name[len("report-"):-len(".png")]: p.read_bytes() for p in out.parent.glob("report-*.png")}
  assert {"slices-interaction", "slices-liked", "ratings", "ranking", "curves", "calibration", "scores"} <= set(pngs)
  assert set(page.images) == set(pngs)
  for name, png in pngs.items():
    report_page.assert_png_not_blank(png, name)
  text = "".join(page.text)
  # Identity and verdict are the latest run's (the shuffled-label candidate), as ML Metadata recorded them.
  assert latest_id in text and first_id not in text
  assert latest["Model"].uri in text and latest["Model"].uri != first["Model"].uri
  assert latest["ModelBlessing"].custom_properties["blessed"].int_value == 0
  assert "NOT BLESSED" in text and "not pushed" in text
  assert "NOT INFRA BLESSED" in text and "did not bless" in text  # the InfraValidator's reason
  # The candidate was judged against the first run's model, and the page says so.
  assert latest["ModelBlessing"].custom_properties["baseline_model"].string_value == first["Model"].uri
  assert f"Compared against the last blessed model {first['Model'].uri}" in text
  assert f"change >= -{config.eval.max_auc_regression:g} vs. baseline" in text
  for split in ("train", "eval"):
    assert f"{prepared.rows[split]:,}" in text, split


def test_report_of_the_first_run_and_its_ranking(runs):
  from pipeline.metrics import ranking
  from pipeline.report import load as report_load

  config, prepared = runs["config"], runs["prepared"]
  first_id, first = _mlmd_runs(config)[0]
  earlier = report_load.load_run_report(Path(metadata_path(config)), first_id)
  assert earlier.identity.run_id == first_id
  assert earlier.identity.model_uri == first["Model"].uri
  assert earlier.identity.model_version == Path(runs["first"].pushed_path).name
  assert earlier.infra_validation is not None and earlier.infra_validation.blessed
  assert earlier.blessing is not None and earlier.blessing.blessed
  assert earlier.blessing.baseline_model_uri is None  # first run: no baseline
  assert [(check.head, check.metric, check.condition) for check in earlier.blessing.checks] == [
      ("interaction", "auc", f">= {config.eval.min_interaction_auc:g}"),
      ("liked", "auc", f">= {config.eval.min_liked_auc:g}"), ("score", "ndcg@10", f">= {config.eval.min_ndcg:g}")]
  assert all(check.passed and 0.0 < check.value <= 1.0 for check in earlier.blessing.checks)
  assert {split.split: split.rows for split in earlier.splits} == {
      split: rows for split, rows in prepared.rows.items() if split != "ranking"}  # not in StatisticsGen
  assert {head.head for head in earlier.heads} == {"interaction", "liked", "score"}
  auc_heads = [head for head in earlier.heads if head.head != "score"]
  assert all(0.0 <= head.metrics["auc"] <= 1.0 for head in auc_heads)
  score = next(head for head in earlier.heads if head.head == "score")
  assert score.slices == () and set(score.metrics) == {"ndcg@10"}
  liked = next(head for head in earlier.heads if head.head == "liked")
  interaction = next(head for head in earlier.heads if head.head == "interaction")
  # `interaction` counts every eval example, `liked` (weighted by `interaction`) the rated ones only.
  assert interaction.metrics["example_count"] == prepared.rows["eval"]
  rated = int(ranking.read_split(prepared.examples_dir / "eval", [features.INTERACTION])[features.INTERACTION].sum())
  assert 0 < rated < prepared.rows["eval"]
  assert liked.metrics["example_count"] == rated
  assert {s.feature for s in liked.slices} == {"genres", "user_activity"}
  ncf, popular = earlier.ranking
  assert ncf.users == popular.users > 0 and ncf.k == 10
  assert 0.0 <= ncf.hit_rate <= 1.0 and 0.0 <= ncf.ndcg <= ncf.hit_rate
  assert ncf.auc == {head.head: head.metrics["auc"] for head in auc_heads}
  full_ncf, full_popular = earlier.full_catalog
  assert full_ncf.users == full_popular.users > 0 and full_ncf.k == 20
  assert all(0.0 <= value <= 1.0 for value in (full_ncf.recall, full_ncf.ndcg, full_popular.recall))
  assert set(popular.auc) == {"interaction", "liked"} and all(0.0 <= v <= 1.0 for v in popular.auc.values())
  with pytest.raises(reader.RunNotFoundError, match="no pipeline run 'nope'"):
    report_load.load_run_report(Path(metadata_path(config)), "nope")


def test_corrupted_examples_stop_the_run_at_validation(tmp_path):
  config = _config(tmp_path)
  prepare_examples(config.data, config.examples_dir)
  # A second eval file with impossible values: a 7-star rating, liked = 3 and no movie id.
  bad = [testdata.make_example("1", "1", ["Drama"], 4.0, 5, False, "<20") for _ in range(50)]
  for example in bad:
    feature = example.features.feature
    feature[features.RATING].float_list.value[0] = 7.0
    feature[features.LIKED].int64_list.value[0] = 3
    del feature[features.MOVIE_ID]
  with tf.io.TFRecordWriter(str(config.examples_dir / "eval" / "corrupt.tfrecord.gz"), options="GZIP") as writer:
    for example in bad:
      writer.write(example.SerializeToString())

  with pytest.raises(ExampleAnomaliesError) as error:
    local_runner.run(config)
  message = str(error.value)
  for name in (features.RATING, features.LIKED, features.MOVIE_ID):
    assert name in message
  assert "split 'eval'" in message and "split 'train'" not in message
  report = Path(message.split("split 'eval' (")[1].split(")")[0])
  assert report.is_file() and report.parent.name == "Split-eval"
  ran = summary.summarize(config).components
  assert "Transform" not in ran and "Trainer" not in ran
  assert not (config.serving_dir / config.model_name).exists()
