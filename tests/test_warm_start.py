"""Warm start (components/warm_start.py): id tables copied by id across a vocabulary change, the other weights as
they are, clear errors on a base model that does not fit, and a Trainer that starts from a base model better
than cold."""
import dataclasses
import logging
import types
from pathlib import Path
from typing import Dict, Sequence

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components import model as ncf_model
from components import trainer
from components import warm_start
from components.hparams import ModelConfig, TrainConfig
from pipeline.config import CURATED_SCHEMA_DIR, DataConfig, InfraValidationConfig, PipelineConfig
from tests.support import testdata

pytestmark = pytest.mark.slow

MODEL = ModelConfig(gmf_embedding_dim=4, mlp_embedding_dim=4, mlp_layers=(8, 4), liked_embedding_dim=3, liked_tower="shared")
OOV = 1
BASE = {features.USER_ID: [b"a", b"b", b"c"], features.MOVIE_ID: [b"m1", b"m2", b"m3", b"m4"],
        features.GENRES: [b"Drama", b"Comedy", b"unknown"]}
# a and c change index, d is new, b is dropped; m4 and m1 change index, m9 is new, m2 and m3 are dropped;
# the genre projection's rows follow the genres (one fewer: "unknown" is gone).
NEW = {features.USER_ID: [b"c", b"a", b"d"], features.MOVIE_ID: [b"m4", b"m9", b"m1"],
       features.GENRES: [b"Comedy", b"Drama"]}


def _build(vocabularies: Dict[str, Sequence[bytes]], config: ModelConfig = MODEL, seed: int = 0) -> keras.Model:
  keras.utils.set_random_seed(seed)
  movies = len(vocabularies[features.MOVIE_ID]) + OOV
  genres = np.random.RandomState(seed).dirichlet(np.ones(len(vocabularies[features.GENRES]) + OOV),
                                                 movies).astype(np.float32)
  return ncf_model.build_model(len(vocabularies[features.USER_ID]) + OOV, movies, genres, config)


def _save_base(export_dir: Path, model: keras.Model, vocabularies: Dict[str, Sequence[bytes]]) -> str:
  """A SavedModel shaped like model_export's where warm start reads it: `model` tracked (with its optimizer,
  which tracks the weights too), vocabularies as assets."""
  model.compile(optimizer=keras.optimizers.Adam())
  model.optimizer.build(model.trainable_variables)
  module = tf.Module()
  module.model = model
  tf.saved_model.save(module, str(export_dir))
  (export_dir / "assets").mkdir(exist_ok=True)
  for name, vocabulary in vocabularies.items():
    (export_dir / "assets" / name).write_bytes(b"".join(token + b"\n" for token in vocabulary))
  return str(export_dir)


def _randomize(model: keras.Model, seed: int = 1) -> None:
  """Distinct values in every trainable weight, so a row shows where it came from."""
  rng = np.random.RandomState(seed)
  for weight in model.trainable_weights:
    weight.assign(rng.normal(size=weight.shape).astype(np.float32))


def _values(model: keras.Model) -> Dict[str, np.ndarray]:
  return {weight.path: weight.numpy().copy() for weight in model.weights}


def test_row_mapping_moves_known_ids_to_their_new_index_and_copies_the_oov_buckets():
  mapping = warm_start.row_mapping([b"a", b"b", b"c"], 4, [b"c", b"a", b"d"], 4)
  assert dict(zip(mapping.new_rows.tolist(), mapping.base_rows.tolist())) == {0: 2, 1: 0, 3: 3}
  assert (mapping.copied, mapping.new, mapping.dropped, mapping.oov_copied) == (2, 1, 1, True)
  # Another number of OOV buckets hashes unseen ids elsewhere: those rows stay fresh.
  other = warm_start.row_mapping([b"a", b"b", b"c"], 5, [b"c", b"a", b"d"], 4)
  assert dict(zip(other.new_rows.tolist(), other.base_rows.tolist())) == {0: 2, 1: 0}
  assert not other.oov_copied


