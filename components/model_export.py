"""Exports the NeuMF as a TF Serving SavedModel whose signatures all run the Transform graph first.

The signatures and their input and output names are the contract in `components/signatures.py`; `recommend`
ranks every movie of the vocabulary (OOV buckets excluded). Warmup requests for TF Serving go to
`signatures.WARMUP_FILE`.
"""
from pathlib import Path
from typing import Dict, List, Union

import keras
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from components import features
from components import model as ncf_model
from components import signatures
from components.hparams import TrainConfig

WARMUP_BATCH = 4


def _raw_id_tensor(values: tf.Tensor, spec: Union[tf.io.FixedLenFeature, tf.io.VarLenFeature]) -> tf.Tensor:
  """Shapes a string [B] tensor like the parsed raw feature (spec from the schema) the Transform graph expects."""
  if isinstance(spec, tf.io.VarLenFeature):
    return tf.sparse.from_dense(tf.expand_dims(values, -1))
  return tf.reshape(values, tf.concat([tf.shape(values), tf.constant(spec.shape, tf.int32)], 0))


class NcfServingModule(tf.Module):
  """Holds the Keras model, the Transform layer and the movie vocabulary; its tf.functions are the signatures."""

  def __init__(self, model: keras.Model, tf_transform_output: tft.TFTransformOutput, recommend_k: int,
               liked_blend: float):
    super().__init__()
    self.model = model
    self.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    self._id_specs = {name: raw_spec[name] for name in (features.USER_ID, features.MOVIE_ID)}
    movie_vocab = tf_transform_output.vocabulary_by_name(features.MOVIE_ID)
    self._movie_vocab = tf.constant(movie_vocab, tf.string)
    self._k = min(recommend_k, len(movie_vocab))
    self._liked_blend = liked_blend

  def _heads(self, raw_ids: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    transformed = self.tft_layer(raw_ids)
    return self._score(tf.reshape(transformed[features.USER_ID], [-1]),
                       tf.reshape(transformed[features.MOVIE_ID], [-1]))

  def _score(self, users: tf.Tensor, movies: tf.Tensor) -> Dict[str, tf.Tensor]:
    """int64 [n] user and movie indices -> {interaction, liked, score}: float32 [n]."""
    heads = self.model({features.USER_ID: users, features.MOVIE_ID: movies}, training=False)
    interaction = heads[ncf_model.INTERACTION_HEAD]
    liked = heads[ncf_model.LIKED_HEAD]
    return {signatures.INTERACTION_OUTPUT: interaction, signatures.LIKED_OUTPUT: liked,
            signatures.SCORE_OUTPUT: interaction * tf.pow(liked, self._liked_blend)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES_INPUT)])
  def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serialized tf.Examples [B] (only user_id and movie_id are read) -> head probabilities and score [B]."""
    return self._heads(tf.io.parse_example(examples, self._id_specs))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.USER_ID_INPUT),
                                tf.TensorSpec([None], tf.string, name=signatures.MOVIE_ID_INPUT)])
  def predict(self, user_id: tf.Tensor, movie_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Raw ids [B], [B] -> score, interaction, liked [B]."""
    return self._heads({features.USER_ID: _raw_id_tensor(user_id, self._id_specs[features.USER_ID]),
                        features.MOVIE_ID: _raw_id_tensor(movie_id, self._id_specs[features.MOVIE_ID])})

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.USER_ID_INPUT)])
  def recommend(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Raw user ids [B] -> movie_ids (string [B, K]) and scores (float32 [B, K]), best first."""
    transformed = self.tft_layer({features.USER_ID: _raw_id_tensor(user_id, self._id_specs[features.USER_ID])})
    users = tf.reshape(transformed[features.USER_ID], [-1])
    num_users = tf.shape(users)[0]
    num_movies = tf.shape(self._movie_vocab, out_type=tf.int64)[0]
    # Every known movie for every user: [B * M] pairs, scored in one batch; OOV buckets are never candidates.
    movies = tf.tile(tf.range(num_movies), [num_users])
    scores = tf.reshape(self._score(tf.repeat(users, tf.cast(num_movies, tf.int32)), movies)[signatures.SCORE_OUTPUT],
                        [num_users, -1])
    top = tf.math.top_k(scores, k=self._k)
    return {signatures.RECOMMENDED_MOVIE_IDS: tf.gather(self._movie_vocab, top.indices),
            signatures.RECOMMENDED_SCORES: top.values}


def _string_tensor(values: List[bytes]) -> tf.Tensor:
  return tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)])


def write_warmup_requests(export_dir: Path, model_name: str, users: List[bytes], movies: List[bytes]) -> Path:
  """Writes PredictionLog records for `predict` and `recommend` (TF Serving replays them before serving)."""
  path = export_dir / signatures.WARMUP_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  requests = {
      signatures.PREDICT: {signatures.USER_ID_INPUT: _string_tensor(users),
                           signatures.MOVIE_ID_INPUT: _string_tensor(movies)},
      signatures.RECOMMEND: {signatures.USER_ID_INPUT: _string_tensor(users)},
  }
  with tf.io.TFRecordWriter(str(path)) as writer:
    for signature, inputs in requests.items():
      request = predict_pb2.PredictRequest(
          model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature))
      for name, tensor in inputs.items():
        request.inputs[name].CopyFrom(tensor)
      log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())
  return path


def export_serving_model(model: keras.Model, tf_transform_output: tft.TFTransformOutput, export_dir: Path,
                         config: TrainConfig, model_name: str) -> None:
  """Saves `model` with the serving_default / predict / recommend signatures and warmup requests."""
  module = NcfServingModule(model, tf_transform_output, config.recommend_k, config.liked_blend)
  tf.saved_model.save(module, str(export_dir), signatures={
      signatures.SERVING_DEFAULT: module.serve_examples.get_concrete_function(),
      signatures.PREDICT: module.predict.get_concrete_function(),
      signatures.RECOMMEND: module.recommend.get_concrete_function(),
  })
  # Known ids plus one unseen id, so warmup also runs the OOV path.
  users = tf_transform_output.vocabulary_by_name(features.USER_ID)[:WARMUP_BATCH - 1] + [b"warmup-unseen-user"]
  movies = tf_transform_output.vocabulary_by_name(features.MOVIE_ID)[:WARMUP_BATCH]
  movies = (movies * WARMUP_BATCH)[:len(users)]
  write_warmup_requests(export_dir, model_name, users, movies)
