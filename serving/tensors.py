"""The checks every request tensor passes before anything is allocated for it, then its decoding; TF Serving's
own messages where it has one (`tensor parsing error: x`)."""
import dataclasses
import math
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
from tensorflow.core.framework import tensor_pb2

from serving import errors
from serving import tensor_codec


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """A signature input: DataType number and shape (None: unknown rank; a None dimension: any size)."""
  dtype: int
  shape: Optional[Tuple[Optional[int], ...]]


@dataclasses.dataclass(frozen=True)
class RequestLimits:
  """What one request may ask the server to allocate.

  max_elements: elements over all input tensors (--max_request_elements).
  max_string_bytes: bytes over all string values (--max_request_bytes).
  max_batch_size: dimension 0 of a batched signature's inputs (BatchingParameters.max_batch_size), or None.
  """
  max_elements: int
  max_string_bytes: int
  max_batch_size: Optional[int] = None


def decode_inputs(protos: Mapping[str, tensor_pb2.TensorProto], specs: Mapping[str, InputSpec],
                  limits: RequestLimits, batched: bool) -> Dict[str, np.ndarray]:
  """Checks every request tensor against its spec and `limits`, then decodes them all.

  `protos` and `specs` have the same keys; they are checked in the order of `specs`. `batched`: the signature
  runs through the batcher, so dimension 0 may not exceed limits.max_batch_size.

  Raises:
    ServingError: INVALID_ARGUMENT naming the input and what it broke (dtype, shape, element or byte cap, batch
      size, values that do not match the declared shape); nothing was allocated.
  """
  elements = string_bytes = 0
  checked = {}
  for key, spec in specs.items():
    proto = protos[key]
    shape = _check_shape(key, proto, spec)
    count = math.prod(shape)
    elements += count
    if elements > limits.max_elements:
      raise errors.invalid_argument(
          f"input {key!r} declares shape {list(shape)} ({count} elements); the request would hold {elements} "
          f"elements, more than the server's limit --max_request_elements={limits.max_elements}")
    if batched and limits.max_batch_size is not None and shape and shape[0] > limits.max_batch_size:
      raise errors.invalid_argument(
          f"Task size {shape[0]} is larger than maximum input batch size {limits.max_batch_size} "
          f"(input {key!r})")
    dtype = tensor_codec.BY_NUMBER[proto.dtype]
    values = tensor_codec.value_count(proto, dtype)
    if values != count and not (values == 1 and count > 0):
      raise errors.invalid_argument(
          f"tensor parsing error: {key} (shape {list(shape)} holds {count} elements but the tensor carries "
          + (f"{len(proto.tensor_content)} bytes of tensor_content for {dtype.name}"
             if proto.tensor_content else f"{values} {dtype.values_field} values") + ")")
    if dtype.number == tensor_codec.STRING:
      string_bytes += sum(len(value) for value in proto.string_val) * (count if values == 1 else 1)
      if string_bytes > limits.max_string_bytes:
        raise errors.invalid_argument(
            f"input {key!r}: the request's strings would hold {string_bytes} bytes, more than the server's "
            f"limit --max_request_bytes={limits.max_string_bytes}")
    checked[key] = (dtype, shape, values)
  return {key: tensor_codec.decode_checked(protos[key], *checked[key]) for key in checked}


def _check_shape(key: str, proto: tensor_pb2.TensorProto, spec: InputSpec) -> Tuple[int, ...]:
  if proto.dtype != spec.dtype:
    raise errors.invalid_argument(
        f"input {key!r} expects {tensor_codec.dtype_name(spec.dtype)} but {tensor_codec.dtype_name(proto.dtype)} "
        "is provided")
  if proto.dtype not in tensor_codec.BY_NUMBER:
    raise errors.invalid_argument(f"input {key!r}: {tensor_codec.dtype_name(proto.dtype)} tensors are not supported")
  shape = tensor_codec.declared_shape(proto)
  if shape is None:
    dims = ", ".join(str(d.size) for d in proto.tensor_shape.dim)
    raise errors.invalid_argument(
        f"tensor parsing error: {key} (the request must give a fully defined shape, got [{dims}]"
        f"{' unknown_rank' * proto.tensor_shape.unknown_rank})")
  if spec.shape is not None and (len(spec.shape) != len(shape) or any(
      want is not None and want != got for want, got in zip(spec.shape, shape))):
    raise errors.invalid_argument(
        f"input {key!r} has shape {list(shape)} which is not compatible with the signature's shape "
        f"[{', '.join('?' if d is None else str(d) for d in spec.shape)}]")
  return shape


def to_ndarray(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
  """Decodes a tensor the server itself produced (an output); INVALID_ARGUMENT naming it if it cannot."""
  try:
    return tensor_codec.to_ndarray(proto)
  except tensor_codec.TensorCodecError as e:
    raise errors.invalid_argument(f"tensor {name!r}: {e}") from e
