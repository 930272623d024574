"""One loaded model version: its SavedModel signatures, run directly or through a batch queue per signature."""
import asyncio
import concurrent.futures
import dataclasses
import threading
from pathlib import Path
from typing import Awaitable, Callable, Dict, Optional, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.core.protobuf import saved_model_pb2

from serving import batcher
from serving import errors
from serving import tensors
from serving.flags import ServerOptions

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"


@dataclasses.dataclass(frozen=True)
class Signature:
  """A callable signature: its SignatureDef (names, dtypes, shapes, method) and the loaded function."""
  name: str
  signature_def: meta_graph_pb2.SignatureDef
  function: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]
  input_specs: Dict[str, tensors.InputSpec]  # sorted by name
  batchable: bool  # every input and output has the batch on dimension 0
  output_names: Tuple[str, ...]  # sorted: what a Predict without output_filter answers


class Servable:
  """A SavedModel version ready to run. `run` goes through the batcher when batching is enabled.

  Args:
    name / version / path: the model name, version number and version folder.
    batching: batching options, or None to run each request on its own.
    on_batch: metrics hook called with (model name, signature, BatchStats) for every executed batch.
    limits: what one request may allocate (element and string byte caps); max_batch_size is filled in from
      `batching`.
    session_config: the model's Session options (default: session_config_from the default flags).
  """

  def __init__(self, name: str, version: int, path: Path, batching: Optional[batcher.BatchingOptions] = None,
               on_batch: Optional[Callable[[str, str, batcher.BatchStats], None]] = None,
               limits: Optional[tensors.RequestLimits] = None,
               session_config: Optional[tf.compat.v1.ConfigProto] = None):
    self.name = name
    self.version = version
    self.path = Path(path)
    self._batching = batching
    limits = limits or tensors.RequestLimits(ServerOptions.max_request_elements, ServerOptions.max_request_bytes)
    self.limits = dataclasses.replace(limits, max_batch_size=batching.max_batch_size if batching else None)
    self._on_batch = on_batch
    meta_graph = _read_serve_meta_graph(self.path)
    # As TF Serving does, for TF1 and TF2 SavedModels alike: the MetaGraph imported into a Session, variables
    # restored by the saver's restore op, the init op run, and each signature fed and fetched by the
    # SignatureDef's tensor names. A TF2 export whose signatures read variables the saver does not restore
    # fails its warmup and requests ("Could not find variable") as it would in TF Serving.
    self._session = _load_session(self.path, session_config or session_config_from(ServerOptions()))
    self.signatures: Dict[str, Signature] = {
        key: Signature(key, signature_def, _session_runner(self._session, signature_def),
                       _input_specs(signature_def), _is_batchable(signature_def), tuple(sorted(signature_def.outputs)))
        for key, signature_def in meta_graph.signature_def.items()}
    self._queues: Dict[str, batcher.BatchQueue] = {}
    self._queues_lock = threading.Lock()

  def signature_def_map(self) -> Dict[str, meta_graph_pb2.SignatureDef]:
    return {key: signature.signature_def for key, signature in self.signatures.items()}

  def signature(self, name: str) -> Signature:
    """Looks up a signature; '' means serving_default. Unknown: FAILED_PRECONDITION as in TF Serving."""
    key = name or DEFAULT_SIGNATURE
    if key not in self.signatures:
      raise errors.failed_precondition(
          f"Serving signature name: \"{key}\" not found in signature def of model {self.name} version "
          f"{self.version} (signatures: {', '.join(sorted(self.signatures))})")
    return self.signatures[key]

  def decode_inputs(self, signature: Signature, protos) -> Dict[str, np.ndarray]:
    """Checks the request tensors {input: TensorProto} (the signature's inputs) against the signature and the
    request limits, then decodes them; raises INVALID_ARGUMENT before allocating anything for a bad one."""
    batched = self._batching is not None and signature.batchable
    return tensors.decode_inputs(protos, signature.input_specs, self.limits, batched)

  def run(self, signature: Signature, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Runs `signature` on checked inputs {name: array [B, ...]} -> {output: array [B, ...]}."""
    if self._batching is None or not signature.batchable:
      return self._call(signature, inputs)
    return self._queue(signature).submit(inputs)

  def run_async(self, signature: Signature, inputs: Dict[str, np.ndarray],
                executor: concurrent.futures.Executor) -> Awaitable[Dict[str, np.ndarray]]:
    """run() for a caller on an event loop: awaits the batch queue, or the call on `executor` when not batched."""
    if self._batching is None or not signature.batchable:
      return asyncio.wrap_future(executor.submit(self._call, signature, inputs))
    return self._queue(signature).submit_async(inputs)

  def _call(self, signature: Signature, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    try:
      return signature.function(inputs)
    except tf.errors.OpError as e:
      raise errors.from_tf_error(e) from e

  def _queue(self, signature: Signature) -> batcher.BatchQueue:
    with self._queues_lock:
      queue = self._queues.get(signature.name)
      if queue is None:
        on_batch = None
        if self._on_batch is not None:
          on_batch = lambda stats: self._on_batch(self.name, signature.name, stats)  # noqa: E731
        queue = batcher.BatchQueue(lambda inputs: self._call(signature, inputs), self._batching,
                                   f"{self.name}/{self.version}/{signature.name}", on_batch)
        self._queues[signature.name] = queue
      return queue

  def close(self) -> None:
    """Drains and stops the batch queues, then closes the model's Session."""
    with self._queues_lock:
      queues, self._queues = list(self._queues.values()), {}
    for queue in queues:
      queue.close()
    self._session.close()


def _read_serve_meta_graph(path: Path) -> meta_graph_pb2.MetaGraphDef:
  """The MetaGraph tagged 'serve' in `path`/saved_model.pb (its SignatureDefs are what GetModelMetadata returns)."""
  saved_model = saved_model_pb2.SavedModel()
  saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
  for meta_graph in saved_model.meta_graphs:
    if SERVE_TAG in meta_graph.meta_info_def.tags:
      return meta_graph
  raise ValueError(f"{path}/saved_model.pb has no MetaGraph tagged {SERVE_TAG!r}")


def session_config_from(options: ServerOptions) -> tf.compat.v1.ConfigProto:
  """The models' Session options from --tensorflow_intra_op_parallelism / --tensorflow_inter_op_parallelism
  (0: TensorFlow chooses; inter-op -1 runs a signature's ops in the calling thread, which made single calls
  faster but a 32-user `recommend` 1.5x slower here: BENCHMARKS.md, Serving)."""
  return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=options.tensorflow_intra_op_parallelism,
                                  inter_op_parallelism_threads=options.tensorflow_inter_op_parallelism)


