"""Small SavedModels for serving tests: a NeuMF trained on made-up data in seconds and exported exactly like the
pipeline, and models a model server cannot serve right."""
import tempfile
from pathlib import Path
from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from components import signatures
from components import trainer
from components.model_export import export_serving_model
from tests.support import testdata


def export_tiny_ncf_model(export_dir: Path, model_name: str = "ncf") -> None:
  """Trains a small NeuMF on made-up data for a couple of seconds and exports it exactly like the pipeline does.

  For other areas' tests (serving, clients). `export_dir` receives the SavedModel (saved_model.pb, variables/,
  assets/, assets.extra/tf_serving_warmup_requests); the known user ids are "1".."60", movie ids "1".."40".
  """
  with tempfile.TemporaryDirectory() as work:
    work_dir = Path(work)
    testdata.write_examples(testdata.make_examples(), work_dir / "raw")
    transform_dir, transformed_train = testdata.run_transform(work_dir / "raw", work_dir / "transform")
    tf_transform_output = tft.TFTransformOutput(str(transform_dir))
    train_config = testdata.TINY_TRAIN
    model, _ = trainer.train_model([transformed_train], tf_transform_output, testdata.tfrecord_dataset_factory,
                                   testdata.TINY_MODEL, train_config)
    export_serving_model(model, tf_transform_output, Path(export_dir), train_config, model_name)


class _UnservableModule(tf.Module):
  """Signatures a model server cannot answer like the SavedModel: each fails infra validation in its own way."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
  def refuses(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Fails at run time on every request."""
    tf.debugging.assert_equal(tf.size(user_id), -1, message="this signature refuses every request")
    return {"score": tf.zeros(tf.shape(user_id))}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.complex64, name="rating")])
  def complex_rating(self, rating: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Takes a dtype the embedded server does not decode (complex64)."""
    return {"score": tf.math.real(rating)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="user_id")])
  def noisy(self, user_id: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Answers the clock's fraction of a second, so the server's answer never equals the in-process one (random
    ops would not do: with a global seed set they repeat the same numbers in every process)."""
    return {"score": tf.fill(tf.shape(user_id), tf.math.floormod(tf.timestamp(), 1.0))}


def save_unservable_model(export_dir: Path) -> None:
  """Saves a SavedModel whose signatures `refuses`, `complex_rating` and `noisy` cannot be served right (inputs
  `user_id` and `rating`, as the eval examples name their features)."""
  module = _UnservableModule()
  tf.saved_model.save(module, str(export_dir), signatures={
      "refuses": module.refuses.get_concrete_function(),
      "complex_rating": module.complex_rating.get_concrete_function(),
      "noisy": module.noisy.get_concrete_function(),
  })


def write_warmup_for_missing_signature(export_dir: Path, signature_name: str = "missing") -> None:
  """Replaces the SavedModel's warmup requests by one for `signature_name`, which it does not have: a model
  server fails the version's load on it."""
  request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="ncf", signature_name=signature_name))
  request.inputs[signatures.USER_ID_INPUT].CopyFrom(tf.make_tensor_proto([b"1"]))
  log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
  with tf.io.TFRecordWriter(str(export_dir / signatures.WARMUP_FILE)) as writer:
    writer.write(log.SerializeToString())
