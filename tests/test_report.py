"""The evaluation report on made-up results: figures, HTML, headless Chromium, the ranking section on a hand-made
case (tests/test_pipeline_e2e.py reports on its real pipeline runs)."""
import base64
import dataclasses
import math
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from pipeline.report import html as report
from pipeline.report import data as report_data
from tests.support import report_page
from pipeline.report.data import (Anomaly, Blessing, CalibrationHistogram, ConfusionCurve, FullCatalogScore,
                                  HeadResult, RankingScore, RunIdentity, RunReport, SliceResult, SplitStats,
                                  ThresholdCheck)

pytestmark = pytest.mark.slow


def _confusion(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> ConfusionCurve:
  """Counts of `score > threshold` against `labels`, like TFMA's ConfusionMatrixPlot."""
  predicted = scores[None, :] > thresholds[:, None]
  positive = labels[None, :] == 1
  return ConfusionCurve(thresholds, (predicted & positive).sum(1).astype(float),
                        (predicted & ~positive).sum(1).astype(float), (~predicted & ~positive).sum(1).astype(float),
                        (~predicted & positive).sum(1).astype(float))


def _calibration(labels: np.ndarray, scores: np.ndarray, buckets: int) -> CalibrationHistogram:
  edges = np.linspace(0, 1, buckets + 1)
  index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, buckets - 1)
  return CalibrationHistogram(edges[:-1], np.bincount(index, minlength=buckets).astype(float),
                              np.bincount(index, labels, minlength=buckets),
                              np.bincount(index, scores, minlength=buckets))


def _head(name: str, rng: np.random.Generator, with_plots: bool = True) -> HeadResult:
  labels = rng.integers(0, 2, 2000)
  scores = np.clip(0.5 + 0.25 * (labels - 0.5) + rng.normal(0, 0.2, labels.size), 0, 0.999)
  slices = [SliceResult("genres", "Comedy", 800.0, 0.81), SliceResult("genres", "Horror", 90.0, 0.55),
            SliceResult("genres", "Film-Noir", 12.0, 0.9), SliceResult("user_activity", "<20", 300.0, math.nan),
            SliceResult("is_sampled", "1", 1000.0, 0.77)]
  return HeadResult(
      head=name, label=f"P({name}) on made-up examples",
      metrics={"auc": 0.79, "binary_accuracy": 0.71, "precision": 0.7, "recall": 0.66, "calibration": 1.02,
               "example_count": 2000.0},
      baseline_metrics={"auc": 0.78, "binary_accuracy": 0.7, "example_count": 2000.0},
      slices=tuple(slices),
      confusion=_confusion(labels, scores, np.linspace(0, 1, 101)) if with_plots else None,
      calibration=_calibration(labels, scores, 1000) if with_plots else None)


def made_up_report(with_plots: bool = True) -> RunReport:
  rng = np.random.default_rng(0)
  # The ranking gate's output: NDCG over each user's examples, no AUC, so no slices and no slice figure.
  score = HeadResult("score", "ranking score", {"ndcg@10": 0.71}, {"ndcg@10": 0.7}, (), None, None)
  heads = (_head("interaction", rng, with_plots), _head("liked", rng, with_plots), score)
  edges = np.linspace(0, 5, 11)
  return RunReport(
      identity=RunIdentity("movielens-ncf", "2026-11-27T20:00:00.000000", "/data/ml-100k", "/root/ExampleGen/1",
                           "/root/Trainer/model/5", "1764273600", "/serving/ncf/1764273600",
                           "2026-11-27 20:00:00 UTC"),
      blessing=Blessing(True, "/root/Trainer/model/2", (
          ThresholdCheck("interaction", "auc", ">= 0.7", 0.79, 0.78, True),
          ThresholdCheck("liked", "auc", "change >= -0.01 vs. baseline", 0.79, 0.78, True),
          ThresholdCheck("score", "ndcg@10", ">= 0.6", 0.71, 0.7, True))),
      heads=heads,
      splits=(SplitStats("train", 9000, 60, 200, edges, rng.integers(0, 900, 10).astype(float)),
              SplitStats("eval", 6500, 60, 200, edges, rng.integers(0, 900, 10).astype(float))),
      anomalies=(Anomaly("eval", "rating", "ERROR", "Out-of-range <b>values</b>"),),
      ranking=(RankingScore("NCF", 10, 0.61, 0.35, 60, {"interaction": 0.79, "liked": 0.79}),
               RankingScore("most popular", 10, 0.45, 0.25, 60, {"interaction": 0.7, "liked": 0.55})),
      auc_lower_bounds={"interaction": 0.7, "liked": 0.6},
      min_slice_examples=30.0,
      full_catalog=(FullCatalogScore("NCF", 20, 0.21, 0.18, 55, 58, 200),
                    FullCatalogScore("most popular", 20, 0.12, 0.1, 55, 58, 200)))


