"""LazyAdam: Adam on the looked-up rows of a sparse gradient, Keras' Adam on dense ones."""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)

import keras
import numpy as np
import pytest
import tensorflow as tf

from components.lazy_adam import LazyAdam

TABLE = np.arange(15, dtype=np.float32).reshape(5, 3) / 10


def _apply(optimizer: keras.optimizers.Optimizer, gradients) -> np.ndarray:
  variable = keras.Variable(TABLE)
  for gradient in gradients:
    optimizer.apply([gradient], [variable])
  return np.asarray(variable)


def _sparse(rows, values) -> tf.IndexedSlices:
  return tf.IndexedSlices(tf.constant(values, tf.float32), tf.constant(rows, tf.int64), tf.constant([5, 3], tf.int64))


def test_sparse_steps_move_only_the_looked_up_rows_as_adam_moves_them():
  first = _sparse([1, 3, 1], [[1.0, -2.0, 0.5], [0.3, 0.3, -0.3], [1.0, 1.0, 1.0]])  # row 1 twice: summed
  second = _sparse([2], [[-1.0, 0.5, 2.0]])
  lazy = _apply(LazyAdam(0.1), [first, second])
  adam_first = _apply(keras.optimizers.Adam(0.1), [tf.convert_to_tensor(first)])
  adam_both = _apply(keras.optimizers.Adam(0.1), [tf.convert_to_tensor(first), tf.convert_to_tensor(second)])
  np.testing.assert_allclose(lazy[[1, 3]], adam_first[[1, 3]], atol=1e-5)  # not moved again by the second step
  assert not np.allclose(adam_both[[1, 3]], adam_first[[1, 3]])  # dense Adam keeps moving them
  np.testing.assert_allclose(lazy[2], adam_both[2], atol=1e-5)  # fresh moments in both: the same update
  np.testing.assert_array_equal(lazy[[0, 4]], TABLE[[0, 4]])


def test_dense_gradients_get_keras_adam():
  gradients = [tf.constant(np.full((5, 3), value, np.float32)) for value in (0.5, -1.0, 2.0)]
  np.testing.assert_allclose(_apply(LazyAdam(0.01), gradients), _apply(keras.optimizers.Adam(0.01), gradients),
                             atol=1e-6)


class _RecordingLazyAdam(LazyAdam):
  """Records which variables' gradients reached update_step as rows (at trace time)."""

  def __init__(self, *args, **kwargs) -> None:
    super().__init__(*args, **kwargs)
    self.sparse_names = set()

  def update_step(self, gradient, variable, learning_rate) -> None:
    if isinstance(gradient, tf.IndexedSlices):
      self.sparse_names.add(variable.name)
    super().update_step(gradient, variable, learning_rate)


def test_keras_fit_passes_embedding_gradients_as_rows_and_updates_only_those():
  keras.utils.set_random_seed(1)
  ids = keras.Input(shape=(), dtype="int32")
  output = keras.layers.Dense(1)(keras.layers.Embedding(10, 4, name="table")(ids))
  model = keras.Model(ids, output)
  optimizer = _RecordingLazyAdam(0.1)
  model.compile(optimizer=optimizer, loss="mse", steps_per_execution=2)
  before = model.get_layer("table").get_weights()[0]
  model.fit(np.array([2, 5, 7, 7]), np.ones((4, 1)), batch_size=2, epochs=1, shuffle=False, verbose=0)
  after = model.get_layer("table").get_weights()[0]
  assert optimizer.sparse_names == {"table/embeddings:0"}
  np.testing.assert_array_equal(np.flatnonzero(np.any(after != before, axis=1)), [2, 5, 7])


def test_a_model_compiled_with_it_saves_and_loads_as_a_keras_file(tmp_path):
  ids = keras.Input(shape=(), dtype="int32")
  model = keras.Model(ids, keras.layers.Dense(1)(keras.layers.Embedding(10, 4)(ids)))
  model.compile(optimizer=LazyAdam(0.01, beta_1=0.8), loss="mse")
  model.fit(np.array([1, 2]), np.ones((2, 1)), verbose=0)
  model.save(tmp_path / "model.keras")
  loaded = keras.models.load_model(tmp_path / "model.keras")
  assert type(loaded.optimizer) is LazyAdam  # pylint: disable=unidiomatic-typecheck
  assert loaded.optimizer.get_config() == model.optimizer.get_config()
  np.testing.assert_array_equal(loaded.predict(np.array([1, 3]), verbose=0), model.predict(np.array([1, 3]), verbose=0))


def test_amsgrad_is_refused():
  with pytest.raises(ValueError, match="amsgrad"):
    LazyAdam(amsgrad=True)
