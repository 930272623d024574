"""What infra validation asks the served model and what it expects back.

Queries: one PredictRequest per signature of the SavedModel, built from a few eval tf.Examples (an input named
like a feature gets that feature's values; another string input of shape [B] gets the serialized examples,
as `serving_default` takes them), then the SavedModel's own warmup requests (`assets.extra/
tf_serving_warmup_requests`; its Predict records: the server itself replays every record while it loads). The
expected answer of each query is the SavedModel's, called in this process on the same inputs.
"""
import dataclasses
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from components import signatures

Signature = Callable[..., Dict[str, tf.Tensor]]


class QueryBuildError(ValueError):
  """A signature's input cannot be filled from the eval examples; the message names signature and input."""


@dataclasses.dataclass(frozen=True)
class Query:
  """One request to send and how to get the answer the SavedModel itself gives."""
  description: str  # e.g. "signature 'predict' on 8 eval examples", for messages
  signature_name: str
  request: predict_pb2.PredictRequest

  def inputs(self) -> Dict[str, np.ndarray]:
    return {key: tf.make_ndarray(proto) for key, proto in self.request.inputs.items()}


def read_examples(split_dir: str, count: int) -> List[bytes]:
  """The first `count` serialized tf.Examples of an ExampleGen split folder (GZIP TFRecords, as ExampleGen
  writes them)."""
  files = sorted(tf.io.gfile.glob(f"{split_dir}/*"))
  if not files:
    raise FileNotFoundError(f"no example files in {split_dir}")
  compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
  return list(tf.data.TFRecordDataset(files, compression_type=compression).take(count).as_numpy_iterator())


def _feature_values(example: tf.train.Example, name: str) -> list:
  feature = example.features.feature[name]
  return list(getattr(feature, feature.WhichOneof("kind")).value) if feature.WhichOneof("kind") else []


def _input_values(signature_name: str, name: str, spec: tf.TensorSpec, examples: Sequence[bytes]) -> np.ndarray:
  """The [B, ...] array for input `name` of `spec` from `examples` (see the module docstring)."""
  what = f"signature {signature_name!r} input {name!r} ({spec.dtype.name} {spec.shape})"
  parsed = [tf.train.Example.FromString(serialized) for serialized in examples]
  if all(name in example.features.feature for example in parsed):
    row_shape = spec.shape[1:]
    if not row_shape.is_fully_defined():
      raise QueryBuildError(f"{what}: only fixed-size rows can be filled from the feature {name!r}")
    size = row_shape.num_elements()
    rows = [_feature_values(example, name) for example in parsed]
    if any(len(row) != size for row in rows):
      raise QueryBuildError(f"{what}: the eval examples' feature {name!r} does not have {size} value(s) in "
                            f"every example (found {sorted({len(row) for row in rows})})")
    dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
    try:
      return np.array(rows, dtype=dtype).reshape([len(rows), *row_shape.as_list()])
    except (TypeError, ValueError) as error:
      raise QueryBuildError(f"{what}: the values of feature {name!r} do not convert: {error}") from error
  if spec.dtype == tf.string and spec.shape.rank == 1:
    return np.array(examples, dtype=object)
  raise QueryBuildError(f"{what}: no eval feature of that name to fill it, and it does not take serialized "
                        "tf.Examples (string [B])")


def example_queries(saved_model_signatures: Dict[str, Signature], model_name: str,
                    examples: Sequence[bytes]) -> List[Query]:
  """One query per signature (sorted by name) on `examples` (serialized tf.Examples).

  Raises:
    QueryBuildError: an input of a signature cannot be filled from the examples.
  """
  queries = []
  for signature_name, function in sorted(saved_model_signatures.items()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model_name, signature_name
    for name, spec in sorted(function.structured_input_signature[1].items()):
      request.inputs[name].CopyFrom(tf.make_tensor_proto(_input_values(signature_name, name, spec, examples)))
    queries.append(Query(f"signature {signature_name!r} on {len(examples)} eval examples", signature_name,
                         request))
  return queries


def warmup_queries(model_dir: Path, model_name: str) -> List[Query]:
  """The Predict records of the SavedModel's warmup file (none when it has no file), addressed to
  `model_name` at its latest version."""
  path = model_dir / signatures.WARMUP_FILE
  if not path.exists():
    return []
  queries = []
  for number, record in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator(), 1):
    log = prediction_log_pb2.PredictionLog.FromString(record)
    if log.WhichOneof("log_type") != "predict_log":
      continue
    request = predict_pb2.PredictRequest()
    request.CopyFrom(log.predict_log.request)
    request.model_spec.Clear()
    request.model_spec.name = model_name
    request.model_spec.signature_name = log.predict_log.request.model_spec.signature_name
    signature_name = request.model_spec.signature_name or tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    queries.append(Query(f"warmup record {number} (signature {signature_name!r})", signature_name, request))
  return queries


def expected_outputs(query: Query, saved_model_signatures: Dict[str, Signature]) -> Dict[str, np.ndarray]:
  """What the SavedModel answers to `query` in this process: {output: array}, only the request's
  output_filter when it has one.

  Raises:
    KeyError: the SavedModel has no such signature; tf.errors.OpError: the signature fails on these inputs.
  """
  function = saved_model_signatures[query.signature_name]
  outputs = function(**{key: tf.constant(value) for key, value in query.inputs().items()})
  wanted = set(query.request.output_filter) or set(outputs)
  return {key: value.numpy() for key, value in outputs.items() if key in wanted}


def differences(expected: Dict[str, np.ndarray], response: predict_pb2.PredictResponse,
                tolerance: float) -> List[str]:
  """How the server's `response` differs from the in-process `expected` outputs (empty: it does not).
  Floats may differ by `tolerance` (absolute and relative); every other dtype must be equal."""
  answered = {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
  found = []
  if set(answered) != set(expected):
    found.append(f"outputs {sorted(answered)} instead of {sorted(expected)}")
  for key in sorted(set(answered) & set(expected)):
    got, want = answered[key], expected[key]
    if got.shape != want.shape or got.dtype != want.dtype:
      found.append(f"output {key!r} is {got.dtype} {list(got.shape)} instead of {want.dtype} {list(want.shape)}")
    elif np.issubdtype(want.dtype, np.floating):
      if not np.allclose(got, want, rtol=tolerance, atol=tolerance, equal_nan=True):
        found.append(f"output {key!r} differs by up to {np.nanmax(np.abs(got - want)):.3g} (tolerance "
                     f"{tolerance:g})")
    elif not np.array_equal(got, want):
      mismatched = int(np.sum(got != want))
      found.append(f"output {key!r} differs in {mismatched} of {want.size} values")
  return found
