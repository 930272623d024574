"""TF Serving's loader: loads a SavedModel version and replays its warmup requests before it takes traffic."""
import logging
from pathlib import Path
from typing import Callable, Optional

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import batcher
from serving import errors
from serving import inference
from serving import tensors
from serving.servable import Servable

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving refuses warmup files with more records

log = logging.getLogger(__name__)


class Loader:
  """Makes Servables that share the server's batching options and batch metrics hook.

  Args:
    batching: batching options, or None to run each request on its own.
    on_batch: called with (model name, signature, BatchStats) for every executed batch.
    enable_warmup: TF Serving's --enable_model_warmup.
    limits: what one request may allocate (--max_request_elements, --max_request_bytes).
    session_config: the models' Session options (the TensorFlow thread flags).
  """

  def __init__(self, batching: Optional[batcher.BatchingOptions],
               on_batch: Optional[Callable[[str, str, batcher.BatchStats], None]], enable_warmup: bool,
               limits: tensors.RequestLimits, session_config: tf.compat.v1.ConfigProto):
    self._batching = batching
    self._on_batch = on_batch
    self._enable_warmup = enable_warmup
    self._limits = limits
    self._session_config = session_config

  def load(self, name: str, version: int, path: Path) -> Servable:
    """Loads version `version` of `name` from `path` and warms it up; a failing warmup closes it and raises."""
    servable = Servable(name, version, path, self._batching, self._on_batch, self._limits, self._session_config)
    try:
      if self._enable_warmup:
        count = _replay_warmup(servable)
        if count:
          log.info("Finished reading %d warmup records for {name: %s version: %d}", count, name, version)
    except BaseException:
      servable.close()
      raise
    return servable


def _replay_warmup(servable: Servable) -> int:
  """Replays assets.extra/tf_serving_warmup_requests (PredictionLog TFRecords) through `servable`; returns the
  number of records (0 when there is no file). Any failing record fails the load."""
  path = servable.path / WARMUP_FILE
  if not path.exists():
    return 0
  count = 0
  for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
    count += 1
    if count > MAX_WARMUP_RECORDS:
      raise errors.invalid_argument(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records")
    log_entry = prediction_log_pb2.PredictionLog.FromString(record)
    kind = log_entry.WhichOneof("log_type")
    if kind == "predict_log":
      inference.predict(servable, log_entry.predict_log.request)
    elif kind == "classify_log":
      inference.classify(servable, log_entry.classify_log.request)
    elif kind == "regress_log":
      inference.regress(servable, log_entry.regress_log.request)
    elif kind == "multi_inference_log":
      inference.multi_inference(servable, log_entry.multi_inference_log.request)
    else:
      raise errors.invalid_argument(f"{path}: record {count} holds unsupported warmup log type {kind}")
  return count