@pytest.mark.parametrize("liked_tower", ["shared", "mf", "rating"])
def test_warm_start_copies_every_id_table_by_id_across_a_vocabulary_change(tmp_path, liked_tower):
  config = dataclasses.replace(MODEL, liked_tower=liked_tower)
  base_model = _build(BASE, config)
  _randomize(base_model)
  base = _values(base_model)
  base_dir = _save_base(tmp_path / "base", base_model, BASE)
  model = _build(NEW, config, seed=3)
  fresh = _values(model)

  summary = warm_start.warm_start(model, base_dir, NEW)

  after = _values(model)
  tables = {name: [path for path in after if path.split("/")[0] in names]
            for name, names in warm_start.ID_TABLES.items()}
  # gmf, mlp, a bias per head, the liked factors of "mf" and "rating", the towers' liked bias of "rating"
  per_side = {"shared": 4, "mf": 5, "rating": 6}[liked_tower]
  assert [len(found) for found in tables.values()] == [per_side, per_side, 1]
  for vocabulary, paths in tables.items():
    base_index = {token: index for index, token in enumerate(BASE[vocabulary])}
    for path in paths:
      for new_index, token in enumerate(NEW[vocabulary]):
        source = base[path][base_index[token]] if token in base_index else fresh[path][new_index]
        np.testing.assert_array_equal(after[path][new_index], source, err_msg=f"{path} row of {token!r}")
      np.testing.assert_array_equal(after[path][-1], base[path][-1], err_msg=f"{path} OOV row")
  for path, value in after.items():
    layer = path.split("/")[0]
    if layer == "movie_genres":
      np.testing.assert_array_equal(value, fresh[path])  # the current catalog's genres
    elif not any(layer in names for names in warm_start.ID_TABLES.values()):
      np.testing.assert_array_equal(value, base[path], err_msg=path)
  users, movies, genres = (summary.ids[name] for name in (features.USER_ID, features.MOVIE_ID, features.GENRES))
  assert (users.copied, users.new, users.dropped) == (2, 1, 1)
  assert (movies.copied, movies.new, movies.dropped) == (2, 1, 2)
  assert (genres.copied, genres.new, genres.dropped) == (2, 0, 1)
  assert len(summary.tables_copied) == 2 * per_side + 1
  assert "users 2 copied, 1 new, 1 dropped; movies 2 copied, 1 new, 2 dropped" in summary.describe()
  if liked_tower != "shared":
    assert ncf_model.LIKED_CALIBRATION + "/kernel" in summary.weights_copied


def test_a_base_model_of_another_shape_is_refused_naming_the_layer_and_both_shapes(tmp_path):
  base_dir = _save_base(tmp_path / "base", _build(BASE), BASE)
  wider = _build(NEW, dataclasses.replace(MODEL, gmf_embedding_dim=6))
  with pytest.raises(ValueError, match=r"cannot warm-start from .*base: the model's shape changed.*"
                                       r"user_gmf_embedding/embeddings: base shape \(4, 4\), new shape \(4, 6\)"):
    warm_start.warm_start(wider, base_dir, NEW)
  with pytest.raises(ValueError, match="user_liked_embedding/embeddings: not in the base model"):
    warm_start.warm_start(_build(NEW, dataclasses.replace(MODEL, liked_tower="mf")), base_dir, NEW)
  with pytest.raises(ValueError, match="mlp_2/kernel: in the base model only"):
    deeper_dir = _save_base(tmp_path / "deeper", _build(BASE, dataclasses.replace(MODEL, mlp_layers=(8, 4, 4))),
                            BASE)
    warm_start.warm_start(_build(NEW), deeper_dir, NEW)


def test_a_missing_base_model_or_vocabulary_is_named(tmp_path):
  with pytest.raises(ValueError, match=f"cannot warm-start from {tmp_path / 'nowhere'}: no saved_model.pb"):
    warm_start.warm_start(_build(NEW), str(tmp_path / "nowhere"), NEW)
  base_dir = _save_base(tmp_path / "base", _build(BASE), {features.MOVIE_ID: BASE[features.MOVIE_ID]})
  with pytest.raises(ValueError, match="has no vocabulary asset 'user_id'"):
    warm_start.warm_start(_build(NEW), base_dir, NEW)
  module = tf.Module()
  module.table = tf.Variable([1.0])
  tf.saved_model.save(module, str(tmp_path / "other"))
  with pytest.raises(ValueError, match="the SavedModel tracks neither `model_weights` nor `model`"):
    warm_start.warm_start(_build(NEW), str(tmp_path / "other"), NEW)


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  work = tmp_path_factory.mktemp("warm-start")
  testdata.write_examples(testdata.make_examples(), work / "raw")
  transform_dir, train_files = testdata.run_transform(work / "raw", work / "transform")
  return work, str(transform_dir), train_files


