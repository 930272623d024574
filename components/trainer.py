"""Trainer module: `run_fn`, the input pipeline that resamples negatives every epoch, and model fitting.

The train split holds only rated pairs. Each epoch the input pipeline pairs every rated (user, movie) with
`negatives_per_positive` freshly drawn movies of the known catalog (uniform or popularity-aware): the
`interaction` head learns rated vs. unrated. The `liked` head on the towers learns from every pair, sampled ones
as not liked: Keras 3 reduces a [batch] output's binary cross-entropy over the batch before sample weights
apply, so its weights (0 on sampled pairs) only scale its loss by the share of rated pairs. The rating
factorisation (ModelConfig.liked_tower "mf", "rating") and the served `liked` of "rating" learn from rated pairs
only (`_per_pair` losses, which the weights do select). Id dropout swaps a share of ids for OOV buckets so unseen
users and movies get trained embeddings (close to an average user: the most popular movies).
"""
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple


import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from components import features
from components import lazy_adam
from components import model as ncf_model
from components import model_export
from components import negatives
from components import warm_start
from components.hparams import ModelConfig, TrainConfig

_LOG = logging.getLogger(__name__)
OPTIMIZERS: Dict[str, Callable[[float], keras.optimizers.Optimizer]] = {
    "adam": keras.optimizers.Adam, "lazy_adam": lazy_adam.LazyAdam}