def _load_session(path: Path, config: tf.compat.v1.ConfigProto) -> tf.compat.v1.Session:
  graph = tf.Graph()
  session = tf.compat.v1.Session(graph=graph, config=config)
  with graph.as_default():
    tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], str(path))
  return session


def _session_runner(session: tf.compat.v1.Session, signature_def: meta_graph_pb2.SignatureDef
                    ) -> Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]]:
  """Runs the signature through a callable made once from its feeds and fetches (C++ `Session::MakeCallable`,
  which `Session._make_callable_from_options` wraps): the arrays go straight to the runtime. `Session.run`, and
  `make_callable` with feeds, which delegates to it, rebuild the fetch and feed handling in Python on every call:
  0.2 ms of a 0.28 ms `recommend` call (BENCHMARKS.md, Serving). The inputs are already checked and decoded to
  the SignatureDef's dtypes, the conversion `Session.run` would otherwise do."""
  inputs, outputs = sorted(signature_def.inputs), sorted(signature_def.outputs)
  if not outputs:
    return lambda _: {}
  # An output named by an operation, not a tensor ("op" rather than "op:0", as TF2's __saved_model_init_op), is run
  # as a target and answers None, as Session.run answers for an operation.
  tensors_out = [key for key in outputs if ":" in signature_def.outputs[key].name]
  call = session._make_callable_from_options(config_pb2.CallableOptions(  # pylint: disable=protected-access
      feed=[signature_def.inputs[key].name for key in inputs],
      fetch=[signature_def.outputs[key].name for key in tensors_out],
      target=[signature_def.outputs[key].name for key in outputs if key not in tensors_out]))

  def run(values: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    fetched = dict(zip(tensors_out, call(*(values[key] for key in inputs))))
    return {key: fetched.get(key) for key in outputs}
  return run


def _input_specs(signature_def: meta_graph_pb2.SignatureDef) -> Dict[str, tensors.InputSpec]:
  """The SignatureDef's inputs by name, sorted (no shape or unknown rank -> shape None; dimension -1 -> None)."""
  return {key: tensors.InputSpec(info.dtype, None if not info.HasField("tensor_shape") or info.tensor_shape.unknown_rank
                                 else tuple(d.size if d.size >= 0 else None for d in info.tensor_shape.dim))
          for key, info in sorted(signature_def.inputs.items())}


def _is_batchable(signature_def: meta_graph_pb2.SignatureDef) -> bool:
  """True when every input and output is unknown-rank or has an unknown (batch) dimension 0."""
  for tensor in list(signature_def.inputs.values()) + list(signature_def.outputs.values()):
    shape = tensor.tensor_shape
    if tensor.HasField("tensor_shape") and not shape.unknown_rank and (not shape.dim or shape.dim[0].size != -1):
      return False
  return True
