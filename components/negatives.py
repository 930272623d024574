"""Negative samplers: draw movies a user is paired with as "not rated" each training epoch.

Each sampler holds its draw distribution over the known movie indices [0, known_movies) (OOV buckets are never
drawn) and takes a `tf.random.Generator`, whose state lives in a variable, so every pass over the dataset draws
new negatives; stateful random ops with a fixed global seed would replay the same negatives each epoch.
"""
import numpy as np
import tensorflow as tf

# Popularity-aware negatives are drawn proportional to count ** exponent (word2vec's smoothing).
POPULARITY_EXPONENT = 0.75


class UniformSampler:
  """Every known movie equally likely."""

  def __init__(self, known_movies: int):
    self._known_movies = known_movies

  def sample(self, count: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
    """`count` movie indices, int64 [count]."""
    return tf.cast(generator.uniform([count], 0, self._known_movies, dtype=tf.int32), tf.int64)


class PopularitySampler:
  """Movies drawn proportional to (train ratings, at least 1) ** POPULARITY_EXPONENT."""

  def __init__(self, movie_counts: np.ndarray):
    """`movie_counts`: int [known_movies] train ratings per known movie index."""
    weights = np.maximum(movie_counts, 1).astype(np.float64) ** POPULARITY_EXPONENT
    self._cumulative = tf.constant(np.cumsum(weights) / weights.sum(), tf.float32)
    self._known_movies = len(movie_counts)

  def sample(self, count: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
    """`count` movie indices, int64 [count]."""
    picks = tf.searchsorted(self._cumulative, generator.uniform([count]), side="right", out_type=tf.int64)
    return tf.minimum(picks, self._known_movies - 1)


def make_sampler(name: str, movie_counts: np.ndarray):
  """The sampler TrainConfig.negative_sampler names; `movie_counts`: int [known_movies] train ratings."""
  if name == "uniform":
    return UniformSampler(len(movie_counts))
  if name == "popularity":
    return PopularitySampler(movie_counts)
  raise ValueError(f"TrainConfig.negative_sampler is {name!r}; expected 'uniform' or 'popularity'")
