"""A component that stops the run when ExampleValidator found anomalies.

ExampleValidator only records anomalies; Transform and Trainer would go on with bad data. This gate reads the
anomalies artifact and fails (so every orchestrator stops the run) with a message that names each anomaly and
the report file to open. Transform runs after it.
"""
from typing import List, Type

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline.runs import reader


class ExampleAnomaliesError(ValueError):
  """The examples do not match the schema; the message lists the anomalies and where the report is."""


def anomaly_lines(anomalies: anomalies_pb2.Anomalies) -> List[str]:
  """One line per anomalous feature: `feature: short description (description)`."""
  lines = [f"{feature}: {reader.anomaly_reasons(info)}" for feature, info in sorted(anomalies.anomaly_info.items())]
  if anomalies.HasField("dataset_anomaly_info"):
    lines.append(f"(dataset): {anomalies.dataset_anomaly_info.description}")
  return lines


def raise_for_anomalies(anomalies: standard_artifacts.ExampleAnomalies, error: Type[Exception],
                        headline: str) -> None:
  """Raises `error`(`headline` and one line per anomaly, under its split and report file) if any split's
  anomalies report of the artifact `anomalies` (ExampleValidator's layout) is not empty."""
  problems = []
  for split in reader.split_names(anomalies):
    lines = anomaly_lines(reader.load_anomalies(anomalies, split))
    if lines:
      problems.append(f"split '{split}' ({reader.anomalies_file(anomalies, split)}):\n    " + "\n    ".join(lines))
  if problems:
    raise error(headline + "\n  " + "\n  ".join(problems))


def check_anomalies(anomalies: standard_artifacts.ExampleAnomalies) -> None:
  """Raises ExampleAnomaliesError if any split's anomalies report of the artifact `anomalies` is not empty."""
  raise_for_anomalies(anomalies, ExampleAnomaliesError,
                      "ExampleValidator found anomalies against the schema; the run stops before training.")


@component
def AnomaliesGate(  # pylint: disable=invalid-name
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]) -> None:
  """Fails the run when `anomalies` (ExampleValidator's output) lists any anomaly."""
  check_anomalies(anomalies)
