"""The batch queue on its own: concatenation, padding, splitting, the full queue, failures."""
import asyncio
import concurrent.futures
import threading

import grpc
import numpy as np
import pytest

from serving import batcher
from serving import errors


def options(**overrides) -> batcher.BatchingOptions:
  values = dict(max_batch_size=8, batch_timeout_s=0.02, max_enqueued_batches=100, num_batch_threads=1,
                thread_pool_name="test", allowed_batch_sizes=(), pad_variable_length_inputs=False,
                enable_large_batch_splitting=False, max_execution_batch_size=8)
  values.update(overrides)
  result = batcher.BatchingOptions(**values)
  result.validate()
  return result


class Recorder:
  """run_fn: y = 2 * x, remembering every batch size it was called with."""

  def __init__(self, gate: threading.Event = None):
    self.sizes = []
    self.started = threading.Event()
    self.gate = gate

  def __call__(self, inputs):
    self.started.set()
    if self.gate is not None:
      self.gate.wait()
    self.sizes.append(len(inputs["x"]))
    return {"y": inputs["x"] * 2}


def test_concurrent_tasks_are_batched_and_split_back():
  run = Recorder()
  stats = []
  queue = batcher.BatchQueue(run, options(), "q", stats.append)
  try:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
      inputs = [np.arange(i % 3 + 1, dtype=np.float32) + 100 * i for i in range(48)]
      outputs = list(pool.map(lambda x: queue.submit({"x": x})["y"], inputs))
  finally:
    queue.close()
  for x, y in zip(inputs, outputs):
    np.testing.assert_array_equal(y, 2 * x)
  assert sum(run.sizes) == sum(len(x) for x in inputs) and max(run.sizes) > 1 and max(run.sizes) <= 8
  assert [s.size for s in stats] == run.sizes


def test_async_tasks_get_their_own_rows_and_one_loop_wakeup_per_batch():
  run = Recorder()
  queue = batcher.BatchQueue(run, options(), "q")
  wakeups = []

  async def main():
    loop = asyncio.get_running_loop()
    call_soon_threadsafe = loop.call_soon_threadsafe
    loop.call_soon_threadsafe = lambda *args: wakeups.append(args) or call_soon_threadsafe(*args)
    inputs = [np.arange(i % 3 + 1, dtype=np.float32) + 100 * i for i in range(24)]
    # Submitted in one go from the loop, they land in a few batches of at most 8 rows.
    outputs = await asyncio.gather(*(queue.submit_async({"x": x}) for x in inputs))
    return inputs, outputs

  try:
    inputs, outputs = asyncio.run(main())
  finally:
    queue.close()
  for x, y in zip(inputs, outputs):
    np.testing.assert_array_equal(y["y"], 2 * x)
  assert len(run.sizes) < len(inputs)
  assert len(wakeups) == len(run.sizes)  # one call into the loop per executed batch, not per request


def test_a_closed_event_loop_does_not_stop_the_batch_thread(caplog):
  gate = threading.Event()
  queue = batcher.BatchQueue(Recorder(gate), options(batch_timeout_s=0), "q")
  loop = asyncio.new_event_loop()

  async def submit():
    return queue.submit_async({"x": np.ones(1)})

  try:
    loop.run_until_complete(submit())  # queued; its batch waits at the gate while the loop goes away
    loop.close()
    gate.set()
    later = queue.submit_future({"x": np.ones(2)})
    np.testing.assert_array_equal(later.result(timeout=5)["y"], [2.0, 2.0])
  finally:
    gate.set()
    queue.close()
  assert "closed event loop" in caplog.text


def test_batches_are_padded_to_the_next_allowed_size():
  run = Recorder()
  queue = batcher.BatchQueue(run, options(allowed_batch_sizes=(2, 4, 8)), "q")
  try:
    y = queue.submit({"x": np.array([1.0, 2.0, 3.0])})["y"]
  finally:
    queue.close()
  np.testing.assert_array_equal(y, [2.0, 4.0, 6.0])
  assert run.sizes == [4]


def test_large_tasks_are_split_when_enabled_and_refused_when_too_big():
  run = Recorder()
  queue = batcher.BatchQueue(run, options(max_batch_size=16, enable_large_batch_splitting=True,
                                          max_execution_batch_size=4), "q")
  try:
    np.testing.assert_array_equal(queue.submit({"x": np.arange(10.0)})["y"], 2 * np.arange(10.0))
    assert max(run.sizes) <= 4 and sum(run.sizes) == 10
    with pytest.raises(errors.ServingError) as failed:
      queue.submit({"x": np.arange(17.0)})
    assert failed.value.code == grpc.StatusCode.INVALID_ARGUMENT and "maximum input batch size 16" in str(failed.value)
  finally:
    queue.close()


def test_full_queue_refuses_with_unavailable():
  """The only thread is stuck on one batch and one batch may wait: of two more full batches one is refused."""
  gate = threading.Event()
  run = Recorder(gate)
  queue = batcher.BatchQueue(run, options(max_batch_size=2, max_execution_batch_size=2, max_enqueued_batches=1),
                             "q")
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    running = pool.submit(queue.submit, {"x": np.ones(2)})
    run.started.wait()
    contenders = [pool.submit(queue.submit, {"x": np.ones(2)}) for _ in range(2)]
    done, _ = concurrent.futures.wait(contenders, return_when=concurrent.futures.FIRST_COMPLETED)
    refused = done.pop().exception()
    gate.set()
    assert isinstance(refused, errors.ServingError) and refused.code == grpc.StatusCode.UNAVAILABLE
    np.testing.assert_array_equal(running.result()["y"], [2.0, 2.0])
  queue.close()


def test_a_failing_batch_fails_its_requests_and_the_queue_goes_on():
  calls = []

  def run(inputs):
    calls.append(1)
    if len(calls) == 1:
      raise errors.invalid_argument("boom")
    return {"y": inputs["x"]}

  queue = batcher.BatchQueue(run, options(), "q")
  try:
    with pytest.raises(errors.ServingError, match="boom"):
      queue.submit({"x": np.ones(1)})
    np.testing.assert_array_equal(queue.submit({"x": np.ones(1)})["y"], [1.0])
  finally:
    queue.close()


def test_inputs_that_disagree_on_the_batch_dimension_are_refused():
  queue = batcher.BatchQueue(Recorder(), options(), "q")
  try:
    with pytest.raises(errors.ServingError, match="same dimension 0"):
      queue.submit({"x": np.ones(2), "z": np.ones(3)})
  finally:
    queue.close()


def test_variable_length_inputs_are_padded_when_asked():
  seen = []

  def run(inputs):
    seen.append(inputs["x"].shape)
    return {"y": inputs["x"]}

  queue = batcher.BatchQueue(run, options(pad_variable_length_inputs=True, batch_timeout_s=0.5), "q")
  try:
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
      short = pool.submit(queue.submit, {"x": np.ones((1, 2))})
      long = pool.submit(queue.submit, {"x": np.ones((1, 3))})
      assert short.result()["y"].tolist() in ([[1.0, 1.0, 0.0]], [[1.0, 1.0]])
      assert long.result()["y"].tolist() == [[1.0, 1.0, 1.0]]
  finally:
    queue.close()
  assert (2, 3) in seen or seen == [(1, 2), (1, 3)]