# (file patterns, options, schema) -> dataset of feature dicts; TFX's DataAccessor.tf_dataset_factory.
DatasetFactory = Callable[[List[str], tfxio.TensorFlowDatasetOptions, schema_pb2.Schema], tf.data.Dataset]
Batch = Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor], Dict[str, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class Catalog:
  """What the Trainer learns about ids from Transform's vocabularies and one pass over the train split.

  Attributes:
    num_users / num_movies: vocabulary size plus OOV buckets (embedding rows).
    known_users / known_movies: vocabulary size; indices >= these are OOV buckets.
    movie_counts: int64 [num_movies] train ratings per movie index.
    user_counts: int64 [num_users] train ratings per user index.
    movie_genres: float32 [num_movies, num_genre_buckets] genre multi-hot per movie, rows sum to 1 (or 0).
    mean_rating: mean rating of the train split.
  """
  num_users: int
  known_users: int
  num_movies: int
  known_movies: int
  movie_counts: np.ndarray
  user_counts: np.ndarray
  movie_genres: np.ndarray
  mean_rating: float


def configs_from_custom_config(custom_config: Mapping[str, Any]) -> Tuple[ModelConfig, TrainConfig]:
  """Rebuilds the typed configs the pipeline put into the Trainer's JSON custom_config."""
  model = dict(custom_config["model"])
  model["mlp_layers"] = tuple(model["mlp_layers"])
  return ModelConfig(**model), TrainConfig(**custom_config["train"])


# The train split's rated pairs, transformed, one row each, held in memory: {feature: array [n]} for
# features.USER_ID, MOVIE_ID (int64 indices), LIKED and RATING (about 28 bytes a rating). Every epoch reshuffles
# them instead of reading and parsing the files again (BENCHMARKS.md, "Scale": the Trainer 0.75x at ml-100k).
RatedPairs = Dict[str, np.ndarray]
PAIR_COLUMNS = (features.USER_ID, features.MOVIE_ID, features.LIKED, features.RATING)


def read_train_split(train_files: List[str], tf_transform_output: tft.TFTransformOutput,
                     dataset_factory: DatasetFactory) -> Tuple[Catalog, RatedPairs]:
  """Reads the raw train split once through Transform's graph: the catalog (popularity, genres, mean rating) and
  the rated pairs.

  The Transform component writes no transformed examples (BENCHMARKS.md, "Scale": materialising them was half of
  its time); `train_files` are the raw examples, transformed here batch by batch by the same graph the serving
  signatures embed.
  """
  num_users = tf_transform_output.num_buckets_for_transformed_feature(features.USER_ID)
  num_movies = tf_transform_output.num_buckets_for_transformed_feature(features.MOVIE_ID)
  num_genres = tf_transform_output.num_buckets_for_transformed_feature(features.GENRES)
  genres = np.zeros((num_movies, num_genres), np.float32)
  options = tfxio.TensorFlowDatasetOptions(batch_size=8192, num_epochs=1, shuffle=False)
  dataset = dataset_factory(train_files, options, tf_transform_output.raw_metadata.schema).map(
      model_export.TransformGraph(tf_transform_output), num_parallel_calls=tf.data.AUTOTUNE)
  parts: Dict[str, List[np.ndarray]] = {name: [] for name in PAIR_COLUMNS}
  for batch in dataset:
    columns = {name: batch[name].numpy().reshape(-1) for name in PAIR_COLUMNS}
    for name, values in columns.items():
      parts[name].append(values)
    genre_ids = batch[features.GENRES]
    genres[columns[features.MOVIE_ID][genre_ids.indices[:, 0].numpy()], genre_ids.values.numpy()] = 1.0
  pairs = {name: np.concatenate(arrays) for name, arrays in parts.items()}
  row_sums = genres.sum(axis=1, keepdims=True)
  return Catalog(
      num_users=num_users,
      known_users=tf_transform_output.vocabulary_size_by_name(features.USER_ID),
      num_movies=num_movies,
      known_movies=tf_transform_output.vocabulary_size_by_name(features.MOVIE_ID),
      movie_counts=np.bincount(pairs[features.MOVIE_ID], minlength=num_movies),
      user_counts=np.bincount(pairs[features.USER_ID], minlength=num_users),
      movie_genres=np.divide(genres, row_sums, out=np.zeros_like(genres), where=row_sums > 0),
      mean_rating=float(pairs[features.RATING].sum(dtype=np.float64)) / max(len(pairs[features.RATING]), 1)), pairs


class EpochLog(keras.callbacks.Callback):
  """Logs one line per epoch (losses, seconds) on this module's logger, in place of Keras' progress bar, and a
  progress line within an epoch at most every `progress_s` seconds (at ml-25m's size one epoch is the whole
  Trainer: half an hour and more)."""

  async_safe = True  # it only reads the clock and logs: Keras may keep calling it from its dispatch thread

  def __init__(self, epochs: int, steps: int, progress_s: float = 60.0):
    super().__init__()
    self.epochs = epochs
    self.steps = steps
    self.progress_s = progress_s
    self._epoch = 0
    self._start = self._last_line = 0.0

  def on_epoch_begin(self, epoch: int, logs=None) -> None:
    self._epoch = epoch
    self._start = self._last_line = time.monotonic()

  def on_train_batch_end(self, batch: int, logs=None) -> None:
    # Keras calls this once per call into the train function, `batch` being that call's last step (counted as
    # if the call ran all its steps_per_execution steps, which the epoch's last call may not).
    now = time.monotonic()
    if now - self._last_line < self.progress_s:
      return
    self._last_line = now
    done = min(batch + 1, self.steps)
    _LOG.info("Trainer epoch %d/%d: step %d/%d (%.0f%%), %.0f steps/s", self._epoch + 1, self.epochs, done,
              self.steps, 100.0 * done / self.steps, done / max(now - self._start, 1e-9))

  def on_epoch_end(self, epoch: int, logs=None) -> None:
    losses = ", ".join(f"{name} {value:.4f}" for name, value in sorted((logs or {}).items()) if name != "loss")
    seconds = time.monotonic() - self._start
    _LOG.info("Trainer epoch %d/%d: loss %.4f (%s), %.1f s, %.0f steps/s", epoch + 1, self.epochs,
              (logs or {}).get("loss", math.nan), losses, seconds, self.steps / max(seconds, 1e-9))


def _id_dropout(ids: tf.Tensor, known: int, total: int, rate: float, generator: tf.random.Generator) -> tf.Tensor:
  """Replaces a `rate` share of ids ([n] int64) with a random OOV bucket in [known, total)."""
  if rate <= 0 or total <= known:
    return ids
  oov = known + tf.cast(generator.uniform(tf.shape(ids), 0, total - known, dtype=tf.int32), tf.int64)
  return tf.where(generator.uniform(tf.shape(ids)) < rate, oov, ids)


def rated_pairs_per_batch(config: TrainConfig) -> int:
  """Rated pairs in one batch: `batch_size` pairs in all, `negatives_per_positive` sampled for each rated one."""
  return max(1, config.batch_size // (1 + config.negatives_per_positive))


def batches_per_epoch(rated_pairs: int, config: TrainConfig) -> int:
  """Batches (optimizer steps) in one epoch over `rated_pairs` rated train pairs."""
  return math.ceil(rated_pairs / rated_pairs_per_batch(config))


def make_training_dataset(pairs: RatedPairs, catalog: Catalog, config: TrainConfig, seed: int,
                          rating_target: bool = False, towers_liked_target: bool = False,
                          row_norm_targets: bool = False) -> tf.data.Dataset:
  """Returns one epoch of (features, labels, sample weights) batches; iterating it again reshuffles the rated
  pairs and draws new negatives.

  Each yielded batch holds B rated pairs and B * negatives_per_positive sampled pairs:
    features: {"user_id", "movie_id"}: int64 [n]; labels: {"interaction", "liked"}: float32 [n];
    sample weights: {"interaction": 1, "liked": 1 on rated pairs, 0 on sampled pairs}: float32 [n].
  With `rating_target` (ModelConfig.liked_tower "mf" or "rating") also the label "rating", the rating minus the
  train mean, and with `towers_liked_target` ("rating") the label "liked_towers", a copy of "liked"; both
  weighted like "liked". With `row_norm_targets` (ModelConfig.rating_row_l2) also "rating_user_norm" and
  "rating_movie_norm" (labels 0, unused), weighted 1 / the train count of the row each rated pair looks up (0 on
  sampled pairs), so that over an epoch each row's squared norm counts once.
  """
  ratio = config.negatives_per_positive
  positives_per_batch = rated_pairs_per_batch(config)
  num_pairs = len(pairs[features.USER_ID])
  batches = batches_per_epoch(num_pairs, config)
  columns = {name: tf.constant(values) for name, values in pairs.items()}
  order_generator = tf.random.Generator.from_seed(seed)  # a new order each epoch, the same on every run

  def epoch_batches(_) -> tf.data.Dataset:
    order = tf.random.experimental.stateless_shuffle(tf.range(num_pairs, dtype=tf.int64),
                                                      order_generator.make_seeds(1)[:, 0])
    return tf.data.Dataset.range(batches).map(
        lambda step: {name: tf.gather(column, order[step * positives_per_batch:(step + 1) * positives_per_batch])
                      for name, column in columns.items()})

  sampler = negatives.make_sampler(config.negative_sampler, catalog.movie_counts[:catalog.known_movies])
  generator = tf.random.Generator.from_seed(seed + 1)  # its state advances: new negatives each epoch
  # Rows looked up per epoch by rated pairs: the train count, and for an OOV bucket its share of id dropout.
  total = float(catalog.movie_counts.sum())
  inverse_user_counts, inverse_movie_counts = (
      tf.constant(1.0 / np.maximum(np.where(np.arange(len(counts)) < known, counts,
                                            config.id_dropout * total / max(len(counts) - known, 1)), 1.0),
                  tf.float32)
      for counts, known in ((catalog.user_counts, catalog.known_users), (catalog.movie_counts, catalog.known_movies)))

  def add_negatives(batch: Mapping[str, tf.Tensor]) -> Batch:
    users = tf.reshape(batch[features.USER_ID], [-1])
    movies = tf.reshape(batch[features.MOVIE_ID], [-1])
    liked = tf.cast(tf.reshape(batch[features.LIKED], [-1]), tf.float32)
    num_positives = tf.shape(users)[0]
    num_negatives = num_positives * ratio
    positive = tf.ones([num_positives])
    negative = tf.zeros([num_negatives])
    users = tf.concat([users, tf.repeat(users, ratio)], axis=0)
    movies = tf.concat([movies, sampler.sample(num_negatives, generator)], axis=0)
    labels = {ncf_model.INTERACTION_HEAD: tf.concat([positive, negative], 0),
              ncf_model.LIKED_HEAD: tf.concat([liked, negative], 0)}
    weights = {ncf_model.INTERACTION_HEAD: tf.ones_like(labels[ncf_model.INTERACTION_HEAD]),
               ncf_model.LIKED_HEAD: tf.concat([positive, negative], 0)}
    if rating_target:
      centred = tf.reshape(batch[features.RATING], [-1]) - catalog.mean_rating
      labels[ncf_model.RATING_OUTPUT] = tf.concat([centred, negative], 0)
      weights[ncf_model.RATING_OUTPUT] = weights[ncf_model.LIKED_HEAD]
    if towers_liked_target:
      labels[ncf_model.TOWERS_LIKED_OUTPUT] = labels[ncf_model.LIKED_HEAD]
      weights[ncf_model.TOWERS_LIKED_OUTPUT] = weights[ncf_model.LIKED_HEAD]
    if config.shuffle_labels:
      # Only for tests that need a deliberately worse candidate: labels no longer belong to their pairs.
      order = tf.argsort(generator.uniform(tf.shape(users)))
      labels = {head: tf.gather(label, order) for head, label in labels.items()}
      weights = {head: tf.gather(weight, order) for head, weight in weights.items()}
    inputs = {
        features.USER_ID: _id_dropout(users, catalog.known_users, catalog.num_users, config.id_dropout, generator),
        features.MOVIE_ID: _id_dropout(movies, catalog.known_movies, catalog.num_movies, config.id_dropout,
                                       generator)}
    if row_norm_targets:
      for name, ids, inverse in ((ncf_model.RATING_USER_NORM, inputs[features.USER_ID], inverse_user_counts),
                                 (ncf_model.RATING_MOVIE_NORM, inputs[features.MOVIE_ID], inverse_movie_counts)):
        labels[name] = tf.zeros_like(weights[ncf_model.LIKED_HEAD])
        weights[name] = weights[ncf_model.LIKED_HEAD] * tf.gather(inverse, ids)
    return inputs, labels, weights

  # Sequential maps: the generators then draw the same numbers for the same batches on every run. The number of
  # batches is asserted so that Keras knows the epoch's length, neither guessing nor warning that the input "ran
  # out of data".
  return (tf.data.Dataset.from_tensors(0).flat_map(epoch_batches).map(add_negatives)
          .apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE))


def _per_pair(loss: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
  """`loss` with one value per pair, so that sample weights select pairs.

  Keras 3 losses average over the last axis; on a [batch] output that is the whole batch, and the sample weights
  then only scale that mean (weight-0 pairs stay in it). A trailing axis of 1 keeps one value per pair.
  """
  def per_pair(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return loss(y_true[:, None], y_pred[:, None])

  per_pair.__name__ = loss.__name__
  return per_pair


def _row_penalty(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
  """The predicted squared row norm itself (y_true, 0, is unused): a penalty, weighted per pair."""
  del y_true
  return keras.ops.mean(y_pred, axis=-1)


def epochs_for(steps_per_epoch: int, config: TrainConfig) -> int:
  """`config.epochs`, fewer when they would take more than `config.max_train_steps` steps (at least one epoch):
  a large data set learns as much in fewer passes, and its Trainer time then grows with the data only until
  the cap."""
  return max(1, min(config.epochs, math.ceil(config.max_train_steps / max(steps_per_epoch, 1))))


def train_model(train_files: List[str], tf_transform_output: tft.TFTransformOutput,
                dataset_factory: DatasetFactory, model_config: ModelConfig,
                train_config: TrainConfig, base_model_dir: Optional[str] = None) -> Tuple[keras.Model, Catalog]:
  """Builds the NeuMF sized from Transform's vocabularies and fits it for `train_config.epochs` epochs.

  With `base_model_dir` (a serving SavedModel of an earlier run) the new model first takes its weights
  (components/warm_start.py) and fits for `train_config.warm_start_epochs` (None: `epochs`). The optimizer
  starts fresh either way.
  """
  keras.utils.set_random_seed(train_config.seed)
  catalog, pairs = read_train_split(train_files, tf_transform_output, dataset_factory)
  model = ncf_model.build_model(catalog.num_users, catalog.num_movies, catalog.movie_genres, model_config)
  if base_model_dir:
    warm_start.warm_start(model, base_model_dir, {
        name: tf_transform_output.vocabulary_by_name(name) for name in warm_start.ID_TABLES})
    if train_config.warm_start_epochs is not None:
      train_config = dataclasses.replace(train_config, epochs=train_config.warm_start_epochs)
  losses = {head: keras.losses.BinaryCrossentropy() for head in ncf_model.HEADS}
  loss_weights = {ncf_model.INTERACTION_HEAD: train_config.interaction_loss_weight,
                  ncf_model.LIKED_HEAD: train_config.liked_loss_weight}
  rating_target = model_config.liked_tower in ("mf", "rating")
  towers_liked_target = model_config.liked_tower == "rating"
  if rating_target:
    losses[ncf_model.RATING_OUTPUT] = _per_pair(keras.losses.mean_squared_error)
    loss_weights[ncf_model.RATING_OUTPUT] = train_config.liked_loss_weight
  row_norm_targets = rating_target and model_config.rating_row_l2 > 0
  for name in (ncf_model.RATING_USER_NORM, ncf_model.RATING_MOVIE_NORM) if row_norm_targets else ():
    losses[name] = _per_pair(_row_penalty)
    loss_weights[name] = train_config.liked_loss_weight * model_config.rating_row_l2
  if towers_liked_target:
    losses[ncf_model.LIKED_HEAD] = _per_pair(keras.losses.binary_crossentropy)  # calibrated on rated pairs only
    losses[ncf_model.TOWERS_LIKED_OUTPUT] = keras.losses.BinaryCrossentropy()
    loss_weights[ncf_model.TOWERS_LIKED_OUTPUT] = train_config.liked_loss_weight
  optimizer = OPTIMIZERS[train_config.optimizer](train_config.learning_rate)
  model.compile(optimizer=optimizer, loss=losses, loss_weights=loss_weights,
                steps_per_execution=train_config.steps_per_execution)
  dataset = make_training_dataset(pairs, catalog, train_config, seed=train_config.seed,
                                  rating_target=rating_target, towers_liked_target=towers_liked_target,
                                  row_norm_targets=row_norm_targets)
  epochs = epochs_for(int(dataset.cardinality()), train_config)
  _build_training_state(model, dataset.element_spec)
  model.fit(dataset, epochs=epochs, verbose=0, callbacks=[EpochLog(epochs, int(dataset.cardinality()))])
  return model, catalog


def _build_training_state(model: keras.Model, element_spec: Any) -> None:
  """Creates the optimizer's slots and the loss trackers before fit. Without a distribution strategy Keras creates
  them inside fit's first trace of the training step, and tf.function then traces that step a second time, without
  variable creation: about 1-2 s of tracing saved per training run. One all-zeros row (a valid id, zero weights)
  goes through the loss; the data and the random streams are not touched."""
  model.optimizer.build(model.trainable_variables)
  x, y, weights = tf.nest.map_structure(lambda spec: tf.zeros([1, *spec.shape[1:]], spec.dtype), element_spec)
  model.compute_loss(x=x, y=y, y_pred=model(x, training=False), sample_weight=weights, training=False)


def run_fn(fn_args: Any) -> None:
  """TFX Trainer entry point: trains on the train split (through Transform's graph) and exports the serving
  SavedModel.

  Args:
    fn_args: tfx.components.FnArgs; custom_config holds {"model": ModelConfig, "train": TrainConfig,
      "model_name": str} as dicts.
  """
  model_config, train_config = configs_from_custom_config(fn_args.custom_config)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  # fn_args.base_model: the latest blessed model's serving SavedModel when the pipeline resolved one
  # (TrainConfig.warm_start); None on the first run, which trains cold.
  base_model = fn_args.base_model if train_config.warm_start else None
  if train_config.warm_start and not base_model:
    _LOG.info("Trainer: warm start asked for, but there is no blessed model yet: training cold")
  model, _ = train_model(fn_args.train_files, tf_transform_output, fn_args.data_accessor.tf_dataset_factory,
                         model_config, train_config, base_model_dir=base_model)
  model_export.export_serving_model(model, tf_transform_output, Path(fn_args.serving_model_dir), train_config,
                                    model_name=fn_args.custom_config["model_name"])
