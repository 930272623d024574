"""serving.tensor_codec (TensorProto <-> numpy without TensorFlow) agrees with TensorFlow's own conversion, on the
real TensorProto class and on the client's generated copy."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from serving import tensor_codec
from serving.client_protos.tensorflow.core.framework import tensor_pb2 as client_tensor_pb2

ARRAYS = [
    np.array([[1.5, -2.0]], np.float32), np.array([1.0, 2.0], np.float64), np.array([[1], [2], [3]], np.int32),
    np.array([7, 8], np.int64), np.array([True, False]), np.array([1, 2], np.uint8), np.array([1.5], np.float16),
    np.array([[b"a", b"bc"], [b"", b"\xff"]], dtype=object), np.array(3.0, np.float32), np.zeros([0, 4], np.int64),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
@pytest.mark.parametrize("proto_type", [tensor_pb2.TensorProto, client_tensor_pb2.TensorProto],
                         ids=["tensorflow", "client"])
def test_round_trip_matches_tensorflow(array, proto_type):
  proto = proto_type()
  tensor_codec.from_ndarray(array, proto)
  as_tensorflow = tensor_pb2.TensorProto.FromString(proto.SerializeToString())
  np.testing.assert_array_equal(tf.make_ndarray(as_tensorflow), array)
  np.testing.assert_array_equal(tensor_codec.to_ndarray(proto_type.FromString(
      tf.make_tensor_proto(array).SerializeToString())), array)
  assert tensor_codec.to_ndarray(proto).shape == array.shape


def test_one_value_fills_the_declared_shape_and_other_counts_are_refused():
  proto = tf.make_tensor_proto(2.5, dtype=tf.float32, shape=[2, 3])  # TensorFlow's single-value form
  assert tensor_codec.value_count(proto, tensor_codec.BY_NUMBER[proto.dtype]) == 1
  np.testing.assert_array_equal(tensor_codec.to_ndarray(proto), np.full([2, 3], 2.5, np.float32))
  proto.float_val.append(1.0)
  with pytest.raises(tensor_codec.TensorCodecError, match="2 values do not fill shape"):
    tensor_codec.to_ndarray(proto)
  content = tensor_pb2.TensorProto(dtype=tf.float32.as_datatype_enum, tensor_content=b"\0" * 10)
  content.tensor_shape.dim.add().size = 2
  assert tensor_codec.value_count(content, tensor_codec.BY_NUMBER[content.dtype]) == -1  # not whole floats


def test_strings_must_be_bytes_or_str():
  proto = tensor_pb2.TensorProto()
  tensor_codec.from_ndarray(np.array(["é", b"x"], dtype=object), proto)
  assert list(proto.string_val) == ["é".encode(), b"x"]
  with pytest.raises(tensor_codec.TensorCodecError, match="holds list"):
    tensor_codec.from_ndarray(np.array([[1], [2, 3]], dtype=object), tensor_pb2.TensorProto())
