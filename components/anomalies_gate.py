"""A component that stops the run when ExampleValidator found anomalies.

ExampleValidator only records anomalies; Transform and Trainer would go on with bad data. This gate reads the
anomalies artifact and fails (so every orchestrator stops the run) with a message that names each anomaly and
the report file to open. Transform runs after it.
"""
import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

ANOMALIES_FILE = "SchemaDiff.pb"


class ExampleAnomaliesError(ValueError):
  """The examples do not match the schema; the message lists the anomalies and where the report is."""


def anomaly_lines(anomalies: anomalies_pb2.Anomalies) -> List[str]:
  """One line per anomalous feature: `feature: short description (description)`."""
  lines = []
  for feature, info in sorted(anomalies.anomaly_info.items()):
    reasons = "; ".join(f"{reason.short_description}: {reason.description}" for reason in info.reason)
    lines.append(f"{feature}: {reasons or info.description}")
  if anomalies.HasField("dataset_anomaly_info"):
    lines.append(f"(dataset): {anomalies.dataset_anomaly_info.description}")
  return lines


def check_anomalies(uri: str, split_names: List[str]) -> None:
  """Raises ExampleAnomaliesError if any split's anomalies report under `uri` is not empty."""
  problems = []
  for split in split_names:
    # fileio, not pathlib: under Kubeflow/Vertex the artifact URI is a gs:// path.
    report = os.path.join(uri, f"Split-{split}", ANOMALIES_FILE)
    with fileio.open(report, "rb") as f:
      anomalies = anomalies_pb2.Anomalies.FromString(f.read())
    lines = anomaly_lines(anomalies)
    if lines:
      problems.append(f"split '{split}' ({report}):\n    " + "\n    ".join(lines))
  if problems:
    raise ExampleAnomaliesError(
        "ExampleValidator found anomalies against the schema; the run stops before training.\n  "
        + "\n  ".join(problems))


@tfx.dsl.components.component
def AnomaliesGate(anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies]
                  ) -> None:  # pylint: disable=invalid-name
  """Fails the run when `anomalies` (ExampleValidator's output) lists any anomaly."""
  check_anomalies(anomalies.uri, artifact_utils.decode_split_names(anomalies.split_names))
