"""The request semantics of TF Serving's PredictionService on one Servable: Predict, Classify, Regress,
MultiInference and GetModelMetadata.

Shared by the gRPC and REST front ends (through the server core) and by warmup, so all answer and fail the same
way. Every failure is an errors.ServingError whose code and message follow TF Serving.
"""
import dataclasses
from typing import Dict, Iterable, List, Mapping

import numpy as np
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import regression_pb2

from serving import errors
from serving import tensor_codec
from serving.servable import Servable
from serving.servable import Signature

CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
PREDICT_METHOD = "tensorflow/serving/predict"
EXAMPLES_INPUT = "inputs"  # the one input of classify/regress signatures (serialized tf.Examples)
SIGNATURE_DEF_FIELD = "signature_def"


def fill_model_spec(spec: model_pb2.ModelSpec, servable: Servable, signature_name: str) -> None:
  spec.name = servable.name
  spec.version.value = servable.version
  spec.signature_name = signature_name


@dataclasses.dataclass(frozen=True)
class PendingPredict:
  """A checked PredictRequest: what to run and which outputs to answer."""
  signature: Signature
  inputs: Dict[str, np.ndarray]
  wanted: List[str]


def predict(servable: Servable, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
  """Runs the request's signature on its inputs; returns all outputs, or those named in output_filter."""
  pending = begin_predict(servable, request)
  return finish_predict(servable, pending, servable.run(pending.signature, pending.inputs))


def begin_predict(servable: Servable, request: predict_pb2.PredictRequest) -> PendingPredict:
  """Resolves the signature and checks the inputs and output_filter (the part of Predict before running)."""
  signature = servable.signature(request.model_spec.signature_name)
  return PendingPredict(signature, _check_inputs(servable, signature, request.inputs),
                        _output_keys(signature, request.output_filter))


def finish_predict(servable: Servable, pending: PendingPredict,
                   outputs: Dict[str, np.ndarray]) -> predict_pb2.PredictResponse:
  response = predict_pb2.PredictResponse()
  fill_model_spec(response.model_spec, servable, pending.signature.name)
  for key in pending.wanted:
    tensor_codec.from_ndarray(outputs[key], response.outputs[key])  # in place: no copy of the tensor
  return response


def _check_inputs(servable: Servable, signature: Signature,
                  protos: Mapping[str, tensor_pb2.TensorProto]) -> Dict[str, np.ndarray]:
  """Decodes request tensors; wrong/missing/extra names, dtypes and shapes are INVALID_ARGUMENT."""
  expected = signature.input_specs
  if len(protos) != len(expected) or any(key not in protos for key in expected):
    sent, expected = set(protos), set(expected)
    raise errors.invalid_argument(
        f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}}) "
        f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(sent - expected))}}}. "
        f"Missing but required: {{{','.join(sorted(expected - sent))}}}. "
        f"(model {servable.name} version {servable.version} signature {signature.name})")
  return servable.decode_inputs(signature, protos)


def _output_keys(signature: Signature, output_filter: Iterable[str]) -> List[str]:
  if not output_filter:
    return list(signature.output_names)
  wanted = list(output_filter)
  for key in wanted:
    if key not in signature.output_names:
      raise errors.invalid_argument(
          f"output tensor alias not found in signature: {key} Outputs expected to be in the set "
          f"{{{','.join(signature.output_names)}}}. (signature {signature.name})")
  if len(set(wanted)) != len(wanted):
    raise errors.invalid_argument(f"duplicate output tensor alias in output_filter: {wanted}")
  return wanted


def _serialized_examples(servable: Servable, request_input: input_pb2.Input) -> np.ndarray:
  """Input (example_list or example_list_with_context) -> serialized tf.Examples, object array [N].

  More examples than --max_request_elements (or, batching, than max_batch_size) is INVALID_ARGUMENT, checked
  before the examples are merged with their context or serialized.
  """
  kind = request_input.WhichOneof("kind")
  listed = (request_input.example_list.examples if kind == "example_list" else
            request_input.example_list_with_context.examples)
  limit = min(servable.limits.max_elements, servable.limits.max_batch_size or servable.limits.max_elements)
  if len(listed) > limit:
    raise errors.invalid_argument(
        f"Input holds {len(listed)} examples, more than the server's limit of {limit} ("
        + ("max_batch_size" if limit != servable.limits.max_elements else "--max_request_elements") + ")")
  if kind == "example_list":
    examples = list(listed)
  elif kind == "example_list_with_context":
    context = request_input.example_list_with_context.context
    examples = []
    for example in listed:
      merged = example_pb2.Example()
      merged.CopyFrom(context)
      merged.MergeFrom(example)  # the example's own features win over the context's
      examples.append(merged)
  else:
    examples = []
  if not examples:
    raise errors.invalid_argument("Input is empty.")
  return np.array([example.SerializeToString() for example in examples], dtype=object)


