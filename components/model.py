"""NeuMF (GMF + MLP towers over id embeddings) with two heads, `interaction` and `liked` (Keras 3).

The `liked` head reads the same towers (ModelConfig.liked_tower "shared"), and with "mf" adds a biased matrix
factorisation of the rating on embeddings of its own, trained on the rating itself. With "rating" the served
`liked` is that factorisation alone, calibrated, while a `liked` head on the towers still trains them (it is what
teaches them which movies a user likes) but is not served.
"""
from typing import List, Optional

import keras
import numpy as np

from components import features
from components.hparams import ModelConfig

INTERACTION_HEAD = features.INTERACTION
LIKED_HEAD = features.LIKED
HEADS = (INTERACTION_HEAD, LIKED_HEAD)
# ModelConfig.liked_tower "mf" and "rating": the tower's predicted rating minus the train mean (a training target,
# not served) and the layer that maps it to the `liked` logit.
RATING_OUTPUT = "rating"
LIKED_CALIBRATION = "liked_calibration"
# ModelConfig.liked_tower "rating" only: the towers' `liked` head, a training target (liked labels) that is not
# served; its layers are named after it.
TOWERS_LIKED_OUTPUT = "liked_towers"
# ModelConfig.rating_row_l2 > 0 only: squared norms of the factorisation's looked-up user and movie rows (factors
# and bias), training targets of the row penalty.
RATING_USER_NORM = "rating_user_norm"
RATING_MOVIE_NORM = "rating_movie_norm"
LIKED_TOWERS = ("shared", "mf", "rating")


