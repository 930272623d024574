"""Adam whose step over an embedding table touches only the rows the batch looked up (LazyAdam).

Keras 3's Adam turns an embedding's sparse gradient (the `tf.IndexedSlices` of a lookup) into a dense update of
the whole table and of both its moments every step, so a step costs the table, not the batch: with MovieLens-25M's
162,541 users and 59,047 movies that is tens of millions of floats read and written for a batch of 1,024 pairs.
`LazyAdam` gives a sparse gradient the update of TF1's `LazyAdamOptimizer` and TF Addons' `LazyAdam`: the moments
and the variable change on the looked-up rows only (duplicate rows summed first, as the dense gradient would),
with Adam's bias correction by the global step; rows a batch does not touch keep their moments and do not move
(dense Adam would decay those moments and keep moving the rows). Dense gradients get Keras' Adam unchanged.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="recsys")
class LazyAdam(keras.optimizers.Adam):
  """keras.optimizers.Adam with row-wise (lazy) updates for sparse gradients; amsgrad is not supported."""

  def __init__(self, learning_rate: float = 1e-3, **kwargs) -> None:
    if kwargs.get("amsgrad"):
      raise ValueError("LazyAdam does not support amsgrad=True")
    super().__init__(learning_rate=learning_rate, **kwargs)

  def update_step(self, gradient, variable, learning_rate) -> None:
    """Adam for dense gradients; for `tf.IndexedSlices`, Adam restricted to the rows they name."""
    if not isinstance(gradient, tf.IndexedSlices):
      super().update_step(gradient, variable, learning_rate)
      return
    dtype = variable.dtype
    rows, positions = tf.unique(gradient.indices)
    grad = tf.math.unsorted_segment_sum(tf.cast(gradient.values, dtype), positions, tf.shape(rows)[0])
    step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.beta_1, dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
    alpha = tf.cast(learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
    index = self._get_variable_index(variable)
    m, v = self._momentums[index], self._velocities[index]
    m_rows = beta_1 * tf.gather(m.value, rows) + (1 - beta_1) * grad
    v_rows = beta_2 * tf.gather(v.value, rows) + (1 - beta_2) * tf.square(grad)
    self.assign(m, tf.IndexedSlices(m_rows, rows))
    self.assign(v, tf.IndexedSlices(v_rows, rows))
    self.assign_sub(variable, tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