def _run_examples(servable: Servable, signature_name: str, request_input: input_pb2.Input,
                  method: str) -> tuple:
  """Checks `signature_name` is a `method` signature and runs it on the request's examples; returns the signature
  and its ClassificationResult or RegressionResult."""
  signature = servable.signature(signature_name)
  kind = "classification" if method == CLASSIFY_METHOD else "regression"
  if signature.signature_def.method_name != method:
    raise errors.invalid_argument(
        f"Expected {kind} signature method_name to be {method}. Was: {signature.signature_def.method_name} "
        f"(signature {signature.name})")
  if set(signature.input_specs) != {EXAMPLES_INPUT}:
    raise errors.invalid_argument(
        f"Expected one input Tensor named {EXAMPLES_INPUT!r} in {kind} signature {signature.name}, got "
        f"{sorted(signature.input_specs)}")
  examples = _serialized_examples(servable, request_input)
  outputs = servable.run(signature, {EXAMPLES_INPUT: examples})
  build_result = _classification_result if method == CLASSIFY_METHOD else _regression_result
  return signature, build_result(signature, outputs, len(examples))


def _classification_result(signature: Signature, outputs: Dict[str, np.ndarray],
                           num_examples: int) -> classification_pb2.ClassificationResult:
  classes, scores = outputs.get("classes"), outputs.get("scores")
  if classes is None and scores is None:
    raise errors.invalid_argument(
        f"Expected classification signature outputs to contain classes or scores (signature {signature.name})")
  result = classification_pb2.ClassificationResult()
  for i in range(num_examples):
    row_scores = None if scores is None else np.reshape(scores[i], [-1])
    row_classes = None if classes is None else np.reshape(classes[i], [-1])
    classifications = result.classifications.add()
    for j in range(len(row_scores) if row_scores is not None else len(row_classes)):
      label = classifications.classes.add()
      if row_classes is not None:
        value = row_classes[j]
        label.label = value.decode() if isinstance(value, bytes) else str(value)
      if row_scores is not None:
        label.score = float(row_scores[j])
  return result


def _regression_result(signature: Signature, outputs: Dict[str, np.ndarray],
                       num_examples: int) -> regression_pb2.RegressionResult:
  values = outputs.get("outputs")
  if values is None or values.size != num_examples:
    raise errors.invalid_argument(
        f"Expected regression signature {signature.name} to have one output 'outputs' with one value per "
        f"example ({num_examples})")
  result = regression_pb2.RegressionResult()
  for value in np.reshape(values, [-1]):
    result.regressions.add().value = float(value)
  return result


def classify(servable: Servable,
             request: classification_pb2.ClassificationRequest) -> classification_pb2.ClassificationResponse:
  return _examples_response(servable, request, CLASSIFY_METHOD, classification_pb2.ClassificationResponse)


def regress(servable: Servable, request: regression_pb2.RegressionRequest) -> regression_pb2.RegressionResponse:
  return _examples_response(servable, request, REGRESS_METHOD, regression_pb2.RegressionResponse)


def _examples_response(servable: Servable, request, method: str, response_type):
  """A Classify or Regress response: the `method` signature's result on the request's examples."""
  signature, result = _run_examples(servable, request.model_spec.signature_name, request.input, method)
  response = response_type(result=result)
  fill_model_spec(response.model_spec, servable, signature.name)
  return response


def multi_inference(servable: Servable,
                    request: inference_pb2.MultiInferenceRequest) -> inference_pb2.MultiInferenceResponse:
  """Runs every task (classify or regress signatures of one model version) on the same examples."""
  if not request.tasks:
    raise errors.invalid_argument("MultiInferenceRequest has no tasks")
  signature_names = [task.model_spec.signature_name or "serving_default" for task in request.tasks]
  if len(set(signature_names)) != len(signature_names):
    raise errors.invalid_argument(f"Duplicate evaluation of signature: {signature_names}")
  response = inference_pb2.MultiInferenceResponse()
  for task in request.tasks:
    if task.model_spec.name != request.tasks[0].model_spec.name:
      raise errors.invalid_argument("All ModelSpecs in a MultiInferenceRequest must access the same model "
                                    f"name ({request.tasks[0].model_spec.name} != {task.model_spec.name})")
    if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
      raise errors.unimplemented(f"Unsupported signature method_name: {task.method_name}")
    signature, result = _run_examples(servable, task.model_spec.signature_name, request.input, task.method_name)
    entry = response.results.add()
    fill_model_spec(entry.model_spec, servable, signature.name)
    (entry.classification_result if task.method_name == CLASSIFY_METHOD else entry.regression_result).CopyFrom(
        result)
  return response


def metadata(servable: Servable, request: get_model_metadata_pb2.GetModelMetadataRequest
             ) -> get_model_metadata_pb2.GetModelMetadataResponse:
  """The SignatureDefMap of the version, packed in an Any under 'signature_def' (the only field TF supports)."""
  if not request.metadata_field:
    raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
  for field in request.metadata_field:
    if field != SIGNATURE_DEF_FIELD:
      raise errors.invalid_argument(f"Metadata field {field} is not supported")
  response = get_model_metadata_pb2.GetModelMetadataResponse()
  fill_model_spec(response.model_spec, servable, "")
  signature_defs = get_model_metadata_pb2.SignatureDefMap()
  for key, signature_def in servable.signature_def_map().items():
    signature_defs.signature_def[key].CopyFrom(signature_def)
  response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_defs)
  return response