def build_model(num_users: int, num_movies: int, movie_genres: np.ndarray, config: ModelConfig) -> keras.Model:
  """Builds the two-head NeuMF.

  Args:
    num_users: user vocabulary size including OOV buckets (Transform's num_buckets_for_transformed_feature).
    num_movies: movie vocabulary size including OOV buckets.
    movie_genres: float32 [num_movies, num_genres] genre multi-hot per movie index (rows sum to 1 or 0),
      a constant of the model so `predict`/`recommend` need only ids.
    config: embedding sizes, MLP layers, regularisation.

  Returns:
    A model taking {"user_id": int64 [batch], "movie_id": int64 [batch]} and returning
    {"interaction": float32 [batch], "liked": float32 [batch]} probabilities, with liked_tower "mf" or "rating"
    also "rating": float32 [batch], the predicted rating minus the train mean, and with "rating" also
    "liked_towers": float32 [batch], the towers' P(liked).
  """
  if movie_genres.shape[0] != num_movies:
    raise ValueError(f"movie_genres has {movie_genres.shape[0]} rows, expected one per movie index ({num_movies})")
  regularizer = keras.regularizers.L2(config.l2) if config.l2 else None
  user = keras.Input(shape=(), dtype="int64", name=features.USER_ID)
  movie = keras.Input(shape=(), dtype="int64", name=features.MOVIE_ID)

  def embedding(rows: int, dim: int, name: str) -> keras.layers.Embedding:
    return keras.layers.Embedding(rows, dim, embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
                                  embeddings_regularizer=regularizer, name=name)

  # GMF tower: element-wise product of user and movie factors.
  gmf = keras.layers.Multiply(name="gmf")([
      embedding(num_users, config.gmf_embedding_dim, "user_gmf_embedding")(user),
      embedding(num_movies, config.gmf_embedding_dim, "movie_gmf_embedding")(movie)])

  # MLP tower: user factors, movie factors and the movie's genres.
  genre_table = keras.layers.Embedding(num_movies, movie_genres.shape[1], trainable=False, name="movie_genres")
  genre_table.build()
  genre_table.set_weights([movie_genres.astype("float32")])
  genre_vector = keras.layers.Dense(config.mlp_embedding_dim, use_bias=False, kernel_regularizer=regularizer,
                                    name="genre_projection")(genre_table(movie))
  mlp = keras.layers.Concatenate(name="mlp_input")([
      embedding(num_users, config.mlp_embedding_dim, "user_mlp_embedding")(user),
      embedding(num_movies, config.mlp_embedding_dim, "movie_mlp_embedding")(movie),
      genre_vector])
  for index, units in enumerate(config.mlp_layers):
    mlp = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer, name=f"mlp_{index}")(mlp)
    if config.dropout:
      mlp = keras.layers.Dropout(config.dropout, name=f"mlp_dropout_{index}")(mlp)
  shared = keras.layers.Concatenate(name="neumf")([gmf, mlp])
  if config.liked_tower not in LIKED_TOWERS:
    raise ValueError(f"ModelConfig.liked_tower is {config.liked_tower!r}; expected one of {LIKED_TOWERS}")
  liked_mf = config.liked_tower != "shared"
  # The heads on the towers, each with biases of its own ("rating": the towers' `liked` is not the served one).
  tower_heads = (INTERACTION_HEAD, TOWERS_LIKED_OUTPUT if config.liked_tower == "rating" else LIKED_HEAD)

  def biases(name: str, bias_regularizer: Optional[keras.regularizers.Regularizer]) -> List[keras.KerasTensor]:
    # Per-head biases: popularity drives `interaction`, a user's rating habits drive `liked`.
    return [keras.layers.Embedding(rows, 1, embeddings_initializer="zeros", name=f"{name}_{side}_bias",
                                   embeddings_regularizer=bias_regularizer)(ids)
            for side, rows, ids in (("user", num_users, user), ("movie", num_movies, movie))]

  outputs = {}
  rating_part = None
  if liked_mf:
    liked_regularizer = keras.regularizers.L2(config.liked_l2) if config.liked_l2 else None
    rows_by_side = {}  # side -> [factor row [B, L], bias row [B, 1]] of the looked-up ids
    for side, rows, ids in (("user", num_users, user), ("movie", num_movies, movie)):
      rows_by_side[side] = [keras.layers.Embedding(
          rows, config.liked_embedding_dim, name=f"{side}_{LIKED_HEAD}_embedding",
          embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
          embeddings_regularizer=liked_regularizer)(ids)]
    factors = keras.layers.Dot(axes=-1, name=f"{LIKED_HEAD}_mf")([rows_by_side["user"][0], rows_by_side["movie"][0]])
    user_bias, movie_bias = biases(LIKED_HEAD, liked_regularizer)
    rows_by_side["user"].append(user_bias)
    rows_by_side["movie"].append(movie_bias)
    if config.rating_row_l2:
      # Squared norm of each pair's looked-up rows, a training target only: the Trainer weighs it by
      # rating_row_l2 / the row's count, which sums to an ALS-style L2 per row over an epoch.
      for side, name in (("user", RATING_USER_NORM), ("movie", RATING_MOVIE_NORM)):
        outputs[name] = keras.ops.sum(keras.ops.square(keras.ops.concatenate(rows_by_side[side], axis=-1)), axis=-1)
    rating = keras.layers.Add(name=f"{RATING_OUTPUT}_centred")([factors, user_bias, movie_bias])
    outputs[RATING_OUTPUT] = keras.ops.squeeze(rating, axis=-1)
    # The factorisation predicts the centred rating (its own loss); `liked` reads a learnt multiple of it
    # without pulling on the factors.
    rating_part = keras.layers.Dense(1, name=LIKED_CALIBRATION)(keras.ops.stop_gradient(rating))

  for name in tower_heads:
    logit_parts = [keras.layers.Dense(1, kernel_regularizer=regularizer, name=f"{name}_dense")(shared)]
    if name == LIKED_HEAD and rating_part is not None:
      logit_parts.append(rating_part)  # "mf": the liked biases are the factorisation's
    else:
      logit_parts += biases(name, None)
    logit = keras.layers.Add(name=f"{name}_logit")(logit_parts)
    outputs[name] = keras.ops.squeeze(keras.layers.Activation("sigmoid", name=name)(logit), axis=-1)
  if config.liked_tower == "rating":
    liked = keras.layers.Activation("sigmoid", name=LIKED_HEAD)(rating_part)
    outputs[LIKED_HEAD] = keras.ops.squeeze(liked, axis=-1)
  return keras.Model(inputs={features.USER_ID: user, features.MOVIE_ID: movie}, outputs=outputs, name="neumf")
