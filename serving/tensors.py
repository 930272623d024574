"""TensorProto <-> numpy conversion and the dtype/shape checks a request's inputs must pass."""
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2
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
  if array.dtype == object or array.dtype.kind not in "fiub":
    return tf.make_tensor_proto(array)
  # The same proto tf.make_tensor_proto builds for numeric arrays, without its per-call type dispatch
  # (it runs for every output of every request).
  proto = tensor_pb2.TensorProto(dtype=tf.dtypes.as_dtype(array.dtype).as_datatype_enum,
                                 tensor_content=np.ascontiguousarray(array).tobytes())
  proto.tensor_shape.dim.extend(tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape)
  return proto


def check_input(name: str, array: np.ndarray, spec: tf.TensorSpec) -> np.ndarray:
  """Checks `array` against the signature's TensorSpec and returns it.

  Raises INVALID_ARGUMENT naming the input when the dtype differs or the shape is incompatible.
  """
  want = spec.dtype
  got = tf.string if array.dtype == object else tf.dtypes.as_dtype(array.dtype)
  if got != want:
    raise errors.invalid_argument(
        f"input {name!r} expects {dtype_name(want.as_datatype_enum)} but "
        f"{dtype_name(got.as_datatype_enum)} is provided")
  dims = spec.shape.as_list() if spec.shape.rank is not None else None
  if dims is not None and (len(dims) != array.ndim or any(
      want_dim is not None and want_dim != got_dim for want_dim, got_dim in zip(dims, array.shape))):
    raise errors.invalid_argument(
        f"input {name!r} has shape {list(array.shape)} which is not compatible with the signature's "
        f"shape {spec.shape}")
  return array
