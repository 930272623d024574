"""The drift check of spans: this span's statistics against the previous span's, with TFDV's drift comparators.

ExampleValidator in TFX 1.16 takes no previous statistics, and TFX's DistributionValidator builds its own schema
from the baseline statistics instead of using the one the pipeline imports. So DriftValidator applies the
thresholds of DriftConfig as drift comparators to the imported schema (curated or inferred; the file is never
edited), runs `tfdv.validate_statistics(statistics, schema, previous_statistics=...)` on the train split, and
records the drift anomalies as an ExampleAnomalies artifact laid out as ExampleValidator's
(Split-<split>/SchemaDiff.pb, readable with pipeline/runs/reader.py). DriftGate then fails the run before
Transform with DataDriftError naming each feature, its distance and its threshold, as the anomalies gate does. The
first span has no previous one: the check passes and records that nothing was compared.
"""
import dataclasses
import json
from typing import List, Sequence

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_metadata.proto.v0 import statistics_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import features
from pipeline import anomalies_gate
from pipeline import span_resolvers
from pipeline.config import DriftConfig
from pipeline.runs import reader

DRIFT = ("ExampleAnomalies", "drift")  # DriftValidator's output as pipeline/runs/reader.py looks it up
# The custom property of the drift artifact naming the span it was compared with (absent: nothing compared).
PREVIOUS_SPAN = "previous_span"
# Train only: a span's eval mixes its rated movies with sampled ones, whose share moves with how many ratings each
# user gave that period, and its rated movies are the next span's train, compared when that span runs.
COMPARED_SPLITS = (features.TRAIN_SPLIT,)
_DRIFT_REASONS = frozenset([
    anomalies_pb2.AnomalyInfo.COMPARATOR_L_INFTY_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
    anomalies_pb2.AnomalyInfo.COMPARATOR_CONTROL_DATA_MISSING,
    anomalies_pb2.AnomalyInfo.COMPARATOR_TREATMENT_DATA_MISSING,
])


class DataDriftError(ValueError):
  """A span's statistics moved too far from the previous span's; the message names features, distances and
  thresholds."""


@dataclasses.dataclass(frozen=True)
class DriftComparator:
  """One feature's drift comparator: `kind` is the FeatureComparator field (infinity_norm or
  jensen_shannon_divergence)."""
  feature: str
  kind: str
  threshold: float


def comparators(config: DriftConfig) -> List[DriftComparator]:
  """The comparators of `config`: L-infinity on the categorical movie_id and genres, Jensen-Shannon on rating."""
  return [DriftComparator(features.MOVIE_ID, "infinity_norm", config.movie_id_linf),
          DriftComparator(features.GENRES, "infinity_norm", config.genres_linf),
          DriftComparator(features.RATING, "jensen_shannon_divergence", config.rating_jsd)]


def with_drift_comparators(schema: schema_pb2.Schema, drift: Sequence[DriftComparator]) -> schema_pb2.Schema:
  """A copy of `schema` whose features carry the drift comparators of `drift`."""
  result = schema_pb2.Schema()
  result.CopyFrom(schema)
  by_name = {feature.name: feature for feature in result.feature}
  for comparator in drift:
    if comparator.feature not in by_name:
      raise ValueError(f"the drift check compares feature {comparator.feature!r}, which the schema does not have "
                       f"(its features: {', '.join(sorted(by_name))})")
    getattr(by_name[comparator.feature].drift_comparator, comparator.kind).threshold = comparator.threshold
  return result


def drift_anomalies(statistics: statistics_pb2.DatasetFeatureStatisticsList,
                    previous: statistics_pb2.DatasetFeatureStatisticsList, schema: schema_pb2.Schema,
                    drift: Sequence[DriftComparator]) -> anomalies_pb2.Anomalies:
  """TFDV's drift anomalies of `statistics` against `previous` under the comparators `drift` (every other anomaly
  of the schema is ExampleValidator's business), plus one for each comparator that cannot measure its feature:
  TFDV records a distance of 0 for those (L-infinity of a numeric feature, a feature missing in one span)."""
  import tensorflow_data_validation as tfdv  # pylint: disable=g-import-not-at-top

  found = tfdv.validate_statistics(statistics, with_drift_comparators(schema, drift), previous_statistics=previous)
  result = anomalies_pb2.Anomalies()
  result.drift_skew_info.extend(found.drift_skew_info)
  for name, info in found.anomaly_info.items():
    reasons = [reason for reason in info.reason if reason.type in _DRIFT_REASONS]
    if reasons:
      kept = result.anomaly_info[name]
      kept.path.CopyFrom(info.path)
      kept.severity = info.severity
      kept.reason.extend(reasons)
  for comparator in drift:
    unmeasurable = [span for span, stats in (("this", statistics), ("the previous", previous))
                    if not _measurable(stats, comparator)]
    if unmeasurable:
      info = result.anomaly_info[comparator.feature]
      info.path.step[:] = [comparator.feature]
      info.severity = anomalies_pb2.AnomalyInfo.ERROR
      info.reason.add(type=anomalies_pb2.AnomalyInfo.STATS_NOT_AVAILABLE, short_description="Drift not measured",
                      description=f"{comparator.kind} needs {_NEEDS[comparator.kind]} statistics of the feature, "
                                  f"which {' and '.join(unmeasurable)} span's statistics lack")
  return result


