"""Exports the NeuMF as a TF Serving SavedModel whose signatures all run the Transform graph first.

The signatures and their input and output names are the contract in `components/signatures.py`. `recommend`
ranks the movies of the vocabulary (OOV buckets excluded) with `CatalogRanker`: a cheap candidate score over the
whole catalog, then the exact NeuMF over `recommend_candidates` movies (all of them when the catalog is no
larger, which is exact). With `recommend_precompute` the export runs it once for every user row and `recommend`
gathers the row's list (`PrecomputedRanker`). Warmup requests for TF Serving go to `signatures.WARMUP_FILE`.
"""
import functools
import logging
import time
from pathlib import Path
from typing import Dict, List, Tuple, Union

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_transform.saved import saved_transform_io_v2

from components import features
from components import model as ncf_model
from components import signatures
from components.hparams import TrainConfig

_LOG = logging.getLogger(__name__)
WARMUP_BATCH = 4
# The serving SavedModel's {weight path: variable} of the Keras model (what warm start reads back).
MODEL_WEIGHTS = "model_weights"


def _raw_id_tensor(values: tf.Tensor, spec: Union[tf.io.FixedLenFeature, tf.io.VarLenFeature]) -> tf.Tensor:
  """Shapes a string [B] tensor like the parsed raw feature (spec from the schema) the Transform graph expects."""
  if isinstance(spec, tf.io.VarLenFeature):
    return tf.sparse.from_dense(tf.expand_dims(values, -1))
  return tf.reshape(values, tf.concat([tf.shape(values), tf.constant(spec.shape, tf.int32)], 0))


def _variable(weight: keras.Variable) -> tf.Variable:
  """The tf.Variable behind a Keras weight: the one the traced signatures read."""
  return weight.value


def _dense_weights(model: keras.Model, name: str) -> Tuple[np.ndarray, np.ndarray]:
  """(kernel, bias) of the Dense layer `name`."""
  kernel, bias = model.get_layer(name).get_weights()
  return kernel, bias


