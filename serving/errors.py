"""The one error type request handlers raise: a gRPC status code and TF Serving's message for it."""
import grpc


class ServingError(Exception):
  """A request failed with `code` (a grpc.StatusCode); `message` names the model, version, signature or input."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message

  def __str__(self) -> str:
    return f"{self.code.name}: {self.message}"


def not_found(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.NOT_FOUND, message)


def invalid_argument(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unavailable(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.UNAVAILABLE, message)


# TensorFlow's error codes are the gRPC codes by number (both follow google.rpc.Code).
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def from_tf_error(error: Exception) -> ServingError:
  """Maps a tf.errors.OpError raised while running a signature to the same status code TF Serving returns."""
  code = _CODES_BY_NUMBER.get(getattr(error, "error_code", 13), grpc.StatusCode.INTERNAL)
  return ServingError(code, getattr(error, "message", str(error)))


def unimplemented(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.UNIMPLEMENTED, message)