def test_every_figure_is_a_non_blank_png_and_inlined(tmp_path):
  out = report.render_report(made_up_report(), tmp_path / "report.html")
  pngs = {p.name: p.read_bytes() for p in tmp_path.glob("*.png")}
  assert set(pngs) == {f"report-{n}.png" for n in
                       ("slices-interaction", "slices-liked", "curves", "calibration", "scores", "ratings",
                        "ranking")}
  for name, png in pngs.items():
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), name
    report_page.assert_png_not_blank(png, name)
  page = report_page.parse(out)
  for name, src in page.images.items():
    assert src.startswith("data:image/png;base64,"), name
    assert base64.b64decode(src.split(",", 1)[1]) == pngs[f"report-{name}.png"]
  assert len(page.images) == len(pngs)


def test_html_has_every_section_in_order_and_escapes_text(tmp_path):
  out = report.render_report(made_up_report(), tmp_path / "r.html")
  page = report_page.parse(out)
  assert page.sections == list(report.SECTIONS)
  text = " ".join(page.text)
  for title in report.SECTIONS.values():
    assert title in text
  assert "BLESSED" in text and "NOT BLESSED" not in text
  assert "Out-of-range <b>values</b>" in text  # shown as text, not markup
  assert "1764273600" in text
  # Flagged slices of the made-up data: Horror below 0.7 for `interaction`, Film-Noir and an AUC-less slice
  # too small; nothing else.
  assert "genres=Horror" in text and "genres=Film-Noir" in text and "user_activity=<20" in text
  assert "genres=Comedy" not in text
  assert "ndcg@10" in text and "Recall@20" in text and "Full catalog" in text


def test_missing_plots_are_explained_not_drawn(tmp_path):
  made_up = made_up_report(with_plots=False)
  no_baseline = Blessing(False, None, (ThresholdCheck("interaction", "auc", ">= 0.7", 0.65, None, False),))
  out = report.render_report(
      report_data.RunReport(**{**made_up.__dict__, "blessing": no_baseline, "ranking": ()}), tmp_path / "r.html")
  page = report_page.parse(out)
  assert page.sections == list(report.SECTIONS)
  text = " ".join(page.text)
  assert "The Evaluator did not compute ConfusionMatrixPlot" in text
  assert "The Evaluator did not compute CalibrationPlot" in text
  assert "NOT BLESSED" in text and "only the absolute thresholds" in text
  assert "Ranking quality was not computed" in text
  assert not {"curves", "calibration", "scores", "ranking"} & set(page.images)


def test_slice_verdicts():
  assert SliceResult("g", "a", 100.0, 0.65).verdict(0.7, 30) == report_data.BELOW
  assert SliceResult("g", "a", 100.0, 0.75).verdict(0.7, 30) == report_data.OK
  assert SliceResult("g", "a", 29.0, 0.95).verdict(0.7, 30) == report_data.TOO_SMALL
  assert SliceResult("g", "a", 500.0, math.nan).verdict(0.7, 30) == report_data.CANNOT_JUDGE
  assert SliceResult("g", "a", 500.0, 0.1).verdict(None, 30) == report_data.OK


def test_single_class_and_empty_slices_cannot_be_judged(tmp_path):
  # TFMA reports AUC 0 on a slice of one class (the `interaction` head's is_sampled=1 slice): not a failure.
  sampled = SliceResult("is_sampled", "1", 1000.0, 0.0, mean_label=0.0)
  rated = SliceResult("is_sampled", "0", 800.0, 0.0, mean_label=1.0)
  empty = SliceResult("genres", "Film-Noir", 0.0, math.nan)
  for result in (sampled, rated, empty):
    assert result.verdict(0.7, 30) == report_data.CANNOT_JUDGE
  assert SliceResult("g", "a", 500.0, 0.65, mean_label=0.3).verdict(0.7, 30) == report_data.BELOW
  made_up = made_up_report()
  head = dataclasses.replace(made_up.heads[0], slices=(sampled, rated))
  out = report.render_report(dataclasses.replace(made_up, heads=(head,) + made_up.heads[1:]), tmp_path / "r.html")
  rows = [row for row in out.read_text().split("<tr>") if "is_sampled=" in row]
  assert len(rows) == 2 and all(report_data.CANNOT_JUDGE in row and "undefined" in row for row in rows), rows


