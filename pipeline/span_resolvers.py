"""Resolver strategies over spans: the rolling window of the last N spans, and the span before this run's one.

Both end at the span this run's ExampleGen read (`current`), not at the largest span ML Metadata holds, look back
only at accepted spans (ones a Transform run completed on: a span that the anomalies or the drift gate stopped
never enters a window and is never the reference of a drift check, so one bad span does not poison the next), and
keep the newest artifact of each span: TFX's SpanRangeStrategy (RollingRange) ends at the largest span of any run, so a
run on an older span would train on later data, and it keeps every artifact of a span, so a span imported again
after its files changed would count twice. TFX 1.16's Kubeflow V2 compiler compiles neither strategy (it knows
LatestArtifactStrategy and LatestBlessedModelStrategy only; see pipeline/runners/kubeflow.py).

Their inputs are `current`, this run's ExampleGen output, and channels such as `Channel(type=Examples,
output_key="examples")` that hold every artifact of that type the pipeline output under that key, in any run; the
strategies narrow those down. See `_span_nodes` in pipeline/pipeline.py.
"""
from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common.resolver import ResolverStrategy

HISTORY = "history"
CURRENT = "current"
PREVIOUS_EXAMPLES = "previous_examples"
PREVIOUS_STATISTICS = "previous_statistics"
TRANSFORM_TYPE_SUFFIX = ".Transform"  # the MLMD execution type of TFX's Transform component
SPAN = "span"  # ExampleGen records it as a custom property (StatisticsGen's copy of it reads the unset property: 0)


def span_of(examples: types.Artifact) -> int:
  """The span number of an Examples artifact of ExampleGen."""
  return examples.get_int_custom_property(SPAN)


def newest_per_span(artifacts: List[types.Artifact], last_span: int) -> Dict[int, types.Artifact]:
  """{span: the newest artifact of that span} over the Examples artifacts of spans <= `last_span`."""
  newest: Dict[int, types.Artifact] = {}
  for artifact in sorted(artifacts, key=lambda a: (a.mlmd_artifact.create_time_since_epoch, a.id)):
    if span_of(artifact) <= last_span:
      newest[span_of(artifact)] = artifact
  return newest


def accepted(store: mlmd.MetadataStore, artifacts: Dict[int, types.Artifact]) -> Dict[int, types.Artifact]:
  """The entries of `artifacts` ({span: Examples}) that a Transform execution read and completed on."""
  from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

  if not artifacts:
    return {}
  readers: Dict[int, List[int]] = {}
  for event in store.get_events_by_artifact_ids([a.id for a in artifacts.values()]):
    if event.type == metadata_store_pb2.Event.INPUT:
      readers.setdefault(event.execution_id, []).append(event.artifact_id)
  executions = store.get_executions_by_id(list(readers))
  types_by_id = {t.id: t.name for t in store.get_execution_types_by_id(list({e.type_id for e in executions}))}
  done = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
  trained = {artifact_id for e in executions
             if types_by_id[e.type_id].endswith(TRANSFORM_TYPE_SUFFIX) and e.last_known_state in done
             for artifact_id in readers[e.id]}
  return {span: artifact for span, artifact in artifacts.items() if artifact.id in trained}


class SpanWindowStrategy(ResolverStrategy):
  """Resolves `history` (Examples) to `current` and the newest artifact of each of the accepted spans before it,
  the last `num_spans` spans in all, oldest span first (`current` passes through)."""

  def __init__(self, num_spans: int):
    if num_spans < 1:
      raise ValueError(f"the span window must hold at least one span, got {num_spans}")
    self._num_spans = num_spans

  def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                        ) -> Optional[Dict[str, List[types.Artifact]]]:
    current = input_dict[CURRENT]
    last_span = max(span_of(a) for a in current)
    newest = accepted(store, newest_per_span(input_dict[HISTORY], last_span - 1))
    newest.update({span_of(a): a for a in current})
    return {HISTORY: [newest[span] for span in sorted(newest)[-self._num_spans:]], CURRENT: current}


class PreviousSpanStrategy(ResolverStrategy):
  """Resolves `previous_examples` (every Examples artifact of ExampleGen) to the newest artifact of the largest
  accepted span below `current`'s that has statistics, and `previous_statistics` (every ExampleStatistics) to the newest
  statistics computed from it; both empty when there is none (the first span). `current` passes through.

  StatisticsGen's artifacts carry no usable span (see SPAN), so the statistics are found by lineage in ML
  Metadata: the outputs of the executions that read the previous Examples artifact.
  """

  def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                        ) -> Optional[Dict[str, List[types.Artifact]]]:
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=g-import-not-at-top

    current = input_dict[CURRENT]
    newest = accepted(store, newest_per_span(input_dict[PREVIOUS_EXAMPLES], min(span_of(a) for a in current) - 1))
    for span in sorted(newest, reverse=True):  # a span whose StatisticsGen failed has none: the one before it
      readers = {event.execution_id for event in store.get_events_by_artifact_ids([newest[span].id])
                 if event.type == metadata_store_pb2.Event.INPUT}
      computed = {event.artifact_id for event in store.get_events_by_execution_ids(sorted(readers))
                  if event.type == metadata_store_pb2.Event.OUTPUT}
      statistics = [a for a in input_dict[PREVIOUS_STATISTICS] if a.id in computed]
      if statistics:
        return {PREVIOUS_EXAMPLES: [newest[span]], CURRENT: current, PREVIOUS_STATISTICS: [
            max(statistics, key=lambda a: (a.mlmd_artifact.create_time_since_epoch, a.id))]}
    return {PREVIOUS_EXAMPLES: [], PREVIOUS_STATISTICS: [], CURRENT: current}
