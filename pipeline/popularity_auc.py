"""AUCs of the most-popular baseline on the eval split, shown next to the model's TFMA AUCs in the report.

The baseline scores a movie by its rating count in the train split. Examples and labels are the Evaluator's:
`interaction` over every eval example (rated 1, sampled unrated 0); `liked` over rated eval examples only
(the Evaluator weights it by `interaction`).
"""
from pathlib import Path
from typing import Dict

import numpy as np

from components import features


def read_columns(split_dir: Path) -> Dict[str, np.ndarray]:
  """movie_id (bytes [n]), interaction and liked (int64 [n]) of the GZIP tf.Examples in `split_dir`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  files = sorted(str(path) for path in Path(split_dir).glob("*.gz"))
  if not files:
    raise FileNotFoundError(f"no *.gz tf.Example files in {split_dir}")
  spec = {features.MOVIE_ID: tf.io.FixedLenFeature([], tf.string),
          features.INTERACTION: tf.io.FixedLenFeature([], tf.int64),
          features.LIKED: tf.io.FixedLenFeature([], tf.int64)}
  batches = [batch for batch in tf.data.TFRecordDataset(files, compression_type="GZIP").batch(65_536).map(
      lambda records: tf.io.parse_example(records, spec)).as_numpy_iterator()]
  return {name: np.concatenate([batch[name] for batch in batches]) for name in spec}


def popularity_aucs(train_dir: Path, eval_dir: Path) -> Dict[str, float]:
  """{"interaction": AUC, "liked": AUC} of train rating counts as scores on the eval split."""
  from sklearn.metrics import roc_auc_score  # pylint: disable=g-import-not-at-top

  movies, counts = np.unique(read_columns(train_dir)[features.MOVIE_ID], return_counts=True)
  popularity = dict(zip(movies, counts))
  evaluation = read_columns(eval_dir)
  scores = np.array([popularity.get(movie, 0) for movie in evaluation[features.MOVIE_ID]], float)
  rated = evaluation[features.INTERACTION] == 1
  return {features.INTERACTION: float(roc_auc_score(evaluation[features.INTERACTION], scores)),
          features.LIKED: float(roc_auc_score(evaluation[features.LIKED][rated], scores[rated]))}