def test_confusion_curve_rates_on_a_hand_made_case():
  # labels 1,1,0,0 with scores 0.9,0.4,0.6,0.1; thresholds 0.5 and 0.95.
  curve = _confusion(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1]), np.array([0.5, 0.95]))
  fpr, tpr = curve.roc()
  np.testing.assert_allclose(fpr, [0.5, 0.0])
  np.testing.assert_allclose(tpr, [0.5, 0.0])
  recall, precision = curve.precision_recall()  # nothing predicted positive at 0.95: dropped
  np.testing.assert_allclose(recall, [0.5])
  np.testing.assert_allclose(precision, [0.5])


def test_calibration_rebin_sums_buckets():
  histogram = CalibrationHistogram(lower=np.array([-math.inf, 0.0, 0.25, 0.5, 0.75, 1.0]),
                                   weight=np.array([1.0, 2, 3, 4, 5, 6]), label_sum=np.array([0.0, 1, 1, 2, 4, 6]),
                                   prediction_sum=np.array([0.0, 0.2, 1, 2.4, 4, 6]))
  binned = histogram.rebin(np.array([0.0, 0.5, 1.0]))
  np.testing.assert_allclose(binned.weight, [1 + 2 + 3, 4 + 5 + 6])
  np.testing.assert_allclose(binned.label_sum, [2, 12])
  np.testing.assert_allclose(binned.prediction_sum, [1.2, 12.4])


def _chromium() -> str:
  path = shutil.which("chromium")
  if path is None:
    pytest.skip("headless Chromium not installed (Debian: apt-get install -y chromium)")
  return path


def _chromium_run(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
  """Runs headless Chromium on `page` with `mode` flags (--screenshot=..., --dump-dom), logging to stderr."""
  flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-logging=stderr", f"--user-data-dir={tmp_path / 'chromium-profile'}"]
  return subprocess.run([_chromium(), *flags, *mode, page.as_uri()], capture_output=True, text=True,
                        timeout=120, check=False)


def _page_errors(stderr: str) -> List[str]:
  """Chromium log lines about the page: console messages (script errors) and failed loads."""
  return [line for line in stderr.splitlines() if ":CONSOLE" in line or "net::ERR" in line]


def test_chromium_check_catches_a_broken_page(tmp_path):
  page = tmp_path / "broken.html"
  page.write_text("<html><body><script>throw new Error('kaput')</script></body></html>")
  done = _chromium_run(page, tmp_path, "--dump-dom")
  assert any("kaput" in line for line in _page_errors(done.stderr)), done.stderr


def test_report_renders_in_headless_chromium(tmp_path):
  page = report.render_report(made_up_report(), tmp_path / "report.html")
  shot = tmp_path / "screenshot.png"
  done = _chromium_run(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,4000")
  assert done.returncode == 0, done.stderr
  assert not _page_errors(done.stderr), done.stderr
  report_page.assert_png_not_blank(shot.read_bytes(), "screenshot")
  dom = _chromium_run(page, tmp_path, "--dump-dom")
  assert dom.returncode == 0 and not _page_errors(dom.stderr), dom.stderr
  rendered = report_page.ReportPage()
  rendered.feed(dom.stdout)
  assert rendered.sections == list(report.SECTIONS)
  assert len(rendered.images) == 7


def _write_examples(path: Path, rows) -> None:
  """GZIP tf.Examples with the data layer's feature names; rows: (user, movie, rating, timestamp, is_sampled)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from components import features

  path.parent.mkdir(parents=True, exist_ok=True)
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for user, movie, rating, timestamp, is_sampled in rows:
      def text(value: str) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

      def integer(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

      writer.write(tf.train.Example(features=tf.train.Features(feature={
          features.USER_ID: text(user), features.MOVIE_ID: text(movie), features.GENRES: text("Drama"),
          features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[rating])),
          features.TIMESTAMP: integer(timestamp), features.LIKED: integer(rating >= features.LIKED_THRESHOLD),
          features.INTERACTION: integer(not is_sampled), features.IS_SAMPLED: integer(is_sampled),
          features.USER_ACTIVITY: text("<20")})).SerializeToString())


def _save_lookup_model(export_dir: Path, scores: Dict[str, float]) -> None:
  """A SavedModel whose `predict` signature returns scores["user|movie"] (0 when absent)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  class Lookup(tf.Module):

    def __init__(self):
      super().__init__()
      self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
          tf.constant(list(scores)), tf.constant(list(scores.values()), tf.float32)), default_value=0.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)])
    def predict(self, user_id, movie_id):
      score = self.table.lookup(tf.strings.join([user_id, movie_id], separator="|"))
      return {"score": score, "interaction": score, "liked": score}

  module = Lookup()
  tf.saved_model.save(module, str(export_dir), signatures={"predict": module.predict})


