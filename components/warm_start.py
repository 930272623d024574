"""Warm start: a freshly built NeuMF takes the weights of a base model, the serving SavedModel of an earlier run
(the Trainer's `base_model`, the latest blessed model).

Vocabularies change between spans, so the id embedding tables are copied by id, not by index: a row of an id
both vocabularies know moves to the id's new index, ids only the new vocabulary knows keep their fresh
initialisation, ids only the base knew are dropped. The OOV bucket rows are copied too when both models have the
same number of buckets (the bucket of an unseen id is a hash of it modulo that number, so bucket i holds the
same ids): they learnt the average unseen id, which is what an OOV row should start from. The genre
projection's kernel rows are copied by genre the same way. Weights whose shape does not depend on the
vocabularies (the MLP and head Dense layers, the liked calibration) are copied as they are. The genre table `movie_genres` is not trained and stays the current catalog's.

A base model of another shape (another embedding dim, MLP layers, liked tower) cannot be warm-started from:
`warm_start` raises a ValueError that names every layer and both shapes, rather than silently training cold,
so a run that asked to start from the blessed model never reports that it did while it did not. After a
deliberate change of the model's shape, run once without --warm-start; the next blessed model has the new shape.

Only weights are copied: the optimizer starts fresh (Adam's moments of the base are not carried over).
"""
import dataclasses
import logging
import os
from typing import Dict, Mapping, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

from components import features
from components import model as ncf_model
from components import model_export

_LOG = logging.getLogger(__name__)

# Weights with one row per vocabulary index (plus OOV buckets), by the vocabulary that indexes them: the id
# embedding tables, and the genre projection, whose kernel has a row per genre index (the genre vocabulary
# changes too: a window of spans may lack a genre its predecessor had).
ID_TABLES = {
    features.USER_ID: ("user_gmf_embedding", "user_mlp_embedding", f"user_{ncf_model.LIKED_HEAD}_embedding",
                       *(f"{head}_user_bias" for head in ncf_model.HEADS),
                       f"{ncf_model.TOWERS_LIKED_OUTPUT}_user_bias"),
    features.MOVIE_ID: ("movie_gmf_embedding", "movie_mlp_embedding", f"movie_{ncf_model.LIKED_HEAD}_embedding",
                        *(f"{head}_movie_bias" for head in ncf_model.HEADS),
                        f"{ncf_model.TOWERS_LIKED_OUTPUT}_movie_bias"),
    features.GENRES: ("genre_projection",),
}
# Built from the current catalog and not trained: never copied.
CATALOG_TABLES = ("movie_genres",)


@dataclasses.dataclass(frozen=True)
class RowMapping:
  """Where the rows of a base table go in the new table of the same vocabulary.

  Attributes:
    new_rows / base_rows: int64 [n] indices; new_table[new_rows] = base_table[base_rows] (known ids, then the
      OOV buckets when copied).
    copied / new / dropped: ids both vocabularies know, ids only the new one knows, ids only the base knew.
    oov_copied: whether the OOV bucket rows are among the copied rows (same number of buckets on both sides).
  """
  new_rows: np.ndarray
  base_rows: np.ndarray
  copied: int
  new: int
  dropped: int
  oov_copied: bool


@dataclasses.dataclass(frozen=True)
class WarmStartSummary:
  """What `warm_start` copied: per vocabulary (user_id, movie_id, genres) its RowMapping, and the other weights."""
  base_model: str
  ids: Dict[str, RowMapping]
  tables_copied: Tuple[str, ...]  # weights copied row by row by id
  weights_copied: Tuple[str, ...]  # weights copied as they are

  def describe(self) -> str:
    """e.g. "users 900 copied, 43 new, 12 dropped; movies ...; 7 id tables, 9 other weights" """
    sides = "; ".join(
        f"{name} {m.copied:,} copied, {m.new:,} new, {m.dropped:,} dropped"
        f"{'' if m.oov_copied else ' (OOV buckets fresh: their number changed)'}"
        for name, m in (("users", self.ids[features.USER_ID]), ("movies", self.ids[features.MOVIE_ID])))
    return (f"warm start from {self.base_model}: {sides}; {len(self.tables_copied)} id tables, "
            f"{len(self.weights_copied)} other weights copied")


def row_mapping(base_vocabulary: Sequence[bytes], base_rows: int, new_vocabulary: Sequence[bytes],
                new_rows: int) -> RowMapping:
  """Maps the rows of a base table ([base_rows, D]: the base vocabulary, then its OOV buckets) to a new table
  ([new_rows, D]) by id."""
  base_index = {token: index for index, token in enumerate(base_vocabulary)}
  pairs = [(new, base_index[token]) for new, token in enumerate(new_vocabulary) if token in base_index]
  new_known, base_known = len(new_vocabulary), len(base_vocabulary)
  base_oov, new_oov = base_rows - base_known, new_rows - new_known
  oov_copied = base_oov == new_oov
  if oov_copied:
    pairs += [(new_known + bucket, base_known + bucket) for bucket in range(new_oov)]
  new_indices = np.array([new for new, _ in pairs], np.int64)
  base_indices = np.array([base for _, base in pairs], np.int64)
  copied = len(pairs) - (new_oov if oov_copied else 0)
  return RowMapping(new_rows=new_indices, base_rows=base_indices, copied=copied, new=new_known - copied,
                    dropped=base_known - copied, oov_copied=oov_copied)


