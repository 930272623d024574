"""Exports the NeuMF as a TF Serving SavedModel whose signatures all run the Transform graph first.

Signatures (model name "ncf" by default):
  serving_default: examples (string [B], serialized tf.Example) -> interaction, liked, score (float32 [B]);
  predict: user_id, movie_id (string [B]) -> score, interaction, liked (float32 [B]);
  recommend: user_id (string [B]) -> movie_ids (string [B, K]), scores (float32 [B, K]), best first, over every
    movie of the vocabulary (OOV buckets excluded).
Warmup requests for TF Serving go to assets.extra/tf_serving_warmup_requests.
"""
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Union

os.environ["TF_USE_LEGACY_KERAS"] = "0"

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
from tensorflow_serving.apis import model_pb2  # noqa: E402
from tensorflow_serving.apis import predict_pb2  # noqa: E402
from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402

from components import features  # noqa: E402
from components import model as ncf_model  # noqa: E402
from pipeline.config import TrainConfig  # noqa: E402

SCORE = "score"
RECOMMENDED_MOVIE_IDS = "movie_ids"
RECOMMENDED_SCORES = "scores"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
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
    return {ncf_model.INTERACTION_HEAD: interaction, ncf_model.LIKED_HEAD: liked,
            SCORE: interaction * tf.pow(liked, self._liked_blend)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serialized tf.Examples [B] (only user_id and movie_id are read) -> head probabilities and score [B]."""
    return self._heads(tf.io.parse_example(examples, self._id_specs))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.USER_ID),
                                tf.TensorSpec([None], tf.string, name=features.MOVIE_ID)])
  def predict(self, user_id: tf.Tensor, movie_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Raw ids [B], [B] -> score, interaction, liked [B]."""
    return self._heads({features.USER_ID: _raw_id_tensor(user_id, self._id_specs[features.USER_ID]),
                        features.MOVIE_ID: _raw_id_tensor(movie_id, self._id_specs[features.MOVIE_ID])})

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.USER_ID)])
  def recommend(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Raw user ids [B] -> movie_ids (string [B, K]) and scores (float32 [B, K]), best first."""
    transformed = self.tft_layer({features.USER_ID: _raw_id_tensor(user_id, self._id_specs[features.USER_ID])})
    users = tf.reshape(transformed[features.USER_ID], [-1])
    num_users = tf.shape(users)[0]
    num_movies = tf.shape(self._movie_vocab, out_type=tf.int64)[0]
    # Every known movie for every user: [B * M] pairs, scored in one batch; OOV buckets are never candidates.
    movies = tf.tile(tf.range(num_movies), [num_users])
    scores = tf.reshape(self._score(tf.repeat(users, tf.cast(num_movies, tf.int32)), movies)[SCORE],
                        [num_users, -1])
    top = tf.math.top_k(scores, k=self._k)
    return {RECOMMENDED_MOVIE_IDS: tf.gather(self._movie_vocab, top.indices), RECOMMENDED_SCORES: top.values}


def _string_tensor(values: List[bytes]) -> tf.Tensor:
  return tf.make_tensor_proto(values, dtype=tf.string, shape=[len(values)])


def write_warmup_requests(export_dir: Path, model_name: str, users: List[bytes], movies: List[bytes]) -> Path:
  """Writes PredictionLog records for `predict` and `recommend` (TF Serving replays them before serving)."""
  path = export_dir / WARMUP_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  requests = {
      "predict": {features.USER_ID: _string_tensor(users), features.MOVIE_ID: _string_tensor(movies)},
      "recommend": {features.USER_ID: _string_tensor(users)},
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
      "serving_default": module.serve_examples.get_concrete_function(),
      "predict": module.predict.get_concrete_function(),
      "recommend": module.recommend.get_concrete_function(),
  })
  # Known ids plus one unseen id, so warmup also runs the OOV path.
  users = tf_transform_output.vocabulary_by_name(features.USER_ID)[:WARMUP_BATCH - 1] + [b"warmup-unseen-user"]
  movies = tf_transform_output.vocabulary_by_name(features.MOVIE_ID)[:WARMUP_BATCH]
  movies = (movies * WARMUP_BATCH)[:len(users)]
  write_warmup_requests(export_dir, model_name, users, movies)


def export_tiny_ncf_model(export_dir: Path, model_name: str = "ncf") -> None:
  """Trains a small NeuMF on made-up data for a couple of seconds and exports it exactly like the pipeline does.

  For other areas' tests (serving, clients). `export_dir` receives the SavedModel (saved_model.pb, variables/,
  assets/, assets.extra/tf_serving_warmup_requests); the known user ids are "1".."60", movie ids "1".."40".
  """
  from components import testdata  # Beam and tft_beam are only needed here, not at serving time.
  from components import trainer

  with tempfile.TemporaryDirectory() as work:
    work_dir = Path(work)
    testdata.write_examples(testdata.make_examples(), work_dir / "raw")
    transform_dir, transformed_train = testdata.run_transform(work_dir / "raw", work_dir / "transform")
    tf_transform_output = tft.TFTransformOutput(str(transform_dir))
    train_config = testdata.TINY_TRAIN
    model, _ = trainer.train_model([transformed_train], tf_transform_output, testdata.tfrecord_dataset_factory,
                                   testdata.TINY_MODEL, train_config)
    export_serving_model(model, tf_transform_output, Path(export_dir), train_config, model_name)
