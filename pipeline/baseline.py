"""The model the Evaluator compares a candidate with: the latest blessed model other than the candidate.

TFX's LatestBlessedModelStrategy hands a repeated run its own model as the baseline once the first run blessed
it. The Evaluator's inputs then differ from the first run's, so the Evaluator and the Pusher run again and push
the same model as a new version. Leaving the candidate out keeps an identical re-run fully cached, while a
retrained model is still judged against the blessed model it would replace.
"""
from typing import Dict, List, Optional

import ml_metadata as mlmd
from tfx import types
from tfx.dsl.components.common.resolver import ResolverStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

MODEL = "model"
MODEL_BLESSING = "model_blessing"
CANDIDATE = "candidate"


class LatestBlessedOtherModelStrategy(ResolverStrategy):
  """Resolves `model` and `model_blessing` to the latest blessed Model whose id is not in `candidate`.

  Use with `tfx.dsl.Resolver(strategy_class=..., model=Channel(Model), model_blessing=Channel(ModelBlessing),
  candidate=trainer.outputs["model"])`; both outputs are empty when no other model was ever blessed.
  """

  def resolve_artifacts(self, store: mlmd.MetadataStore, input_dict: Dict[str, List[types.Artifact]]
                        ) -> Optional[Dict[str, List[types.Artifact]]]:
    candidate_ids = {model.id for model in input_dict[CANDIDATE]}
    others = {MODEL: [model for model in input_dict[MODEL] if model.id not in candidate_ids],
              MODEL_BLESSING: list(input_dict[MODEL_BLESSING])}
    resolved = LatestBlessedModelStrategy().resolve_artifacts(store, others)
    return {**resolved, CANDIDATE: input_dict[CANDIDATE]}
