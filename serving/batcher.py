"""Server-side batching: one queue per (model version, signature), like TF Serving's batching session.

Concurrent requests are concatenated on dimension 0, padded up to the next allowed batch size (with copies of
the first row, as TF Serving pads), run once, and the outputs are split back to their requests.
"""
import asyncio
import concurrent.futures
import dataclasses
import itertools
import logging
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import grpc
import numpy as np

from serving import errors
from serving.protos import batching_parameters_pb2

log = logging.getLogger(__name__)

Arrays = Dict[str, np.ndarray]
RunFn = Callable[[Arrays], Arrays]

# TF Serving's defaults for unset BatchingParameters fields (BasicBatchScheduler::Options).
DEFAULT_MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_TIMEOUT_MICROS = 0
DEFAULT_MAX_ENQUEUED_BATCHES = 10
DEFAULT_THREAD_POOL_NAME = "batch_threads"


class BatchingConfigError(ValueError):
  """BatchingParameters that TF Serving would refuse."""


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
  """Resolved BatchingParameters (all fields set)."""
  max_batch_size: int
  batch_timeout_s: float
  max_enqueued_batches: int
  num_batch_threads: int
  thread_pool_name: str
  allowed_batch_sizes: Tuple[int, ...]
  pad_variable_length_inputs: bool
  enable_large_batch_splitting: bool
  max_execution_batch_size: int

  @classmethod
  def from_proto(cls, params: batching_parameters_pb2.BatchingParameters, num_cpus: int) -> "BatchingOptions":
    """Fills unset fields with TF Serving's defaults and checks the same constraints TF Serving checks."""
    def get(field: str, default):
      return getattr(params, field).value if params.HasField(field) else default

    max_batch_size = get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
    splitting = get("enable_large_batch_splitting", False)
    max_execution = get("max_execution_batch_size", max_batch_size) if splitting else max_batch_size
    options = cls(
        max_batch_size=max_batch_size,
        batch_timeout_s=get("batch_timeout_micros", DEFAULT_BATCH_TIMEOUT_MICROS) / 1e6,
        max_enqueued_batches=get("max_enqueued_batches", DEFAULT_MAX_ENQUEUED_BATCHES),
        num_batch_threads=get("num_batch_threads", num_cpus),
        thread_pool_name=get("thread_pool_name", DEFAULT_THREAD_POOL_NAME),
        allowed_batch_sizes=tuple(params.allowed_batch_sizes),
        pad_variable_length_inputs=params.pad_variable_length_inputs,
        enable_large_batch_splitting=splitting,
        max_execution_batch_size=max_execution)
    options.validate()
    return options

  def validate(self) -> None:
    for field in ("max_batch_size", "max_enqueued_batches", "num_batch_threads", "max_execution_batch_size"):
      if getattr(self, field) < 1:
        raise BatchingConfigError(f"BatchingParameters.{field} must be >= 1, got {getattr(self, field)}")
    if self.batch_timeout_s < 0:
      raise BatchingConfigError("BatchingParameters.batch_timeout_micros must be >= 0")
    if self.max_execution_batch_size > self.max_batch_size:
      raise BatchingConfigError(
          f"BatchingParameters.max_execution_batch_size ({self.max_execution_batch_size}) must not exceed "
          f"max_batch_size ({self.max_batch_size})")
    sizes = self.allowed_batch_sizes
    if sizes:
      if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] < 1:
        raise BatchingConfigError(f"BatchingParameters.allowed_batch_sizes must increase: {list(sizes)}")
      if sizes[-1] != self.max_execution_batch_size:
        raise BatchingConfigError(
            f"BatchingParameters.allowed_batch_sizes must end with the largest batch that runs "
            f"({self.max_execution_batch_size}); got {list(sizes)}")

  def padded_size(self, size: int) -> int:
    """The batch size a batch of `size` rows is padded up to."""
    for allowed in self.allowed_batch_sizes:
      if allowed >= size:
        return allowed
    return size


class _Task:
  """One request (or, with large batch splitting, all pieces of one) waiting for its outputs.

  Its future is a concurrent.futures.Future, or an asyncio.Future of `loop` for callers on an event loop.
  """

  def __init__(self, inputs: Arrays, size: int, loop: Optional[asyncio.AbstractEventLoop] = None):
    self.inputs = inputs
    self.size = size
    self.enqueued_at = time.monotonic()
    self.pieces_left = 0
    self.outputs: Dict[int, Arrays] = {}  # piece offset -> outputs
    self.error: Optional[BaseException] = None
    self.loop = loop
    self.future = loop.create_future() if loop is not None else concurrent.futures.Future()

  def resolve(self) -> None:
    """Sets the future to the pieces' outputs joined in order (or to the first error); on an asyncio future,
    call it on the future's loop. A future already done (its caller went away) is left alone."""
    if self.future.done():
      return
    if self.error is not None:
      self.future.set_exception(self.error)
      return
    offsets = sorted(self.outputs)
    if len(offsets) == 1:
      self.future.set_result(self.outputs[offsets[0]])
    else:
      self.future.set_result({key: np.concatenate([self.outputs[o][key] for o in offsets])
                              for key in self.outputs[offsets[0]]})