class CatalogRanker(tf.Module):
  """Top K of the known movies for a batch of users by the NeuMF's score, P(interaction) * P(liked) ** blend.

  A candidate score over the whole catalog, one matrix product, picks `candidates` movies: the blend-weighted
  sum of both heads' logits with their exact GMF part and movie biases but the MLP part of the average known
  user (a linear stand-in for log P(interaction) + blend * log P(liked)). The exact NeuMF then re-ranks them.
  With `candidates` >= the catalog it re-ranks the whole catalog, which is exact. Movie-side tables (the movie
  half of the MLP's first layer among them) are computed here once; user-side lookups read the model's own
  embedding variables. A `liked` head with factors of its own (ModelConfig.liked_tower "mf") adds u_l . m_l to
  its logit, in both stages; with "rating" its logit is that factorisation alone (the towers' `liked` head is
  not served). Shapes: B users, M known movies, C candidates, G GMF dim, L liked factors (0 when
  shared), H1 first MLP layer.
  """

  def __init__(self, model: keras.Model, known_users: int, known_movies: int, candidates: int,
               liked_blend: float):
    super().__init__()
    layer_names = {layer.name for layer in model.layers}
    mlp_names = [f"mlp_{i}" for i in range(len(layer_names)) if f"mlp_{i}" in layer_names]
    if not mlp_names:
      raise ValueError("recommend needs a NeuMF with at least one MLP layer (ModelConfig.mlp_layers is empty)")
    self._candidates = min(candidates, known_movies)
    self._exact = candidates >= known_movies
    self._liked_blend = liked_blend
    self._user_gmf = _variable(model.get_layer("user_gmf_embedding").embeddings)
    self._user_mlp = _variable(model.get_layer("user_mlp_embedding").embeddings)
    self._user_biases = [_variable(model.get_layer(f"{head}_user_bias").embeddings) for head in ncf_model.HEADS]
    user_dim = self._user_mlp.shape[1]
    first_kernel, first_bias = _dense_weights(model, mlp_names[0])
    self._first_user_kernel = first_kernel[:user_dim]  # [E, H1]
    # The movie half of the first MLP layer: movie embedding and projected genres, plus the layer's bias.
    movie_mlp = model.get_layer("movie_mlp_embedding").get_weights()[0][:known_movies]
    genres = model.get_layer("movie_genres").get_weights()[0][:known_movies]
    genre_vectors = genres @ model.get_layer("genre_projection").get_weights()[0]
    movie_first = np.concatenate([movie_mlp, genre_vectors], 1) @ first_kernel[user_dim:] + first_bias
    self._movie_first = tf.Variable(movie_first.astype(np.float32), trainable=False, name="movie_first_layer")
    movie_gmf = model.get_layer("movie_gmf_embedding").get_weights()[0][:known_movies]
    self._movie_gmf = tf.Variable(movie_gmf, trainable=False, name="movie_gmf")
    self._mlp_rest = [_dense_weights(model, name) for name in mlp_names[1:]]
    # With liked_tower "rating" the served `liked` logit has no towers' part: its column of the head kernel is 0.
    head_kernels, head_biases = zip(*(
        _dense_weights(model, f"{head}_dense") if f"{head}_dense" in layer_names
        else (np.zeros((model.get_layer("neumf").output.shape[-1], 1), np.float32), np.zeros(1, np.float32))
        for head in ncf_model.HEADS))
    head_kernel = np.concatenate(head_kernels, 1)  # [G + H_last, heads], heads in ncf_model.HEADS order
    liked_mf = ncf_model.LIKED_CALIBRATION in layer_names
    # The liked head's own factors (L dims; L = 0 without them) and their multiple a * x + c (1, 0 without):
    # liked logit = towers' part + a * (u_l . m_l + user bias + movie bias) + c. a and c are folded into the
    # movie-side tables here and into the user side (model variables) at request time.
    scale, offset = ([w.reshape(()) for w in model.get_layer(ncf_model.LIKED_CALIBRATION).get_weights()]
                     if liked_mf else (np.float32(1), np.float32(0)))
    self._head_scale = tf.constant([1.0, scale], tf.float32)  # heads in ncf_model.HEADS order
    self._user_liked = (_variable(model.get_layer(f"user_{ncf_model.LIKED_HEAD}_embedding").embeddings) if liked_mf
                        else tf.zeros([self._user_gmf.shape[0], 0]))
    movie_liked = scale * (model.get_layer(f"movie_{ncf_model.LIKED_HEAD}_embedding").get_weights()[0][:known_movies]
                           if liked_mf else np.zeros((known_movies, 0), np.float32))
    self._movie_liked = tf.Variable(movie_liked, trainable=False, name="movie_liked")
    gmf_dim = movie_gmf.shape[1]
    self._head_gmf_kernel, self._head_mlp_kernel = head_kernel[:gmf_dim], head_kernel[gmf_dim:]
    movie_biases = (np.concatenate([model.get_layer(f"{head}_movie_bias").get_weights()[0][:known_movies]
                                    for head in ncf_model.HEADS], 1) * np.array([1.0, scale], np.float32)
                    + np.array([0.0, offset], np.float32) + np.concatenate(head_biases))  # [M, heads]
    self._movie_bias = tf.Variable(movie_biases, trainable=False, name="movie_bias")
    # Candidate stage: the factor parts of the blended logit, sum_k w_k u_k m_k + blend * u_l . m_l
    # = [m, m_l, 1] . [u * w, blend * u_l, bias(m)] per movie.
    head_blend = np.array([1.0, liked_blend], np.float32)
    self._candidate_gmf_kernel = head_kernel[:gmf_dim] @ head_blend  # [G]
    average_user = self._user_mlp.numpy()[:known_users].mean(0, keepdims=True) @ self._first_user_kernel
    average_mlp = self._mlp_logits(tf.constant(average_user), tf.constant(movie_first[None], tf.float32))[0]
    candidate_bias = (movie_biases + average_mlp.numpy()) @ head_blend
    self._candidate_table = tf.Variable(np.concatenate([movie_gmf, movie_liked, candidate_bias[:, None]], 1).T,
                                        trainable=False, name="movie_candidate_table")  # [G + L + 1, M]

  @property
  def num_users(self) -> int:
    """User rows (vocabulary and OOV buckets): the user indices `top_k` takes are below this."""
    return int(self._user_gmf.shape[0])

  def top_k(self, users: tf.Tensor, k: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """int64 [B] user indices -> (int32 [B, k] movie indices, float32 [B, k] scores), best first."""
    user_gmf = tf.gather(self._user_gmf, users)
    user_liked = tf.gather(self._user_liked, users)
    if self._exact:
      movies = tf.tile(tf.range(self._candidates)[None], [tf.shape(users)[0], 1])
    else:
      query = tf.concat([user_gmf * self._candidate_gmf_kernel, self._liked_blend * user_liked,
                         tf.ones_like(user_gmf[:, :1])], 1)  # user_liked's scale is in the table
      movies = tf.math.top_k(tf.matmul(query, self._candidate_table), k=self._candidates).indices
    user_biases = tf.concat([tf.gather(bias, users) for bias in self._user_biases], 1) * self._head_scale
    logits = (tf.tensordot(user_gmf[:, None, :] * tf.gather(self._movie_gmf, movies), self._head_gmf_kernel, 1)
              + self._mlp_logits(tf.matmul(tf.gather(self._user_mlp, users), self._first_user_kernel),
                                 tf.gather(self._movie_first, movies))
              + tf.gather(self._movie_bias, movies) + user_biases[:, None, :])
    interaction, liked = tf.unstack(logits, axis=2)  # [B, C] each
    liked += tf.reduce_sum(user_liked[:, None, :] * tf.gather(self._movie_liked, movies), axis=2)
    interaction, liked = tf.sigmoid(interaction), tf.sigmoid(liked)
    top = tf.math.top_k(interaction * tf.pow(liked, self._liked_blend), k=k)
    return tf.gather(movies, top.indices, batch_dims=1), top.values

  def _mlp_logits(self, user_first: tf.Tensor, movie_first: tf.Tensor) -> tf.Tensor:
    """User half [B, H1] and movie half [B, C, H1] of the first MLP layer -> the MLP part of each head's logit
    [B, C, heads]."""
    hidden = tf.nn.relu(movie_first + user_first[:, None, :])
    for kernel, bias in self._mlp_rest:
      hidden = tf.nn.relu(tf.tensordot(hidden, kernel, 1) + bias)
    return tf.tensordot(hidden, self._head_mlp_kernel, 1)


class PrecomputedRanker(tf.Module):
  """The top K of every user row, ranked once by a CatalogRanker: `top_k` is a gather, at any catalog size.

  Ranks `chunk` users per call (a [chunk, catalog] score matrix at a time) and logs progress every `progress_s`
  seconds; holds two [users, K] tables (int32 movie indices, float32 scores), not the ranker's movie tables.
  """

  def __init__(self, ranker: CatalogRanker, k: int, chunk: int = 256, progress_s: float = 30.0):
    super().__init__()
    rank = tf.function(functools.partial(ranker.top_k, k=k), input_signature=[tf.TensorSpec([None], tf.int64)])
    started = last_line = time.monotonic()
    movies, scores = [], []
    for start in range(0, ranker.num_users, chunk):
      end = min(start + chunk, ranker.num_users)
      chunk_movies, chunk_scores = rank(tf.range(start, end, dtype=tf.int64))
      movies.append(chunk_movies)
      scores.append(chunk_scores)
      if time.monotonic() - last_line >= progress_s:
        last_line = time.monotonic()
        _LOG.info("recommend: ranked %d of %d users", end, ranker.num_users)
    self._k = k
    self._movies = tf.Variable(tf.concat(movies, 0), trainable=False, name="recommended_movies")
    self._scores = tf.Variable(tf.concat(scores, 0), trainable=False, name="recommended_scores")
    _LOG.info("recommend: ranked every user row (%d, top %d) in %.1f s", ranker.num_users, k,
              time.monotonic() - started)

  def top_k(self, users: tf.Tensor, k: int) -> Tuple[tf.Tensor, tf.Tensor]:
    """As CatalogRanker.top_k, for the K the tables were ranked for."""
    if k != self._k:
      raise ValueError(f"the precomputed lists hold the top {self._k}, not {k}")
    return tf.gather(self._movies, users), tf.gather(self._scores, users)


class TransformGraph(tf.Module):
  """Transform's graph applied to raw features: what `TFTransformOutput.transform_features_layer()` does, without
  the tf_keras Model around it.

  SavedModel serialises that layer as a Keras object and traces a default signature for it that no signature reads:
  3.2 s of a 4.2 s export of the tiny test model, in every Trainer run. This module holds the same loader and
  tracks the same state (the loaded transform SavedModel: its tables and vocabulary assets) the layer tracks.
  """

  def __init__(self, tf_transform_output: tft.TFTransformOutput):
    super().__init__()
    loader = saved_transform_io_v2.SavedModelLoader(tf_transform_output.transform_savedmodel_dir)
    self._apply = loader.apply_transform_model  # a bound method: not tracked
    self.loader_state = loader.__dict__  # tracked, as TransformFeaturesLayer tracks it

  def __call__(self, raw_features: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Raw features (a subset of the raw feature spec) -> transformed features."""
    return self._apply(raw_features)


class NcfServingModule(tf.Module):
  """Holds the Keras model's weights, the Transform graph and the movie vocabulary; its tf.functions are the
  signatures."""

  def __init__(self, model: keras.Model, tf_transform_output: tft.TFTransformOutput, recommend_k: int,
               recommend_candidates: int, liked_blend: float, recommend_precompute: bool):
    super().__init__()
    if recommend_candidates < recommend_k:
      raise ValueError(f"TrainConfig.recommend_candidates ({recommend_candidates}) must be at least "
                       f"TrainConfig.recommend_k ({recommend_k})")
    # Tracked: the tf.Variables the signatures read, by weight path. A tracked Keras model would be saved as
    # copies of its weights (and its optimizer's slots) that the signatures do not read, so a server that
    # restores the SavedModel like TF Serving (a Session and the saver's restore op) would leave the signatures'
    # variables uninitialised: "Could not find variable" (keras-team/keras#20096).
    setattr(self, MODEL_WEIGHTS, {weight.path: _variable(weight) for weight in model.weights})
    self._model = functools.partial(model, training=False)  # not tracked
    self.transform = TransformGraph(tf_transform_output)
    raw_spec = tf_transform_output.raw_feature_spec()
    self._id_specs = {name: raw_spec[name] for name in (features.USER_ID, features.MOVIE_ID)}
    movie_vocab = tf_transform_output.vocabulary_by_name(features.MOVIE_ID)
    self._movie_vocab = tf.constant(movie_vocab, tf.string)
    self._k = min(recommend_k, len(movie_vocab))
    self._liked_blend = liked_blend
    ranker = CatalogRanker(model, tf_transform_output.vocabulary_size_by_name(features.USER_ID), len(movie_vocab),
                           recommend_candidates, liked_blend)
    self._ranker = PrecomputedRanker(ranker, self._k) if recommend_precompute else ranker

  def _heads(self, raw_ids: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    transformed = self.transform(raw_ids)
    return self._score(tf.reshape(transformed[features.USER_ID], [-1]),
                       tf.reshape(transformed[features.MOVIE_ID], [-1]))

  def _score(self, users: tf.Tensor, movies: tf.Tensor) -> Dict[str, tf.Tensor]:
    """int64 [n] user and movie indices -> {interaction, liked, score}: float32 [n]."""
    heads = self._model({features.USER_ID: users, features.MOVIE_ID: movies})
    interaction = heads[ncf_model.INTERACTION_HEAD]
    liked = heads[ncf_model.LIKED_HEAD]
    return {signatures.INTERACTION_OUTPUT: interaction, signatures.LIKED_OUTPUT: liked,
            signatures.SCORE_OUTPUT: interaction * tf.pow(liked, self._liked_blend)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES_INPUT)], autograph=False)
  def serve_examples(self, examples: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Serialized tf.Examples [B] (only user_id and movie_id are read) -> head probabilities and score [B]."""
    return self._heads(tf.io.parse_example(examples, self._id_specs))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.USER_ID_INPUT),
                                tf.TensorSpec([None], tf.string, name=signatures.MOVIE_ID_INPUT)], autograph=False)
  def predict(self, user_id: tf.Tensor, movie_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Raw ids [B], [B] -> score, interaction, liked [B]."""
    return self._heads({features.USER_ID: _raw_id_tensor(user_id, self._id_specs[features.USER_ID]),
                        features.MOVIE_ID: _raw_id_tensor(movie_id, self._id_specs[features.MOVIE_ID])})

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.USER_ID_INPUT)], autograph=False)
  def recommend(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Raw user ids [B] -> movie_ids (string [B, K]) and scores (float32 [B, K]), best first."""
    transformed = self.transform({features.USER_ID: _raw_id_tensor(user_id, self._id_specs[features.USER_ID])})
    movies, scores = self._ranker.top_k(tf.reshape(transformed[features.USER_ID], [-1]), self._k)
    return {signatures.RECOMMENDED_MOVIE_IDS: tf.gather(self._movie_vocab, movies),
            signatures.RECOMMENDED_SCORES: scores}


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
  module = NcfServingModule(model, tf_transform_output, config.recommend_k, config.recommend_candidates,
                            config.liked_blend, config.recommend_precompute)
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
