"""The Evaluator's baseline: the latest blessed model other than the candidate."""
from typing import List

from tfx.types import standard_artifacts

from pipeline.baseline import CANDIDATE, MODEL, MODEL_BLESSING, LatestBlessedOtherModelStrategy


def _model(artifact_id: int) -> standard_artifacts.Model:
  model = standard_artifacts.Model()
  model.id = artifact_id
  return model


def _blessing(model_id: int, blessed: bool) -> standard_artifacts.ModelBlessing:
  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property("current_model_id", model_id)
  blessing.set_int_custom_property("blessed", int(blessed))
  return blessing


def _resolve(models: List[int], blessings: List[standard_artifacts.ModelBlessing], candidate: int) -> dict:
  inputs = {MODEL: [_model(i) for i in models], MODEL_BLESSING: blessings, CANDIDATE: [_model(candidate)]}
  return LatestBlessedOtherModelStrategy().resolve_artifacts(store=None, input_dict=inputs)


def test_candidate_that_is_the_latest_blessed_model_is_not_its_own_baseline():
  resolved = _resolve([1, 2], [_blessing(1, True), _blessing(2, True)], candidate=2)
  assert [m.id for m in resolved[MODEL]] == [1]
  assert [b.get_int_custom_property("current_model_id") for b in resolved[MODEL_BLESSING]] == [1]
  assert [m.id for m in resolved[CANDIDATE]] == [2]


def test_new_candidate_gets_the_latest_blessed_model_and_skips_unblessed_ones():
  resolved = _resolve([1, 2, 3], [_blessing(1, True), _blessing(2, True), _blessing(3, False)], candidate=4)
  assert [m.id for m in resolved[MODEL]] == [2]


def test_no_baseline_when_only_the_candidate_was_ever_blessed():
  resolved = _resolve([1], [_blessing(1, True)], candidate=1)
  assert resolved[MODEL] == [] and resolved[MODEL_BLESSING] == []