def _resolve_all(tasks: List[_Task]) -> None:
  for task in tasks:
    task.resolve()


def _resolve(tasks: List[_Task]) -> None:
  """Resolves finished tasks: concurrent futures here, asyncio futures with one call per event loop, so a
  batch wakes the gRPC event loop once rather than once per request."""
  by_loop: Dict[asyncio.AbstractEventLoop, List[_Task]] = {}
  for task in tasks:
    if task.loop is None:
      task.resolve()
    else:
      by_loop.setdefault(task.loop, []).append(task)
  for loop, group in by_loop.items():
    try:
      loop.call_soon_threadsafe(_resolve_all, group)
    except RuntimeError:  # the loop was closed: its callers are gone, and the batch thread must live on
      log.warning("dropped %d batched results for a closed event loop", len(group))


@dataclasses.dataclass
class _Piece:
  task: _Task
  start: int
  stop: int

  @property
  def size(self) -> int:
    return self.stop - self.start


@dataclasses.dataclass
class _Batch:
  pieces: List[_Piece]
  size: int
  trailing_shapes: Tuple  # shapes beyond dimension 0; tasks that differ go to another batch unless padded
  opened_at: float


@dataclasses.dataclass(frozen=True)
class BatchStats:
  """What one executed batch looked like (for metrics)."""
  size: int
  padded_size: int
  queue_latencies_s: Tuple[float, ...]