def read_vocabulary(base_model_dir: str, name: str) -> Sequence[bytes]:
  """The Transform vocabulary `name` (one id per line, index order) the base SavedModel carries as an asset."""
  path = os.path.join(base_model_dir, "assets", name)
  if not tf.io.gfile.exists(path):
    raise ValueError(f"cannot warm-start from {base_model_dir}: it has no vocabulary asset {name!r} "
                     f"(expected {path}); is it a serving model exported by components/model_export.py?")
  with tf.io.gfile.GFile(path, "rb") as vocabulary:
    return [line.rstrip(b"\r\n") for line in vocabulary]


def read_model_weights(base_model_dir: str) -> Dict[str, np.ndarray]:
  """{"<layer>/<weight>": value} of the Keras model in the base SavedModel: its `model_weights`
  (model_export.MODEL_WEIGHTS), or, in exports of earlier versions, the tracked Keras `model` less its optimizer.
  """
  if not tf.io.gfile.exists(os.path.join(base_model_dir, "saved_model.pb")):
    raise ValueError(f"cannot warm-start from {base_model_dir}: no saved_model.pb there")
  loaded = tf.saved_model.load(base_model_dir)
  if hasattr(loaded, model_export.MODEL_WEIGHTS):
    return {path: variable.numpy() for path, variable in getattr(loaded, model_export.MODEL_WEIGHTS).items()}
  model = getattr(loaded, "model", None)
  if model is None:
    raise ValueError(f"cannot warm-start from {base_model_dir}: the SavedModel tracks neither "
                     f"`{model_export.MODEL_WEIGHTS}` nor `model` (the Keras model's weights that "
                     "components/model_export.py exports)")
  weights, seen, queue = {}, {id(model)}, [model]
  while queue:  # the model's object graph, less the optimizer (its slots, and its references to the weights)
    for name, child in tf.train.TrackableView.children(queue.pop()).items():
      if name == "optimizer" or id(child) in seen:
        continue
      seen.add(id(child))
      if isinstance(child, tf.Variable):
        weights[child.name.split(":")[0]] = child.numpy()
      else:
        queue.append(child)
  if not weights:
    raise ValueError(f"cannot warm-start from {base_model_dir}: its `model` holds no variables")
  return weights


def warm_start(model: keras.Model, base_model_dir: str,
               vocabularies: Mapping[str, Sequence[bytes]]) -> WarmStartSummary:
  """Copies the weights of the base serving SavedModel at `base_model_dir` into the freshly built `model`.

  Args:
    model: the new NeuMF (components/model.py build_model), sized by `vocabularies` plus OOV buckets.
    base_model_dir: the base model's serving SavedModel (the Trainer's fn_args.base_model).
    vocabularies: the new model's Transform vocabularies, {"user_id": [...], "movie_id": [...], "genres": [...]}
      (bytes in index order).

  Returns:
    What was copied, also logged.

  Raises:
    ValueError: naming `base_model_dir` and what is missing or of another shape.
  """
  base_weights = read_model_weights(base_model_dir)
  unused = set(base_weights)
  mappings: Dict[str, RowMapping] = {}
  tables, copied, problems = [], [], []
  layer_vocabulary = {table: name for name, names in ID_TABLES.items() for table in names}
  for layer in model.layers:
    for weight in layer.weights:
      path = weight.path
      unused.discard(path)
      if layer.name in CATALOG_TABLES:
        continue
      if path not in base_weights:
        problems.append(f"{path}: not in the base model (new shape {tuple(weight.shape)})")
        continue
      base, new = base_weights[path], tuple(weight.shape)
      vocabulary = layer_vocabulary.get(layer.name)
      if vocabulary is None:
        if base.shape != new:
          problems.append(f"{path}: base shape {base.shape}, new shape {new}")
          continue
        weight.assign(base)
        copied.append(path)
        continue
      if base.shape[1:] != new[1:]:
        problems.append(f"{path}: base shape {base.shape}, new shape {new}")
        continue
      if vocabulary not in mappings:
        base_vocabulary = read_vocabulary(base_model_dir, vocabulary)
        if base.shape[0] < len(base_vocabulary):
          raise ValueError(f"cannot warm-start from {base_model_dir}: {path} has {base.shape[0]} rows, fewer "
                           f"than its vocabulary {vocabulary!r} has ids ({len(base_vocabulary)})")
        mappings[vocabulary] = row_mapping(base_vocabulary, base.shape[0], vocabularies[vocabulary], new[0])
      mapping = mappings[vocabulary]
      value = weight.numpy()
      value[mapping.new_rows] = base[mapping.base_rows]
      weight.assign(value)
      tables.append(path)
  problems += [f"{path}: in the base model only" for path in sorted(unused)
               if path.split("/")[0] not in CATALOG_TABLES]
  if problems:
    raise ValueError(f"cannot warm-start from {base_model_dir}: the model's shape changed since it was trained "
                     "(train once without --warm-start): " + "; ".join(problems))
  for vocabulary in ID_TABLES:
    if vocabulary not in mappings:
      raise ValueError(f"cannot warm-start from {base_model_dir}: the new model has no {vocabulary} table")
  summary = WarmStartSummary(base_model=base_model_dir, ids=mappings, tables_copied=tuple(tables),
                             weights_copied=tuple(copied))
  _LOG.info("%s", summary.describe())
  return summary