def test_ranking_section_on_a_hand_made_case(tmp_path):
  """Three eval users, four shared sampled movies; HR@3 / NDCG@3 worked out by hand for both rankers."""
  from tfx.types import artifact_utils, standard_artifacts
  from tfx.utils import path_utils

  from pipeline.report import load as report_load

  negatives = ("n1", "n2", "n3", "n4")
  eval_rows = [("u1", "a", 5.0, 300, 0), ("u1", "d", 4.0, 100, 0),  # a is u1's latest liked movie
               ("u2", "b", 4.5, 300, 0), ("u3", "c", 4.0, 200, 0),
               ("u3", "e", 2.0, 400, 0)]  # latest, but not liked: c stays u3's positive
  eval_rows += [(user, movie, 0.0, 0, 1) for user in ("u1", "u2", "u3") for movie in negatives]
  train_counts = {"a": 5, "n1": 4, "b": 3, "n2": 2, "n3": 1}  # c and n4 never rated in train
  train_rows = [(f"t{i}", movie, 3.0, 1, 0) for movie, count in train_counts.items() for i in range(count)]
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / "examples")
  examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
  _write_examples(Path(artifact_utils.get_split_uri([examples], "train")) / "data.gz", train_rows)
  _write_examples(Path(artifact_utils.get_split_uri([examples], "eval")) / "data.gz", eval_rows)
  scores = {"u1|a": 0.9, "u1|d": 0.0, "u1|n1": 0.1, "u1|n2": 0.2, "u1|n3": 0.3, "u1|n4": 0.4,  # rank 0
            "u2|b": 0.5, "u2|n1": 0.9, "u2|n2": 0.8, "u2|n3": 0.1, "u2|n4": 0.2,  # rank 2
            "u3|c": 0.05, "u3|n1": 0.1, "u3|n2": 0.2, "u3|n3": 0.3, "u3|n4": 0.4}  # rank 4: miss
  model_uri = tmp_path / "model"
  _save_lookup_model(Path(path_utils.serving_model_path(str(model_uri))), scores)

  model, popular = report_load.ranking_scores(str(model_uri), examples, k=3, model_aucs={"liked": 0.5})

  assert (model.k, model.users, popular.users) == (3, 3, 3)
  assert model.auc == {"liked": 0.5}
  assert model.hit_rate == pytest.approx(2 / 3)
  assert model.ndcg == pytest.approx((1 + 1 / math.log2(4)) / 3)
  # Popularity: u1's a (5) beats 4,2,1,0 -> rank 0; u2's b (3) is behind n1 (4) -> rank 1; u3's c (0) is
  # behind three and tied with n4 -> rank 3.5, a miss at 3.
  assert popular.hit_rate == pytest.approx(2 / 3)
  assert popular.ndcg == pytest.approx((1 + 1 / math.log2(3)) / 3)
  # AUC of popularity: `interaction` over all 17 eval examples (a beats all 12 sampled, b 9 of them, d, c and e
  # tie with the 3 n4s) = 25.5 / 60; `liked` over the 5 rated ones (a and b beat e, d and c tie with it) = 3 / 4.
  assert popular.auc == pytest.approx({"interaction": 25.5 / 60, "liked": 0.75})