class BatchQueue:
  """Batches `run_fn` calls for one (model version, signature); `submit` blocks until its outputs are ready.

  Args:
    run_fn: runs a batch: {input: array [B, ...]} -> {output: array [B, ...]}.
    options: resolved batching options.
    name: names the queue in errors and thread names (model, version, signature).
    on_batch: called with each executed batch's BatchStats (metrics).
  """

  def __init__(self, run_fn: RunFn, options: BatchingOptions, name: str,
               on_batch: Optional[Callable[[BatchStats], None]] = None):
    self._run_fn = run_fn
    self._options = options
    self._name = name
    self._on_batch = on_batch
    self._cond = threading.Condition()
    self._batches: List[_Batch] = []
    self._closed = False
    self._threads = [threading.Thread(target=self._work, name=f"batch-{name}-{i}", daemon=True)
                     for i in range(options.num_batch_threads)]
    for thread in self._threads:
      thread.start()

  def submit(self, inputs: Arrays) -> Arrays:
    """Queues one request's inputs (all with the same dimension 0) and blocks until its outputs are ready."""
    return self.submit_future(inputs).result()

  def submit_future(self, inputs: Arrays) -> concurrent.futures.Future:
    """Queues one request's inputs; the future resolves to its outputs {name: array [n, ...]}.

    Raises:
      ServingError: INVALID_ARGUMENT when the request is larger than max_batch_size or its inputs disagree on
        dimension 0, UNAVAILABLE when the queue already holds max_enqueued_batches batches.
    """
    return self._submit(inputs, loop=None)

  def submit_async(self, inputs: Arrays) -> asyncio.Future:
    """submit_future() for a caller on a running event loop: an asyncio.Future of that loop. Raises as
    submit_future()."""
    return self._submit(inputs, asyncio.get_running_loop())

  def _submit(self, inputs: Arrays, loop: Optional[asyncio.AbstractEventLoop]):
    sizes = {array.shape[0] if array.ndim else None for array in inputs.values()}
    if len(sizes) != 1 or None in sizes:
      raise errors.invalid_argument(
          f"batching {self._name}: every input must have the same dimension 0 (the batch), got "
          + ", ".join(f"{key}: {list(value.shape)}" for key, value in sorted(inputs.items())))
    size = sizes.pop()
    if size > self._options.max_batch_size:
      raise errors.invalid_argument(
          f"Task size {size} is larger than maximum input batch size {self._options.max_batch_size} "
          f"({self._name})")
    task = _Task(inputs, size, loop)
    if size == 0:
      task.outputs[0] = self._run_fn(inputs)
      task.resolve()
      return task.future
    with self._cond:
      if self._closed:
        raise errors.unavailable(f"{self._name} is unloading")
      self._enqueue(task)
      self._cond.notify_all()
    return task.future

  def _enqueue(self, task: _Task) -> None:
    """Places `task` (split into pieces when large batch splitting is on) into open batches; caller holds the
    lock. Rejects the whole task when it would need more than max_enqueued_batches batches."""
    limit = self._options.max_execution_batch_size
    shapes = tuple(sorted((key, array.shape[1:]) for key, array in task.inputs.items()))
    if self._options.pad_variable_length_inputs:
      shapes = tuple(sorted((key, len(array.shape)) for key, array in task.inputs.items()))
    last = self._batches[-1] if self._batches else None
    room = limit - last.size if last is not None and last.trailing_shapes == shapes else 0
    if not self._options.enable_large_batch_splitting:
      pieces = [(0, task.size)]
      fits_last = task.size <= room
    else:
      first = min(room, task.size)
      starts = ([0] if first else []) + list(range(first, task.size, limit))
      pieces = [(s, min(task.size, s + (first if s == 0 and first else limit))) for s in starts]
      fits_last = first > 0
    new_batches = len(pieces) - (1 if fits_last else 0)
    if len(self._batches) + new_batches > self._options.max_enqueued_batches:
      raise errors.unavailable("The batch scheduling queue to which this task was submitted is full "
                               f"({self._name}: {len(self._batches)} batches waiting)")
    task.pieces_left = len(pieces)
    for i, (start, stop) in enumerate(pieces):
      piece = _Piece(task, start, stop)
      if i == 0 and fits_last:
        last.pieces.append(piece)
        last.size += piece.size
      else:
        self._batches.append(_Batch([piece], piece.size, shapes, time.monotonic()))

  def _next_batch(self) -> Optional[_Batch]:
    """Blocks until a batch is full, its timeout passed, or a later batch exists; None once closed and empty."""
    with self._cond:
      while True:
        if not self._batches:
          if self._closed:
            return None
          self._cond.wait()
          continue
        batch = self._batches[0]
        wait = batch.opened_at + self._options.batch_timeout_s - time.monotonic()
        if (len(self._batches) > 1 or batch.size >= self._options.max_execution_batch_size or wait <= 0
            or self._closed):
          return self._batches.pop(0)
        self._cond.wait(wait)

  def _work(self) -> None:
    while True:
      batch = self._next_batch()
      if batch is None:
        return
      started = time.monotonic()
      try:
        outputs = self._run_batch(batch)
      except BaseException as e:  # pylint: disable=broad-except  # delivered to every waiting request
        for piece in batch.pieces:
          piece.task.error = e
        _resolve([piece.task for piece in batch.pieces if self._finish_piece(piece)])
        continue
      offset = 0
      for piece in batch.pieces:
        piece.task.outputs[piece.start] = {key: value[offset:offset + piece.size]
                                           for key, value in outputs.items()}
        offset += piece.size
      _resolve([piece.task for piece in batch.pieces if self._finish_piece(piece)])
      if self._on_batch is not None:
        self._on_batch(BatchStats(batch.size, self._options.padded_size(batch.size),
                                  tuple(started - piece.task.enqueued_at for piece in batch.pieces)))

  def _run_batch(self, batch: _Batch) -> Arrays:
    """Concatenates the pieces' inputs, pads, runs once, checks every output has the batch on dimension 0."""
    padded = self._options.padded_size(batch.size)
    inputs = {}
    for key in batch.pieces[0].task.inputs:
      parts = [piece.task.inputs[key][piece.start:piece.stop] for piece in batch.pieces]
      if self._options.pad_variable_length_inputs:
        parts = _pad_to_common_shape(parts)
      if padded > batch.size:
        parts.append(np.repeat(parts[0][:1], padded - batch.size, axis=0))
      inputs[key] = np.concatenate(parts) if len(parts) > 1 else parts[0]
    outputs = self._run_fn(inputs)
    for key, value in outputs.items():
      if value.ndim == 0 or value.shape[0] != padded:
        raise errors.ServingError(
            grpc.StatusCode.INTERNAL,
            f"batching {self._name}: output {key!r} has shape {list(value.shape)}; batched signatures must "
            f"return the batch ({padded}) on dimension 0")
    return outputs

  def _finish_piece(self, piece: _Piece) -> bool:
    """Counts `piece` done; True when it was its task's last."""
    with self._cond:  # pieces of one task may finish on different batch threads
      piece.task.pieces_left -= 1
      return piece.task.pieces_left == 0

  def close(self) -> None:
    """Stops accepting requests, runs what is queued, and joins the batch threads."""
    with self._cond:
      self._closed = True
      self._cond.notify_all()
    for thread in self._threads:
      thread.join()


def _pad_to_common_shape(parts: List[np.ndarray]) -> List[np.ndarray]:
  """Pads each part's non-batch dimensions up to the largest (zeros, or b'' for strings)."""
  target = tuple(max(dims) for dims in itertools.zip_longest(*(p.shape[1:] for p in parts), fillvalue=0))
  padded = []
  for part in parts:
    widths = [(0, 0)] + [(0, t - d) for t, d in zip(target, part.shape[1:])]
    fill = b"" if part.dtype == object else 0
    padded.append(np.pad(part, widths, constant_values=fill) if any(w for _, w in widths[1:]) else part)
  return padded
