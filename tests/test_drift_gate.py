"""The drift check: comparators from the config on the imported schema, TFDV's drift anomalies between two spans'
statistics, and the gate's error naming feature, distance and threshold."""
from typing import Optional

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2

from components import features
from pipeline import drift_gate
from pipeline.config import DriftConfig
from pipeline.runs import reader
from tests.support import testdata

CONFIG = DriftConfig(movie_id_linf=0.2, genres_linf=0.1, rating_jsd=0.1)


def _statistics(tmp_path, name: str, examples):
  import tensorflow_data_validation as tfdv

  path = tmp_path / f"{name}.tfrecord"
  with tf.io.TFRecordWriter(str(path)) as writer:
    for example in examples:
      writer.write(example.SerializeToString())
  return tfdv.generate_statistics_from_tfrecord(str(path))


def _with(examples, feature: str, values):
  changed = []
  for example in examples:
    copy = tf.train.Example()
    copy.CopyFrom(example)
    field = copy.features.feature[feature]
    kind = field.WhichOneof("kind")
    del getattr(field, kind).value[:]
    getattr(field, kind).value.extend(values)
    changed.append(copy)
  return changed


@pytest.fixture(scope="module")
def statistics(tmp_path_factory):
  """Statistics of one span's train examples, of another draw of the same data, and of drifted copies."""
  work = tmp_path_factory.mktemp("drift")
  previous = testdata.make_examples(testdata.TinyData(seed=0))[features.TRAIN_SPLIT]
  current = testdata.make_examples(testdata.TinyData(seed=1))[features.TRAIN_SPLIT]
  return {"previous": _statistics(work, "previous", previous), "current": _statistics(work, "current", current),
          "drama": _statistics(work, "drama", _with(current, features.GENRES, [b"Drama"])),
          "one_star": _statistics(work, "one_star", _with(current, features.RATING, [1.0]))}


def test_comparators_come_from_the_config_and_leave_the_schema_file_alone():
  schema = testdata.load_schema()
  before = testdata.SCHEMA_FILE.read_text()
  applied = drift_gate.with_drift_comparators(schema, drift_gate.comparators(CONFIG))
  by_name = {feature.name: feature for feature in applied.feature}
  assert by_name[features.MOVIE_ID].drift_comparator.infinity_norm.threshold == pytest.approx(0.2)
  assert by_name[features.GENRES].drift_comparator.infinity_norm.threshold == pytest.approx(0.1)
  assert by_name[features.RATING].drift_comparator.jensen_shannon_divergence.threshold == pytest.approx(0.1)
  assert not any(feature.HasField("drift_comparator") for feature in schema.feature)  # a copy was changed
  assert testdata.SCHEMA_FILE.read_text() == before
  with pytest.raises(ValueError, match="'title', which the schema does not have"):
    drift_gate.with_drift_comparators(schema, [drift_gate.DriftComparator("title", "infinity_norm", 0.1)])


def _drift(statistics, name: str) -> anomalies_pb2.Anomalies:
  return drift_gate.drift_anomalies(statistics[name], statistics["previous"], testdata.load_schema(),
                                    drift_gate.comparators(CONFIG))


def _measured(anomalies: anomalies_pb2.Anomalies) -> dict:
  return {".".join(info.path.step): (m.value, m.threshold) for info in anomalies.drift_skew_info
          for m in info.drift_measurements}


def test_a_similar_span_has_no_drift_but_every_feature_is_measured(statistics):
  anomalies = _drift(statistics, "current")
  assert not anomalies.anomaly_info
  measured = _measured(anomalies)
  assert set(measured) == {features.MOVIE_ID, features.GENRES, features.RATING}
  assert all(value <= threshold for value, threshold in measured.values())


def test_drifted_genres_and_ratings_are_anomalies_of_their_feature(statistics):
  genres = _drift(statistics, "drama")
  assert set(genres.anomaly_info) == {features.GENRES}
  distance, threshold = _measured(genres)[features.GENRES]
  assert distance > threshold == pytest.approx(CONFIG.genres_linf)
  assert [r.type for r in genres.anomaly_info[features.GENRES].reason] == [
      anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH]
  ratings = _drift(statistics, "one_star")
  assert set(ratings.anomaly_info) == {features.RATING}
  assert [r.type for r in ratings.anomaly_info[features.RATING].reason] == [
      anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH]


def test_a_comparator_tfdv_cannot_measure_is_an_anomaly_not_a_silent_pass(statistics):
  # L-infinity compares value shares of categorical features; TFDV records 0 for a numeric one.
  anomalies = drift_gate.drift_anomalies(statistics["current"], statistics["previous"], testdata.load_schema(),
                                         [drift_gate.DriftComparator(features.TIMESTAMP, "infinity_norm", 0.1)])
  reasons = anomalies.anomaly_info[features.TIMESTAMP].reason
  assert [r.short_description for r in reasons] == ["Drift not measured"]


def _drift_artifact(tmp_path, per_split: dict, span: int = 4, previous_span: Optional[int] = 3):
  from tfx.types import artifact_utils, standard_artifacts
  from tfx.utils import writer_utils

  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = str(tmp_path / "drift")
  artifact.split_names = artifact_utils.encode_split_names(list(per_split))
  artifact.span = span
  if previous_span is not None:
    artifact.set_int_custom_property(drift_gate.PREVIOUS_SPAN, previous_span)
  for split, anomalies in per_split.items():
    writer_utils.write_anomalies(reader.anomalies_file(artifact, split), anomalies)
  return artifact


def test_the_gate_names_split_feature_distance_threshold_and_spans(statistics, tmp_path):
  genres = _drift(statistics, "drama")
  artifact = _drift_artifact(tmp_path, {"train": anomalies_pb2.Anomalies(), "eval": genres})
  with pytest.raises(drift_gate.DataDriftError) as raised:
    drift_gate.check_drift(artifact)
  message = str(raised.value)
  distance, threshold = _measured(genres)[features.GENRES]
  assert "span 4's statistics drifted from span 3's" in message
  assert "split 'eval'" in message and "split 'train'" not in message
  assert f"{features.GENRES}: " in message and features.MOVIE_ID not in message
  assert f"is {distance:.6g} (up to six significant digits), above the threshold {threshold:g}" in message
  assert reader.anomalies_file(artifact, "eval") in message
  assert drift_gate.describe(artifact) == "span 4 vs span 3: drift in genres"


def test_the_gate_passes_without_drift_and_without_a_previous_span(statistics, tmp_path):
  similar = _drift_artifact(tmp_path / "similar", {"train": _drift(statistics, "current")})
  drift_gate.check_drift(similar)
  assert drift_gate.describe(similar) == "span 4 vs span 3: no drift"
  first = _drift_artifact(tmp_path / "first", {"train": anomalies_pb2.Anomalies()}, span=1, previous_span=None)
  drift_gate.check_drift(first)
  assert drift_gate.describe(first) == "span 1: no previous span, nothing compared"

