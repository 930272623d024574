"""Made-up ratings written in the data layer's example format, for tests and `export_tiny_ncf_model`.

Users prefer one genre and movies have Zipf popularity, so a model can learn something in one or two epochs:
P(rated) grows with popularity and with the user's genre, P(liked) is high for the user's genre.
"""
import dataclasses
import functools
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.public import tfxio

from components import features
from components.hparams import ModelConfig, TrainConfig
from pipeline.config import CURATED_SCHEMA_DIR

GENRE_NAMES = ("Action", "Comedy", "Drama", "Sci-Fi")
SCHEMA_FILE = CURATED_SCHEMA_DIR / "schema.pbtxt"
# Small enough to train in seconds on the made-up data.
TINY_MODEL = ModelConfig(gmf_embedding_dim=8, mlp_embedding_dim=8, mlp_layers=(16, 8))
# Four negatives per rated pair: with a few hundred ratings the popularity signal needs them.
TINY_TRAIN = TrainConfig(epochs=10, batch_size=256, learning_rate=0.01, id_dropout=0.1, negatives_per_positive=4,
                         liked_loss_weight=5.0)


@dataclasses.dataclass(frozen=True)
class TinyData:
  """Shape of a made-up data set."""
  users: int = 60
  movies: int = 40
  ratings_per_user: int = 12
  eval_ratings_per_user: int = 2
  eval_negatives: int = 20
  seed: int = 0


def _bytes(values: Sequence[str]) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))


def _ints(value: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def make_example(user: str, movie: str, genres: Sequence[str], rating: float, timestamp: int,
                 is_sampled: bool, user_activity: str) -> tf.train.Example:
  """One (user, movie) example with the feature names and types of the data layer's contract."""
  return tf.train.Example(features=tf.train.Features(feature={
      features.USER_ID: _bytes([user]),
      features.MOVIE_ID: _bytes([movie]),
      features.GENRES: _bytes(genres),
      features.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[rating])),
      features.TIMESTAMP: _ints(timestamp),
      features.LIKED: _ints(int(rating >= features.LIKED_THRESHOLD)),
      features.INTERACTION: _ints(0 if is_sampled else 1),
      features.IS_SAMPLED: _ints(int(is_sampled)),
      features.USER_ACTIVITY: _bytes([user_activity]),
  }))


def _activity_bucket(train_ratings: int) -> str:
  label = features.USER_ACTIVITY_BUCKETS[0][1]
  for lower, name in features.USER_ACTIVITY_BUCKETS:
    if train_ratings >= lower:
      label = name
  return label


def make_examples(shape: TinyData = TinyData()) -> Dict[str, List[tf.train.Example]]:
  """Returns {"train": [...], "eval": [...]}: each user's latest ratings go to eval, plus sampled unrated movies."""
  rng = np.random.RandomState(shape.seed)
  movie_genres = [sorted({GENRE_NAMES[(m * 7 + 3) % len(GENRE_NAMES)], GENRE_NAMES[m % len(GENRE_NAMES)]})
                  for m in range(shape.movies)]
  popularity = 1.0 / np.arange(1, shape.movies + 1) ** 0.8
  splits = {features.TRAIN_SPLIT: [], features.EVAL_SPLIT: []}
  for u in range(shape.users):
    favourite = GENRE_NAMES[u % len(GENRE_NAMES)]
    affinity = np.array([3.0 if favourite in g else 1.0 for g in movie_genres])
    weights = popularity * affinity
    rated = rng.choice(shape.movies, size=shape.ratings_per_user, replace=False, p=weights / weights.sum())
    num_train = shape.ratings_per_user - shape.eval_ratings_per_user
    activity = _activity_bucket(num_train)
    for position, m in enumerate(rated):
      liked = rng.rand() < (0.85 if favourite in movie_genres[m] else 0.2)
      rating = float(rng.choice([4.0, 5.0]) if liked else rng.choice([1.0, 2.0, 3.0]))
      split = features.TRAIN_SPLIT if position < num_train else features.EVAL_SPLIT
      splits[split].append(make_example(str(u + 1), str(m + 1), movie_genres[m], rating, 1_000_000 + position,
                                        False, activity))
    unrated = np.setdiff1d(np.arange(shape.movies), rated)
    for m in rng.choice(unrated, size=min(shape.eval_negatives, len(unrated)), replace=False):
      splits[features.EVAL_SPLIT].append(make_example(str(u + 1), str(m + 1), movie_genres[m], 0.0, 0, True, activity))
  return splits


