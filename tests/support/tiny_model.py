"""A small NeuMF trained on made-up data in seconds and exported exactly like the pipeline, for serving tests."""
import tempfile
from pathlib import Path

import tensorflow_transform as tft

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