_NEEDS = {"infinity_norm": "categorical (string)", "jensen_shannon_divergence": "numeric or categorical"}


def _measurable(statistics: statistics_pb2.DatasetFeatureStatisticsList, comparator: DriftComparator) -> bool:
  """Whether the statistics hold what `comparator` compares: value shares (string_stats) for L-infinity, those
  or histograms (num_stats) for Jensen-Shannon."""
  for dataset in statistics.datasets:
    for feature in dataset.features:
      if (feature.name or ".".join(feature.path.step)) == comparator.feature:
        return feature.HasField("string_stats") or (comparator.kind == "jensen_shannon_divergence"
                                                    and feature.HasField("num_stats"))
  return False


def describe(drift: standard_artifacts.ExampleAnomalies) -> str:
  """DriftValidator's verdict in its artifact `drift`, e.g. "span 4 vs span 3: drift in genres"."""
  if not drift.has_custom_property(PREVIOUS_SPAN):
    return f"span {drift.span}: no previous span, nothing compared"
  drifted = sorted({feature for split in reader.split_names(drift)
                    for feature in reader.load_anomalies(drift, split).anomaly_info})
  verdict = f"drift in {', '.join(drifted)}" if drifted else "no drift"
  return f"span {drift.span} vs span {drift.get_int_custom_property(PREVIOUS_SPAN)}: {verdict}"


def check_drift(drift: standard_artifacts.ExampleAnomalies) -> None:
  """Raises DataDriftError if any split of DriftValidator's artifact `drift` holds a drift anomaly."""
  anomalies_gate.raise_for_anomalies(
      drift, DataDriftError,
      f"span {drift.span}'s statistics drifted from span {drift.get_int_custom_property(PREVIOUS_SPAN)}'s beyond "
      "the drift check's thresholds (DriftConfig); the run stops before training.")


@component
def DriftValidator(  # pylint: disable=invalid-name
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    examples: InputArtifact[standard_artifacts.Examples],
    drift: OutputArtifact[standard_artifacts.ExampleAnomalies],
    drift_comparators: Parameter[str],
    # Both None for the first span.
    previous_examples: InputArtifact[standard_artifacts.Examples] = None,
    previous_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None
) -> None:
  """Writes the drift anomalies of each of COMPARED_SPLITS of `statistics` (of `examples`) against the same split
  of `previous_statistics` (of `previous_examples`) under `drift_comparators` (JSON list of DriftComparator
  fields); the artifact's span is that of `examples`, its PREVIOUS_SPAN that of `previous_examples`."""
  from tfx.components.statistics_gen import stats_artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.types import artifact_utils  # pylint: disable=g-import-not-at-top
  from tfx.utils import io_utils  # pylint: disable=g-import-not-at-top
  from tfx.utils import writer_utils  # pylint: disable=g-import-not-at-top

  splits = [split for split in reader.split_names(statistics) if split in COMPARED_SPLITS]
  drift.split_names = artifact_utils.encode_split_names(splits)
  drift.span = span_resolvers.span_of(examples)
  if previous_statistics is None:
    for split in splits:
      writer_utils.write_anomalies(reader.anomalies_file(drift, split), anomalies_pb2.Anomalies())
    return
  drift.set_int_custom_property(PREVIOUS_SPAN, span_resolvers.span_of(previous_examples))
  compared = [DriftComparator(**fields) for fields in json.loads(drift_comparators)]
  imported = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
  for split in splits:
    found = drift_anomalies(stats_artifact_utils.load_statistics(statistics, split).proto(),
                            stats_artifact_utils.load_statistics(previous_statistics, split).proto(), imported,
                            compared)
    writer_utils.write_anomalies(reader.anomalies_file(drift, split), found)


@component
def DriftGate(drift: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:  # pylint: disable=invalid-name
  """Fails the run when DriftValidator's `drift` lists any drift anomaly."""
  check_drift(drift)