def write_examples(examples: Dict[str, List[tf.train.Example]], out_dir: Path) -> Dict[str, int]:
  """Writes `out_dir/<split>/data.tfrecord.gz` (GZIP) and `out_dir/movies.csv`; returns rows per split."""
  movies = {}
  for split, split_examples in examples.items():
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(out_dir / split / "data.tfrecord.gz"), options="GZIP") as writer:
      for example in split_examples:
        writer.write(example.SerializeToString())
        feature = example.features.feature
        movies[feature[features.MOVIE_ID].bytes_list.value[0].decode()] = "|".join(
            v.decode() for v in feature[features.GENRES].bytes_list.value)
  with open(out_dir / "movies.csv", "w", encoding="utf-8") as csv:
    csv.write("movieId,title,genres\n")
    for movie, genres in sorted(movies.items(), key=lambda item: int(item[0])):
      csv.write(f"{movie},Movie {movie},{genres}\n")
  return {split: len(split_examples) for split, split_examples in examples.items()}


def load_schema(path: Path = SCHEMA_FILE) -> schema_pb2.Schema:
  """Parses the curated schema (schema/schema.pbtxt)."""
  return text_format.Parse(path.read_text(encoding="utf-8"), schema_pb2.Schema())


def tfrecord_dataset_factory(file_pattern: List[str], options: tfxio.TensorFlowDatasetOptions,
                             schema: schema_pb2.Schema) -> tf.data.Dataset:
  """The same reader TFX's DataAccessor.tf_dataset_factory gives the Trainer, for GZIP tf.Example files."""
  return tfxio.TFExampleRecord(file_pattern=file_pattern, schema=schema).TensorFlowDataset(options)


def run_transform(raw_dir: Path, out_dir: Path, oov_buckets: int = 1) -> Tuple[Path, str]:
  """Runs `preprocessing_fn` with tft_beam the way the Transform component does (analyze train only, write the
  transform graph, no transformed examples).

  Args:
    raw_dir: holds train/*.tfrecord.gz raw examples.
    out_dir: receives transform_fn/ and the raw metadata (the TFTransformOutput directory).

  Returns:
    (transform output directory, file pattern of the raw train examples the Trainer reads).
  """
  import apache_beam as beam  # Beam is heavy and only needed when the Transform graph is built.
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import dataset_metadata
  from tensorflow_transform.tf_metadata import metadata_io

  from components import transform

  schema = load_schema()
  train_pattern = str(raw_dir / features.TRAIN_SPLIT / "*")
  train = tfxio.TFExampleRecord(file_pattern=train_pattern, schema=schema)
  preprocessing_fn = functools.partial(transform.preprocessing_fn,
                                       custom_config={"vocab_oov_buckets": oov_buckets})
  with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=str(out_dir / "tmp"), force_tf_compat_v1=transform.FORCE_TF_COMPAT_V1):
    raw_data = pipeline | "ReadTrain" >> train.BeamSource()
    transform_fn = (raw_data, train.TensorAdapterConfig()) | tft_beam.AnalyzeDataset(preprocessing_fn)
    _ = transform_fn | tft_beam.WriteTransformFn(str(out_dir))
  # The Transform component also keeps the raw schema; serving signatures parse raw examples with it.
  metadata_io.write_metadata(dataset_metadata.DatasetMetadata(schema),
                             str(out_dir / tft.TFTransformOutput.RAW_METADATA_DIR))
  return out_dir, train_pattern


def read_split(folder: Path) -> List[tf.train.Example]:
  """Every tf.Example of a prepared split folder, its files read in name order (as ImportExampleGen lists them)."""
  files = sorted(Path(folder).glob("*.tfrecord.gz"))
  assert files, f"no *.tfrecord.gz in {folder}"
  return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset([str(f) for f in files], "GZIP")]
