"""TensorProto <-> numpy conversion and the dtype/shape checks a request's inputs must pass."""
from typing import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2

from serving import errors


def dtype_name(dtype: int) -> str:
  """types_pb2.DataType number -> its name, e.g. 1 -> 'DT_FLOAT'."""
  return types_pb2.DataType.Name(dtype)


def to_ndarray(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
  """Decodes the request tensor `name`; a malformed proto is INVALID_ARGUMENT naming the input."""
  try:
    return tf.make_ndarray(proto)
  except (TypeError, ValueError) as e:
    raise errors.invalid_argument(f"input tensor {name!r} is not a valid TensorProto: {e}") from e


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
  """Encodes an output array (numeric arrays go in tensor_content, as TF Serving answers)."""
  return tf.make_tensor_proto(array)


def to_protos(arrays: Mapping[str, np.ndarray]) -> Mapping[str, tensor_pb2.TensorProto]:
  return {key: to_proto(value) for key, value in arrays.items()}


def check_input(name: str, array: np.ndarray, spec: tf.TensorSpec) -> np.ndarray:
  """Checks `array` against the signature's TensorSpec; returns it cast to the spec's exact numpy dtype.

  Raises INVALID_ARGUMENT naming the input when the dtype differs or the shape is incompatible.
  """
  want = spec.dtype
  got = tf.dtypes.as_dtype(array.dtype) if array.dtype != object else tf.string
  if got != want:
    raise errors.invalid_argument(
        f"input {name!r} expects {dtype_name(want.as_datatype_enum)} but "
        f"{dtype_name(got.as_datatype_enum)} is provided")
  if not spec.shape.is_compatible_with(array.shape):
    raise errors.invalid_argument(
        f"input {name!r} has shape {list(array.shape)} which is not compatible with the signature's "
        f"shape {spec.shape}")
  return array
