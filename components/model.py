"""NeuMF (GMF + MLP towers over id embeddings) with two heads, `interaction` and `liked` (Keras 3).

The `liked` head reads the same towers (ModelConfig.liked_tower "shared"), and with "mf" adds a biased matrix
factorisation of the rating on embeddings of its own, trained on the rating itself.
"""
import keras
import numpy as np

from components import features
from components.hparams import ModelConfig

INTERACTION_HEAD = features.INTERACTION
LIKED_HEAD = features.LIKED
HEADS = (INTERACTION_HEAD, LIKED_HEAD)
# ModelConfig.liked_tower "mf" only: the tower's predicted rating minus the train mean (a training target, not
# served) and the layer that maps it to the `liked` logit.
RATING_OUTPUT = "rating"
LIKED_CALIBRATION = "liked_calibration"


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
    {"interaction": float32 [batch], "liked": float32 [batch]} probabilities, and with liked_tower "mf" also
    "rating": float32 [batch], the predicted rating minus the train mean.
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
  if config.liked_tower not in ("shared", "mf"):
    raise ValueError(f"ModelConfig.liked_tower is {config.liked_tower!r}; expected 'shared' or 'mf'")
  liked_mf = config.liked_tower == "mf"
  bias_regularizers = {INTERACTION_HEAD: None, LIKED_HEAD: None}
  factors = {}
  if liked_mf:
    liked_regularizer = keras.regularizers.L2(config.liked_l2)
    bias_regularizers[LIKED_HEAD] = liked_regularizer
    factors[LIKED_HEAD] = [keras.layers.Dot(axes=-1, name=f"{LIKED_HEAD}_mf")([
        keras.layers.Embedding(rows, config.liked_embedding_dim, name=f"{side}_{LIKED_HEAD}_embedding",
                               embeddings_initializer=keras.initializers.RandomNormal(stddev=0.01),
                               embeddings_regularizer=liked_regularizer)(ids)
        for side, rows, ids in (("user", num_users, user), ("movie", num_movies, movie))])]

  outputs = {}
  for head in HEADS:
    # Per-head biases: popularity drives `interaction`, a user's rating habits drive `liked`.
    biased = factors.get(head, []) + [
        keras.layers.Embedding(rows, 1, embeddings_initializer="zeros", name=f"{head}_{side}_bias",
                               embeddings_regularizer=bias_regularizers[head])(ids)
        for side, rows, ids in (("user", num_users, user), ("movie", num_movies, movie))]
    towers = keras.layers.Dense(1, kernel_regularizer=regularizer, name=f"{head}_dense")(shared)
    if head in factors:
      # The factorisation predicts the centred rating (its own loss); the head adds a learnt multiple of it to
      # the towers' logit without pulling on the factors.
      rating = keras.layers.Add(name=f"{RATING_OUTPUT}_centred")(biased)
      outputs[RATING_OUTPUT] = keras.ops.squeeze(rating, axis=-1)
      biased = [keras.layers.Dense(1, name=LIKED_CALIBRATION)(keras.ops.stop_gradient(rating))]
    logit = keras.layers.Add(name=f"{head}_logit")([towers] + biased)
    outputs[head] = keras.ops.squeeze(keras.layers.Activation("sigmoid", name=head)(logit), axis=-1)
  return keras.Model(inputs={features.USER_ID: user, features.MOVIE_ID: movie}, outputs=outputs, name="neumf")