def _fn_args(transform_dir: str, train_files: str, serving_dir: Path, base_model, **train) -> types.SimpleNamespace:
  train_config = dataclasses.replace(testdata.TINY_TRAIN, **train)
  return types.SimpleNamespace(
      custom_config={"model": dataclasses.asdict(testdata.TINY_MODEL), "train": dataclasses.asdict(train_config),
                     "model_name": "ncf"},
      transform_output=transform_dir, train_files=[train_files], serving_model_dir=str(serving_dir),
      data_accessor=types.SimpleNamespace(tf_dataset_factory=testdata.tfrecord_dataset_factory),
      base_model=base_model)


def test_the_trainer_starts_from_the_base_model_better_than_cold(transformed, caplog):
  work, transform_dir, train_files = transformed
  caplog.set_level(logging.INFO)
  # The first run: warm start asked for, no blessed model yet -> trains cold and exports.
  trainer.run_fn(_fn_args(transform_dir, train_files, work / "base", None, warm_start=True, epochs=4))
  assert "no blessed model yet: training cold" in caplog.text
  tf_transform_output = tft.TFTransformOutput(transform_dir)
  one_epoch = dataclasses.replace(testdata.TINY_TRAIN, warm_start_epochs=1)
  warm, _ = trainer.train_model([train_files], tf_transform_output, testdata.tfrecord_dataset_factory,
                                testdata.TINY_MODEL, one_epoch, base_model_dir=str(work / "base"))
  cold, _ = trainer.train_model([train_files], tf_transform_output, testdata.tfrecord_dataset_factory,
                                testdata.TINY_MODEL, dataclasses.replace(one_epoch, epochs=1))
  assert len(warm.history.history["loss"]) == 1  # warm_start_epochs, not epochs (10)
  assert warm.history.history["loss"][0] < 0.9 * cold.history.history["loss"][0]
  assert "warm start from" in caplog.text and "users 60 copied, 0 new, 0 dropped" in caplog.text
  # run_fn warm-starts from the base model's serving SavedModel and exports.
  trainer.run_fn(_fn_args(transform_dir, train_files, work / "warm", str(work / "base"), warm_start=True,
                          warm_start_epochs=1))
  assert (work / "warm" / "saved_model.pb").is_file()


def _pipeline_config(work: Path, **train) -> PipelineConfig:
  return PipelineConfig(pipeline_name="warm-start-test", pipeline_root=work / "root", examples_dir=work / "examples",
                        serving_dir=work / "serving", schema_dir=CURATED_SCHEMA_DIR,
                        data=DataConfig(dataset="ml-latest", data_dir=work / "raw"),
                        train=dataclasses.replace(testdata.TINY_TRAIN, **train),
                        infra_validation=InfraValidationConfig(enabled=False))


def test_with_warm_start_the_trainer_takes_the_latest_blessed_model_as_its_base_model(tmp_path):
  from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

  from pipeline.pipeline import create_pipeline

  by_id = {c.id: c for c in create_pipeline(_pipeline_config(tmp_path, warm_start=True)).components}
  resolver = by_id["warm_start_model_resolver"]
  assert resolver.exec_properties["resolver_class"] is LatestBlessedModelStrategy
  assert by_id["Trainer"].inputs["base_model"] is resolver.outputs["model"]
  cold = {c.id: c for c in create_pipeline(_pipeline_config(tmp_path)).components}
  assert "warm_start_model_resolver" not in cold and "base_model" not in cold["Trainer"].inputs


def test_warm_start_flags_reach_the_train_config():
  from pipeline import cli
  from pipeline.cli import flags
  from pipeline.cli.pipeline import TRAIN_FLAGS

  for command in (["run"], ["compile", "--output", "spec.yaml"]):
    args = cli.build_parser().parse_args(["pipeline", *command, "--warm-start", "--warm-start-epochs", "2"])
    train = flags.from_flags(TrainConfig, args, TRAIN_FLAGS, "train_")
    assert (train.warm_start, train.warm_start_epochs) == (True, 2)
  default = flags.from_flags(TrainConfig, cli.build_parser().parse_args(["pipeline", "run"]), TRAIN_FLAGS, "train_")
  assert (default.warm_start, default.warm_start_epochs) == (False, None)


def test_kubeflow_compiles_the_warm_start_resolver(tmp_path):
  from pipeline.runners import kubeflow

  spec = kubeflow.compile_pipeline(_pipeline_config(tmp_path, warm_start=True), "image:1")
  trainer_task = spec.root.dag.tasks["Trainer"]
  assert (trainer_task.inputs.artifacts["base_model"].task_output_artifact.producer_task
          == "warm_start_model_resolver-model-resolver")
