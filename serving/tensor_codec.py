"""TensorProto <-> numpy without TensorFlow, for the server and the TF-free client alike.

Works on any TensorProto class with TensorFlow's fields (the real `tensorflow.core.framework.tensor_pb2` or the
client's generated copy in `serving.client_protos`). Also answers, from the proto alone, how many elements a
tensor declares and how many values it carries, so that a request can be checked before anything is allocated.
"""
import dataclasses
import math
from typing import Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class DType:
  """One TensorFlow DataType: its enum number and name, numpy dtype, and the TensorProto field of its values."""
  number: int
  name: str
  numpy: np.dtype
  values_field: str


# types_pb2.DataType numbers (stable across TensorFlow versions) of the dtypes a request may carry.
_DTYPES = (
    DType(1, "DT_FLOAT", np.dtype(np.float32), "float_val"),
    DType(2, "DT_DOUBLE", np.dtype(np.float64), "double_val"),
    DType(3, "DT_INT32", np.dtype(np.int32), "int_val"),
    DType(4, "DT_UINT8", np.dtype(np.uint8), "int_val"),
    DType(5, "DT_INT16", np.dtype(np.int16), "int_val"),
    DType(6, "DT_INT8", np.dtype(np.int8), "int_val"),
    DType(7, "DT_STRING", np.dtype(object), "string_val"),
    DType(9, "DT_INT64", np.dtype(np.int64), "int64_val"),
    DType(10, "DT_BOOL", np.dtype(np.bool_), "bool_val"),
    DType(17, "DT_UINT16", np.dtype(np.uint16), "int_val"),
    DType(19, "DT_HALF", np.dtype(np.float16), "half_val"),
    DType(22, "DT_UINT32", np.dtype(np.uint32), "uint32_val"),
    DType(23, "DT_UINT64", np.dtype(np.uint64), "uint64_val"),
)
BY_NUMBER = {dtype.number: dtype for dtype in _DTYPES}
_BY_NUMPY = {dtype.numpy: dtype for dtype in _DTYPES}
STRING = 7


class TensorCodecError(ValueError):
  """A TensorProto or array that cannot be converted (unsupported dtype, values that do not fit the shape)."""


def dtype_name(number: int) -> str:
  """DataType number -> its name, e.g. 1 -> 'DT_FLOAT' (unknown numbers: 'DataType 42')."""
  dtype = BY_NUMBER.get(number)
  return dtype.name if dtype is not None else f"DataType {number}"


def declared_shape(proto) -> Optional[Tuple[int, ...]]:
  """The proto's shape, or None when it says unknown_rank or has a negative dimension."""
  if proto.tensor_shape.unknown_rank:
    return None
  shape = tuple([d.size for d in proto.tensor_shape.dim])  # one pass: each dim is a message wrapper
  return None if shape and min(shape) < 0 else shape


def value_count(proto, dtype: DType) -> int:
  """How many values the proto carries: from tensor_content (bytes / itemsize, -1 when not a whole number of
  items) or from its *_val field."""
  if proto.tensor_content:
    if dtype.number == STRING:
      return -1  # TensorFlow encodes strings in tensor_content only internally; requests use string_val
    items, rest = divmod(len(proto.tensor_content), dtype.numpy.itemsize)
    return -1 if rest else items
  return len(getattr(proto, dtype.values_field))


def to_ndarray(proto) -> np.ndarray:
  """Decodes a TensorProto whose shape and value count were checked (values == elements, or 1 value that
  fills the shape). Strings come back as an object array of bytes.

  Raises:
    TensorCodecError: unsupported dtype, or values that do not fit the shape.
  """
  dtype = BY_NUMBER.get(proto.dtype)
  shape = declared_shape(proto)
  if dtype is None or shape is None:
    raise TensorCodecError(f"cannot decode a {dtype_name(proto.dtype)} tensor of shape {proto.tensor_shape}")
  elements = math.prod(shape)
  count = value_count(proto, dtype)
  if count != elements and not (count == 1 and elements > 0):
    raise TensorCodecError(f"{count} values do not fill shape {list(shape)} ({elements} elements)")
  return decode_checked(proto, dtype, shape, count)


def decode_checked(proto, dtype: DType, shape: Tuple[int, ...], count: int) -> np.ndarray:
  """to_ndarray() for a caller that already has the proto's dtype, declared_shape() and value_count() and
  checked that the values fill the shape."""
  if proto.tensor_content:
    flat = np.frombuffer(proto.tensor_content, dtype=dtype.numpy)
  elif dtype.number == STRING:
    flat = np.empty(count, dtype=object)
    flat[:] = list(proto.string_val)
  elif dtype.number == 19:  # half_val holds the float16 bit patterns in int32s
    flat = np.array(proto.half_val, dtype=np.uint16).view(np.float16)
  else:
    flat = np.array(getattr(proto, dtype.values_field), dtype=dtype.numpy)
  if count == 1 and math.prod(shape) != 1:
    return np.full(shape, flat[0], dtype=dtype.numpy)
  return flat.reshape(shape)


def from_ndarray(array: np.ndarray, proto) -> None:
  """Fills the empty TensorProto `proto` with `array` (numbers in tensor_content, as TF Serving answers;
  strings in string_val; str elements are UTF-8 encoded).

  Raises:
    TensorCodecError: the dtype has no TensorFlow equivalent, or an object array holds something other than
      bytes or str.
  """
  array = np.asarray(array)
  if array.dtype.kind in "OSU":
    number = STRING
  else:
    dtype = _BY_NUMPY.get(array.dtype)
    if dtype is None:
      raise TensorCodecError(f"no TensorFlow dtype for numpy {array.dtype}")
    number = dtype.number
  proto.dtype = number
  for size in array.shape:
    proto.tensor_shape.dim.add().size = size
  if number != STRING:
    proto.tensor_content = np.ascontiguousarray(array).tobytes()
    return
  values = []
  for value in array.reshape(-1).tolist():
    if isinstance(value, str):
      value = value.encode()
    elif not isinstance(value, bytes):
      raise TensorCodecError(f"a string tensor holds {type(value).__name__} {str(value)[:40]!r}, not bytes or str")
    values.append(value)
  proto.string_val.extend(values)
