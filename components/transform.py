"""Transform module: `preprocessing_fn` turns raw ids into vocabulary indices and passes the labels through.

Vocabularies are computed on the train split only (the pipeline's Transform analyzes `train`), so ids first seen
in eval or at serving time map to the OOV buckets, which the Trainer teaches through id dropout.
"""
from typing import Any, Dict, Mapping, Optional

import tensorflow as tf
import tensorflow_transform as tft

from components import features

DEFAULT_OOV_BUCKETS = 1
# Run this preprocessing_fn in TF1 graph mode (the Transform component's `force_tf_compat_v1`). In TF2 mode TFT
# traces it as a tf.function in which every deferred vocabulary's lookup table is initialised, and warns about
# each one (tensorflow/transform#249); graph mode builds the same tables once. Same outputs, and measured on a
# tiny pipeline run: Transform 33 -> 23 s, Trainer 34 -> 26 s (its export traces the transform graph). TensorFlow
# still logs one harmless C++ line per phase ("Operation ... InitializeTableFromTextFileV2 was changed by setting
# attribute after it was run by a session": TFT's graph-mode table initialiser marks an op already run).
FORCE_TF_COMPAT_V1 = True
# Raw features copied unchanged: labels for the Trainer, slicing keys for debugging transformed data.
PASSTHROUGH_INT_FEATURES = (features.LIKED, features.INTERACTION, features.IS_SAMPLED)


def _to_dense_1d(tensor: Any, default_value: Any) -> tf.Tensor:
  """Returns a [batch] tensor from a [batch], [batch, 1] dense or a [batch, <=1] sparse/ragged feature."""
  if isinstance(tensor, tf.sparse.SparseTensor):
    tensor = tf.sparse.to_dense(tf.sparse.reset_shape(tensor, [tf.shape(tensor, out_type=tf.int64)[0], 1]),
                                default_value=default_value)
  elif isinstance(tensor, tf.RaggedTensor):
    tensor = tensor.to_tensor(default_value=default_value, shape=[None, 1])
  return tf.reshape(tensor, [-1])


def oov_buckets(custom_config: Optional[Mapping[str, Any]]) -> int:
  """The number of OOV buckets the pipeline asked for (TrainConfig.vocab_oov_buckets)."""
  return int((custom_config or {}).get("vocab_oov_buckets", DEFAULT_OOV_BUCKETS))


def preprocessing_fn(inputs: Mapping[str, Any],
                     custom_config: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """Maps raw features to model inputs.

  Args:
    inputs: raw features parsed with the schema: `user_id`, `movie_id` ([batch] or [batch, 1] strings),
      `genres` (sparse or ragged [batch, None] strings), int labels `liked`, `interaction`, `is_sampled`,
      float `rating`.
    custom_config: {"vocab_oov_buckets": int}, from the pipeline's TrainConfig.

  Returns:
    `user_id`, `movie_id`: int64 [batch] vocabulary indices (OOV ids >= vocabulary size);
    `genres`: int64 sparse [batch, None] genre indices (every genre of the movie, not only the first);
    `liked`, `interaction`, `is_sampled`: int64 [batch], unchanged; `rating`: float32 [batch], unchanged.
  """
  num_oov = oov_buckets(custom_config)
  outputs = {}
  for id_feature in (features.USER_ID, features.MOVIE_ID):
    outputs[id_feature] = tft.compute_and_apply_vocabulary(
        _to_dense_1d(inputs[id_feature], default_value=b""),
        num_oov_buckets=num_oov, vocab_filename=id_feature)
  genres = inputs[features.GENRES]
  if isinstance(genres, tf.RaggedTensor):
    genres = genres.to_sparse()
  outputs[features.GENRES] = tft.compute_and_apply_vocabulary(
      genres, num_oov_buckets=num_oov, vocab_filename=features.GENRES)
  for name in PASSTHROUGH_INT_FEATURES:
    outputs[name] = _to_dense_1d(inputs[name], default_value=tf.constant(0, tf.int64))
  outputs[features.RATING] = _to_dense_1d(inputs[features.RATING], default_value=tf.constant(0.0, tf.float32))
  return outputs
