"""AUCs of the most-popular baseline on the eval split, shown next to the model's TFMA AUCs in the report.

The baseline scores a movie by its rating count in the train split. Examples and labels are the Evaluator's:
`interaction` over every eval example (rated 1, sampled unrated 0); `liked` over rated eval examples only
(the Evaluator weights it by `interaction`).
"""
from pathlib import Path
from typing import Dict

from components import features
from pipeline.metrics import ranking


def popularity_aucs(train_dir: Path, eval_dir: Path) -> Dict[str, float]:
  """{"interaction": AUC, "liked": AUC} of train rating counts as scores on the eval split."""
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top

  evaluation = ranking.read_split(eval_dir, [features.MOVIE_ID, features.INTERACTION, features.LIKED])
  scores = ranking.popularity_scores(train_dir, evaluation[features.MOVIE_ID])
  rated = evaluation[features.INTERACTION] == 1
  return {features.INTERACTION: float(roc_auc_score(evaluation[features.INTERACTION], scores)),
          features.LIKED: float(roc_auc_score(evaluation[features.LIKED][rated], scores[rated]))}