def test_anomalies_are_read_from_the_artifact_most_severe_first(tmp_path):
  from tensorflow_metadata.proto.v0 import anomalies_pb2
  from tfx.components.example_validator import executor
  from tfx.types import artifact_utils, standard_artifacts

  from pipeline.report import load as report_load

  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = str(tmp_path)
  artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
  found = {"train": {"rating": anomalies_pb2.AnomalyInfo.WARNING},
           "eval": {"genres": anomalies_pb2.AnomalyInfo.ERROR, "user_id": anomalies_pb2.AnomalyInfo.WARNING}}
  for split, by_feature in found.items():
    proto = anomalies_pb2.Anomalies()
    for feature, severity in by_feature.items():
      info = proto.anomaly_info[feature]
      info.severity = severity
      info.reason.add(short_description=f"odd {feature}", description=f"{feature} is odd in {split}")
    path = Path(artifact_utils.get_split_uri([artifact], split)) / executor.DEFAULT_FILE_NAME
    path.parent.mkdir(parents=True)
    path.write_bytes(proto.SerializeToString())

  anomalies = report_load.read_anomalies(artifact)

  assert [(a.split, a.feature, a.severity) for a in anomalies] == [
      ("eval", "genres", "ERROR"), ("eval", "user_id", "WARNING"), ("train", "rating", "WARNING")]
  assert anomalies[0].description == "odd genres: genres is odd in eval"


def test_summary_lines_name_the_verdict_and_numbers():
  lines = report.summary_lines(made_up_report())
  assert lines[0].endswith("blessed, pushed version 1764273600")
  assert "AUC interaction: 0.7900 (baseline 0.7800)" in lines
  assert ("most popular: HR@10 0.4500, NDCG@10 0.2500, AUC interaction 0.7000, AUC liked 0.5500 (60 users)"
          in lines)
  assert "NCF, full catalog: Recall@20 0.2100, NDCG@20 0.1800 (55 of 58 users, 200 movies)" in lines


def test_infra_validation_verdict_and_the_reason_of_a_refusal_are_shown(tmp_path):
  from pipeline.infra_validation import Verdict

  made_up = made_up_report(with_plots=False)
  assert "The InfraValidator did not run" in " ".join(report_page.parse(report.render_report(made_up, tmp_path / "r.html")).text)
  refused = Verdict(False, "signature 'predict' on 8 eval examples: the server answered INVALID_ARGUMENT: <b>no</b>",
                    "embedded server", 0, 4.2)
  not_served = dataclasses.replace(made_up, infra_validation=refused)
  text = " ".join(report_page.parse(report.render_report(not_served, tmp_path / "r.html")).text)
  assert "NOT INFRA BLESSED" in text and refused.reason in text  # the reason as text, not markup
  assert f"NOT infra blessed: {refused.reason}" in report.summary_lines(not_served)
  served = dataclasses.replace(made_up, infra_validation=Verdict(True, "", "embedded server", 5, 9.13))
  text = " ".join(report_page.parse(report.render_report(served, tmp_path / "r.html")).text)
  assert "INFRA BLESSED" in text and "NOT INFRA BLESSED" not in text
  assert "5 queries answered like the SavedModel on the embedded server in 9.1 s" in text


def test_calibration_rebin_by_weight_merges_neighbours_into_even_bins():
  histogram = CalibrationHistogram(lower=np.array([0.3, 0.1, 0.2, 0.4, 0.9]), weight=np.array([1.0, 1, 0, 1, 1]),
                                   label_sum=np.array([1.0, 0, 0, 1, 1]),
                                   prediction_sum=np.array([0.3, 0.1, 0, 0.4, 0.9]))
  binned = histogram.rebin_by_weight(2)  # by score: 0.1 (1), 0.2 (0), 0.3 (1) | 0.4 (1), 0.9 (1)
  np.testing.assert_allclose(binned.lower, [0.1, 0.4])
  np.testing.assert_allclose(binned.weight, [2, 2])
  np.testing.assert_allclose(binned.label_sum, [1, 2])
  np.testing.assert_allclose(binned.prediction_sum, [0.4, 1.3])


def test_report_command_without_a_store_says_so(tmp_path, capsys):
  from pipeline import cli

  status = cli.main(["report", "--pipeline-root", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.html")])
  assert status == 2
  assert f"no ML Metadata store at {tmp_path / 'nothing' / 'metadata.sqlite'}" in capsys.readouterr().err
  assert not (tmp_path / "r.html").exists()
